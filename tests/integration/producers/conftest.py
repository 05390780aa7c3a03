"""Helpers for the producer tests against the real broker and registry.

``read_back`` consumes a topic from the beginning until it has ``count`` messages and
decodes them; ``start_gateway`` runs ``python -m producers.gateway`` as a real process
on a free port; ``run_cli`` runs ``python -m producers.cli`` with a given environment.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from confluent_kafka import Consumer, KafkaError

from producers.gateway.tokens import token_hash
from schemas.codec import EventDecoder
from schemas.runtime.kafka import KafkaSettings
from tests.support.processes import free_port

REPO = Path(__file__).resolve().parents[3]
UNSUBSCRIBE_KEY = "test-unsubscribe-key-0123456789abcdef"
TOKENS = {
    "crm-token": ("crm", ["withdraw", "refuse_marketing", "erasure"]),
    "web-token": ("web", ["*"]),
}


@dataclass(frozen=True)
class Received:
    """A message read back: coordinates, key and the decoded record."""

    partition: int
    offset: int
    key: bytes | None
    value: bytes
    record: Any


def wait_until(predicate: Callable[[], Any], timeout: float = 60.0, interval: float = 0.2) -> Any:
    """Poll ``predicate`` until truthy; fail after a generous ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"condition not met within {timeout} s")
        time.sleep(interval)


def read_back(
    settings: KafkaSettings, topic: str, count: int, timeout: float = 60.0
) -> list[Received]:
    """The first ``count`` messages of ``topic`` (all partitions), in (partition, offset) order."""
    registry = settings.registry_client()
    decoder = EventDecoder(registry)
    consumer = Consumer(settings.consumer_config(f"readback-{uuid.uuid4().hex[:8]}"))
    received: list[Received] = []
    try:
        consumer.subscribe([topic])
        deadline = time.monotonic() + timeout
        while len(received) < count:
            if time.monotonic() > deadline:
                pytest.fail(f"only {len(received)} of {count} messages on {topic} in {timeout} s")
            message = consumer.poll(0.5)
            if message is None:
                continue
            error = message.error()
            if error is not None:
                assert error.code() == KafkaError._PARTITION_EOF, error
                continue
            value = message.value()
            assert value is not None
            received.append(
                Received(
                    int(message.partition() or 0),
                    int(message.offset() or 0),
                    message.key(),
                    value,
                    decoder.decode(value),
                )
            )
    finally:
        consumer.close()
        registry.close()
    return sorted(received, key=lambda r: (r.partition, r.offset))


def clean_env(extra: dict[str, str]) -> dict[str, str]:
    """This process's environment without relay settings, plus ``extra``."""
    prefixes = ("GATEWAY_", "KAFKA_", "SCHEMA_REGISTRY_", "CONSENT_RELAY_", "STREAM_WORKER_URL")
    env = {k: v for k, v in os.environ.items() if not k.startswith(prefixes)}
    env["PYTHONPATH"] = str(REPO)
    env.update(extra)
    return env


def write_tokens(path: Path) -> Path:
    """A tokens file: crm's token stored hashed, web's in clear."""
    path.write_text(
        json.dumps(
            {
                "tokens": {
                    token_hash("crm-token"): {"service": "crm", "actions": TOKENS["crm-token"][1]},
                    "web-token": {"service": "web", "actions": TOKENS["web-token"][1]},
                }
            }
        )
    )
    return path


@dataclass
class Gateway:
    """A running gateway process."""

    url: str
    process: subprocess.Popen[bytes]
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


@contextmanager
def start_gateway(
    relay_env: dict[str, str],
    tmp_path: Path,
    *,
    delivery_timeout_s: float = 10.0,
    command: list[str] | None = None,
) -> Iterator[Gateway]:
    """Run the gateway (or ``command``) until the block ends; waits for /healthz."""
    port = free_port()
    env = clean_env(
        {
            **relay_env,
            "GATEWAY_PORT": str(port),
            "GATEWAY_TOKENS_FILE": str(write_tokens(tmp_path / "tokens.json")),
            "GATEWAY_UNSUBSCRIBE_KEY": UNSUBSCRIBE_KEY,
            "GATEWAY_DELIVERY_TIMEOUT_S": str(delivery_timeout_s),
            "GATEWAY_MAX_BODY_BYTES": "8192",
        }
    )
    log_path = tmp_path / f"gateway-{port}.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            command or [sys.executable, "-m", "producers.gateway"],
            env=env,
            cwd=REPO,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    gateway = Gateway(f"http://127.0.0.1:{port}", process, log_path)
    try:

        def healthy() -> bool:
            if process.poll() is not None:
                pytest.fail(f"gateway exited {process.returncode}:\n{gateway.log()}")
            try:
                return httpx.get(gateway.url + "/healthz", timeout=2).status_code == 200
            except httpx.TransportError:
                return False

        wait_until(healthy, timeout=60)
        yield gateway
    finally:
        process.terminate()
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


def run_cli(
    env: dict[str, str], *args: str, stdin: str | None = None, timeout: float = 120.0
) -> subprocess.CompletedProcess[str]:
    """``python -m producers.cli <args>`` with ``env``; returns the finished process."""
    return subprocess.run(
        [sys.executable, "-m", "producers.cli", *args],
        env=clean_env(env),
        cwd=REPO,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
