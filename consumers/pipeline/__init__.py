"""The parts of a sink's pipeline, each with one job; :class:`consumers.runner.SinkRunner`
composes them.

- :mod:`~consumers.pipeline.progress`: what a runner holds between a fetch and its commit.
- :mod:`~consumers.pipeline.subscription`: the Kafka consumer's life (join, replace, leave).
- :mod:`~consumers.pipeline.loop`: consume: fetch a chunk, process it, make it durable.
- :mod:`~consumers.pipeline.applying`: decode, filter, apply, answer one chunk.
- :mod:`~consumers.pipeline.answering`: receipts, dead letters, answered ids.
- :mod:`~consumers.pipeline.retrying`: retry with backoff, waiting inside the group.
- :mod:`~consumers.pipeline.checkpoints`: mark done, store and commit durable work only.
- :mod:`~consumers.pipeline.rebalance`: partitions assigned, revoked, lost.
- :mod:`~consumers.pipeline.seeding`: seed an empty store from the consent state.
- :mod:`~consumers.pipeline.telemetry`: the one writer of every sink metric.
"""
