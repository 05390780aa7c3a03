"""Consent Relay's stream processor: a Faust app that validates consent events, resolves
each subject's current consent, routes instructions to the sink families, proves that
every withdrawal reached every destination, and gates personal data on consent.

Pure rules live in their own modules (:mod:`streams.resolution`, :mod:`streams.claims`,
:mod:`streams.routing`, :mod:`streams.propagation`, :mod:`streams.gate.rules`) and are unit
tested without Kafka; :mod:`streams.app` wires them into Faust agents, tables and views.
Run it with ``python -m streams worker``; the consent gate is a process of its own,
``python -m streams.gate`` (:mod:`streams.gate`).
"""
