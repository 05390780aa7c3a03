"""``python -m deploy.grant_acls`` without a broker: it grants deploy/acls.py's ACLs for
the settings' topic prefix through the settings' (the operator's) admin config, and
refuses a cluster without SASL."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import pytest

from schemas.topics import Topics

# deploy/ is not an installed package: its tools run from the repository root.
ROOT = str(Path(__file__).resolve().parents[3])
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from deploy import acls, grant_acls  # noqa: E402

OPERATOR = {
    "KAFKA_BOOTSTRAP": "kafka-1:9092,kafka-2:9092",
    "SCHEMA_REGISTRY_URL": "http://registry:8080/apis/ccompat/v7",
    "CONSENT_RELAY_TOPIC_PREFIX": "tenant-a.",
    "KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
    "KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
    "KAFKA_SASL_USERNAME": "operator",
    "KAFKA_SASL_PASSWORD": "operator-password",
}


def _environment(monkeypatch: pytest.MonkeyPatch, env: Mapping[str, str]) -> None:
    for key in list(os.environ):
        if key.startswith(("KAFKA_", "SCHEMA_REGISTRY_", "CONSENT_RELAY_")):
            monkeypatch.delenv(key)
    for key, value in env.items():
        monkeypatch.setenv(key, value)


def test_grants_every_role_for_the_prefix_as_the_operator(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    calls: list[tuple[dict[str, Any], tuple[Any, ...]]] = []

    def apply(config: Mapping[str, Any], granted: Iterable[Any], timeout: float = 30.0) -> int:
        calls.append((dict(config), tuple(granted)))
        return len(calls[-1][1])

    _environment(monkeypatch, OPERATOR)
    monkeypatch.setattr(acls, "apply", apply)
    caplog.set_level("INFO")
    assert grant_acls.main() == 0
    ((config, granted),) = calls
    assert config["bootstrap.servers"] == "kafka-1:9092,kafka-2:9092"
    assert config["sasl.username"] == "operator"
    assert granted == acls.grants(Topics("tenant-a."))
    assert "operator-password" not in caplog.text


def test_refuses_a_cluster_without_sasl(monkeypatch: pytest.MonkeyPatch) -> None:
    plain = {k: v for k, v in OPERATOR.items() if "SASL" not in k and "SECURITY" not in k}
    _environment(monkeypatch, plain)
    monkeypatch.setattr(acls, "apply", pytest.fail)
    assert grant_acls.main() == 1
