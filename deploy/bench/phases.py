"""One load phase against a running relay: warm-up, measured load, catching up.

Each phase gets a relay of its own (fresh topic prefix, fresh processes; see
:mod:`deploy.bench.run`), so a phase the relay could not keep up with does not leak
its backlog into the next one. Before anything is timed one withdrawal is sent and
awaited as FullyPropagated (:func:`probe`). CPU per process is read from /proc around
the phase, and py-spy (with ``--profile``) samples the processes during the measured
window. The Kafka records the relay appended during the phase are counted from its
topics' end offsets (:mod:`deploy.bench.costs`).
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

from deploy.bench import procfs
from deploy.bench.config import IDLE_RATE, MAX_WARMUP_RATE, BenchConfig, Phase
from deploy.bench.costs import LOAD_GENERATOR, records_written, topic_ends
from deploy.bench.loadgen import LoadGenerator, SendReport, SentWithdrawal
from deploy.bench.offsets import GroupLag, Offsets
from deploy.bench.profile import Recorder
from deploy.bench.progress import Sampler, backlog_rate, rate_between, wait_caught_up
from deploy.bench.relay import Relay, RelayError
from deploy.bench.say import say
from deploy.bench.workload import Prepared, Workload
from schemas.codec import EventDecoder
from schemas.runtime.kafka import KafkaSettings

__all__ = ["LOAD_GENERATOR", "PhaseRun", "cpu_meter", "pids", "prepare", "probe", "run_phase"]


@dataclass(slots=True)
class PhaseRun:
    """What happened in one phase."""

    phase: Phase
    warmup_events: list[Prepared]
    events: list[Prepared]
    prefix: str = ""
    reports: list[SendReport] = field(default_factory=list)
    measure_start: float = 0.0
    measure_end: float = 0.0
    throughput: float | None = None
    drain_seconds: float = 0.0
    drained: bool = False
    cpu_percent: dict[str, float | None] = field(default_factory=dict)
    cpu_seconds: dict[str, float | None] = field(default_factory=dict)
    cpu_wait_percent: dict[str, float | None] = field(default_factory=dict)
    """Process → % of the phase its most-waiting thread was ready to run but waited for a
    core (:func:`deploy.bench.procfs.longest_wait`)."""
    peak_rss_mb: dict[str, float] = field(default_factory=dict)
    final_lag: dict[str, GroupLag] = field(default_factory=dict)
    backlog_start: dict[int, int] = field(default_factory=dict)
    backlog_end: dict[int, int] = field(default_factory=dict)
    records: dict[str, int] = field(default_factory=dict)
    """topic → records appended from the warm-up until the relay caught up."""
    backlog_growth: int | None = None
    """Fixed rates: events sent in the measured window minus events the stream consumed
    in it (> 0: the stream fell behind)."""
    profile: dict[str, Any] = field(default_factory=dict)

    @property
    def withdrawals(self) -> dict[str, SentWithdrawal]:
        """Every acknowledged withdrawal of the phase."""
        merged: dict[str, SentWithdrawal] = {}
        for r in self.reports:
            merged.update(r.withdrawals)
        return merged


def pids(relay: Relay, extra: dict[str, int]) -> dict[str, int]:
    """Every process of interest: the relay's, the stack's, and this one."""
    return {**{c.name: c.pid for c in relay.children}, **extra, LOAD_GENERATOR: os.getpid()}


@contextmanager
def cpu_meter(
    processes: dict[str, int],
    cpu: dict[str, float | None],
    peaks: dict[str, float],
    seconds: dict[str, float | None] | None = None,
    waits: dict[str, float | None] | None = None,
) -> Iterator[None]:
    """Fill ``cpu`` with the % of one core each process used during the block,
    ``seconds`` with the CPU seconds, ``waits`` with the % of the block that its thread
    that waited most was ready to run but waited for a core, and ``peaks`` with its
    peak RSS (MB) at the end."""
    seconds = {} if seconds is None else seconds
    waits = {} if waits is None else waits
    before = {n: procfs.sample(p) for n, p in processes.items()}
    t0 = time.monotonic()
    yield
    wall = time.monotonic() - t0
    for name, pid in processes.items():
        after, start = procfs.sample(pid), before[name]
        if after is None or start is None or wall <= 0:
            cpu[name] = seconds[name] = waits[name] = None
            continue
        used = after.cpu_seconds - start.cpu_seconds
        cpu[name] = round(100 * used / wall, 1)
        waited = procfs.longest_wait(start, after)
        waits[name] = None if waited is None else round(100 * waited / wall, 1)
        seconds[name] = round(used, 3)
        peaks[name] = round(after.peak_rss_mb, 1)


def prepare(workload: Workload, config: BenchConfig) -> list[PhaseRun]:
    """Encode every phase's events ahead of time."""
    runs = []
    for phase in config.phases:
        if phase.idle:
            warm = workload.prepare_idle(int(IDLE_RATE * config.warmup))
            runs.append(PhaseRun(phase, warm, workload.prepare_idle(config.idle_events)))
            continue
        warm_rate = phase.rate or MAX_WARMUP_RATE
        warm = workload.prepare(int(warm_rate * config.warmup))
        measured = workload.prepare(
            config.max_events if phase.rate is None else int(phase.rate * config.duration)
        )
        runs.append(PhaseRun(phase, warm, measured))
    return runs


