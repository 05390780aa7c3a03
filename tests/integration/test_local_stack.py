"""The development stack is real: a Kafka broker and a Confluent-compatible schema registry;
one started for a process (the tests' own) stops when that process dies."""

from __future__ import annotations

import json
import select
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any, Protocol

from confluent_kafka import Consumer, KafkaError, Message, Producer
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
from confluent_kafka.serialization import MessageField, SerializationContext

from tests.support.processes import ROOT, load_local_stack, log_tail

CONSENT_SCHEMA: dict[str, Any] = {
    "type": "record",
    "name": "StackCheck",
    "namespace": "dev.consentrelay.test",
    "fields": [
        {"name": "subject_id", "type": "string"},
        {"name": "granted", "type": "boolean"},
        {"name": "at_ms", "type": {"type": "long", "logicalType": "timestamp-millis"}},
    ],
}


class Stack(Protocol):
    @property
    def bootstrap(self) -> str: ...

    @property
    def registry_url(self) -> str: ...


def _create_topic(bootstrap: str, topic: str, partitions: int = 3) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    futures = admin.create_topics(
        [NewTopic(topic, num_partitions=partitions, replication_factor=1)]
    )
    futures[topic].result(timeout=30)


def _consume_one(bootstrap: str, topic: str, group: str, timeout: float = 30.0) -> Message:
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": group,
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    try:
        consumer.subscribe([topic])
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            message = consumer.poll(0.5)
            if message is None:
                continue
            error = message.error()
            if error is not None:
                assert error.code() == KafkaError._PARTITION_EOF, error
                continue
            return message
        raise AssertionError(f"no message arrived on {topic} within {timeout} s")
    finally:
        consumer.close()


def _produce(producer: Producer, topic: str, key: bytes, value: bytes) -> None:
    delivered: list[Message] = []
    errors: list[KafkaError] = []

    def on_delivery(err: KafkaError | None, message: Message) -> None:
        if err is not None:
            errors.append(err)
        else:
            delivered.append(message)

    producer.produce(
        topic, key=key, value=value, headers=[("origin", b"stack-test")], on_delivery=on_delivery
    )
    assert producer.flush(30) == 0, "producer did not deliver within 30 s"
    assert not errors, errors
    assert len(delivered) == 1


def test_broker_answers_metadata(kafka: Stack) -> None:
    metadata = AdminClient({"bootstrap.servers": kafka.bootstrap}).list_topics(timeout=10)
    assert len(metadata.brokers) == 1
    assert metadata.cluster_id

    host, port = kafka.bootstrap.rsplit(":", 1)
    brokers, cluster_id = load_local_stack().kafka_metadata_raw(host, int(port))
    assert brokers == 1
    assert cluster_id == metadata.cluster_id


def test_topic_produce_idempotent_acks_all_and_consume_back(
    kafka: Stack, topic_prefix: str, unique_group: str
) -> None:
    topic = f"{topic_prefix}roundtrip"
    _create_topic(kafka.bootstrap, topic)
    admin = AdminClient({"bootstrap.servers": kafka.bootstrap})
    # A created topic reaches the broker's metadata cache a moment after CreateTopics returns.
    deadline = time.monotonic() + 30
    while not admin.list_topics(topic, timeout=10).topics[topic].partitions:
        assert time.monotonic() < deadline, f"{topic} has no partitions 30 s after creation"
        time.sleep(0.2)
    assert len(admin.list_topics(topic, timeout=10).topics[topic].partitions) == 3

    producer = Producer(
        {"bootstrap.servers": kafka.bootstrap, "acks": "all", "enable.idempotence": True}
    )
    _produce(producer, topic, b"subject-1", b"consent-granted")

    message = _consume_one(kafka.bootstrap, topic, unique_group)
    assert message.key() == b"subject-1"
    assert message.value() == b"consent-granted"
    assert message.headers() == [("origin", b"stack-test")]


