"""Shared fixtures: the real Kafka broker and schema registry, and per-test names.

``kafka`` (session scope) yields a :class:`KafkaStack` with ``bootstrap`` ("host:port")
and ``registry_url`` (the Confluent-compatible base URL, ending in ``/apis/ccompat/v7``).

* With ``KAFKA_BOOTSTRAP`` and ``SCHEMA_REGISTRY_URL`` both set, those are used as they are
  (``make stack`` prints them); the fixture checks that both answer and fails otherwise.
* Otherwise it starts a private broker + registry with ``deploy/local.py`` on free ports
  under a pytest temp directory, once per session, and stops them at the end; they also stop
  when pytest dies without a teardown (killed mid-run).  Logs stay in that directory (the
  path is printed in the terminal summary).

Nothing here ever skips: an unreachable or unstartable stack is a test failure.

Tests under ``tests/integration/`` are marked ``integration`` automatically.
"""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.processes import load_local_stack, start_private_stack

TESTS_DIR = Path(__file__).resolve().parent
INTEGRATION_DIR = TESTS_DIR / "integration"

log = logging.getLogger("consent_relay.tests.stack")


@dataclass(frozen=True)
class KafkaStack:
    """Where the broker and the schema registry answer."""

    bootstrap: str
    registry_url: str


_summary: list[str] = []


@pytest.fixture(scope="session")
def kafka(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KafkaStack]:
    local = load_local_stack()
    bootstrap = os.environ.get("KAFKA_BOOTSTRAP", "").strip()
    registry_url = os.environ.get("SCHEMA_REGISTRY_URL", "").strip().rstrip("/")
    if bootstrap or registry_url:
        if not (bootstrap and registry_url):
            pytest.fail(
                "set both KAFKA_BOOTSTRAP and SCHEMA_REGISTRY_URL, or neither (then the tests "
                f"start their own stack); got KAFKA_BOOTSTRAP={bootstrap!r} "
                f"SCHEMA_REGISTRY_URL={registry_url!r}",
                pytrace=False,
            )
        problem = ""
        try:
            local.wait_for_kafka(bootstrap, timeout=30)
            local.wait_for_registry(registry_url, timeout=30)
        except local.StackError as exc:
            problem = str(exc)
        if problem:
            pytest.fail(
                f"KAFKA_BOOTSTRAP={bootstrap} / SCHEMA_REGISTRY_URL={registry_url} are set but "
                f"do not answer: {problem}\nStart them with `make stack`, or unset both "
                "variables so that the tests start a private stack.",
                pytrace=False,
            )
        _summary.append(f"Kafka {bootstrap}, registry {registry_url} (from the environment)")
        yield KafkaStack(bootstrap=bootstrap, registry_url=registry_url)
        return

    state_dir = tmp_path_factory.mktemp("kafka-stack")
    endpoints = None
    problem = ""
    try:
        endpoints = start_private_stack(state_dir, log.info)
    except local.StackError as exc:
        problem = str(exc)
    if endpoints is None:
        pytest.fail(
            f"could not start the local Kafka broker + schema registry "
            f"(deploy/local.py, state dir {state_dir}):\n{problem}",
            pytrace=False,
        )
    _summary.append(
        f"Kafka {endpoints.bootstrap} ready in {endpoints.kafka_ready_s:.1f} s, registry "
        f"{endpoints.registry_url} ready in {endpoints.registry_ready_s:.1f} s; "
        f"logs in {state_dir}"
    )
    try:
        yield KafkaStack(bootstrap=endpoints.bootstrap, registry_url=endpoints.registry_url)
    finally:
        local.stop(state_dir, log=log.info)


@pytest.fixture
def topic_prefix() -> str:
    """A fresh prefix such as ``t-1a2b3c4d.`` so each test's topics and subjects are its own."""
    return f"t-{uuid.uuid4().hex[:8]}."


@pytest.fixture
def unique_group() -> str:
    """A fresh consumer group id such as ``g-1a2b3c4d``."""
    return f"g-{uuid.uuid4().hex[:8]}"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if INTEGRATION_DIR in Path(item.path).resolve().parents:
            item.add_marker(pytest.mark.integration)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    for line in _summary:
        terminalreporter.write_line(f"local stack: {line}")
