"""One benchmark run, start to finish.

1. Broker and registry (:mod:`deploy.bench.stack`); the contract registered.
2. The load is encoded before any relay starts, so encoding costs nothing while timed.
3. For each phase (``--rates``), then the gate: a fresh topic prefix and a fresh relay
   (:mod:`deploy.bench.relay`), a probe withdrawal awaited as FullyPropagated, the
   phase (:mod:`deploy.bench.phases`), the relay stopped, and its instructions,
   receipts and completions read back (:mod:`deploy.bench.collect`) and reconciled
   (:mod:`deploy.bench.analysis`) while the machine is quiet.
4. The bare-loop baseline over the max phase's backlog (:mod:`deploy.bench.baseline`).
5. ``bench.json``, ``bench.md``, ``latency.png`` in ``results/<run>/``; the report printed.
"""

from __future__ import annotations

import os
import shutil
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from confluent_kafka import KafkaException

from deploy.bench import baseline, profile, report, source
from deploy.bench.analysis import PhaseResult, reconcile
from deploy.bench.collect import collect
from deploy.bench.config import ROOT, BenchConfig, run_id
from deploy.bench.costs import cpu_ms_per_event, records_summary
from deploy.bench.gate import gate_consumed, run_gate
from deploy.bench.loadgen import LoadGenerator
from deploy.bench.offsets import Offsets
from deploy.bench.phases import PhaseRun, prepare, probe, run_phase
from deploy.bench.profile import Recorder
from deploy.bench.progress import Sampler, wait_caught_up
from deploy.bench.relay import Relay
from deploy.bench.say import say
from deploy.bench.stack import Stack, stack
from deploy.bench.targets import targets
from deploy.bench.workload import Workload, withdrawal_share
from schemas.registry import register_all
from schemas.runtime.admin import ensure_topics
from schemas.runtime.kafka import KafkaSettings
from schemas.topics import Topics


@dataclass(slots=True)
class Run:
    """What every phase of one run shares."""

    config: BenchConfig
    stack: Stack
    name: str
    token: str
    out_dir: Path
    state_dir: Path
    source_dir: Path
    spy: str | None

    def settings(self, label: str) -> KafkaSettings:
        """Kafka settings under a fresh prefix for one phase, its topics created."""
        settings = KafkaSettings(
            bootstrap=self.stack.bootstrap,
            registry_url=self.stack.registry_url,
            topic_prefix=f"bench-{self.name}-{self.token}-{label}.",
            partitions=self.config.partitions,
        )
        ensure_topics(settings)
        return settings


@dataclass(slots=True)
class Running:
    """A started relay and what measures it."""

    relay: Relay
    offsets: Offsets
    sampler: Sampler
    gen: LoadGenerator
    probe_seconds: float


@contextmanager
def relay_for(
    run: Run, label: str, settings: KafkaSettings, workload: Workload
) -> Iterator[Running]:
    """A relay on ``settings``' topics, proven to work by a probe, stopped at the end."""
    config = run.config
    relay = Relay(
        settings,
        run.state_dir / label,
        run.out_dir / "logs" / label,
        workers=config.workers,
        profile_dir=run.out_dir / "profile" / label if config.profile and not run.spy else None,
        source_dir=run.source_dir,
    )
    gen = LoadGenerator(settings, settings.topics.consent)
    sampler: Sampler | None = None
    try:
        say(f"{label}: starting the relay on prefix {settings.topic_prefix}")
        relay.start(config.startup_timeout)
        seconds = probe(gen, workload, settings, config.startup_timeout)
        say(f"{label}: relay is up, a probe withdrawal was fully propagated after {seconds:.1f} s")
        offsets = Offsets(settings)
        wait_caught_up(offsets, relay, config.drain_timeout)
        sampler = Sampler(relay)
        sampler.start()
        yield Running(relay, offsets, sampler, gen, seconds)
    finally:
        if sampler is not None:
            sampler.stop()
        gen.close()
        say(f"{label}: stopping the relay")
        relay.stop()


def phase_label(index: int, run: PhaseRun) -> str:
    """``p1-1000ps``, ``p3-max``: names the phase's prefix, logs and profiles."""
    return f"p{index + 1}-{run.phase.name.replace('/s', 'ps')}"


