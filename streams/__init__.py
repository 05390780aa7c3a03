"""Consent Relay's stream processor: a Faust app that validates consent events, resolves
each subject's current consent, routes instructions to the sink families, proves that
every withdrawal reached every destination, and gates personal data on consent.

The tree is the pipeline, stage by stage:

- :mod:`streams.intake`: consent events in; each subject's state resolved
  (``resolution.py``, ``claims.py``), routed (``routing.toml``, ``routing.py``,
  ``fanout.py``) and published (``records.py``, ``state_writer.py``);
- :mod:`streams.proof`: receipts in; proof that every destination honoured a
  withdrawal (``propagation.py``), and the views that answer about it;
- :mod:`streams.gate`: the consent gate, a process of its own (``python -m streams.gate``);
- :mod:`streams.engine`: how a batch is taken from Faust, published with its table
  writes, retried and acknowledged; codecs and tables.

The rules are pure and unit tested without Kafka; :mod:`streams.app` wires them into
Faust agents, tables and views. Run a worker with ``python -m streams worker``.
"""
