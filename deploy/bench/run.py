"""One benchmark run, start to finish.

1. Broker and registry: ``KAFKA_BOOTSTRAP``/``SCHEMA_REGISTRY_URL`` if both are set, else
   ``deploy/local.py`` starts them (and stops them at the end). A fresh topic prefix,
   the contract registered, every topic created.
2. The load is prepared (encoded) before the relay starts, so encoding costs nothing
   during the measurement.
3. The relay starts (:mod:`deploy.bench.relay`); one withdrawal is sent through it and
   awaited as FullyPropagated, proving the whole chain works before anything is timed.
4. Each phase: warm-up, measured load, then wait until every relay consumer group has
   caught up. A sampler thread records the stream's progress (its metrics, or its
   committed offsets) every second; CPU and peak memory of every process are read from
   /proc at the phase's start and end.
5. Optionally the consent gate: data events at a fixed rate (for the delay) and as a
   backlog (for throughput).
6. The relay stops; instructions, receipts and completions are read back and reconciled.
7. The bare-loop baseline runs over the max phase's backlog (or the whole consent topic).
8. ``bench.json``, ``bench.md``, ``latency.png`` under ``results/<run>/``; the report is
   printed.
"""

from __future__ import annotations

import importlib.util
import itertools
import json
import os
import shutil
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import urlparse

from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

from deploy.bench import procfs, profile, report, source
from deploy.bench.analysis import FULLY, PhaseResult, percentiles, reconcile
from deploy.bench.baseline import baseline_topic
from deploy.bench.collect import collect, read_topic
from deploy.bench.config import MAX_WARMUP_RATE, ROOT, BenchConfig, Phase, run_id
from deploy.bench.loadgen import LoadGenerator, SendReport, SentWithdrawal
from deploy.bench.offsets import GroupLag, Offsets
from deploy.bench.profile import Recorder
from deploy.bench.relay import Relay, RelayError, scrape
from deploy.bench.workload import Prepared, Workload, withdrawal_share
from schemas.admin import ensure_topics
from schemas.codec import EventDecoder
from schemas.kafka import KafkaSettings
from schemas.registry import register_all
from schemas.taxonomy import SinkFamily
from schemas.topics import TopicSpec

CONSENT_TYPES = frozenset({"ConsentChanged", "RightsRequested", "CookiePreferencesSet"})
DATA_TYPE = "DataEventCaptured"
SAMPLE_EVERY_S = 1.0


def say(text: str) -> None:
    """Progress, on stdout."""
    sys.stdout.write(f"[bench {time.strftime('%H:%M:%S')}] {text}\n")
    sys.stdout.flush()


# -- the stack -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Stack:
    """Where the broker and registry are, and whether this run started them."""

    bootstrap: str
    registry_url: str
    reused: bool
    pids: dict[str, int]
    stop: Callable[[], None] | None = None


def _load_local() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_local_stack", ROOT / "deploy" / "local.py")
    if spec is None or spec.loader is None:
        raise ImportError("deploy/local.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_local_stack"] = module
    spec.loader.exec_module(module)
    return module


def stack() -> Stack:
    """The environment's broker and registry, or a local pair started now."""
    bootstrap = os.environ.get("KAFKA_BOOTSTRAP", "").strip()
    registry = os.environ.get("SCHEMA_REGISTRY_URL", "").strip().rstrip("/")
    if bootstrap and registry:
        pids = {}
        for name, port in (
            ("kafka broker", int(bootstrap.split(",")[0].rsplit(":", 1)[1])),
            ("schema registry", urlparse(registry).port or 80),
        ):
            pid = procfs.listening_pid(port)
            if pid is not None:
                pids[name] = pid
        return Stack(bootstrap, registry, True, pids)
    local = _load_local()
    state = ROOT / "var" / "local"
    say("starting the local Kafka broker and schema registry (deploy/local.py)")
    ends = local.start(state_dir=state, log=lambda m: say(f"local.py: {m}"))
    stop = None if ends.reused else (lambda: local.stop(state, log=lambda m: say(f"local.py: {m}")))
    return Stack(
        ends.bootstrap,
        ends.registry_url,
        ends.reused,
        {"kafka broker": ends.kafka_pid, "schema registry": ends.registry_pid},
        stop,
    )


# -- sampling ----------------------------------------------------------------------------


