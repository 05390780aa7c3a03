"""deploy/local.py's cluster mode without starting anything: each node's settings and
ports, the endpoints it prints, and which node controls the cluster (no network)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.processes import load_local_stack

local = load_local_stack()


def test_one_broker_keeps_its_settings_and_paths(tmp_path: Path) -> None:
    props = local.server_properties(tmp_path, 19092, 19093)
    assert props["node.id"] == "1"
    assert props["controller.quorum.voters"] == "1@127.0.0.1:19093"
    assert props["log.dirs"] == str(tmp_path / "kafka" / "data")
    assert props["default.replication.factor"] == "1"
    assert props["offsets.topic.replication.factor"] == "1"
    assert "broker.session.timeout.ms" not in props
    assert local.node_names(1) == ["kafka"]


def test_each_node_of_three_is_a_broker_and_one_of_three_voters(tmp_path: Path) -> None:
    cluster = local._nodes([19092, 19094, 19096], [19093, 19095, 19097])
    props = local.server_properties(tmp_path, 19094, 19095, cluster=cluster, node_id=2)
    assert props["process.roles"] == "broker,controller"
    assert props["node.id"] == "2"
    assert props["controller.quorum.voters"] == (
        "1@127.0.0.1:19093,2@127.0.0.1:19095,3@127.0.0.1:19097"
    )
    assert props["listeners"] == "PLAINTEXT://127.0.0.1:19094,CONTROLLER://127.0.0.1:19095"
    assert props["advertised.listeners"] == "PLAINTEXT://127.0.0.1:19094"
    assert props["log.dirs"] == str(tmp_path / "kafka-2" / "data")
    # Internal topics and topics created without a factor survive one node's loss.
    for key in (
        "default.replication.factor",
        "offsets.topic.replication.factor",
        "transaction.state.log.replication.factor",
    ):
        assert props[key] == "3"
    assert props["min.insync.replicas"] == "2"
    assert props["transaction.state.log.min.isr"] == "2"
    # A lost node is fenced well within the relay's 6 s consumer sessions.
    assert int(props["broker.session.timeout.ms"]) <= 3000
    assert local.node_names(3) == ["kafka-1", "kafka-2", "kafka-3"]


def test_a_clusters_ports_follow_the_first_nodes_or_are_given_per_node() -> None:
    assert local._node_ports("kafka_port", 19092, {}, 0, 3) == [19092, 19094, 19096]
    assert local._node_ports("kafka_port", [5, 7, 9], {}, 0, 3) == [5, 7, 9]
    assert local._node_ports("kafka_port", None, {}, 19092, 1) == [19092]
    recorded = {"kafka_port": 30000, "kafka_ports": [30000, 30100, 30200]}
    assert local._node_ports("kafka_port", None, recorded, 19092, 3) == [30000, 30100, 30200]
    with pytest.raises(local.StackError, match="2 kafka ports given for 3 broker"):
        local._node_ports("kafka_port", [1, 2], {}, 0, 3)
    assert local._ports_arg("19092") == 19092
    assert local._ports_arg("1,2,3") == [1, 2, 3]


def test_the_env_lines_list_every_broker(tmp_path: Path) -> None:
    endpoints = local.Endpoints(
        bootstrap="127.0.0.1:1,127.0.0.1:3,127.0.0.1:5",
        registry_url="http://127.0.0.1:7/apis/ccompat/v7",
        state_dir=tmp_path,
        kafka_port=1,
        controller_port=2,
        registry_port=7,
        kafka_pid=10,
        registry_pid=13,
        reused=False,
        kafka_ready_s=1.0,
        registry_ready_s=1.0,
        brokers=3,
        kafka_ports=(1, 3, 5),
        controller_ports=(2, 4, 6),
        kafka_pids=(10, 11, 12),
    )
    assert endpoints.env_lines()[0] == "KAFKA_BOOTSTRAP=127.0.0.1:1,127.0.0.1:3,127.0.0.1:5"


def test_down_and_status_cover_every_recorded_node(tmp_path: Path) -> None:
    local._save_state(tmp_path, {"brokers": 3, "kafka_ports": [1, 3, 5], "registry_port": 7})
    (tmp_path / "kafka-2.pid").write_text("999999999\n")  # long gone
    report = {s.name: s for s in local.status(tmp_path)}
    assert list(report) == ["kafka-1", "kafka-2", "kafka-3", "registry"]
    assert report["kafka-3"].port == 5
    assert not report["kafka-2"].running
    assert "stale pid file" in report["kafka-2"].detail
    said: list[str] = []
    local.stop(tmp_path, log=said.append)
    assert not (tmp_path / "kafka-2.pid").exists()


def test_the_active_controller_is_the_one_of_the_newest_epoch(tmp_path: Path) -> None:
    assert local.active_controller(tmp_path) is None
    line = "[QuorumController id={}] Becoming the active controller at epoch {}, next write"
    (tmp_path / "kafka-1.log").write_text(line.format(1, 1) + "\n")
    (tmp_path / "kafka-3.log").write_text(line.format(3, 4) + "\n")
    (tmp_path / "kafka-2.log").write_text(line.format(2, 3) + "\n")
    assert local.active_controller(tmp_path) == 3
