"""The consent gate: personal data flows on only where consent allowed it when the data
was produced. Its own process, ``python -m streams.gate``, beside the stream workers.

It reads ``data.events`` in its own consumer group and writes what may flow to
``data.events.allowed``, on one Kafka client library (confluent-kafka). It shares no
memory with the workers: each subject's consent state is rebuilt from ``consent.state``
(the workers' state table's changelog, each record with the subject's decision history),
which is co-partitioned with the data, and how far intake has got is read
from intake's progress records. The modules, one job each: :mod:`~streams.gate.rules`
(the decision, pure), :mod:`~streams.gate.judge` (a batch of data events decided, pure),
:mod:`~streams.gate.state` (subjects rebuilt from state records),
:mod:`~streams.gate.coverage` (when the state covers a data event, pure),
:mod:`~streams.gate.follower` (reading state and progress), :mod:`~streams.gate.loop`
(consume, cover, decide, publish, commit), :mod:`~streams.gate.metrics`,
:mod:`~streams.gate.settings` and the entrypoint in ``__main__``.
"""

from streams.gate.rules import GatePolicy, Verdict, decide

__all__ = ["GatePolicy", "Verdict", "decide"]
