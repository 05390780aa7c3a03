"""The faults, one function each, and the schedule they run in.

Each injection does its damage, undoes it (restarts the process, brings the broker,
PostgreSQL or the partner back) and returns an :class:`~deploy.faults.recovery.Injected`
naming the moment of return and the destinations that must honour withdrawals again.
The schedule: the stream worker killed (twice in the full run, first and last), each
sink killed, the malformed burst, PostgreSQL stopped, a partner failing, on a
three-node cluster the leader of consent partition 0 SIGKILLed (nothing restarted), the
broker (every node) stopped and started.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from deploy.faults import burst
from deploy.faults.cluster import Cluster, leader
from deploy.faults.config import FaultsConfig
from deploy.faults.destinations import Target
from deploy.faults.malformed import Record
from deploy.faults.postgres import Postgres
from deploy.faults.recovery import Injected
from deploy.faults.say import say
from deploy.faults.supervisor import Supervisor
from schemas.runtime.kafka import KafkaSettings
from schemas.taxonomy import SinkFamily

FAILING_PARTNER = "sellers"
"""The partner that answers 500 for a while (it hears the workload's purposes)."""


@dataclass(slots=True)
class Rig:
    """Everything a fault acts on."""

    config: FaultsConfig
    settings: KafkaSettings
    supervisor: Supervisor
    cluster: Cluster
    postgres: Postgres
    fail_file: Path
    targets: tuple[Target, ...]
    malformed: list[tuple[str, Record]]
    burst_result: burst.BurstResult | None = None

    def labels(self, family: SinkFamily | None = None) -> tuple[str, ...]:
        """The workload's destinations (of ``family``)."""
        return tuple(t.label for t in self.targets if family is None or t.family is family)


Injection = Callable[[Rig], Injected]


def kill(process: str, family: SinkFamily | None, title: str) -> Injection:
    """SIGKILL ``process`` and start it again at once."""

    def inject(rig: Rig) -> Injected:
        killed, restarted = rig.supervisor.kill_and_restart(process)
        # A killed stream worker may have routed what it read before it died; only
        # withdrawals published after the kill prove the new one works.
        fresh = killed if family is None else None
        return Injected(title, rig.labels(family), killed, restarted, fresh)

    return inject


def malformed_burst(rig: Rig) -> Injected:
    """Publish every malformed record as fast as the producer takes them."""
    began = time.time()
    rig.burst_result = burst.publish(rig.settings, rig.settings.topics.consent, rig.malformed)
    landed = len(rig.burst_result.landed)
    say(f"  {landed:,} malformed records on the topic in {time.time() - began:.1f} s")
    done = rig.burst_result.finished
    return Injected("malformed burst", rig.labels(), began, done, done)


def postgres_outage(rig: Rig) -> Injected:
    """Stop PostgreSQL for a while and start it again."""
    began = time.time()
    rig.postgres.stop()
    time.sleep(rig.config.postgres_down_seconds)
    rig.postgres.start()
    title = f"PostgreSQL stopped {rig.config.postgres_down_seconds:.0f} s"
    return Injected(title, rig.labels(SinkFamily.MARKETING), began, time.time())


def partner_outage(rig: Rig) -> Injected:
    """One partner answers 500 for a while."""
    began = time.time()
    rig.fail_file.write_text(f"/hooks/{FAILING_PARTNER}\n")
    time.sleep(rig.config.partner_down_seconds)
    rig.fail_file.unlink()
    back = time.time()
    label = f"{SinkFamily.PARTNER_SHARING.value}/{FAILING_PARTNER}"
    title = f"partner {FAILING_PARTNER} answering 500 for {rig.config.partner_down_seconds:.0f} s"
    return Injected(title, (label,), began, back)


def leader_kill(rig: Rig) -> Injected:
    """SIGKILL the node leading consent partition 0 and let the cluster carry on.

    Nothing is restarted (the relay must move on the two nodes left), so recovery runs
    from the kill itself; the node comes back with the next broker outage's start.
    """
    node = leader(rig.settings, rig.settings.topics.consent, 0)
    controller = rig.cluster.local.active_controller(rig.cluster.state_dir)
    killed = rig.cluster.kill_node(node)
    role = " and active controller" if node == controller else ""
    say(f"  SIGKILLed node {node}, leader of consent partition 0{role}")
    title = f"consent leader SIGKILL (node {node}{role}; from the kill, not restarted)"
    return Injected(title, rig.labels(), killed, killed)


def broker_outage(rig: Rig) -> Injected:
    """Stop the broker, or every node of a cluster (cleanly, data kept), and start again."""
    if len(rig.cluster.node_pids()) < rig.config.brokers:
        # A node lost to the leader's kill comes back first, so this outage is the same
        # whole-cluster stop whatever ran before it.
        say("  starting the lost node again before the outage")
        rig.cluster.start_broker()
    began = time.time()
    rig.cluster.stop_broker()
    time.sleep(rig.config.broker_down_seconds)
    rig.cluster.start_broker()
    what = "broker" if rig.config.brokers == 1 else f"all {rig.config.brokers} nodes"
    title = f"{what} stopped {rig.config.broker_down_seconds:.0f} s"
    return Injected(title, rig.labels(), began, time.time())


def schedule(config: FaultsConfig) -> list[Injection]:
    """The faults in the order they are injected."""
    worker = "stream-worker-0"
    steps: list[Injection] = [
        kill(
            worker,
            None,
            "stream worker SIGKILL #1" if config.worker_kills > 1 else "stream worker SIGKILL",
        ),
        kill("marketing-sink", SinkFamily.MARKETING, "marketing sink SIGKILL"),
        kill("analytics-sink", SinkFamily.ANALYTICS, "analytics sink SIGKILL"),
        kill("partner-sink", SinkFamily.PARTNER_SHARING, "partner sink SIGKILL"),
        malformed_burst,
        postgres_outage,
        partner_outage,
    ]
    if config.brokers > 1:
        steps.append(leader_kill)
    steps.append(broker_outage)
    steps += [
        kill(worker, None, f"stream worker SIGKILL #{n}") for n in range(2, config.worker_kills + 1)
    ]
    return steps
