"""Ties the gate's thread (:mod:`streams.gatekeeper`) to the Faust worker's life.

The gate reads the data partitions whose numbers Faust assigned this worker on the
consent topic: that is where the subjects' state is. So when a rebalance completes
(after the tables are recovered) the gate is given those partitions, and when Faust
revokes partitions the gate first finishes and commits its batch and lets go of all of
them, so two workers never decide the same partition with different state. When the
worker shuts down the gate stops too, committing what it has published.
"""

from __future__ import annotations

import asyncio
import sys
from typing import Any

import faust

from schemas.codec import EventDecoder
from schemas.kafka import KafkaSettings
from streams.agents.context import StreamContext, log
from streams.agents.gate import GateJudge
from streams.config import StreamSettings
from streams.gatekeeper import Gatekeeper
from streams.wire import RegistryEncoder

GIL_SWITCH_INTERVAL_SECONDS = 0.001
"""How long the Faust loop may hold the GIL before the gate's thread gets a turn
(CPython's default is 5 ms). The gate's delay is mostly time spent waiting for the GIL
while the loop processes a batch: in the benchmark's gate phase (500 data events/s) its
p99 went from 28-35 ms to 16-19 ms, its backlog rate unchanged."""


def gate_group(app_id: str) -> str:
    """The consumer group whose committed offsets say where the gate is."""
    return f"{app_id}-gate"


def attach(
    app: faust.App,
    ctx: StreamContext,
    kafka: KafkaSettings,
    settings: StreamSettings,
    app_id: str,
) -> Gatekeeper:
    """Build the gate and connect it to ``app``'s rebalances and shutdown."""
    # Its own decoder and encoder: the gate's thread shares no codec cache with intake.
    registry = kafka.registry_client()
    decoder, encode = EventDecoder(registry), RegistryEncoder(registry)
    judge = GateJudge(
        policy=ctx.gate_policy,
        topics=ctx.topics,
        state=ctx.state,
        decoder=decoder,
        encode=encode,
        copartitioned=ctx.copartitioned,
    )
    loops: list[asyncio.AbstractEventLoop] = []

    def crash(exc: BaseException) -> None:
        # Called in the gate's thread; the worker crashes in its own loop.
        for loop in loops:
            asyncio.run_coroutine_threadsafe(app.crash(exc), loop)

    gate = Gatekeeper(
        kafka,
        gate_group(app_id),
        judge,
        ctx.metrics,
        ctx.intake_progress,
        batch_size=settings.gate_batch_size,
        intake_wait_seconds=settings.gate_intake_wait_seconds,
        stream_group=app_id,
        activity=ctx.activity,
        on_crash=crash,
    )
    consent = ctx.topics.consent
    # A revocation must not outlast the group's session, or the rebalance fails.
    handoff = settings.session_timeout_seconds / 2

    async def assigned(*_args: Any, **_kwargs: Any) -> None:
        if gate.ident is None:  # not started yet (a thread starts once)
            loops.append(asyncio.get_running_loop())
            sys.setswitchinterval(GIL_SWITCH_INTERVAL_SECONDS)
            gate.start()
        mine = {tp.partition for tp in app.consumer.assignment() if tp.topic == consent}
        await asyncio.to_thread(gate.assign, mine, handoff)

    async def revoked(*_args: Any, **_kwargs: Any) -> None:
        if gate.is_alive() and not await asyncio.to_thread(gate.release, handoff):
            log.warning("gate: still releasing its partitions after %.0fs", handoff)

    async def stop(*_args: Any, **_kwargs: Any) -> None:
        await asyncio.to_thread(gate.stop)

    app.on_rebalance_complete.connect(assigned)
    app.on_partitions_revoked.connect(revoked)
    app.on_before_shutdown.connect(stop)
    return gate