@dataclass(slots=True)
class Progress:
    """The stream's progress over time: (wall time, events counted)."""

    consent: list[tuple[float, float]] = field(default_factory=list)
    data: list[tuple[float, float]] = field(default_factory=list)
    source: str = "metrics"


class Sampler(threading.Thread):
    """Records the stream workers' consumed-event counters every second."""

    def __init__(self, relay: Relay, settings: KafkaSettings) -> None:
        super().__init__(name="bench-sampler", daemon=True)
        self.relay = relay
        self.settings = settings
        self.progress = Progress()
        self._halt = threading.Event()
        self._offsets = Offsets(settings)
        self._urls = [c.metrics_url for c in relay.workers_children if c.metrics_url]

    def sample(self) -> tuple[float, float]:
        """Consent and data events consumed so far, from metrics or committed offsets."""
        consent = data = 0.0
        for url in self._urls:
            for name, labels, value in scrape(url):
                if name != "consent_relay_stream_events_total":
                    continue
                if labels.get("event_type") in CONSENT_TYPES:
                    consent += value
                elif labels.get("event_type") == DATA_TYPE:
                    data += value
        if consent == 0 and data == 0:
            self.progress.source = "committed offsets"
            group = [self.relay.stream_group]
            topics = self.settings.topics
            consent = float(self._offsets.consumed(group, topics.consent))
            data = float(self._offsets.consumed(group, topics.data_events))
        return consent, data

    def run(self) -> None:
        while not self._halt.is_set():
            now = time.time()
            consent, data = self.sample()
            self.progress.consent.append((now, consent))
            self.progress.data.append((now, data))
            self._halt.wait(SAMPLE_EVERY_S)

    def stop(self) -> None:
        """End the thread."""
        self._halt.set()
        self.join(10)


def _at(series: list[tuple[float, float]], when: float) -> float:
    """The counter at ``when``, linearly interpolated."""
    before = [s for s in series if s[0] <= when]
    after = [s for s in series if s[0] >= when]
    if not before:
        return series[0][1] if series else 0.0
    if not after:
        return before[-1][1]
    (t0, v0), (t1, v1) = before[-1], after[0]
    return v0 if t1 == t0 else v0 + (v1 - v0) * (when - t0) / (t1 - t0)


def _when(series: list[tuple[float, float]], value: float) -> float | None:
    """When the counter first reached ``value``, linearly interpolated."""
    for (t0, v0), (t1, v1) in itertools.pairwise(series):
        if v1 >= value:
            return t1 if v1 == v0 else t0 + (t1 - t0) * (value - v0) / (v1 - v0)
    return None


def rate_between(series: list[tuple[float, float]], start: float, end: float) -> float | None:
    """Events per second between two times."""
    if end <= start or not series:
        return None
    return (_at(series, end) - _at(series, start)) / (end - start)


def backlog_rate(series: list[tuple[float, float]], since: float, size: int) -> float | None:
    """Events per second over the middle 80% of a backlog of ``size`` published at ``since``."""
    base = _at(series, since)
    t10, t90 = _when(series, base + 0.1 * size), _when(series, base + 0.9 * size)
    if t10 is None or t90 is None or t90 <= t10:
        return None
    return 0.8 * size / (t90 - t10)


# -- catching up ---------------------------------------------------------------------------


def relay_groups(offsets: Offsets, prefix: str) -> list[str]:
    """The relay's consumer groups (not the benchmark's own readers)."""
    return [g for g in offsets.groups(prefix) if not g.startswith(f"{prefix}bench.")]


def wait_caught_up(
    offsets: Offsets, relay: Relay, prefix: str, timeout: float
) -> tuple[bool, float, dict[str, GroupLag]]:
    """Until every relay group has no lag twice in a row; (caught up, seconds, lags)."""
    started = time.monotonic()
    quiet = 0
    lags: dict[str, GroupLag] = {}
    told = started
    while time.monotonic() - started < timeout:
        relay.check_alive()
        inputs = [spec.name for spec in relay.settings.topics.all()]
        lags = {g: offsets.lag(g, inputs) for g in relay_groups(offsets, prefix)}
        busy = relay.stream_group not in lags or any(lag.total for lag in lags.values())
        quiet = 0 if busy else quiet + 1
        if quiet >= 2:
            return True, time.monotonic() - started, lags
        if time.monotonic() - told >= 15:
            told = time.monotonic()
            behind = {
                f"{g.removeprefix(prefix)} on {t.removeprefix(prefix)}": n
                for g, lag in lags.items()
                for t, n in lag.by_topic.items()
                if n
            }
            say(f"  catching up for {told - started:.0f} s; lag: {behind or 'none yet'}")
        time.sleep(1.0)
    return False, time.monotonic() - started, lags


