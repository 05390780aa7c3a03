"""A broker (or a three-node cluster) and registry of the run's own, which it may stop,
kill and start again.

Started with ``deploy/local.py`` on free ports under the run's state directory, never
the shared development stack: stopping a broker would break everyone else's tests.
The brokers are stopped with SIGTERM (a clean shutdown) and started again from the same
state directory, so they come back with their data, on the same ports, while the
registry keeps running. One node of a cluster may also be SIGKILLed (the leader of a
partition) and is started again by the next :meth:`Cluster.start_broker`. Everything is
owned by the harness: if it dies, however it dies, the stack stops.
"""

from __future__ import annotations

import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from confluent_kafka.admin import AdminClient

from deploy.bench.stack import _load_local  # deploy/local.py is a script, loaded by path
from deploy.faults.say import say
from schemas.runtime.kafka import KafkaSettings

STOP_TIMEOUT_S = 60.0
METADATA_TIMEOUT_S = 30.0


class ClusterError(RuntimeError):
    """The private broker(s) or registry did not start or stop."""


@dataclass(frozen=True, slots=True)
class Cluster:
    """A running private broker (or cluster) + registry."""

    local: ModuleType
    state_dir: Path
    bootstrap: str
    registry_url: str
    brokers: int = 1

    @classmethod
    def start(cls, state_dir: Path, brokers: int = 1) -> Cluster:
        """``brokers`` Kafka node(s) and a registry on free ports, state under ``state_dir``."""
        local = _load_local()
        state_dir.mkdir(parents=True, exist_ok=True)
        ports = local.pick_free_ports(2 * brokers + 1)
        what = "broker" if brokers == 1 else f"{brokers}-node cluster"
        say(f"starting a private {what} and registry in {state_dir}")
        try:
            # Owned: a harness killed mid-run leaves no broker or registry behind.
            if brokers == 1:
                ends = local.start(state_dir, *ports, owned=True, log=_quiet)
            else:
                ends = local.start(
                    state_dir,
                    ports[:brokers],
                    ports[brokers : 2 * brokers],
                    ports[-1],
                    brokers=brokers,
                    owned=True,
                    log=_quiet,
                )
        except local.StackError as exc:
            raise ClusterError(str(exc)) from exc
        return cls(local, state_dir, ends.bootstrap, ends.registry_url, brokers)

    def node_pids(self) -> dict[int, int]:
        """Node id (1, 2, ...; the single broker is 1) → pid, of the nodes that run."""
        names = self.local.node_names(self.brokers)
        pids: dict[int, int] = {}
        for component in self.local.status(self.state_dir):
            if component.name in names and component.running:
                pids[names.index(component.name) + 1] = int(component.pid)
        return pids

    def broker_pid(self) -> int | None:
        """The (first) broker's pid while it runs."""
        return self.node_pids().get(1)

    def stop_broker(self) -> None:
        """SIGTERM every running node and wait until they have gone (their data stays).

        A cluster's last nodes may wait for a quorum that has already left: after
        :data:`STOP_TIMEOUT_S` what is left of a cluster is SIGKILLed (its data is on
        disk either way); a single broker that hangs is an error, as before.
        """
        pids = self.node_pids()
        if not pids:
            raise ClusterError("no broker is running")
        for pid in pids.values():
            os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT_S
        while self.node_pids():
            if time.monotonic() > deadline:
                if self.brokers == 1:
                    raise ClusterError(f"the broker did not stop within {STOP_TIMEOUT_S:.0f} s")
                left = self.node_pids()
                say(f"  nodes {sorted(left)} still up after {STOP_TIMEOUT_S:.0f} s; SIGKILL")
                for pid in left.values():
                    os.kill(pid, signal.SIGKILL)
                deadline = time.monotonic() + STOP_TIMEOUT_S
            time.sleep(0.2)

    def kill_node(self, node_id: int) -> float:
        """SIGKILL one node (no shutdown at all); the wall time of the kill."""
        pid = self.node_pids().get(node_id)
        if pid is None:
            raise ClusterError(f"node {node_id} is not running")
        os.kill(pid, signal.SIGKILL)
        return time.time()

    def start_broker(self) -> None:
        """Start every node that does not run, from its state directory; returns once
        the cluster answers."""
        try:
            self.local.start(self.state_dir, owned=True, log=_quiet)
        except self.local.StackError as exc:
            raise ClusterError(str(exc)) from exc

    def stop(self) -> None:
        """Stop broker(s) and registry."""
        self.local.stop(self.state_dir, log=_quiet)


def leader(settings: KafkaSettings, topic: str, partition: int) -> int:
    """The node id leading ``topic``'s ``partition`` now."""
    metadata = AdminClient(settings.admin_config()).list_topics(topic, timeout=METADATA_TIMEOUT_S)
    found = metadata.topics.get(topic)
    if found is None or found.error is not None or partition not in found.partitions:
        raise ClusterError(f"no metadata for {topic}[{partition}]")
    node = int(found.partitions[partition].leader)
    if node < 0:
        raise ClusterError(f"{topic}[{partition}] has no leader")
    return node


def _quiet(_message: Any) -> None:
    """deploy/local.py's progress lines would drown the harness's own."""
