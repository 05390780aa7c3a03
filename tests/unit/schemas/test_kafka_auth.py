"""How Kafka clients authenticate: KAFKA_SECURITY_PROTOCOL and the SASL settings."""

from __future__ import annotations

import pytest

from schemas.errors import ConfigError
from schemas.runtime.kafka import KafkaSettings
from schemas.runtime.kafka_auth import ClientAuth, SaslMechanism, SecurityProtocol
from schemas.runtime.settings import Secret

BASE = {"KAFKA_BOOTSTRAP": "127.0.0.1:9092", "SCHEMA_REGISTRY_URL": "http://127.0.0.1:8081"}
SASL = {
    "KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
    "KAFKA_SASL_USERNAME": "marketing",
    "KAFKA_SASL_PASSWORD": "s3cret-not-in-logs",
}


def test_plaintext_by_default_and_adds_nothing_to_client_configs() -> None:
    settings = KafkaSettings.from_env(BASE)
    assert settings.auth == ClientAuth()
    assert not settings.auth.sasl
    for config in (
        settings.producer_config(),
        settings.consumer_config("g"),
        settings.admin_config(),
    ):
        assert not any(key.startswith(("security.", "sasl.")) for key in config)


def test_sasl_settings_reach_producer_consumer_and_admin_configs() -> None:
    settings = KafkaSettings.from_env({**BASE, **SASL})
    expected = {
        "security.protocol": "SASL_PLAINTEXT",
        "sasl.mechanism": "SCRAM-SHA-512",
        "sasl.username": "marketing",
        "sasl.password": "s3cret-not-in-logs",
    }
    for config in (
        settings.producer_config(),
        settings.consumer_config("g", session_timeout_seconds=6),
        settings.admin_config(),
    ):
        assert {k: config[k] for k in expected} == expected


def test_the_password_is_redacted_when_settings_are_shown() -> None:
    settings = KafkaSettings.from_env({**BASE, **SASL})
    assert isinstance(settings.auth.password, Secret)
    for shown in (repr(settings), str(settings), repr(settings.auth), f"{settings.auth}"):
        assert "s3cret-not-in-logs" not in shown
        assert "***" in shown


def test_sasl_ssl_and_lowercase_spellings_are_read() -> None:
    env = {**BASE, **SASL, "KAFKA_SECURITY_PROTOCOL": "sasl_ssl"}
    env["KAFKA_SASL_MECHANISM"] = "scram-sha-512"
    auth = KafkaSettings.from_env(env).auth
    assert auth.protocol is SecurityProtocol.SASL_SSL
    assert auth.mechanism is SaslMechanism.SCRAM_SHA_512
    assert auth.tls
    assert auth.sasl


@pytest.mark.parametrize(
    ("changes", "blamed"),
    [
        ({"KAFKA_SASL_USERNAME": ""}, "KAFKA_SASL_USERNAME"),
        ({"KAFKA_SASL_PASSWORD": ""}, "KAFKA_SASL_PASSWORD"),
        ({"KAFKA_SECURITY_PROTOCOL": "SSL"}, "KAFKA_SECURITY_PROTOCOL"),
        ({"KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT", "KAFKA_SASL_MECHANISM": "PLAIN"}, None),
        ({"KAFKA_SECURITY_PROTOCOL": "PLAINTEXT"}, "KAFKA_SECURITY_PROTOCOL"),
    ],
)
def test_invalid_combinations_name_the_setting(changes: dict[str, str], blamed: str | None) -> None:
    env = {**BASE, **SASL, **changes}
    with pytest.raises(ConfigError) as caught:
        KafkaSettings.from_env(env)
    assert caught.value.key == (blamed or "KAFKA_SASL_MECHANISM")
    assert "s3cret-not-in-logs" not in str(caught.value)


def test_username_without_password_and_password_without_username_are_refused() -> None:
    with pytest.raises(ConfigError, match="KAFKA_SASL_PASSWORD"):
        ClientAuth(protocol=SecurityProtocol.SASL_PLAINTEXT, username="gate")
    with pytest.raises(ConfigError, match="KAFKA_SASL_USERNAME"):
        ClientAuth(protocol=SecurityProtocol.SASL_PLAINTEXT, password=Secret("x" * 20))
    with pytest.raises(ConfigError, match="KAFKA_SECURITY_PROTOCOL"):
        ClientAuth(username="gate")


def test_a_misspelt_sasl_key_is_refused() -> None:
    with pytest.raises(ConfigError) as caught:
        KafkaSettings.from_env({**BASE, **SASL, "KAFKA_SASL_PASWORD": "x"})
    assert caught.value.key == "KAFKA_SASL_PASWORD"
