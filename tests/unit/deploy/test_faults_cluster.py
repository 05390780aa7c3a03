"""The fault harness on a three-node cluster, without a broker: ``--brokers`` and its
checks, the schedule gaining the consent leader's SIGKILL just before the whole-cluster
outage, and the cluster's node ids, kill and stop over a stand-in for deploy/local.py."""

from __future__ import annotations

import signal
import subprocess
import sys
from dataclasses import dataclass, replace
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

# deploy/ is not an installed package: its tools run from the repository root.
ROOT = str(Path(__file__).resolve().parents[3])
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from deploy.faults import injections  # noqa: E402
from deploy.faults.cluster import Cluster, ClusterError  # noqa: E402
from deploy.faults.config import FaultsConfigError, from_args  # noqa: E402


def test_brokers_defaults_to_one_and_takes_three_only() -> None:
    assert from_args(["--short"]).brokers == 1
    assert from_args(["--short", "--brokers", "3"]).brokers == 3
    assert from_args(["--short", "--brokers", "3"]).short
    with pytest.raises(FaultsConfigError, match="--brokers"):
        from_args(["--brokers", "2"])


def test_the_leader_kill_runs_only_on_a_cluster_just_before_the_outage() -> None:
    one = injections.schedule(from_args(["--short"]))
    three = injections.schedule(from_args(["--short", "--brokers", "3"]))
    assert injections.leader_kill not in one
    assert len(three) == len(one) + 1
    at = three.index(injections.leader_kill)
    assert three[at + 1] is injections.broker_outage


@dataclass
class _Status:
    name: str
    pid: int | None
    running: bool


class _FakeLocal:
    """deploy/local.py's node names and status over real (sleeping) processes."""

    class StackError(RuntimeError):
        pass

    def __init__(self, procs: dict[str, subprocess.Popen[bytes]]) -> None:
        self.procs = procs
        self.started = 0

    @staticmethod
    def node_names(brokers: int) -> list[str]:
        return ["kafka"] if brokers == 1 else [f"kafka-{n}" for n in range(1, brokers + 1)]

    def status(self, _state: Path) -> list[_Status]:
        return [_Status(name, p.pid, p.poll() is None) for name, p in self.procs.items()] + [
            _Status("registry", None, False)
        ]

    def start(self, *_args: Any, **_kwargs: Any) -> None:
        self.started += 1


@pytest.fixture
def nodes() -> Any:
    procs = {
        f"kafka-{n}": subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
        for n in (1, 2, 3)
    }
    yield procs
    for p in procs.values():
        if p.poll() is None:
            p.kill()
        p.wait()


def _cluster(local: _FakeLocal, tmp_path: Path) -> Cluster:
    return Cluster(local, tmp_path, "b", "r", brokers=3)  # type: ignore[arg-type]


def test_node_ids_follow_deploy_local_node_names(nodes: Any, tmp_path: Path) -> None:
    cluster = _cluster(_FakeLocal(nodes), tmp_path)
    assert cluster.node_pids() == {n: nodes[f"kafka-{n}"].pid for n in (1, 2, 3)}
    assert cluster.broker_pid() == nodes["kafka-1"].pid


def test_kill_node_sigkills_that_node_only(nodes: Any, tmp_path: Path) -> None:
    cluster = _cluster(_FakeLocal(nodes), tmp_path)
    cluster.kill_node(2)
    assert nodes["kafka-2"].wait(10) == -signal.SIGKILL
    assert sorted(cluster.node_pids()) == [1, 3]
    with pytest.raises(ClusterError, match="node 2 is not running"):
        cluster.kill_node(2)


def test_stop_broker_stops_every_node_that_runs(nodes: Any, tmp_path: Path) -> None:
    local = _FakeLocal(nodes)
    cluster = _cluster(local, tmp_path)
    cluster.kill_node(3)
    nodes["kafka-3"].wait(10)
    cluster.stop_broker()
    assert all(p.returncode == -signal.SIGTERM for n, p in nodes.items() if n != "kafka-3")
    assert cluster.node_pids() == {}
    with pytest.raises(ClusterError, match="no broker"):
        cluster.stop_broker()


def test_the_outage_first_restarts_a_node_the_leader_kill_left_down(
    nodes: Any, tmp_path: Path
) -> None:
    local = _FakeLocal(nodes)
    cluster = _cluster(local, tmp_path)
    cluster.kill_node(1)
    nodes["kafka-1"].wait(10)
    config = replace(from_args(["--short", "--brokers", "3"]), broker_down_seconds=0.1)
    rig = SimpleNamespace(cluster=cluster, config=config, labels=lambda: ("all",))
    injected = injections.broker_outage(rig)  # type: ignore[arg-type]
    assert local.started == 2  # the lost node, then the whole cluster after the outage
    assert injected.name == "all 3 nodes stopped 0 s"
