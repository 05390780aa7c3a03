"""Helpers the integration tests share: free ports, relay processes, waiting."""
