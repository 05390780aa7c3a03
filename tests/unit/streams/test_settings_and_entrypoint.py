"""Settings are validated at start; the entrypoint names a bad key and exits 2."""

from __future__ import annotations

from pathlib import Path

import pytest

from schemas.errors import ConfigError
from streams.__main__ import main
from streams.config import StreamSettings

KAFKA = {"KAFKA_BOOTSTRAP": "127.0.0.1:1", "SCHEMA_REGISTRY_URL": "http://127.0.0.1:1"}


def test_defaults_and_conversions() -> None:
    settings = StreamSettings.from_env(
        {"STREAMS_WEB_PORT": "7000", "STREAMS_ROUTING_FILE": "/etc/routing.toml"}
    )
    assert settings.web_port == 7000
    assert settings.routing_file == Path("/etc/routing.toml")
    assert settings.faust_app_id("t-1.") == "t-1.consent-relay-streams"
    assert StreamSettings.from_env({}).web_port == 6066


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"STREAMS_WEB_PORTT": "1"}, "STREAMS_WEB_PORTT"),
        ({"STREAMS_WEB_PORT": "http"}, "STREAMS_WEB_PORT"),
        ({"STREAMS_WEB_PORT": "70000"}, "STREAMS_WEB_PORT"),
        ({"STREAMS_BATCH_SIZE": "0"}, "STREAMS_BATCH_SIZE"),
        ({"STREAMS_SESSION_TIMEOUT_SECONDS": "1"}, "STREAMS_SESSION_TIMEOUT_SECONDS"),
        ({"STREAMS_LOG_LEVEL": "LOUD"}, "STREAMS_LOG_LEVEL"),
    ],
)
def test_bad_settings_name_the_key(env: dict[str, str], named: str) -> None:
    with pytest.raises(ConfigError, match=named):
        StreamSettings.from_env(env)


@pytest.mark.parametrize(
    "key",
    [
        "STREAMS_GATE_OPT_OUT_DEFAULT_ALLOW",
        "STREAMS_GATE_DEFAULT_REGIME",
        "STREAMS_GATE_BATCH_SIZE",
        "STREAMS_GATE_INTAKE_WAIT_SECONDS",
    ],
)
def test_the_former_gate_settings_stop_the_worker_and_say_where_they_went(key: str) -> None:
    # The gate is its own process (python -m streams.gate, GATE_* settings); a worker
    # still given its old keys must not start as if they took effect.
    assert "gate_default_regime" not in StreamSettings.model_fields
    with pytest.raises(ConfigError) as refused:
        StreamSettings.from_env({key: "1"})
    assert refused.value.key == key
    assert "GATE_" + key.removeprefix("STREAMS_GATE_") in refused.value.reason


def test_entrypoint_refuses_bad_settings_before_touching_kafka(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for key, value in {**KAFKA, "STREAMS_BATCH_SIZ": "5"}.items():
        monkeypatch.setenv(key, value)
    assert main(["worker"]) == 2
    assert "STREAMS_BATCH_SIZ" in capsys.readouterr().err


def test_entrypoint_refuses_a_bad_routing_file(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    bad = tmp_path / "routing.toml"
    packaged = Path(__file__).resolve().parents[3] / "streams" / "intake" / "routing.toml"
    bad.write_text(packaged.read_text().replace('"suppression_list"', '"Bad Name"'))
    for key, value in {**KAFKA, "STREAMS_ROUTING_FILE": str(bad)}.items():
        monkeypatch.setenv(key, value)
    assert main([]) == 2
    assert "destinations[0].name: 'Bad Name' must be lowercase" in capsys.readouterr().err


def test_entrypoint_requires_kafka_settings(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("KAFKA_BOOTSTRAP", raising=False)
    monkeypatch.setenv("SCHEMA_REGISTRY_URL", "http://127.0.0.1:1")
    assert main(["worker"]) == 2
    assert "KAFKA_BOOTSTRAP" in capsys.readouterr().err


def test_the_web_server_listens_on_this_machine_only_unless_told_otherwise() -> None:
    settings = StreamSettings.from_env({})
    assert settings.web_bind == "127.0.0.1"
    assert settings.api_token is None
    # Peers on the same machine reach a loopback-bound worker where it listens.
    assert settings.advertised_host == "127.0.0.1"
    wide = StreamSettings.from_env({"STREAMS_WEB_BIND": "0.0.0.0"})
    assert wide.advertised_host not in {"0.0.0.0", ""}
    named = StreamSettings.from_env({"STREAMS_WEB_HOST": "worker-3", "STREAMS_WEB_BIND": "::"})
    assert named.advertised_host == "worker-3"


def test_the_api_token_is_read_redacted_and_must_be_long_enough() -> None:
    token = "propagation-token-0123456789"
    settings = StreamSettings.from_env({"STREAMS_API_TOKEN": token})
    assert settings.api_token is not None
    assert settings.api_token.matches(token)
    assert token not in repr(settings)
    with pytest.raises(ConfigError, match="STREAMS_API_TOKEN") as caught:
        StreamSettings.from_env({"STREAMS_API_TOKEN": "short"})
    assert "'short'" not in str(caught.value)
