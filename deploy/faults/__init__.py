"""The fault harness: the real relay under faults and hostile input, reconciled exactly.

``python -m deploy.faults`` (see ``deploy/faults/README.md``) starts a private broker,
registry and PostgreSQL, the relay as its operators run it (stream worker, marketing
sink on PostgreSQL, analytics sink, partner sink with a local webhook receiver), and
publishes a known workload of grants and withdrawals (duplicates, equal event times,
old events arriving late). While it flows, it kills and restarts each process, stops
the broker and PostgreSQL, makes a partner answer 500 and publishes a burst of
malformed records. Then it reads every sink's real store, reconciles it against the
rule (newest event time wins, a tie is a withdrawal, a late old event never re-grants)
and prints one table. It exits non-zero on any loss or misapplication, or when a
malformed record was not dead-lettered.
"""