def one_phase(
    run: Run, index: int, phase_run: PhaseRun, workload: Workload
) -> tuple[dict[str, Any], PhaseResult]:
    """Run one phase on its own relay; its JSON and its reconciliation."""
    label = phase_label(index, phase_run)
    settings = run.settings(label)
    phase_run.prefix = settings.topic_prefix
    recorder = Recorder(run.spy, run.out_dir / "profile") if run.spy else None
    with relay_for(run, label, settings, workload) as live:
        run_phase(
            phase_run,
            gen=live.gen,
            relay=live.relay,
            sampler=live.sampler,
            offsets=live.offsets,
            extra_pids=run.stack.pids,
            config=run.config,
            recorder=recorder,
        )
        source_name = live.sampler.progress.source
    say(f"{label}: reading back instructions, receipts and completions")
    got = collect(
        settings, live.offsets, phase_run.withdrawals, f"{settings.topic_prefix}bench.collect."
    )
    say(f"{label}: read {sum(got.counts.values()):,} messages in {got.read_seconds:.1f} s")
    result = reconcile(phase_run.withdrawals, got, caught_up=phase_run.drained)
    sent = phase_run.reports[-1]
    events = sum(r.sent for r in phase_run.reports)
    inputs = (settings.topics.consent, settings.topics.data_events)
    data = {
        "name": phase_run.phase.name,
        "kind": phase_run.phase.kind,
        "topic_prefix": settings.topic_prefix,
        "offered_rate": phase_run.phase.rate,
        "achieved_rate": round(sent.achieved_rate, 1),
        "sent": events,
        "failed": sum(r.failed for r in phase_run.reports),
        "measured_seconds": round(sent.finished - sent.started, 2),
        "probe_seconds": round(live.probe_seconds, 2),
        "stream_events_per_second": None
        if phase_run.throughput is None
        else round(phase_run.throughput, 1),
        "stream_events_source": source_name,
        "drained": phase_run.drained,
        "drain_seconds": round(phase_run.drain_seconds, 1),
        "cpu_percent": phase_run.cpu_percent,
        "cpu_seconds": phase_run.cpu_seconds,
        "cpu_wait_percent": phase_run.cpu_wait_percent,
        "cpu_ms_per_event": cpu_ms_per_event(phase_run.cpu_seconds, events),
        "records_written": records_summary(
            phase_run.records, events, settings.topic_prefix, inputs
        ),
        "backlog_growth": phase_run.backlog_growth,
        "peak_rss_mb": phase_run.peak_rss_mb,
        "final_lag": {
            g.removeprefix(settings.topic_prefix): lag.by_topic
            for g, lag in phase_run.final_lag.items()
        },
        "messages_read": {t.removeprefix(settings.topic_prefix): n for t, n in got.counts.items()},
        "dead_letters": got.dead_letters,
        "partner_receiver": live.relay.receiver_counts(),
        "reconciliation": result.summary(),
        "profile": phase_run.profile,
    }
    return data, result


def gate_phase(run: Run, workload: Workload) -> dict[str, Any]:
    """The consent gate on its own relay, if the workers have a gate."""
    if run.config.gate == "off":
        return {"ran": False, "reason": "--gate off"}
    settings = run.settings("gate")
    with relay_for(run, "gate", settings, workload) as live:
        if not gate_consumed(live.offsets, live.relay):
            return {"ran": False, "reason": "the stream workers do not consume data events"}
        return run_gate(
            workload=workload,
            relay=live.relay,
            offsets=live.offsets,
            sampler=live.sampler,
            extra_pids=run.stack.pids,
            config=run.config,
        )


def bare_loop(run: Run, runs: list[PhaseRun]) -> dict[str, Any]:
    """The baseline over the max phase's backlog (else the last phase's consent topic)."""
    backlog = next((r for r in runs if r.phase.rate is None), runs[-1])
    settings = KafkaSettings(
        bootstrap=run.stack.bootstrap,
        registry_url=run.stack.registry_url,
        topic_prefix=backlog.prefix,
        partitions=run.config.partitions,
    )
    if backlog.phase.rate is None:
        start, end, what = backlog.backlog_start, backlog.backlog_end, "max phase's backlog"
    else:
        ends = Offsets(settings).watermarks([settings.topics.consent])
        start = {p: 0 for (_, p) in ends}
        end = {p: o for (_, p), o in ends.items()}
        what = f"{backlog.phase.name} phase's whole consent topic"
    say(f"baseline: bare loop over {sum(end.values()) - sum(start.values()):,} events ({what})")
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP": settings.bootstrap,
        "SCHEMA_REGISTRY_URL": settings.registry_url,
        "CONSENT_RELAY_TOPIC_PREFIX": settings.topic_prefix,
    }
    figures = baseline.launch(settings, env, start=start, end=end, out_dir=run.out_dir, cwd=ROOT)
    figures["backlog"] = what
    say(f"baseline: {figures['events_per_second']:,.0f} events/s")
    return figures


