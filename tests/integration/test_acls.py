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

import contextlib
import json
import time
import urllib.parse
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import (
    Consumer,
    KafkaError,
    KafkaException,
    Producer,
)
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

from consumers.groups import adopt_legacy_group, default_group, legacy_group
from consumers.partners.legacy import legacy_backlog
from producers.client import ConsentClient
from schemas.codec import EventSerializer
from schemas.errors import ConsentRelayError
from schemas.events import DataEventCaptured, Subject, new_event_id, utc_now
from schemas.registry import register_all
from schemas.runtime.admin import ensure_topics
from schemas.runtime.kafka import KafkaSettings
from schemas.taxonomy import Purpose, SinkFamily, Source, SubjectKind
from schemas.topics import Topics, TopicSpec
from tests.integration.test_recovery import (  # noqa: F401 - fixtures used by name
    ALLOWED_PURPOSE,
    BOUND_S,
    PARTNER_PURPOSE,
    Watch,
    receiver,
)
from tests.integration.test_recovery import PARTNER as PARTNER_DESTINATION
from tests.support.access import API_TOKEN, get, get_json
from tests.support.processes import free_port, load_local_stack, log_tail, relay_process, wait_for

pytestmark = pytest.mark.integration

local = load_local_stack()

PREFIX = "acl."
PARTNER = "acme"
TOPICS = Topics(PREFIX)
STREAM_GROUP = f"{PREFIX}consent-relay-streams"
SINK_GROUP = f"{PREFIX}consent-relay.sink"
LEGACY_SINK_GROUP = "consent-relay.sink"
"""The sinks' groups before they took the prefix (consumers.groups)."""
WAIT_S = 30.0
QUIET = {"log_level": 0}
"""The denials are the point here: librdkafka need not log each of them to stderr."""

CONSENT = TOPICS.consent
MARKETING = TOPICS.instructions(SinkFamily.MARKETING)
ANALYTICS = TOPICS.instructions(SinkFamily.ANALYTICS)
ACME = TOPICS.instructions(SinkFamily.PARTNER_SHARING)
"""The partners' instructions (every partner reads them, each in a group of its own)."""
LEGACY = TOPICS.legacy_instructions(SinkFamily.PARTNER_SHARING, PARTNER)
"""A partner's own topic of releases 1 and 2, which nothing writes any more."""

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
        # A legacy partner topic too, as an upgraded deployment still has it.
        specs = (*TOPICS.all(), TopicSpec(LEGACY, TOPICS.partitions))
        ensure_topics(operator, specs)
        # One record in every topic, so an allowed read has something to read.
        producer = Producer(operator.producer_config(**QUIET))
        for spec in specs:
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


def adopted(settings: KafkaSettings, family: SinkFamily) -> str | None:
    """None if the sink could read its group's offsets under the name it had before the
    prefix (nothing to adopt there) and its own, else what it got."""
    try:
        adopt_legacy_group(
            settings,
            default_group(family, PREFIX),
            legacy_group(family),
            TOPICS.instructions(family),
            timeout=WAIT_S,
        )
    except ConsentRelayError as exc:
        return str(exc)
    return None


def legacy_backlog_of(settings: KafkaSettings, partner: str) -> str | None:
    """None if the partner sink's start-up check reads its group's offsets on the legacy
    topic of ``partner`` (one unread record, seeded by the operator), else what it got."""
    try:
        backlog = legacy_backlog(
            settings, {partner: f"{LEGACY_SINK_GROUP}.partner_sharing.{partner}"}
        )
    except ConsentRelayError as exc:
        return str(exc)
    return None if backlog == {LEGACY: 1} else f"unexpected backlog {backlog}"


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
        "create a legacy partner topic",
        lambda s: create(s, TOPICS.legacy_instructions(SinkFamily.PARTNER_SHARING, "newcomer")),
        TOPIC_DENIED,
    ),
    ("streams", "write a legacy partner topic", lambda s: produce(s, LEGACY), TOPIC_DENIED),
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
    ("gate", "write the state topic", lambda s: produce(s, TOPICS.state), TOPIC_DENIED),
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
    (
        "marketing",
        "read its group's offsets from before the prefix",
        lambda s: adopted(s, SinkFamily.MARKETING),
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
        "see how far its group read a legacy partner topic",
        lambda s: legacy_backlog_of(s, PARTNER),
    ),
    (
        "gate",
        "read data events in its group",
        lambda s: join(s, f"{STREAM_GROUP}-gate", TOPICS.data_events),
    ),
    ("gate", "write allowed data", lambda s: produce(s, TOPICS.data_allowed)),
    ("gate", "read the state topic", lambda s: read(s, TOPICS.state)),
    ("streams", "write the state topic", lambda s: produce(s, TOPICS.state)),
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


E2E_PREFIX = "e2e."