def test_registry_registers_avro_schema_and_returns_it_by_id(
    kafka: Stack, topic_prefix: str
) -> None:
    subject = f"{topic_prefix}consent-value"
    schema = Schema(json.dumps(CONSENT_SCHEMA), "AVRO")
    with SchemaRegistryClient({"url": kafka.registry_url}) as client:
        schema_id = client.register_schema(subject, schema)
        assert isinstance(schema_id, int)
        assert client.register_schema(subject, schema) == schema_id  # idempotent

        fetched = client.get_schema(schema_id)
        assert fetched.schema_type == "AVRO"
        assert json.loads(fetched.schema_str) == CONSENT_SCHEMA

        registered = client.lookup_schema(subject, schema)
        assert registered.schema_id == schema_id
        assert registered.version == 1
        assert subject in client.get_subjects()


def test_avro_serializer_round_trip_through_broker_and_registry(
    kafka: Stack, topic_prefix: str, unique_group: str
) -> None:
    topic = f"{topic_prefix}consent-avro"
    _create_topic(kafka.bootstrap, topic, partitions=1)
    record = {"subject_id": "s-42", "granted": False, "at_ms": 1_700_000_000_000}

    with SchemaRegistryClient({"url": kafka.registry_url}) as client:
        serializer = AvroSerializer(client, json.dumps(CONSENT_SCHEMA))
        deserializer = AvroDeserializer(client)
        context = SerializationContext(topic, MessageField.VALUE)
        payload = serializer(record, context)
        assert payload is not None
        assert payload[0] == 0  # Confluent wire format: magic byte, then the schema id

        producer = Producer(
            {"bootstrap.servers": kafka.bootstrap, "acks": "all", "enable.idempotence": True}
        )
        _produce(producer, topic, b"s-42", payload)
        message = _consume_one(kafka.bootstrap, topic, unique_group)
        value = message.value()
        assert isinstance(value, bytes)
        decoded = deserializer(value, context)

    assert decoded is not None
    assert decoded["subject_id"] == "s-42"
    assert decoded["granted"] is False
    assert decoded["at_ms"].timestamp() == 1_700_000_000  # timestamp-millis -> datetime


# The session fixture's way of starting a stack, in a process of its own that prints the
# broker's and registry's pids once both answer and then waits to be killed.
_STACK_OWNER = textwrap.dedent(
    """
    import logging, sys, time
    from pathlib import Path
    from tests.support.processes import start_private_stack
    logging.basicConfig(level=logging.INFO)
    ends = start_private_stack(Path(sys.argv[1]), logging.getLogger("owner").info)
    print(ends.kafka_pid, ends.registry_pid, flush=True)
    time.sleep(3600)
    """
)


def _alive(pid: int) -> bool:
    """A process that exists and is not a zombie (an orphan may wait to be reaped)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] not in {"Z", "X"}


def _read_line(child: subprocess.Popen[bytes], log: Path, bound: float) -> str:
    assert child.stdout is not None
    deadline = time.monotonic() + bound
    while time.monotonic() < deadline:
        if select.select([child.stdout], [], [], 1.0)[0]:
            return child.stdout.readline().decode()
        assert child.poll() is None, f"stack owner exited with {child.returncode}:\n{log_tail(log)}"
    raise AssertionError(f"no stack within {bound:g} s:\n{log_tail(log)}")


def test_a_stack_started_for_a_process_stops_when_it_is_killed(tmp_path: Path) -> None:
    state_dir = tmp_path / "stack"
    log = tmp_path / "owner.log"
    with log.open("wb") as err:
        owner = subprocess.Popen(
            [sys.executable, "-c", _STACK_OWNER, str(state_dir)],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=err,
        )
    pids: list[int] = []
    try:
        pids = [int(pid) for pid in _read_line(owner, log, 300).split()]
        assert len(pids) == 2
        assert all(_alive(pid) for pid in pids)

        owner.send_signal(signal.SIGKILL)  # no teardown, no atexit: only the kernel knows
        owner.wait(10)

        deadline = time.monotonic() + 30
        while any(_alive(pid) for pid in pids) and time.monotonic() < deadline:
            time.sleep(0.2)
        survivors = [pid for pid in pids if _alive(pid)]
        assert not survivors, f"still running 30 s after their owner was killed: {survivors}"
    finally:
        if owner.poll() is None:
            owner.kill()
            owner.wait(10)
        assert owner.stdout is not None
        owner.stdout.close()
        load_local_stack().stop(state_dir, timeout=5, log=lambda _: None)  # survivors, if any