def cleanup(the_stack: Stack, prefix: str) -> None:
    """Delete the run's topics and consumer groups from the (shared) broker."""
    settings = KafkaSettings(bootstrap=the_stack.bootstrap, registry_url=the_stack.registry_url)
    try:
        topics, groups = Offsets(settings).delete_all(prefix)
    except KafkaException as exc:
        say(f"could not delete the run's topics ({exc}); delete {prefix}* by hand")
        return
    say(f"deleted {topics} topics and {groups} consumer groups named {prefix}*")


def main(config: BenchConfig) -> int:
    """Run the benchmark; 0 when it produced its report (whatever the figures)."""
    name = run_id()
    if (config.out / name).exists():
        name = f"{name}-{uuid.uuid4().hex[:4]}"
    out_dir = config.out / name
    out_dir.mkdir(parents=True)
    state_dir = ROOT / "var" / "bench" / name
    load_before = [round(x, 2) for x in os.getloadavg()]
    the_stack = stack()
    spy = profile.py_spy() if config.profile else None
    code = source.describe(config.revision, config.source)
    if config.revision is not None:
        source_dir = source.snapshot(config.revision, state_dir / "src")
    else:
        source_dir = (config.source or ROOT).resolve()
    run = Run(config, the_stack, name, uuid.uuid4().hex[:6], out_dir, state_dir, source_dir, spy)
    say(f"broker {the_stack.bootstrap}, registry {the_stack.registry_url}; relay code {code}")
    try:
        register_all(
            KafkaSettings(
                bootstrap=the_stack.bootstrap, registry_url=the_stack.registry_url
            ).registry_client()
        )
        names = Topics(f"bench-{name}-{run.token}-load.")
        workload = Workload(
            KafkaSettings(
                bootstrap=the_stack.bootstrap, registry_url=the_stack.registry_url
            ).registry_client(),
            names.consent,
            names.data_events,
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
        phases: list[dict[str, Any]] = []
        results: list[PhaseResult] = []
        for index, phase_run in enumerate(runs):
            data, result = one_phase(run, index, phase_run, workload)
            phases.append(data)
            results.append(result)
        gate = gate_phase(run, workload)
        base: dict[str, Any] = {"reason": "--no-baseline"}
        ratio = None
        if config.baseline:
            base = bare_loop(run, runs)
            max_run = next((r for r in runs if r.phase.rate is None), None)
            if max_run is not None and max_run.throughput and base.get("events_per_second"):
                ratio = round(max_run.throughput / config.workers / base["events_per_second"], 3)
    finally:
        shutil.rmtree(state_dir, ignore_errors=True)
        if not config.keep_topics:
            cleanup(the_stack, f"bench-{name}-{run.token}-")
        if the_stack.stop is not None:
            the_stack.stop()
    lost_each = [r.lost for r in results]
    lost = None if any(x is None for x in lost_each) else sum(x or 0 for x in lost_each)
    processes: dict[str, dict[str, float]] = {}
    for phase in phases:
        for proc, peak in phase["peak_rss_mb"].items():
            entry = processes.setdefault(proc, {"peak_rss_mb": 0.0})
            entry["peak_rss_mb"] = max(entry["peak_rss_mb"], peak)
    result_json: dict[str, Any] = {
        "run": name,
        "config": {
            **asdict(config),
            "phases": [p.name for p in config.phases],
            "out": str(config.out),
        },
        "machine": {
            "cpus": os.cpu_count(),
            "load_before": load_before,
            "load_after": [round(x, 2) for x in os.getloadavg()],
            "python": sys.version.split()[0],
        },
        "stack": {
            "bootstrap": the_stack.bootstrap,
            "registry_url": the_stack.registry_url,
            "reused": the_stack.reused,
            "topic_prefix": f"bench-{name}-{run.token}-",
        },
        "relay_code": code,
        "mix": {"withdrawal_share": withdrawal_share(), "shares": Workload.shares()},
        "phases": phases,
        "gate": gate,
        "baseline": base,
        "ratio": ratio,
        "processes": processes,
        "lost_total": lost,
        "profile": None
        if not config.profile
        else {"tool": "py-spy" if spy else "pyinstrument", "dir": str(out_dir / "profile")},
    }
    result_json["targets"] = targets(phases, gate, ratio, config.workers, lost)
    latencies = {p.phase.name: r.latency_ms for p, r in zip(runs, results, strict=True)}
    text = report.write(out_dir, result_json, latencies)
    sys.stdout.write("\n" + text + "\n")
    say(f"results in {out_dir}")
    return 0