def test_the_relay_runs_end_to_end_with_each_process_as_its_role(
    stack: Stack,
    tmp_path: Path,
    receiver: str,  # noqa: F811 - the fixture imported above
) -> None:
    """A withdrawal travels client -> stream worker -> marketing and partner sinks ->
    receipts, and a data event through the gate, each process authenticated as its own
    role under ACLs granted for another topic prefix; the worker creates the relay's
    topics itself (nothing pre-created here)."""
    local.grant_acls(stack.state, E2E_PREFIX, log=print)

    def env(role: str) -> dict[str, str]:
        return {
            "KAFKA_BOOTSTRAP": stack.bootstrap,
            "SCHEMA_REGISTRY_URL": stack.registry_url,
            "CONSENT_RELAY_TOPIC_PREFIX": E2E_PREFIX,
            **local.credentials_env(stack.state, role),
        }

    operator = KafkaSettings.from_env(env("operator"))
    producers = KafkaSettings.from_env(env("producers"))
    with operator.registry_client() as client:
        register_all(client)
    stream_port, sink_port = free_port(), free_port()
    stream_url, sink_url = f"http://127.0.0.1:{stream_port}", f"http://127.0.0.1:{sink_port}"
    partners_file = tmp_path / "partners.toml"
    partners_file.write_text(
        'pseudonym_key = "acl-test-pseudonym-key-0123456789"\n'
        f"[partners.{PARTNER_DESTINATION}]\n"
        f'url = "{receiver}"\n'
        'secret = "acl-test-webhook-secret-0123456789"\n'
        'known_subjects = "all"\n'
        "timeout_seconds = 2\n"
    )
    processes = {
        "streams": {
            **env("streams"),
            "STREAMS_WEB_PORT": str(stream_port),
            "STREAMS_DATA_DIR": str(tmp_path / "streams"),
            "STREAMS_API_TOKEN": API_TOKEN,
        },
        "consumers.marketing": {
            **env("marketing"),
            "MARKETING_SINK_DATABASE_URL": f"sqlite:///{tmp_path / 'marketing.sqlite'}",
            "MARKETING_SINK_HASH_KEY": "acl-test-hash-key-0123456789",
            "MARKETING_SINK_HTTP_PORT": str(sink_port),
            "MARKETING_SINK_API_TOKEN": API_TOKEN,
        },
        "consumers.partners": {
            **env("partner_sharing"),
            "PARTNER_SINK_CONFIG": str(partners_file),
            "PARTNER_SINK_HTTP_PORT": str(free_port()),
        },
        "streams.gate": {**env("gate"), "GATE_HTTP_PORT": str(free_port())},
    }
    ready = {"streams": f"{stream_url}/metrics", "consumers.marketing": f"{sink_url}/metrics"}
    with contextlib.ExitStack() as running:
        for module, process_env in processes.items():
            running.enter_context(
                relay_process(
                    module, process_env, tmp_path / f"{module}.log", ready_url=ready.get(module)
                )
            )
        with ConsentClient(producers) as client:
            published = client.withdraw(
                "subject-acl",
                [Purpose.MARKETING_EMAIL, PARTNER_PURPOSE],
                source=Source.UNSUBSCRIBE_LINK,
            )
        data_event = _capture(producers)
        wanted = {
            "marketing receipt": Watch.receipt(SinkFamily.MARKETING, published.event_id),
            "partner receipt": Watch.receipt(SinkFamily.PARTNER_SHARING, published.event_id),
            "data let through by the gate": Watch.allowed(data_event),
        }
        with Watch(operator) as watch:
            deadline = time.monotonic() + BOUND_S
            while time.monotonic() < deadline and not all(k in watch.seen for k in wanted.values()):
                watch.read()
        missing = [label for label, key in wanted.items() if key not in watch.seen]
        assert not missing, f"not within {BOUND_S:g} s: {missing}"
        query = urllib.parse.urlencode(
            {"subject": "subject-acl", "channel": "EMAIL", "purpose": "MARKETING_EMAIL"}
        )
        decision = get_json(f"{sink_url}/v1/may-contact?{query}")
        assert decision["allowed"] is False
        record = wait_for(
            "the worker to report the withdrawal fully propagated",
            lambda: _complete(get(f"{stream_url}/propagation/{published.event_id}")),
            bound=60,
        )
        print(f"propagation: honoured {record['honoured']}, pending {record['pending']}")
    passwords = local.sasl_credentials(stack.state).values()
    for module in processes:
        log = tmp_path / f"{module}.log"
        text = log.read_text(errors="replace")
        assert "AUTHORIZATION_FAILED" not in text, f"{module}:\n{log_tail(log)}"
        assert not any(password in text for password in passwords), f"a password in {log}"


def _capture(settings: KafkaSettings) -> str:
    """Publish a data event the gate lets through whatever the subject chose; its id."""
    event = DataEventCaptured(
        event_id=new_event_id(),
        subject=Subject(id="subject-acl-data", kind=SubjectKind.ACCOUNT),
        occurred_at=utc_now(),
        purpose=ALLOWED_PURPOSE,
        recipient=None,
        payload=b"opaque",
    )
    topic = settings.topics.data_events
    with settings.registry_client() as registry:
        value = EventSerializer(registry, DataEventCaptured)(event, topic)
    producer = Producer(settings.producer_config(**QUIET))
    producer.produce(topic, value, key=event.subject.id.encode())
    assert producer.flush(WAIT_S) == 0
    return event.event_id


def _complete(answer: Any) -> Any:
    if answer.status != 200:
        return None
    record = json.loads(answer.body)
    return record if record.get("complete") else None
