"""Authenticated, authorised clients: on a private ``deploy/local.py up --sasl`` stack
(SASL/SCRAM-SHA-512, the StandardAuthorizer and deploy/acls.py's grants for a topic
prefix), each role's principal is refused what its process never does, with Kafka's own
error, and can do what it needs. Clients are built from KafkaSettings exactly as the
relay's processes build them (idempotent acks=all producers, read_committed consumers),
with the role's credentials from ``local.py credentials``.

The stack is this module's own (free ports, owned by the test process), never the shared
one: the shared broker has no SASL listener.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from confluent_kafka import (
    Consumer,
    KafkaError,
    KafkaException,
    Producer,
)
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

from schemas.admin import ensure_topics
from schemas.kafka import KafkaSettings
from schemas.taxonomy import SinkFamily
from schemas.topics import Topics
from tests.support.processes import load_local_stack

pytestmark = pytest.mark.integration

local = load_local_stack()

PREFIX = "acl."
PARTNER = "acme"
TOPICS = Topics(PREFIX)
STREAM_GROUP = f"{PREFIX}consent-relay-streams"
SINK_GROUP = "consent-relay.sink"
WAIT_S = 30.0
QUIET = {"log_level": 0}
"""The denials are the point here: librdkafka need not log each of them to stderr."""

CONSENT = TOPICS.consent
MARKETING = TOPICS.instructions(SinkFamily.MARKETING)
ANALYTICS = TOPICS.instructions(SinkFamily.ANALYTICS)
ACME = TOPICS.instructions(SinkFamily.PARTNER_SHARING, PARTNER)

TOPIC_DENIED = "TOPIC_AUTHORIZATION_FAILED"
GROUP_DENIED = "GROUP_AUTHORIZATION_FAILED"


@dataclass(frozen=True)
class Stack:
    state: Path
    bootstrap: str
    registry_url: str

    def settings(self, role: str) -> KafkaSettings:
        """The role's settings, from the environment a process of that role would get."""
        return KafkaSettings.from_env(
            {
                "KAFKA_BOOTSTRAP": self.bootstrap,
                "SCHEMA_REGISTRY_URL": self.registry_url,
                "CONSENT_RELAY_TOPIC_PREFIX": PREFIX,
                **local.credentials_env(self.state, role),
            }
        )


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    state = tmp_path_factory.mktemp("sasl-stack")
    kafka_port, controller_port, registry_port = local.pick_free_ports(3)
    endpoints = local.start(
        state,
        kafka_port,
        controller_port,
        registry_port,
        sasl=True,
        topic_prefix=PREFIX,
        owned=True,
        log=print,
    )
    try:
        stack = Stack(state, endpoints.bootstrap, endpoints.registry_url)
        operator = stack.settings("operator")
        ensure_topics(operator, TOPICS.all([(SinkFamily.PARTNER_SHARING, PARTNER)]))
        # One record in every topic, so an allowed read has something to read.
        producer = Producer(operator.producer_config(**QUIET))
        for spec in TOPICS.all([(SinkFamily.PARTNER_SHARING, PARTNER)]):
            producer.produce(spec.name, key=b"k", value=b"seeded by the operator")
        assert producer.flush(WAIT_S) == 0
        yield stack
    finally:
        local.stop(state, log=print)


def produce(settings: KafkaSettings, topic: str) -> str | None:
    """None if ``topic`` took a record from this principal, else the error's name."""
    errors: list[KafkaError | None] = []
    producer = Producer(settings.producer_config(**QUIET))
    producer.produce(topic, key=b"k", value=b"v", on_delivery=lambda e, _m: errors.append(e))
    left = producer.flush(WAIT_S)
    assert left == 0, f"no delivery report for {topic} within {WAIT_S} s"
    return None if errors[0] is None else errors[0].name()


OWN_GROUP = {
    "streams": STREAM_GROUP,
    "marketing": f"{SINK_GROUP}.marketing",
    "analytics": f"{SINK_GROUP}.analytics",
    "partner_sharing": f"{SINK_GROUP}.partner_sharing.{PARTNER}",
    "gate": f"{STREAM_GROUP}-gate",
    "operator": f"{PREFIX}operator",
}
"""A group each role may use (the producers have none: they never consume), so that
a read refused is refused for the topic, not for the group."""