# -- phases --------------------------------------------------------------------------------


@dataclass(slots=True)
class PhaseRun:
    """What happened in one phase."""

    phase: Phase
    warmup_events: list[Prepared]
    events: list[Prepared]
    reports: list[SendReport] = field(default_factory=list)
    measure_start: float = 0.0
    measure_end: float = 0.0
    throughput: float | None = None
    drain_seconds: float = 0.0
    drained: bool = False
    cpu_percent: dict[str, float | None] = field(default_factory=dict)
    backlog_start: dict[int, int] = field(default_factory=dict)
    backlog_end: dict[int, int] = field(default_factory=dict)
    profile: dict[str, Any] = field(default_factory=dict)

    @property
    def withdrawals(self) -> dict[str, SentWithdrawal]:
        """Every acknowledged withdrawal of the phase."""
        merged: dict[str, SentWithdrawal] = {}
        for r in self.reports:
            merged.update(r.withdrawals)
        return merged


class CpuMeter:
    """CPU share of every process of interest between two moments."""

    def __init__(self, relay: Relay, extra: dict[str, int]) -> None:
        self.relay = relay
        self.extra = extra
        self.peaks: dict[str, float] = {}

    def pids(self) -> dict[str, int]:
        """Process name → pid."""
        return {
            **{c.name: c.pid for c in self.relay.children},
            **self.extra,
            "load generator (bench)": os.getpid(),
        }

    @contextmanager
    def measure(self, into: dict[str, float | None]) -> Iterator[None]:
        """Fill ``into`` with % of one core used by each process during the block."""
        pids = self.pids()
        before = {n: procfs.sample(p) for n, p in pids.items()}
        t0 = time.monotonic()
        yield
        wall = time.monotonic() - t0
        for name, pid in pids.items():
            after, start = procfs.sample(pid), before[name]
            if after is None or start is None or wall <= 0:
                into[name] = None
                continue
            into[name] = round(100 * (after.cpu_seconds - start.cpu_seconds) / wall, 1)
            self.peaks[name] = max(self.peaks.get(name, 0.0), after.peak_rss_mb)


def prepare(workload: Workload, config: BenchConfig) -> list[PhaseRun]:
    """Encode every phase's events ahead of time."""
    runs = []
    for phase in config.phases:
        warm_rate = phase.rate or MAX_WARMUP_RATE
        warm = workload.prepare(int(warm_rate * config.warmup))
        measured = workload.prepare(
            config.max_events if phase.rate is None else int(phase.rate * config.duration)
        )
        runs.append(PhaseRun(phase, warm, measured))
    return runs


def run_phase(
    run: PhaseRun,
    *,
    gen: LoadGenerator,
    relay: Relay,
    sampler: Sampler,
    offsets: Offsets,
    meter: CpuMeter,
    settings: KafkaSettings,
    config: BenchConfig,
    recorder: Recorder | None = None,
) -> None:
    """Warm up, send the measured load, catch up; fill in ``run``."""
    phase = run.phase
    topic = settings.topics.consent
    with meter.measure(run.cpu_percent):
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
        run.drained, run.drain_seconds, _ = wait_caught_up(
            offsets, relay, settings.topic_prefix, config.drain_timeout
        )
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
    say(
        f"{phase.name}: stream {run.throughput or 0:,.0f} events/s; caught up "
        f"{'after' if run.drained else 'NOT within'} {run.drain_seconds:.1f} s"
    )


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


# -- the gate ------------------------------------------------------------------------------


