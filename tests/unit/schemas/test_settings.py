"""Settings validated at start: schemas.runtime.settings.load (pydantic-settings models) and
KafkaSettings.from_env refuse unknown and invalid keys with a ConfigError that names the key."""

from __future__ import annotations

from pathlib import Path
from typing import Self

import pytest
from pydantic import Field, ValidationError, model_validator
from pydantic_settings import SettingsConfigDict

from schemas.errors import ConfigError, ConsentRelayError
from schemas.runtime.kafka import KNOWN_KEYS, KafkaSettings
from schemas.runtime.settings import LogLevel, Port, Secret, Settings, load
from schemas.taxonomy import Regime
from schemas.topics import DEFAULT_PARTITIONS

GOOD = {"KAFKA_BOOTSTRAP": "127.0.0.1:9092", "SCHEMA_REGISTRY_URL": "http://127.0.0.1:8081"}


class Example(Settings):
    """A process's settings."""

    model_config = SettingsConfigDict(env_prefix="EX_")

    name: str
    port: Port = 8080
    ratio: float = Field(0.5, le=1)
    verbose: bool = False
    data_dir: Path = Path("var")
    routing_file: Path | None = None
    label: str | None = "x"
    regime: Regime = Regime.GDPR
    token: Secret | None = None
    log_level: LogLevel = "INFO"

    @model_validator(mode="after")
    def _no_spaces(self) -> Self:
        if self.label and " " in self.label:
            raise ValueError("no spaces anywhere")
        return self