def read(settings: KafkaSettings, topic: str) -> str | None:
    """None if this principal got a record of ``topic`` through its own consumer group,
    else the error's name."""
    role = settings.auth.username or ""
    return join(settings, OWN_GROUP.get(role, f"{PREFIX}{role}"), topic)


def join(settings: KafkaSettings, group: str, topic: str) -> str | None:
    """None if this principal joined ``group`` and got a record of ``topic`` through it,
    else the error's name."""
    consumer = Consumer(settings.consumer_config(group, **QUIET))
    try:
        consumer.subscribe([topic])
        return _first(consumer, topic)
    finally:
        consumer.close()


def _first(consumer: Consumer, topic: str) -> str | None:
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        message = consumer.poll(0.5)
        if message is None:
            continue
        error = message.error()
        if error is None:
            return None
        if error.code() != KafkaError._PARTITION_EOF:
            return str(error.name())
    raise AssertionError(f"neither a record of {topic} nor an error within {WAIT_S} s")


def create(settings: KafkaSettings, topic: str) -> str | None:
    """None if this principal created ``topic``, else the error's name."""
    admin = AdminClient(settings.admin_config())
    future = admin.create_topics([NewTopic(topic, 1, 1)])[topic]
    try:
        future.result(WAIT_S)
    except KafkaException as exc:
        return str(exc.args[0].name())
    return None


def _new_topic() -> str:
    return f"{PREFIX}consent.unplanned.{uuid.uuid4().hex[:8]}"


FORBIDDEN = [
    # role, what it tries, the denial Kafka answers
    # The producers have no group: a consumer of theirs is refused its group first.
    ("producers", "read consent events", lambda s: read(s, CONSENT), GROUP_DENIED),
    ("producers", "write marketing instructions", lambda s: produce(s, MARKETING), TOPIC_DENIED),
    ("producers", "write receipts", lambda s: produce(s, TOPICS.receipts), TOPIC_DENIED),
    ("producers", "create a topic", lambda s: create(s, _new_topic()), TOPIC_DENIED),
    ("streams", "write allowed data", lambda s: produce(s, TOPICS.data_allowed), TOPIC_DENIED),
    ("streams", "read data events", lambda s: read(s, TOPICS.data_events), TOPIC_DENIED),
    ("streams", "read marketing instructions", lambda s: read(s, MARKETING), TOPIC_DENIED),
    (
        "streams",
        "join the marketing sink's group",
        lambda s: join(s, f"{SINK_GROUP}.marketing", CONSENT),
        GROUP_DENIED,
    ),
    ("marketing", "write consent events", lambda s: produce(s, CONSENT), TOPIC_DENIED),
    ("marketing", "read a partner's instructions", lambda s: read(s, ACME), TOPIC_DENIED),
    ("marketing", "read analytics instructions", lambda s: read(s, ANALYTICS), TOPIC_DENIED),
    ("marketing", "write marketing instructions", lambda s: produce(s, MARKETING), TOPIC_DENIED),
    ("marketing", "read consent events", lambda s: read(s, CONSENT), TOPIC_DENIED),
    (
        "marketing",
        "join the analytics sink's group",
        lambda s: join(s, f"{SINK_GROUP}.analytics", MARKETING),
        GROUP_DENIED,
    ),
    ("marketing", "create a topic", lambda s: create(s, _new_topic()), TOPIC_DENIED),
    ("analytics", "write consent events", lambda s: produce(s, CONSENT), TOPIC_DENIED),
    ("analytics", "read marketing instructions", lambda s: read(s, MARKETING), TOPIC_DENIED),
    ("analytics", "read a partner's instructions", lambda s: read(s, ACME), TOPIC_DENIED),
    (
        "analytics",
        "join the marketing sink's group",
        lambda s: join(s, f"{SINK_GROUP}.marketing", ANALYTICS),
        GROUP_DENIED,
    ),
    ("partner_sharing", "write consent events", lambda s: produce(s, CONSENT), TOPIC_DENIED),
    ("partner_sharing", "read marketing instructions", lambda s: read(s, MARKETING), TOPIC_DENIED),
    ("partner_sharing", "write a partner's instructions", lambda s: produce(s, ACME), TOPIC_DENIED),
    (
        "partner_sharing",
        "join the marketing sink's group",
        lambda s: join(s, f"{SINK_GROUP}.marketing", ACME),
        GROUP_DENIED,
    ),
    ("gate", "read consent events", lambda s: read(s, CONSENT), TOPIC_DENIED),
    ("gate", "write consent events", lambda s: produce(s, CONSENT), TOPIC_DENIED),
    ("gate", "write marketing instructions", lambda s: produce(s, MARKETING), TOPIC_DENIED),
    ("gate", "read receipts", lambda s: read(s, TOPICS.receipts), TOPIC_DENIED),
    (
        "gate",
        "join the stream workers' group",
        lambda s: join(s, STREAM_GROUP, TOPICS.data_events),
        GROUP_DENIED,
    ),
]