def run_gate(
    *,
    workload: Workload,
    settings: KafkaSettings,
    relay: Relay,
    offsets: Offsets,
    sampler: Sampler,
    meter: CpuMeter,
    config: BenchConfig,
) -> dict[str, Any]:
    """Data events through the consent gate: delay at a fixed rate, throughput on a backlog."""
    topics = settings.topics
    if config.gate == "off":
        return {"ran": False, "reason": "--gate off"}
    if topics.data_events not in offsets.assigned_topics(relay.stream_group):
        return {"ran": False, "reason": "the stream workers do not consume the data-events topic"}
    paced = workload.prepare_data(int(config.gate_rate * config.duration))
    backlog = workload.prepare_data(config.gate_events)
    gen = LoadGenerator(settings, topics.data_events)
    cpu: dict[str, float | None] = {}
    try:
        with meter.measure(cpu):
            say(f"gate: {len(paced):,} data events at {config.gate_rate}/s")
            gen.send(paced, config.gate_rate, measured=True)
            wait_caught_up(offsets, relay, settings.topic_prefix, config.drain_timeout)
            say(f"gate: backlog of {len(backlog):,} data events")
            sent = gen.send(backlog, None, measured=True)
            drained, _, _ = wait_caught_up(
                offsets, relay, settings.topic_prefix, config.drain_timeout
            )
    finally:
        gen.close()
    rate = backlog_rate(sampler.progress.data, sent.started, len(backlog))
    measured_ids = {e.event_id.encode() for e in paced}
    decoder = EventDecoder(settings.registry_client())
    delays, allowed = [], 0
    for message in read_topic(
        settings, offsets, topics.data_allowed, f"{settings.topic_prefix}bench.gate"
    ):
        allowed += 1
        _, record = decoder.decode_dict(message.value())
        if record["event_id"].encode() in measured_ids:
            written_ms = message.timestamp()[1]
            delays.append(written_ms - int(record["occurred_at"].timestamp() * 1000))
    say(f"gate: {rate or 0:,.0f} data events/s on the backlog; {allowed:,} allowed in all")
    return {
        "ran": True,
        "offered_rate": config.gate_rate,
        "seconds": config.duration,
        "sent": len(paced) + len(backlog),
        "allowed": allowed,
        "backlog": len(backlog),
        "events_per_second": None if rate is None else round(rate, 1),
        "drained": drained,
        "delay_ms": percentiles(delays),
        "delay_definition": "allowed message's timestamp (set when the worker produced it) "
        "minus the data event's occurred_at (set when the load generator sent it)",
        "cpu_percent": cpu,
    }


# -- baseline ------------------------------------------------------------------------------


def run_baseline(
    settings: KafkaSettings,
    relay_env: dict[str, str],
    start: dict[int, int],
    end: dict[int, int],
    out_dir: Path,
) -> dict[str, Any]:
    """The bare loop, as its own process, over ``start``..``end`` of the consent topic."""
    ensure_topics(
        settings,
        tuple(
            TopicSpec(baseline_topic(settings.topic_prefix, f), settings.partitions)
            for f in SinkFamily
        ),
    )
    result = out_dir / "baseline.json"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "deploy.bench.baseline",
            "--topic",
            settings.topics.consent,
            "--start",
            json.dumps(start),
            "--end",
            json.dumps(end),
            "--result",
            str(result),
        ],
        env=relay_env,
        cwd=ROOT,
        check=True,
        timeout=600,
    )
    figures: dict[str, Any] = json.loads(result.read_text())
    return figures


# -- targets -------------------------------------------------------------------------------


def targets(
    phases: list[dict[str, Any]], gate: dict[str, Any], ratio: float | None, workers: int, lost: int
) -> list[dict[str, str]]:
    """Each target with what was measured and whether it was met."""

    def full(rate: int) -> dict[str, Any]:
        for p in phases:
            if p["offered_rate"] == rate:
                stats: dict[str, Any] = p["reconciliation"]["latency_ms"].get(FULLY, {})
                return stats
        return {}

    def row(
        target: str, value: float | None, limit: float, unit: str, below: bool = True
    ) -> dict[str, str]:
        if value is None:
            return {"target": target, "measured": "not measured", "met": "n/a"}
        met = value <= limit if below else value >= limit
        return {"target": target, "measured": f"{value:,.0f} {unit}", "met": "yes" if met else "NO"}

    max_phase = next((p for p in phases if p["offered_rate"] is None), None)
    per_worker = None
    if max_phase and max_phase["stream_events_per_second"]:
        per_worker = max_phase["stream_events_per_second"] / workers
    gate_delay = gate.get("delay_ms", {}).get("p99") if gate.get("ran") else None
    gate_rate = gate.get("events_per_second") if gate.get("ran") else None
    return [
        row("1k/s: withdrawal → fully propagated p50 ≤ 50 ms", full(1000).get("p50"), 50, "ms"),
        row("1k/s: withdrawal → fully propagated p99 ≤ 250 ms", full(1000).get("p99"), 250, "ms"),
        row("5k/s: withdrawal → fully propagated p99 ≤ 1 s", full(5000).get("p99"), 1000, "ms"),
        row(
            "stream worker ≥ 10k events/s per process", per_worker, 10_000, "events/s", below=False
        ),
        {
            "target": "stream worker ≥ 1/6 of the bare loop",
            "measured": "not measured" if ratio is None else f"{ratio:.3f}",
            "met": "n/a" if ratio is None else ("yes" if ratio >= 1 / 6 else "NO"),
        },
        row(
            "gate ≥ 20k data events/s per worker",
            None if gate_rate is None else gate_rate / workers,
            20_000,
            "events/s",
            below=False,
        ),
        row("gate adds ≤ 20 ms p99", gate_delay, 20, "ms"),
        {"target": "nothing lost", "measured": f"{lost} lost", "met": "yes" if lost == 0 else "NO"},
    ]


