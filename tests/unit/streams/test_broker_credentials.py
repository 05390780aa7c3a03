"""The stream worker's Faust app authenticates as KafkaSettings says (SASL or not)."""

from __future__ import annotations

import faust

from schemas.runtime.kafka import KafkaSettings
from streams.app import _credentials

BASE = {"KAFKA_BOOTSTRAP": "127.0.0.1:9092", "SCHEMA_REGISTRY_URL": "http://127.0.0.1:8081"}


def test_plaintext_gives_faust_no_credentials() -> None:
    assert _credentials(KafkaSettings.from_env(BASE)) is None


def test_sasl_gives_faust_scram_credentials() -> None:
    env = {
        **BASE,
        "KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
        "KAFKA_SASL_USERNAME": "streams",
        "KAFKA_SASL_PASSWORD": "worker-secret-1234",
    }
    credentials = _credentials(KafkaSettings.from_env(env))
    assert isinstance(credentials, faust.SASLCredentials)
    assert credentials.protocol.value == "SASL_PLAINTEXT"
    assert credentials.mechanism.value == "SCRAM-SHA-512"
    assert (credentials.username, credentials.password) == ("streams", "worker-secret-1234")


def test_sasl_ssl_gives_faust_a_tls_context() -> None:
    env = {
        **BASE,
        "KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
        "KAFKA_SASL_USERNAME": "streams",
        "KAFKA_SASL_PASSWORD": "worker-secret-1234",
    }
    credentials = _credentials(KafkaSettings.from_env(env))
    assert credentials is not None
    assert credentials.protocol.value == "SASL_SSL"
    assert credentials.ssl_context is not None
