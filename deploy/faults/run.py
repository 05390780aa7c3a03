"""One fault run, start to finish.

1. A private broker (or three-node cluster) + registry (:mod:`deploy.faults.cluster`)
   and PostgreSQL (:mod:`deploy.faults.postgres`); the contract registered, the run's
   topics created.
2. The workload and the malformed burst built before anything runs.
3. The relay under load while every fault is injected and its recovery measured
   (:mod:`deploy.faults.exercise`), until every consumer group has caught up.
4. The stores, the consent topic and the dead letters read back and reconciled.
5. The table printed, ``faults.json`` and ``faults.md`` in ``results/<run>/``.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from deploy.bench import source
from deploy.bench.config import ROOT, run_id
from deploy.bench.offsets import Offsets
from deploy.faults import deadletters, malformed, readback, report, stores
from deploy.faults.cluster import Cluster
from deploy.faults.config import FaultsConfig
from deploy.faults.destinations import Target, targets
from deploy.faults.exercise import Exercised, Live, exercise
from deploy.faults.postgres import Postgres
from deploy.faults.reconcile import Tally, compare, deciders, newest, partner_state
from deploy.faults.say import say
from deploy.faults.stores import CellKey
from deploy.faults.workload import PURPOSES, Encoder, plan
from schemas.codec import EventSerializer
from schemas.events import ConsentChanged, instruction_id
from schemas.registry import register_all
from schemas.runtime.admin import ensure_topics
from schemas.runtime.kafka import KafkaSettings
from schemas.taxonomy import SinkFamily


@dataclass(frozen=True, slots=True)
class Paths:
    """Where one run keeps things."""

    out: Path
    state: Path
    pg: Path

    @property
    def relay(self) -> Path:
        """The relay processes' state (SQLite store, partners file, worker data)."""
        return self.state / "relay"


@contextmanager
def _postgres(root: Path) -> Iterator[Postgres]:
    pg = Postgres.create(root)
    pg.start()
    try:
        pg.create_database()
        yield pg
    finally:
        if pg.running():
            pg.stop()


@contextmanager
def _cluster(state: Path, brokers: int) -> Iterator[Cluster]:
    cluster = Cluster.start(state, brokers)
    try:
        yield cluster
    finally:
        cluster.stop()


def _reconcile(live: Live, on_topic: readback.OnTopic) -> dict[str, Tally]:
    """Every destination's final state against the rule."""
    decisions = list(on_topic.decisions.values())
    expected = newest(decisions)
    winners = deciders(decisions, expected)
    subjects = {d.subject for d in decisions}
    partners_file = live.state_dir / "partners.json"
    deliveries = stores.partner_deliveries(live.record, partners_file, subjects)
    analytics_db = live.state_dir / "analytics.sqlite"
    tallies: dict[str, Tally] = {}
    for target in live.targets:
        partner = None
        if target.family is SinkFamily.MARKETING:
            actual = stores.marketing(live.postgres.url, target.purposes)
            applied = stores.marketing_applied(live.postgres.url)
        elif target.family is SinkFamily.ANALYTICS:
            actual = stores.analytics(analytics_db, target.purposes)
            applied = stores.analytics_applied(analytics_db)
        else:
            partner = partner_state(deliveries, target.name, target.purposes)
            actual = partner.cells
            applied = {d.instruction_id for d in deliveries if d.partner == target.name}

        def arrived(key: CellKey, target: Target = target, applied: set[str] = applied) -> bool:
            return any(
                instruction_id(e, target.family, target.name) in applied for e in winners[key]
            )

        tally = compare(target.label, expected, actual, target.purposes, arrived)
        if partner is not None:
            tally.strays += partner.strays
            tally.stale_regrants = partner.stale_regrants
            tally.duplicated = partner.duplicated
        tallies[target.label] = tally
    return tallies


