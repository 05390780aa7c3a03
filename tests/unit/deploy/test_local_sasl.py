"""deploy/local.py's ``--sasl`` mode without starting anything: the listener and
authorizer settings, where the generated credentials are kept and who may read them,
and what is printed (no network)."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from schemas.runtime.kafka import KafkaSettings
from tests.support.processes import load_local_stack

local = load_local_stack()


def test_without_sasl_a_node_keeps_its_plaintext_listener_and_no_authorizer(
    tmp_path: Path,
) -> None:
    props = local.server_properties(tmp_path, 19092, 19093)
    assert props["listeners"] == "PLAINTEXT://127.0.0.1:19092,CONTROLLER://127.0.0.1:19093"
    assert props["inter.broker.listener.name"] == "PLAINTEXT"
    assert "authorizer.class.name" not in props
    assert not any(key.startswith(("sasl.", "listener.name.")) for key in props)


def test_with_sasl_clients_and_brokers_use_scram_and_acls_apply(tmp_path: Path) -> None:
    credentials = local.sasl_credentials(tmp_path, create=True)
    props = local.server_properties(tmp_path, 19092, 19093, sasl=credentials)
    assert props["listeners"] == "SASL_PLAINTEXT://127.0.0.1:19092,CONTROLLER://127.0.0.1:19093"
    assert props["advertised.listeners"] == "SASL_PLAINTEXT://127.0.0.1:19092"
    assert props["inter.broker.listener.name"] == "SASL_PLAINTEXT"
    assert props["sasl.enabled.mechanisms"] == "SCRAM-SHA-512"
    assert props["sasl.mechanism.inter.broker.protocol"] == "SCRAM-SHA-512"
    jaas = props["listener.name.sasl_plaintext.scram-sha-512.sasl.jaas.config"]
    assert f'username="broker" password="{credentials["broker"]}"' in jaas
    assert props["authorizer.class.name"].endswith("StandardAuthorizer")
    assert props["super.users"].split(";") == ["User:broker", "User:operator", "User:ANONYMOUS"]
    assert props["allow.everyone.if.no.acl.found"] == "false"


def test_a_cluster_node_under_sasl_keeps_its_cluster_settings(tmp_path: Path) -> None:
    cluster = local._nodes([19092, 19094, 19096], [19093, 19095, 19097])
    credentials = local.sasl_credentials(tmp_path, create=True)
    props = local.server_properties(
        tmp_path, 19094, 19095, cluster=cluster, node_id=2, sasl=credentials
    )
    assert props["listeners"] == "SASL_PLAINTEXT://127.0.0.1:19094,CONTROLLER://127.0.0.1:19095"
    assert props["default.replication.factor"] == "3"
    assert props["controller.quorum.voters"].count("@") == 3


def test_one_generated_password_per_role_and_the_brokers_kept_owner_only(tmp_path: Path) -> None:
    credentials = local.sasl_credentials(tmp_path, create=True)
    assert set(credentials) == {"broker", *local.ROLES}
    assert set(local.ROLES) == {
        "producers",
        "streams",
        "marketing",
        "analytics",
        "partner_sharing",
        "gate",
        "operator",
    }
    assert len(set(credentials.values())) == len(credentials)
    assert all(len(password) >= 32 for password in credentials.values())
    path = tmp_path / "sasl" / "credentials.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    # Read back, not regenerated: the brokers were formatted with these.
    assert local.sasl_credentials(tmp_path) == credentials


def test_the_properties_file_holding_the_brokers_password_is_owner_only(tmp_path: Path) -> None:
    path = tmp_path / "server.properties"
    local._write_properties(path, {"a": "b"})
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_a_state_dir_never_started_with_sasl_has_no_credentials(tmp_path: Path) -> None:
    with pytest.raises(local.StackError, match="not started with --sasl"):
        local.sasl_credentials(tmp_path)


def test_storage_is_formatted_with_every_principals_scram_credential(tmp_path: Path) -> None:
    credentials = local.sasl_credentials(tmp_path, create=True)
    arguments = local._scram_arguments(credentials)
    assert arguments[0::2] == ["--add-scram"] * len(credentials)
    assert f"SCRAM-SHA-512=[name=gate,password={credentials['gate']}]" in arguments[1::2]


def test_printed_lines_name_the_protocol_but_never_a_password(tmp_path: Path) -> None:
    credentials = local.sasl_credentials(tmp_path, create=True)
    endpoints = local.Endpoints(
        bootstrap="127.0.0.1:1",
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
        sasl=True,
    )
    lines = endpoints.env_lines()
    assert "KAFKA_SECURITY_PROTOCOL=SASL_PLAINTEXT" in lines
    assert "KAFKA_SASL_MECHANISM=SCRAM-SHA-512" in lines
    assert not any(password in "\n".join(lines) for password in credentials.values())


def test_a_roles_credentials_are_settings_the_relay_reads(tmp_path: Path) -> None:
    credentials = local.sasl_credentials(tmp_path, create=True)
    env = local.credentials_env(tmp_path, "marketing")
    settings = KafkaSettings.from_env(
        {"KAFKA_BOOTSTRAP": "127.0.0.1:1", "SCHEMA_REGISTRY_URL": "http://127.0.0.1:7", **env}
    )
    assert settings.auth.username == "marketing"
    assert settings.auth.password is not None
    assert settings.auth.password.reveal() == credentials["marketing"]
    with pytest.raises(local.StackError, match="no such role"):
        local.credentials_env(tmp_path, "broker")


def test_the_credentials_command_prints_env_lines_only_when_asked(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    credentials = local.sasl_credentials(tmp_path, create=True)
    assert local.main(["credentials", "--state-dir", str(tmp_path), "gate"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out == [
        "KAFKA_SECURITY_PROTOCOL=SASL_PLAINTEXT",
        "KAFKA_SASL_MECHANISM=SCRAM-SHA-512",
        "KAFKA_SASL_USERNAME=gate",
        f"KAFKA_SASL_PASSWORD={credentials['gate']}",
    ]


def test_a_state_dir_formatted_without_sasl_is_not_switched(tmp_path: Path) -> None:
    (tmp_path / "kafka" / "data").mkdir(parents=True)
    (tmp_path / "kafka" / "data" / "meta.properties").write_text("formatted\n")
    local._save_state(tmp_path, {"brokers": 1, "kafka_port": 1, "sasl": 0})
    with pytest.raises(local.StackError, match="formatted without --sasl"):
        local.start(tmp_path, sasl=True, log=lambda _: None)
    assert not (tmp_path / "sasl").exists()
