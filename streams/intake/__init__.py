"""Intake: consent events in (``agent.py``); what each claims (``claims.py``), the
resolution rules (``resolution.py``), who hears what (``routing.toml``, ``routing.py``,
``fanout.py``), and what is published: instructions, state, progress, dead letters
(``records.py``, ``state_writer.py``, ``progress.py``)."""
