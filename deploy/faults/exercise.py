"""The live part of a run: the relay under load while every fault is injected.

The relay is the bench's :class:`~deploy.bench.relay.Relay` (marketing on PostgreSQL,
the receiver recording every partner body and failing on demand). Receipts are watched,
the processes supervised and a probe withdrawal published every second from the start;
once one is honoured everywhere the load begins, released a slice per fault, and each
fault of the schedule is injected and its recovery measured. When the load is sent and
every consumer group has caught up, everything is stopped and only plain figures are
returned, so no client of the harness outlives the broker it talks to.
"""

from __future__ import annotations

import math
import subprocess
import sys
import time
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

from confluent_kafka import KafkaException

from deploy.bench.config import ROOT
from deploy.bench.offsets import GroupLag, Offsets
from deploy.bench.progress import wait_caught_up
from deploy.bench.relay import Relay, RelayError
from deploy.bench.workload import Prepared
from deploy.faults.burst import Landed
from deploy.faults.cluster import Cluster
from deploy.faults.config import FaultsConfig
from deploy.faults.destinations import Target
from deploy.faults.injections import Rig, schedule
from deploy.faults.load import Load
from deploy.faults.malformed import Record
from deploy.faults.postgres import Postgres
from deploy.faults.receipts import ReceiptWatch
from deploy.faults.recovery import Heartbeat, Injected, Recovery, measure
from deploy.faults.say import say
from deploy.faults.supervisor import Exit, Supervisor
from deploy.faults.workload import Encoder
from schemas.runtime.kafka import KafkaSettings

PY_SPY = Path(sys.executable).with_name("py-spy")
"""py-spy in the project's environment, if installed (not a dependency; see
:mod:`deploy.bench.profile`), for :func:`_diagnose`."""


@dataclass(frozen=True, slots=True)
class Live:
    """What the live part runs against."""

    config: FaultsConfig
    settings: KafkaSettings
    cluster: Cluster
    postgres: Postgres
    state_dir: Path
    """The relay's state (its partners file, analytics store, recorded partner bodies)."""
    log_dir: Path
    targets: tuple[Target, ...]
    source_dir: Path = ROOT
    """Where the relay's code is imported from (the working tree, or a snapshot)."""

    @property
    def record(self) -> Path:
        """Every body the partner receiver acknowledged, one per line."""
        return self.state_dir / "partner-bodies.txt"

    @property
    def fail_file(self) -> Path:
        """Partner paths the receiver answers 500 to while it exists."""
        return self.state_dir / "failing-partners"


@dataclass(frozen=True, slots=True)
class Exercised:
    """What happened, as plain figures."""

    recoveries: list[Recovery]
    exits: list[Exit]
    restart_failures: list[str]
    caught_up: bool
    landed: list[Landed]
    refused: dict[str, int]
    undelivered: int
    """The harness's own events not delivered within a minute (see deploy/faults/sender.py)."""
    producers_replaced: int


