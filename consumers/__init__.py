"""Sinks: the processes that make downstream systems honour consent instructions.

One runner (:mod:`consumers.runner`) drives every sink; each sink implements the small
:class:`consumers.protocol.Sink` protocol and knows only its downstream system.
"""