def refused(env: dict[str, str], key: str, reason: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load(Example, "EX_", env)
    assert caught.value.key == key, caught.value
    assert reason in caught.value.reason, caught.value
    assert str(caught.value).startswith(f"{key}: ")
    assert isinstance(caught.value, ConsentRelayError)
    assert isinstance(caught.value.__cause__, ValidationError)


def test_load_reads_and_converts_every_type() -> None:
    settings = load(
        Example,
        "EX_",
        {
            "EX_NAME": "gate",
            "EX_PORT": "9000",
            "EX_RATIO": "0.25",
            "EX_VERBOSE": "yes",
            "EX_DATA_DIR": "/tmp/x",
            "EX_ROUTING_FILE": "",
            "EX_LABEL": "",
            "EX_REGIME": "CCPA",
            "EX_LOG_LEVEL": "debug",
            "OTHER_THING": "ignored",
        },
    )
    assert settings == Example(
        name="gate",
        port=9000,
        ratio=0.25,
        verbose=True,
        data_dir=Path("/tmp/x"),
        routing_file=None,
        label=None,
        regime=Regime.CCPA,
        log_level="DEBUG",
    )


def test_load_keeps_defaults_and_the_prefix_defaults_to_the_models() -> None:
    assert load(Example, "EX_", {"EX_NAME": "n"}) == Example(name="n")
    assert load(Example, env={"EX_NAME": "n"}) == Example(name="n")


def test_settings_are_frozen_and_keyword_built_ones_are_validated() -> None:
    settings = Example(name="n")
    with pytest.raises(ValidationError):
        settings.port = 1  # type: ignore[misc]
    with pytest.raises(ValueError, match="less than 65536"):
        Example(name="n", port=70000)


def test_keyword_built_settings_read_no_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EX_PORT", "9000")
    assert Example(name="n").port == 8080


@pytest.mark.parametrize("raw", ["1", "true", "YES", "on"])
def test_true_spellings(raw: str) -> None:
    assert load(Example, "EX_", {"EX_NAME": "n", "EX_VERBOSE": raw}).verbose is True


@pytest.mark.parametrize("raw", ["0", "false", "No", "off"])
def test_false_spellings(raw: str) -> None:
    assert load(Example, "EX_", {"EX_NAME": "n", "EX_VERBOSE": raw}).verbose is False


@pytest.mark.parametrize(
    ("env", "key", "reason"),
    [
        ({"EX_NAME": "n", "EX_PROT": "1"}, "EX_PROT", "unknown setting; did you mean EX_PORT?"),
        ({"EX_NAME": "n", "EX_COLOUR": "1"}, "EX_COLOUR", "unknown setting (known: EX_DATA_DIR"),
        ({"EX_NAME": "n", "EX_port": "1"}, "EX_port", "unknown setting; did you mean EX_PORT?"),
        ({}, "EX_NAME", "is required"),
        ({"EX_NAME": "n", "EX_PORT": "eighty"}, "EX_PORT", "'eighty' is not an integer"),
        ({"EX_NAME": "n", "EX_PORT": "8.5"}, "EX_PORT", "is not an integer"),
        ({"EX_NAME": "n", "EX_RATIO": "half"}, "EX_RATIO", "'half' is not a number"),
        ({"EX_NAME": "n", "EX_VERBOSE": "maybe"}, "EX_VERBOSE", "'maybe' is not a boolean"),
        ({"EX_NAME": "n", "EX_VERBOSE": ""}, "EX_VERBOSE", "is not a boolean"),
        ({"EX_NAME": "n", "EX_REGIME": "MARS"}, "EX_REGIME", "'MARS' is not one of 'GDPR'"),
        ({"EX_NAME": "n", "EX_PORT": "0"}, "EX_PORT", "'0': must be greater than 0"),
        ({"EX_NAME": "n", "EX_RATIO": "2"}, "EX_RATIO", "must be less than or equal to 1"),
        ({"EX_NAME": "n", "EX_LABEL": "a b"}, "EX", "no spaces anywhere"),
        ({"EX_NAME": "n", "EX_LOG_LEVEL": "LOUD"}, "EX_LOG_LEVEL", "'LOUD' is not one of DEBUG"),
    ],
)
def test_load_refuses_unknown_and_invalid_keys(env: dict[str, str], key: str, reason: str) -> None:
    refused(env, key, reason)


def test_a_secret_is_loaded_but_shown_nowhere() -> None:
    settings = load(Example, "EX_", {"EX_NAME": "n", "EX_TOKEN": "hidden-value"})
    assert settings.token is not None
    assert settings.token.reveal() == "hidden-value"
    assert settings.token.matches("hidden-value")
    assert "hidden-value" not in repr(settings) + str(settings)
    assert Example(name="n", token=Secret("x")).token == Secret("x")


def test_load_reads_the_process_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EXENV_NAME", "from-env")
    assert load(Example, "EXENV_").name == "from-env"


# --- KafkaSettings -----------------------------------------------------------------------


def kafka_refused(env: dict[str, str], key: str, reason: str) -> None:
    with pytest.raises(ConfigError) as caught:
        KafkaSettings.from_env(env)
    assert caught.value.key == key, caught.value
    assert reason in caught.value.reason, caught.value


def test_from_env_reads_every_key() -> None:
    settings = KafkaSettings.from_env(
        {
            **GOOD,
            "KAFKA_BOOTSTRAP": "a:1,b:2",
            "CONSENT_RELAY_TOPIC_PREFIX": "t-1.",
            "CONSENT_RELAY_PARTITIONS": "3",
        }
    )
    assert settings == KafkaSettings(
        bootstrap="a:1,b:2",
        registry_url=GOOD["SCHEMA_REGISTRY_URL"],
        topic_prefix="t-1.",
        partitions=3,
    )
    assert settings.topics.consent == "t-1.consent.events"
    assert KafkaSettings.from_env(GOOD).partitions == DEFAULT_PARTITIONS


@pytest.mark.parametrize(
    ("changes", "key", "reason"),
    [
        ({"KAFKA_BOOTSTRAP": ""}, "KAFKA_BOOTSTRAP", "is required"),
        ({"SCHEMA_REGISTRY_URL": ""}, "SCHEMA_REGISTRY_URL", "is required"),
        ({"KAFKA_BOOTSTRAP": "localhost"}, "KAFKA_BOOTSTRAP", "'localhost' is not host:port"),
        ({"KAFKA_BOOTSTRAP": "a:1,b"}, "KAFKA_BOOTSTRAP", "'b' is not host:port"),
        ({"KAFKA_BOOTSTRAP": "a b:1"}, "KAFKA_BOOTSTRAP", "is not host:port"),
        ({"SCHEMA_REGISTRY_URL": "127.0.0.1:8081"}, "SCHEMA_REGISTRY_URL", "not an http(s) URL"),
        ({"SCHEMA_REGISTRY_URL": "ftp://r"}, "SCHEMA_REGISTRY_URL", "not an http(s) URL"),
        ({"CONSENT_RELAY_PARTITIONS": "six"}, "CONSENT_RELAY_PARTITIONS", "is not an integer"),
        ({"CONSENT_RELAY_PARTITIONS": "0"}, "CONSENT_RELAY_PARTITIONS", "at least 1"),
        ({"CONSENT_RELAY_TOPIC_PREFIX": "a/b"}, "CONSENT_RELAY_TOPIC_PREFIX", "'a/b' must be"),
        ({"CONSENT_RELAY_TOPIC_PREFIX": "p" * 101}, "CONSENT_RELAY_TOPIC_PREFIX", "at most 100"),
        (
            {"KAFKA_BOOTSTRAP_SERVERS": "a:1"},
            "KAFKA_BOOTSTRAP_SERVERS",
            "unknown setting; did you mean KAFKA_BOOTSTRAP?",
        ),
        (
            {"CONSENT_RELAY_PREFIX": "t."},
            "CONSENT_RELAY_PREFIX",
            "did you mean CONSENT_RELAY_TOPIC_PREFIX?",
        ),
        (
            {"CONSENT_RELAY_PARTITION": "3"},
            "CONSENT_RELAY_PARTITION",
            "did you mean CONSENT_RELAY_PARTITIONS?",
        ),
        ({"SCHEMA_REGISTRY_URI": "http://x"}, "SCHEMA_REGISTRY_URI", "unknown setting"),
        ({"SCHEMA_REGISTRY_BASIC_AUTH": "u:p"}, "SCHEMA_REGISTRY_BASIC_AUTH", "unknown setting"),
    ],
)
def test_from_env_refuses_unknown_and_invalid_keys(
    changes: dict[str, str], key: str, reason: str
) -> None:
    kafka_refused({**GOOD, **changes}, key, reason)


def test_from_env_leaves_other_tools_keys_alone() -> None:
    env = {
        **GOOD,
        "KAFKA_HEAP_OPTS": "-Xmx512m",
        "KAFKA_OPTS": "-Dx=y",
        "KAFKA_LOG4J_OPTS": "-Dlog4j=x",
        "CONSENT_RELAY_CACHE": "/tmp/cache",
        "STREAMS_WEB_PORT": "6066",
    }
    assert KafkaSettings.from_env(env).bootstrap == GOOD["KAFKA_BOOTSTRAP"]


def test_known_keys_are_the_documented_ones() -> None:
    assert set(KNOWN_KEYS) == {
        "KAFKA_BOOTSTRAP",
        "SCHEMA_REGISTRY_URL",
        "CONSENT_RELAY_TOPIC_PREFIX",
        "CONSENT_RELAY_PARTITIONS",
        "KAFKA_REPLICATION_FACTOR",
        "KAFKA_MIN_INSYNC_REPLICAS",
        "KAFKA_SECURITY_PROTOCOL",
        "KAFKA_SASL_MECHANISM",
        "KAFKA_SASL_USERNAME",
        "KAFKA_SASL_PASSWORD",
    }


def test_client_configs_lose_nothing() -> None:
    settings = KafkaSettings.from_env(GOOD)
    producer = settings.producer_config()
    assert producer["enable.idempotence"] is True
    assert producer["acks"] == "all"
    assert producer["partitioner"] == "murmur2_random"
    consumer = settings.consumer_config("g")
    assert consumer["group.id"] == "g"
    assert consumer["enable.auto.commit"] is False
    assert consumer["enable.auto.offset.store"] is False
    assert settings.producer_config(acks="1")["acks"] == "1"


def test_kafka_settings_built_in_code_are_validated_the_same_way() -> None:
    with pytest.raises(ConfigError) as caught:
        KafkaSettings(bootstrap="localhost", registry_url=GOOD["SCHEMA_REGISTRY_URL"])
    assert caught.value.key == "KAFKA_BOOTSTRAP"
    assert caught.value.reason == "'localhost' is not host:port"
    with pytest.raises(ConfigError, match="KAFKA_MIN_INSYNC_REPLICAS: 3 is more than"):
        KafkaSettings(
            bootstrap="a:1", registry_url="http://r", replication_factor=2, min_insync_replicas=3
        )


def test_kafka_settings_are_frozen_hashable_records() -> None:
    settings = KafkaSettings.from_env(GOOD)
    same = KafkaSettings(
        bootstrap=GOOD["KAFKA_BOOTSTRAP"], registry_url=GOOD["SCHEMA_REGISTRY_URL"]
    )
    assert settings == same
    assert hash(settings) == hash(same)
    with pytest.raises(ValidationError):
        settings.partitions = 3  # type: ignore[misc]
    copy = settings.model_copy(update={"topic_prefix": "t.", "partitions": 3})
    assert (copy.topics.consent, copy.partitions, copy.auth) == (
        "t.consent.events",
        3,
        settings.auth,
    )


def test_empty_and_blank_kafka_settings_are_unset() -> None:
    env = {
        **GOOD,
        "CONSENT_RELAY_TOPIC_PREFIX": "",
        "KAFKA_REPLICATION_FACTOR": " ",
        "KAFKA_MIN_INSYNC_REPLICAS": "",
        "KAFKA_SECURITY_PROTOCOL": " ",
        "KAFKA_SASL_USERNAME": "",
    }
    assert KafkaSettings.from_env(env) == KafkaSettings.from_env(GOOD)