def exercise(
    live: Live, encoder: Encoder, sends: list[Prepared], bad: list[tuple[str, Record]]
) -> Exercised:
    """Start the relay, run the load and the faults, drain, stop; what happened."""
    config, settings = live.config, live.settings
    relay = Relay(
        settings,
        live.state_dir,
        live.log_dir,
        source_dir=live.source_dir,
        marketing_database_url=live.postgres.url,
        receiver_args=("--record", str(live.record), "--fail-file", str(live.fail_file)),
    )
    steps = schedule(config)
    # A slice of the load per fault, each lasting about as long as the longest outage.
    load = Load(settings, sends, len(sends) / (len(steps) + 2) / config.longest_outage)
    with ExitStack() as stack:
        say(f"starting the relay on prefix {settings.topic_prefix}")
        relay.start(config.startup_timeout)
        stack.callback(relay.stop)
        watch = ReceiptWatch(settings)
        watch.start()
        stack.callback(watch.stop)
        supervisor = Supervisor(relay, config.startup_timeout)
        supervisor.start()
        stack.callback(supervisor.stop)
        heartbeat = Heartbeat(settings, encoder)
        heartbeat.start()
        stack.callback(heartbeat.stop)
        rig = Rig(
            config,
            settings,
            supervisor,
            live.cluster,
            live.postgres,
            live.fail_file,
            live.targets,
            bad,
        )
        now = time.time()
        ready = measure(
            Injected("start", rig.labels(), now, now),
            watch,
            load,
            heartbeat,
            config.startup_timeout,
        )
        if ready.seconds is None:
            raise RelayError(f"no probe withdrawal was honoured everywhere: {ready.by_label}")
        say(f"relay honours withdrawals everywhere ({ready.seconds:.1f} s); starting the load")
        load.start()
        stack.callback(load.stop)
        share = math.ceil(load.total / (len(steps) + 2))
        load.release(share)
        time.sleep(config.settle_seconds * 2)
        recoveries = []
        for inject in steps:
            load.release(share)
            recoveries.append(_one(inject(rig), watch, load, heartbeat, config.recovery_timeout))
            time.sleep(config.settle_seconds)
        load.release()
        say("all faults injected; waiting for the load to be sent")
        load.join()
        heartbeat.stop()
        say("load sent; waiting for every consumer group to catch up")
        caught_up = _drain(relay, settings, config.drain_timeout)
        supervisor.stop()
    burst = rig.burst_result
    return Exercised(
        recoveries=recoveries,
        exits=list(supervisor.exits),
        restart_failures=list(supervisor.restart_failures),
        caught_up=caught_up,
        landed=list(burst.landed) if burst else [],
        refused=dict(burst.refused) if burst else {},
        undelivered=load.sender.undelivered + heartbeat.sender.undelivered,
        producers_replaced=load.sender.replaced + heartbeat.sender.replaced,
    )


def _one(
    fault: Injected, watch: ReceiptWatch, load: Load, heartbeat: Heartbeat, timeout: float
) -> Recovery:
    say(f"{fault.name}: back at {time.strftime('%H:%M:%S', time.localtime(fault.back))}")
    recovery = measure(fault, watch, load, heartbeat, timeout)
    shown = "not within the timeout" if recovery.seconds is None else f"{recovery.seconds:.1f} s"
    say(f"  recovered: {shown} {recovery.by_label}")
    return recovery


def _drain(relay: Relay, settings: KafkaSettings, timeout: float) -> bool:
    """Until every relay consumer group has caught up; a process restarting is waited out."""
    offsets = Offsets(settings)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            caught_up, _, lags = wait_caught_up(offsets, relay, deadline - time.monotonic())
            if not caught_up:
                _diagnose(relay, lags)
            return caught_up
        except (RelayError, KafkaException) as exc:
            say(f"  while catching up: {str(exc).splitlines()[0]}; waiting")
            time.sleep(2)
    return False


def _diagnose(relay: Relay, lags: dict[str, GroupLag]) -> None:
    """Say which groups are behind and keep every relay process's Python stacks beside
    its log (``<name>.stacks.txt``): a stage that stopped moving says where it stands."""
    prefix = relay.settings.topic_prefix
    behind = {g.removeprefix(prefix): lag.total for g, lag in lags.items() if lag.total}
    say(f"  not caught up; groups behind: {behind}")
    if not PY_SPY.exists():
        say("  (install py-spy in the virtualenv to keep each process's stacks too)")
        return
    for child in relay.children:
        if child.popen.poll() is not None:
            continue
        dump = subprocess.run(
            [str(PY_SPY), "dump", "--pid", str(child.pid)],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        where = child.log_path.with_suffix(".stacks.txt")
        where.write_text(dump.stdout + dump.stderr)
        say(f"  {child.name}: stacks in {where}")