# -- the run -------------------------------------------------------------------------------


def main(config: BenchConfig) -> int:
    """Run the benchmark; 0 when it produced its report (whatever the figures)."""
    run = run_id()
    if (config.out / run).exists():
        run = f"{run}-{uuid.uuid4().hex[:4]}"
    out_dir = config.out / run
    out_dir.mkdir(parents=True)
    state_dir = ROOT / "var" / "bench" / run
    load_before = [round(x, 2) for x in os.getloadavg()]
    the_stack = stack()
    prefix = f"bench-{run}-{uuid.uuid4().hex[:6]}."
    settings = KafkaSettings(
        bootstrap=the_stack.bootstrap,
        registry_url=the_stack.registry_url,
        topic_prefix=prefix,
        partitions=config.partitions,
    )
    say(f"broker {settings.bootstrap}, registry {settings.registry_url}, topic prefix {prefix}")
    register_all(settings.registry_client())
    ensure_topics(settings)
    topics = settings.topics
    workload = Workload(
        settings.registry_client(),
        topics.consent,
        topics.data_events,
        subjects=config.subjects,
        zipf=config.zipf,
        seed=config.seed,
    )
    t0 = time.monotonic()
    runs = prepare(workload, config)
    say(
        f"prepared {sum(len(r.events) + len(r.warmup_events) for r in runs):,} events in "
        f"{time.monotonic() - t0:.1f} s"
    )
    code = source.describe(config.revision)
    spy = profile.py_spy() if config.profile else None
    recorder = Recorder(spy, out_dir / "profile") if spy is not None else None
    relay = Relay(
        settings,
        state_dir,
        out_dir / "logs",
        workers=config.workers,
        profile_dir=out_dir / "profile" if config.profile and spy is None else None,
        source_dir=ROOT
        if config.revision is None
        else source.snapshot(config.revision, state_dir / "src"),
    )
    say(f"relay code: {code}")
    offsets = Offsets(settings)
    gen = LoadGenerator(settings, topics.consent)
    gate: dict[str, Any] = {"ran": False, "reason": "not reached"}
    final_lag: dict[str, GroupLag] = {}
    meter = CpuMeter(relay, the_stack.pids)
    probe_seconds = None
    try:
        say("starting the relay")
        relay.start(config.startup_timeout)
        probe_seconds = probe(gen, workload, settings, config.startup_timeout)
        say(f"relay is up: a probe withdrawal was fully propagated after {probe_seconds:.1f} s")
        wait_caught_up(offsets, relay, prefix, config.drain_timeout)
        sampler = Sampler(relay, settings)
        sampler.start()
        try:
            for phase_run in runs:
                run_phase(
                    phase_run,
                    gen=gen,
                    relay=relay,
                    sampler=sampler,
                    offsets=offsets,
                    meter=meter,
                    settings=settings,
                    config=config,
                    recorder=recorder,
                )
            gate = run_gate(
                workload=workload,
                settings=settings,
                relay=relay,
                offsets=offsets,
                sampler=sampler,
                meter=meter,
                config=config,
            )
            _, _, final_lag = wait_caught_up(offsets, relay, prefix, 30)
        finally:
            sampler.stop()
        peaks = {n: s.peak_rss_mb for n, s in relay.samples().items() if s is not None}
        for name, pid in the_stack.pids.items():
            sample = procfs.sample(pid)
            if sample is not None:
                peaks[name] = sample.peak_rss_mb
        peaks["load generator (bench)"] = procfs.sample(os.getpid()).peak_rss_mb  # type: ignore[union-attr]
    finally:
        say("stopping the relay")
        gen.close()
        relay.stop()
        shutil.rmtree(state_dir, ignore_errors=True)
    say("reading back instructions, receipts and completions")
    withdrawals = {e: w for r in runs for e, w in r.withdrawals.items()}
    got = collect(settings, offsets, withdrawals, f"{prefix}bench.collect.")
    say(f"read {sum(got.counts.values()):,} messages in {got.read_seconds:.1f} s")
    results: list[PhaseResult] = [reconcile(r.withdrawals, got) for r in runs]
    baseline: dict[str, Any] = {"reason": "--no-baseline"}
    ratio = None
    if config.baseline:
        backlog = next((r for r in runs if r.phase.rate is None), None)
        if backlog is not None:
            start, end = backlog.backlog_start, backlog.backlog_end
        else:
            ends = offsets.watermarks([topics.consent])
            start, end = {p: 0 for (_, p) in ends}, {p: o for (_, p), o in ends.items()}
        say(f"baseline: bare loop over {sum(end.values()) - sum(start.values()):,} events")
        env = {k: v for k, v in relay.base_env().items() if k != "PYTHONPATH"}
        baseline = run_baseline(settings, env, start, end, out_dir)
        baseline["backlog"] = "max phase" if backlog is not None else "whole consent topic"
        relay_rate = backlog.throughput if backlog is not None else None
        if relay_rate and baseline.get("events_per_second"):
            ratio = round(relay_rate / config.workers / baseline["events_per_second"], 3)
    if the_stack.stop is not None:
        the_stack.stop()
    phases_json = []
    latencies: dict[str, dict[str, list[int]]] = {}
    for phase_run, result in zip(runs, results, strict=True):
        sent = phase_run.reports[-1]
        latencies[phase_run.phase.name] = result.latency_ms
        phases_json.append(
            {
                "name": phase_run.phase.name,
                "offered_rate": phase_run.phase.rate,
                "achieved_rate": round(sent.achieved_rate, 1),
                "sent": sum(r.sent for r in phase_run.reports),
                "failed": sum(r.failed for r in phase_run.reports),
                "measured_seconds": round(sent.finished - sent.started, 2),
                "stream_events_per_second": None
                if phase_run.throughput is None
                else round(phase_run.throughput, 1),
                "stream_events_source": sampler.progress.source,
                "drained": phase_run.drained,
                "drain_seconds": round(phase_run.drain_seconds, 1),
                "cpu_percent": phase_run.cpu_percent,
                "reconciliation": result.summary(),
                "profile": phase_run.profile,
            }
        )
    lost = sum(r.lost for r in results)
    result_json: dict[str, Any] = {
        "run": run,
        "config": {
            **asdict(config),
            "phases": [p.name for p in config.phases],
            "out": str(config.out),
        },
        "machine": {
            "cpus": os.cpu_count(),
            "load_before": load_before,
            "python": sys.version.split()[0],
        },
        "stack": {
            "bootstrap": the_stack.bootstrap,
            "registry_url": the_stack.registry_url,
            "reused": the_stack.reused,
            "topic_prefix": prefix,
        },
        "mix": {"withdrawal_share": withdrawal_share(), "shares": Workload.shares()},
        "relay_code": code,
        "probe_seconds": probe_seconds,
        "phases": phases_json,
        "gate": gate,
        "baseline": baseline,
        "ratio": ratio,
        "final_lag": {g: lag.by_topic for g, lag in final_lag.items()},
        "processes": {n: {"peak_rss_mb": round(v, 1)} for n, v in peaks.items()},
        "partner_receiver": relay.receiver_counts(),
        "messages_read": got.counts,
        "dead_letters": got.dead_letters,
        "lost_total": lost,
        "profile": None
        if not config.profile
        else {"tool": "py-spy" if spy else "pyinstrument", "dir": str(out_dir / "profile")},
    }
    result_json["targets"] = targets(phases_json, gate, ratio, config.workers, lost)
    text = report.write(out_dir, result_json, latencies)
    sys.stdout.write("\n" + text + "\n")
    say(f"results in {out_dir}")
    return 0
