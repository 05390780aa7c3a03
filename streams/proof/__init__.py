"""Proof of propagation: sinks' receipts in (``agent.py``), which destinations must
honour an event and which have (``propagation.py``), ``FullyPropagated`` when all have,
and the views that answer about one event or subject (``query.py``, ``views.py``)."""