ALLOWED = [
    ("producers", "write consent events", lambda s: produce(s, CONSENT)),
    ("streams", "read consent events in its group", lambda s: join(s, STREAM_GROUP, CONSENT)),
    ("streams", "write marketing instructions", lambda s: produce(s, MARKETING)),
    ("streams", "write a partner's instructions", lambda s: produce(s, ACME)),
    ("streams", "create its own changelog", lambda s: create(s, f"{STREAM_GROUP}-x-changelog")),
    (
        "marketing",
        "read its instructions in its group",
        lambda s: join(s, f"{SINK_GROUP}.marketing", MARKETING),
    ),
    (
        "marketing",
        "seed from the state topic",
        lambda s: join(s, f"{SINK_GROUP}.marketing.bootstrap", TOPICS.state),
    ),
    ("marketing", "write receipts", lambda s: produce(s, TOPICS.receipts)),
    ("marketing", "write dead letters", lambda s: produce(s, TOPICS.dead_letters)),
    (
        "analytics",
        "read its instructions in its group",
        lambda s: join(s, f"{SINK_GROUP}.analytics", ANALYTICS),
    ),
    ("analytics", "write receipts", lambda s: produce(s, TOPICS.receipts)),
    (
        "partner_sharing",
        "read a partner's instructions in its group",
        lambda s: join(s, f"{SINK_GROUP}.partner_sharing.{PARTNER}", ACME),
    ),
    ("partner_sharing", "write receipts", lambda s: produce(s, TOPICS.receipts)),
    (
        "partner_sharing",
        "create a new partner's topic",
        lambda s: create(s, TOPICS.instructions(SinkFamily.PARTNER_SHARING, "newcomer")),
    ),
    (
        "gate",
        "read data events in its group",
        lambda s: join(s, f"{STREAM_GROUP}-gate", TOPICS.data_events),
    ),
    ("gate", "write allowed data", lambda s: produce(s, TOPICS.data_allowed)),
    ("operator", "create a topic", lambda s: create(s, _new_topic())),
    ("operator", "read a partner's instructions", lambda s: read(s, ACME)),
]


@pytest.mark.parametrize(
    ("role", "what", "attempt", "denial"),
    FORBIDDEN,
    ids=[f"{role}: {what}" for role, what, *_ in FORBIDDEN],
)
def test_a_role_is_refused_what_its_process_never_does(
    stack: Stack, role: str, what: str, attempt: object, denial: str
) -> None:
    assert callable(attempt)
    answer = attempt(stack.settings(role))
    print(f"{role}: {what}: {answer}")
    assert answer == denial


@pytest.mark.parametrize(
    ("role", "what", "attempt"),
    ALLOWED,
    ids=[f"{role}: {what}" for role, what, _ in ALLOWED],
)
def test_a_role_can_do_what_its_process_needs(
    stack: Stack, role: str, what: str, attempt: object
) -> None:
    assert callable(attempt)
    assert attempt(stack.settings(role)) is None, f"{role} could not {what}"


def test_a_wrong_password_is_refused(stack: Stack) -> None:
    settings = stack.settings("marketing")
    config = {**settings.admin_config(), "sasl.password": "not-the-password", **QUIET}
    with pytest.raises(KafkaException):
        AdminClient(config).list_topics(timeout=5)