def main(config: FaultsConfig) -> int:
    """Run; 0 when nothing was lost or misapplied and every malformed record dead-lettered."""
    name = run_id()
    if (config.out / name).exists() or (ROOT / "var" / "faults" / name).exists():
        # Two runs started in the same second (into different --out) share a state dir.
        name = f"{name}-{uuid.uuid4().hex[:4]}"
    paths = Paths(
        config.out / name,
        ROOT / "var" / "faults" / name,
        Path(tempfile.mkdtemp(prefix="consent-relay-faults-pg-")),
    )
    paths.out.mkdir(parents=True)
    paths.relay.mkdir(parents=True)
    started = time.time()
    with ExitStack() as stack:
        stack.callback(shutil.rmtree, paths.pg, True)
        stack.callback(shutil.rmtree, paths.state, True)
        cluster = stack.enter_context(_cluster(paths.state / "stack", config.brokers))
        pg = stack.enter_context(_postgres(paths.pg))
        settings = KafkaSettings(
            bootstrap=cluster.bootstrap,
            registry_url=cluster.registry_url,
            topic_prefix=f"faults-{name}.",
            partitions=config.partitions,
        )
        schema_ids = register_all(settings.registry_client())
        ensure_topics(settings)
        code = source.describe(config.revision)
        source_dir = ROOT
        if config.revision is not None:
            source_dir = source.snapshot(config.revision, paths.state / "src")
        live = Live(
            config,
            settings,
            cluster,
            pg,
            paths.relay,
            paths.out / "logs",
            targets(PURPOSES),
            source_dir,
        )
        encoder = Encoder(
            EventSerializer(settings.registry_client(), ConsentChanged), settings.topics.consent
        )
        sends = encoder.sends(
            plan(config.events, config.subjects, config.seed, int(time.time() * 1000))
        )
        bad = malformed.burst(
            malformed.context(schema_ids), config.malformed, config.oversized, config.seed
        )
        say(
            f"{len(sends):,} events over {config.subjects:,} subjects and "
            f"{len(bad):,} malformed records ready"
        )
        done = exercise(live, encoder, sends, bad)
        say("relay stopped; reading back the stores, the consent topic and the dead letters")
        offsets = Offsets(settings)
        on_topic = readback.consent_topic(
            settings, offsets, encoder, {(m.partition, m.offset) for m in done.landed}
        )
        letters = deadletters.read(settings, offsets)
        matched = deadletters.match(settings.topics.consent, done.landed, letters)
        tallies = _reconcile(live, on_topic)
    consent = settings.topics.consent
    valid_dead = sum(1 for p, o in on_topic.valid_at if (consent, p, o) in letters.sources)
    result = _result(
        name=name,
        config=config,
        started=started,
        on_topic=on_topic,
        tallies=tallies,
        matched=matched,
        letters=letters,
        valid_dead=valid_dead,
        done=done,
    )
    result["relay_code"] = code
    text = report.write(paths.out, result)
    sys.stdout.write("\n" + text + "\n\n")
    say(f"{result['verdict']}; results in {paths.out}")
    return int(result["exit_code"])


def _result(
    *,
    name: str,
    config: FaultsConfig,
    started: float,
    on_topic: readback.OnTopic,
    tallies: dict[str, Tally],
    matched: deadletters.Matched,
    letters: deadletters.DeadLetters,
    valid_dead: int,
    done: Exercised,
) -> dict[str, Any]:
    lost = sum(t.lost for t in tallies.values())
    misapplied = sum(t.misapplied for t in tallies.values())
    complete = matched.dead_lettered == matched.sent
    problems = []
    if lost:
        problems.append(f"{lost} lost")
    if misapplied:
        problems.append(f"{misapplied} misapplied")
    if not complete:
        problems.append(
            f"{matched.sent - matched.dead_lettered} malformed records not dead-lettered"
        )
    return {
        "run": name,
        "mode": config.mode,
        "config": {**asdict(config), "out": str(config.out)},
        "seconds": round(time.time() - started, 1),
        "exit_code": 1 if problems else 0,
        "verdict": "; ".join(problems)
        if problems
        else "nothing lost or misapplied, every malformed record dead-lettered",
        "caught_up": done.caught_up,
        "drain_timeout": config.drain_timeout,
        "sent": {
            "valid": on_topic.sends,
            "duplicates": on_topic.duplicates,
            "probes": on_topic.probes,
            "distinct_events": len(on_topic.decisions),
            "distinct_by_kind": dict(on_topic.kinds),
            "unknown_records_on_topic": on_topic.unknown,
            "undelivered_within_a_minute": done.undelivered,
            "producers_replaced": done.producers_replaced,
        },
        "totals": {
            "lost": lost,
            "lost_withdrawals": sum(t.lost_withdrawals for t in tallies.values()),
            "misapplied": misapplied,
            "duplicated_effects": sum(t.duplicated for t in tallies.values()),
        },
        "destinations": {label: t.summary() for label, t in tallies.items()},
        "dead_letters": {
            "total": letters.total,
            "undecodable": letters.undecodable,
            "by_reason": dict(letters.by_reason.most_common()),
            "malformed_sent": matched.sent,
            "malformed_refused_by_broker": done.refused,
            "malformed_dead_lettered": matched.dead_lettered,
            "malformed_percent": round(matched.percent, 2),
            "kinds": len(matched.by_kind),
            "by_kind": matched.by_kind,
            "valid_dead_lettered": valid_dead,
        },
        "unexpected_exits": [asdict(e) for e in done.exits],
        "restart_failures": done.restart_failures,
        "recoveries": [
            {
                "fault": r.fault.name,
                "seconds": r.seconds,
                "by_label": r.by_label,
                "timeout": config.recovery_timeout,
                "began": r.fault.began,
                "back": r.fault.back,
            }
            for r in done.recoveries
        ],
    }
