"""The gate's settings are validated at start; its entrypoint names a bad key and exits 2."""

from __future__ import annotations

import logging

import pytest

from schemas.errors import ConfigError
from schemas.taxonomy import Regime
from streams.gate.__main__ import main
from streams.gate.rules import GatePolicy
from streams.gate.settings import GateSettings

KAFKA = {"KAFKA_BOOTSTRAP": "127.0.0.1:1", "SCHEMA_REGISTRY_URL": "http://127.0.0.1:1"}


def test_defaults_names_and_conversions() -> None:
    settings = GateSettings.from_env({})
    assert (settings.http_host, settings.http_port) == ("127.0.0.1", 8094)
    assert settings.group("t-1.") == "t-1.consent-relay-streams-gate"
    assert settings.stream_group("t-1.") == "t-1.consent-relay-streams"
    assert settings.policy == GatePolicy()
    # Static membership is opt-in (see GateSettings.static_membership); a dead gate is
    # noticed in 10 s.
    assert (settings.static_membership, settings.group_instance_id) == (False, "")
    assert settings.session_timeout_seconds == 6.0
    custom = GateSettings.from_env(
        {
            "GATE_STREAM_APP_ID": "relay",
            "GATE_GROUP_ID": "my-gate",
            "GATE_OPT_OUT_DEFAULT_ALLOW": "false",
            "GATE_DEFAULT_REGIME": "CCPA",
            "GATE_INTAKE_WAIT_SECONDS": "2.5",
            "GATE_BATCH_SIZE": "100",
        }
    )
    assert custom.group("t-1.") == "my-gate"
    assert custom.policy == GatePolicy(opt_out_default_allow=False, default_regime=Regime.CCPA)
    assert (custom.intake_wait_seconds, custom.batch_size) == (2.5, 100)


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"GATE_HTTP_PROT": "1"}, "GATE_HTTP_PROT"),
        ({"GATE_HTTP_PORT": "70000"}, "GATE_HTTP_PORT"),
        ({"GATE_DEFAULT_REGIME": "MARS"}, "GATE_DEFAULT_REGIME"),
        ({"GATE_BATCH_SIZE": "0"}, "GATE_BATCH_SIZE"),
        ({"GATE_INTAKE_WAIT_SECONDS": "-1"}, "GATE_INTAKE_WAIT_SECONDS"),
        ({"GATE_INTAKE_WAIT_SECONDS": "600"}, "GATE_INTAKE_WAIT_SECONDS"),
        ({"GATE_SESSION_TIMEOUT_SECONDS": "1"}, "GATE_SESSION_TIMEOUT_SECONDS"),
        ({"GATE_STREAM_APP_ID": " "}, "GATE_STREAM_APP_ID"),
        ({"GATE_GROUP_INSTANCE_ID": "pod-0 "}, "GATE_GROUP_INSTANCE_ID"),
        ({"GATE_STATIC_MEMBERSHIP": "maybe"}, "GATE_STATIC_MEMBERSHIP"),
        ({"GATE_LOG_LEVEL": "LOUD"}, "GATE_LOG_LEVEL"),
    ],
)
def test_bad_settings_name_the_key(env: dict[str, str], named: str) -> None:
    with pytest.raises(ConfigError, match=named):
        GateSettings.from_env(env)


def test_entrypoint_refuses_bad_settings_before_touching_kafka(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    for key, value in {**KAFKA, "GATE_BATCH_SIZ": "5"}.items():
        monkeypatch.setenv(key, value)
    with caplog.at_level(logging.ERROR, logger="streams.gate"):
        assert main([]) == 2
    assert "GATE_BATCH_SIZ" in caplog.text
