"""Fixtures for the contract's tests against the real broker and registry: a registry
client, throw-away registry subjects (deleted afterwards, so the shared registry keeps only
the real contract), and a helper that sends bytes through a topic and reads them back."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from confluent_kafka import Consumer, KafkaError, Message, Producer
from confluent_kafka.schema_registry import SchemaRegistryClient

from schemas.runtime.kafka import KafkaSettings

Roundtrip = Callable[[list[tuple[str, bytes, bytes]]], list[Message]]


@pytest.fixture
def registry(kafka: Any) -> Iterator[SchemaRegistryClient]:
    """A client of the session's real schema registry (closed after the test)."""
    with KafkaSettings(
        bootstrap=kafka.bootstrap, registry_url=kafka.registry_url
    ).registry_client() as client:
        yield client


@pytest.fixture
def scratch_subject(registry: SchemaRegistryClient) -> Iterator[Callable[[str], str]]:
    """Makes unique subject names for this test and deletes them (hard) afterwards."""
    made: list[str] = []

    def make(label: str) -> str:
        subject = f"test-{uuid.uuid4().hex[:12]}.{label}"
        made.append(subject)
        return subject

    yield make
    existing = set(registry.get_subjects())
    for subject in made:
        if subject in existing:
            registry.delete_subject(subject)
            registry.delete_subject(subject, permanent=True)


@pytest.fixture
def roundtrip(relay_settings: KafkaSettings, unique_group: str) -> Roundtrip:
    """Produce (topic, key, value) messages for real, then consume them all back in order
    of production per topic; fails if they do not all arrive within a generous bound."""

    def run(messages: list[tuple[str, bytes, bytes]]) -> list[Message]:
        errors: list[KafkaError] = []
        producer = Producer(relay_settings.producer_config())
        for topic, key, value in messages:
            producer.produce(
                topic,
                key=key,
                value=value,
                on_delivery=lambda err, _msg: errors.append(err) if err else None,
            )
        assert producer.flush(30) == 0, "messages still queued after 30 s"
        assert not errors, errors
        consumer = Consumer(relay_settings.consumer_config(unique_group))
        received: list[Message] = []
        try:
            consumer.subscribe(sorted({topic for topic, _, _ in messages}))
            deadline = time.monotonic() + 60
            while len(received) < len(messages) and time.monotonic() < deadline:
                msg = consumer.poll(0.5)
                if msg is None:
                    continue
                assert msg.error() is None, msg.error()
                received.append(msg)
        finally:
            consumer.close()
        assert len(received) == len(messages), f"{len(received)} of {len(messages)} arrived"
        return received

    return run