def probe(gen: LoadGenerator, workload: Workload, settings: KafkaSettings, timeout: float) -> float:
    """Send one withdrawal and wait for its FullyPropagated; seconds it took."""
    for _ in range(100):
        candidate = workload.prepare(1)[0]
        if candidate.withdrawal:
            break
    else:
        raise RelayError("the workload produced no withdrawal to probe with")
    started = time.monotonic()
    if gen.send([candidate], None, measured=False).acked != 1:
        raise RelayError("the probe withdrawal was not acknowledged by the broker")
    decoder = EventDecoder(settings.registry_client())
    consumer = Consumer(
        settings.consumer_config(
            f"{settings.topic_prefix}bench.probe", **{"enable.partition.eof": False}
        )
    )
    topic = settings.topics.propagated
    consumer.assign(
        [TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(settings.partitions)]
    )
    try:
        while time.monotonic() - started < timeout:
            message = consumer.poll(0.5)
            if message is None or message.error() is not None:
                continue
            _, record = decoder.decode_dict(message.value())
            if record["event_id"] == candidate.event_id:
                return time.monotonic() - started
    finally:
        consumer.close()
    raise RelayError(f"the probe withdrawal was not fully propagated within {timeout:g} s")


def run_phase(
    run: PhaseRun,
    *,
    gen: LoadGenerator,
    relay: Relay,
    sampler: Sampler,
    offsets: Offsets,
    extra_pids: dict[str, int],
    config: BenchConfig,
    recorder: Recorder | None = None,
) -> None:
    """Warm up, send the measured load, catch up; fill in ``run``."""
    phase = run.phase
    topic = relay.settings.topics.consent
    prefix = relay.settings.topic_prefix
    ends_before = topic_ends(offsets, prefix)
    with cpu_meter(
        pids(relay, extra_pids),
        run.cpu_percent,
        run.peak_rss_mb,
        run.cpu_seconds,
        run.cpu_wait_percent,
    ):
        if run.warmup_events:
            say(f"{phase.name}: warm-up, {len(run.warmup_events):,} events")
            run.reports.append(
                gen.send(run.warmup_events, phase.rate or MAX_WARMUP_RATE, measured=False)
            )
        run.backlog_start = {p: o for (_, p), o in offsets.watermarks([topic]).items()}
        say(f"{phase.name}: measuring, {len(run.events):,} events")
        if recorder is not None:
            label = phase.name.replace("/s", "ps")
            recorder.start(label, {c.name: c.pid for c in relay.children}, config.duration)
        sent = gen.send(run.events, phase.rate, measured=True)
        run.reports.append(sent)
        run.measure_start, run.measure_end = sent.started, sent.finished
        run.backlog_end = {p: o for (_, p), o in offsets.watermarks([topic]).items()}
        say(
            f"{phase.name}: sent {sent.sent:,} at {sent.achieved_rate:,.0f}/s "
            f"({sent.failed} failed); waiting for the relay to catch up"
        )
        run.drained, run.drain_seconds, run.final_lag = wait_caught_up(
            offsets, relay, config.drain_timeout
        )
    run.records = records_written(ends_before, topic_ends(offsets, prefix))
    if recorder is not None:
        run.profile = recorder.finish()
        for key, summary in run.profile.items():
            top = summary["self"][:1]
            if top:
                say(f"  profile {key}: hottest {top[0]['share']:.0%} {top[0]['function']}")
    series = sampler.progress.consent
    if phase.rate is None:
        run.throughput = backlog_rate(series, run.measure_start, len(run.events))
    else:
        run.throughput = rate_between(series, run.measure_start, run.measure_end)
        if run.throughput is not None:
            consumed = run.throughput * (run.measure_end - run.measure_start)
            run.backlog_growth = round(sent.sent - consumed)
    say(
        f"{phase.name}: stream {run.throughput or 0:,.0f} events/s; caught up "
        f"{'after' if run.drained else 'NOT within'} {run.drain_seconds:.1f} s"
    )
