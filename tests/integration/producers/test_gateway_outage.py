"""The broker stops while the gateway runs: 503 (never a silent 202), then recovery.

Uses a PRIVATE broker + registry started with ``deploy/local.py up`` in a temporary state
directory on free ports, so stopping it touches nobody else's stack.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from schemas.events import new_event_id
from schemas.registry import register_all
from schemas.runtime.admin import ensure_topics
from schemas.runtime.kafka import KafkaSettings
from tests.support.processes import free_port

from .conftest import REPO, read_back, start_gateway, wait_until

LOCAL_PY = REPO / "deploy" / "local.py"


class PrivateStack:
    """A broker + registry of this test alone, driven through deploy/local.py's CLI."""

    def __init__(self, state_dir: Path) -> None:
        self.state_dir = state_dir
        ports: set[int] = set()
        while len(ports) < 3:
            ports.add(free_port())
        self.kafka_port, self.controller_port, self.registry_port = sorted(ports)

    def up(self) -> dict[str, str]:
        done = subprocess.run(
            [
                sys.executable,
                str(LOCAL_PY),
                "up",
                "--state-dir",
                str(self.state_dir),
                "--kafka-port",
                str(self.kafka_port),
                "--controller-port",
                str(self.controller_port),
                "--registry-port",
                str(self.registry_port),
            ],
            capture_output=True,
            text=True,
            timeout=400,
            check=False,
        )
        if done.returncode != 0:
            pytest.fail(f"private stack did not start:\n{done.stderr[-3000:]}")
        return dict(line.split("=", 1) for line in done.stdout.split() if "=" in line)

    def down(self) -> None:
        subprocess.run(
            [sys.executable, str(LOCAL_PY), "down", "--state-dir", str(self.state_dir)],
            capture_output=True,
            timeout=120,
            check=True,
        )


@pytest.fixture
def private_stack(tmp_path: Path) -> Iterator[PrivateStack]:
    stack = PrivateStack(tmp_path / "private-stack")
    try:
        yield stack
    finally:
        stack.down()


def test_broker_stopped_mid_run_503_then_recovery(
    private_stack: PrivateStack, topic_prefix: str, tmp_path: Path
) -> None:
    endpoints = private_stack.up()
    settings = KafkaSettings(
        bootstrap=endpoints["KAFKA_BOOTSTRAP"],
        registry_url=endpoints["SCHEMA_REGISTRY_URL"],
        topic_prefix=topic_prefix,
        partitions=1,
    )
    with settings.registry_client() as registry:
        register_all(registry)
    ensure_topics(settings)
    relay_env = {
        "KAFKA_BOOTSTRAP": settings.bootstrap,
        "SCHEMA_REGISTRY_URL": settings.registry_url,
        "CONSENT_RELAY_TOPIC_PREFIX": topic_prefix,
    }
    auth = {"Authorization": "Bearer crm-token"}

    def withdrawal(event_id: str) -> dict[str, object]:
        return {
            "event_id": event_id,
            "subject": {"id": "outage-1", "kind": "ACCOUNT"},
            "choice": "WITHDRAWN",
            "purposes": ["MARKETING_EMAIL"],
        }

    before_id, during_id = new_event_id(), new_event_id()
    with (
        start_gateway(relay_env, tmp_path, delivery_timeout_s=3) as gw,
        httpx.Client(base_url=gw.url, timeout=60) as http,
    ):
        before = http.post("/v1/consents", headers=auth, json=withdrawal(before_id))
        assert before.status_code == 202, before.text

        private_stack.down()
        started = time.monotonic()
        during = http.post("/v1/consents", headers=auth, json=withdrawal(during_id))
        waited = time.monotonic() - started
        assert during.status_code == 503, during.text
        assert during.headers["Retry-After"] == "5"
        assert "retry" in during.json()["detail"]
        assert http.get("/readyz").status_code == 503

        private_stack.up()
        # The client retries the same event (same id) until the broker takes it.
        retried = wait_until(
            lambda: (
                r
                if (
                    r := http.post("/v1/consents", headers=auth, json=withdrawal(during_id))
                ).status_code
                == 202
                else None
            ),
            timeout=180,
            interval=1.0,
        )
        assert retried.json()["event_id"] == during_id
        assert http.get("/readyz").status_code == 200
        metrics = http.get("/metrics").text

    assert 'consent_relay_gateway_requests_total{route="/v1/consents",status="503"}' in metrics
    received = read_back(settings, settings.topics.consent, 2)
    assert [r.record.event_id for r in received][:2] == [before_id, during_id]
    print(f"503 answered after {waited:.1f} s with a 3 s delivery bound")
