"""The ACLs of a ``--sasl`` stack: each role's principal may do only what its process needs.

:func:`grants` derives them from the topic names (:class:`schemas.topics.Topics`, so a
topic prefix works) and the relay's default consumer groups and Faust app id, read from
the processes' own settings classes; :func:`apply` creates them as the operator (the
super user), :func:`bindings` says what that sends. ``deploy/local.py up --sasl`` calls
:func:`apply` once the brokers answer.

What every relay role gets besides its own reads and writes: DESCRIBE on the relay's
fixed topics, because :func:`schemas.runtime.admin.ensure_topics` lists them at start and would
try (and fail) to create any topic the metadata hides from it. Topic names are not
personal data; reading any of them still needs READ. Only the stream worker may CREATE
topics: it is their one owner and creates any that is missing at start (the operator may
create them first with ``python -m producers topics create``); the gate and the partner
sink wait for theirs.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Final

from confluent_kafka.admin import (  # type: ignore[attr-defined]
    AclBinding,
    AclOperation,
    AclPermissionType,
    AdminClient,
    ResourcePatternType,
    ResourceType,
)

from consumers.groups import default_group, legacy_group
from schemas.runtime.settings import Settings
from schemas.taxonomy import SinkFamily
from schemas.topics import Topics
from streams.config import StreamSettings
from streams.gate.settings import GateSettings

ANY_HOST: Final = "*"


class Resource(StrEnum):
    """The kinds of Kafka resource a grant is about."""

    TOPIC = "TOPIC"
    GROUP = "GROUP"


class Op(StrEnum):
    """The operations granted (Kafka's names)."""

    READ = "READ"
    WRITE = "WRITE"
    DESCRIBE = "DESCRIBE"
    CREATE = "CREATE"
    ALL = "ALL"


@dataclass(frozen=True, slots=True)
class Grant:
    """``principal`` may do ``operation`` on the ``resource`` named ``name`` (or, if
    ``prefixed``, on every one whose name starts with it)."""

    principal: str
    resource: Resource
    name: str
    operation: Op
    prefixed: bool = False


def _default(cls: type[Settings], name: str) -> str:
    """A settings class's default for ``name`` (the relay's group ids and app id)."""
    return str(cls.model_fields[name].default)


STREAM_APP_ID: Final = _default(StreamSettings, "app_id")
STREAM_APP_ID_SEEN_BY_GATE: Final = _default(GateSettings, "stream_app_id")


def grants(topics: Topics, *, stream_app_id: str = STREAM_APP_ID) -> tuple[Grant, ...]:
    """Every role's grants on the relay whose topics are ``topics``; the operator, a
    super user, needs none."""
    prefix = topics.prefix
    # The worker's Faust app id is its consumer group and the start of its own topics
    # (the tables' changelogs).
    app = f"{prefix}{stream_app_id}"
    result: list[Grant] = []

    def topic(role: str, name: str, *ops: Op, prefixed: bool = False) -> None:
        result.extend(Grant(role, Resource.TOPIC, name, op, prefixed) for op in ops)

    def group(role: str, name: str, *ops: Op, prefixed: bool = False) -> None:
        result.extend(Grant(role, Resource.GROUP, name, op, prefixed) for op in ops)

    fixed = [spec.name for spec in topics.all()]
    # The partners' legacy topics, one per partner (releases 1 and 2).
    legacy_partner_topics = topics.instruction_prefix(SinkFamily.PARTNER_SHARING)
    for role in ("producers", "streams", "gate", *(_role(f) for f in SinkFamily)):
        for name in fixed:
            topic(role, name, Op.DESCRIBE)

    topic("producers", topics.consent, Op.WRITE)
    # Client services also hand personal data to the consent gate.
    topic("producers", topics.data_events, Op.WRITE)

    streams = "streams"
    for name in fixed:
        topic(streams, name, Op.CREATE)
    topic(streams, topics.consent, Op.READ)
    topic(streams, topics.receipts, Op.READ)
    for family in SinkFamily:
        topic(streams, topics.instructions(family), Op.WRITE)
    for name in (topics.state, topics.propagated, topics.dead_letters, topics.intake_progress):
        topic(streams, name, Op.WRITE)
    topic(streams, topics.intake_progress, Op.READ)
    # Its own topics: the pending and done tables' changelogs.
    topic(streams, app, Op.ALL, prefixed=True)
    group(streams, app, Op.ALL)
    # The state table's changelog is the state topic: recovery and standbys read it
    # (and streams.proof.query's short-lived readers).
    topic(streams, topics.state, Op.READ)
    group(streams, "streams-query-", Op.READ, prefixed=True)

    gate = "gate"
    gate_app = f"{prefix}{STREAM_APP_ID_SEEN_BY_GATE}"
    topic(gate, topics.data_events, Op.READ, Op.WRITE)
    topic(gate, topics.data_allowed, Op.WRITE)
    topic(gate, topics.dead_letters, Op.WRITE)
    topic(gate, topics.intake_progress, Op.READ)
    # Each subject's state with its decision history (the workers' state table's changelog).
    topic(gate, topics.state, Op.READ)
    # How far the workers applied consent: their group's committed offsets.
    group(gate, gate_app, Op.DESCRIBE)
    group(gate, f"{gate_app}-gate", Op.READ, prefixed=True)

    for family in SinkFamily:
        role = _role(family)
        topic(role, topics.instructions(family), Op.READ)
        if family is SinkFamily.PARTNER_SHARING:
            # The partner sink checks that its legacy topics hold nothing unread
            # (consumers.partners.legacy).
            topic(role, legacy_partner_topics, Op.DESCRIBE, prefixed=True)
        topic(role, topics.receipts, Op.WRITE)
        topic(role, topics.dead_letters, Op.WRITE)
        topic(role, topics.state, Op.READ)
        # The sink's group and its seeding group (".bootstrap").
        group(role, default_group(family, prefix), Op.READ, prefixed=True)
        if prefix:
            # Its group's name before the prefix, and a partner's group (".<name>") of
            # earlier versions: their offsets are read once, on upgrade (consumers.groups).
            group(role, legacy_group(family), Op.DESCRIBE, prefixed=True)
    return tuple(result)


def _role(family: SinkFamily) -> str:
    """A sink family's role (and principal) name: ``marketing``, ``partner_sharing``."""
    return family.value.lower()


def bindings(granted: Iterable[Grant]) -> list[Any]:
    """confluent-kafka's ACL bindings of ``granted`` (ALLOW, from any host)."""
    return [
        AclBinding(
            ResourceType[g.resource.value],
            g.name,
            ResourcePatternType.PREFIXED if g.prefixed else ResourcePatternType.LITERAL,
            f"User:{g.principal}",
            ANY_HOST,
            AclOperation[g.operation.value],
            AclPermissionType.ALLOW,
        )
        for g in granted
    ]


def apply(admin_config: Mapping[str, Any], granted: Iterable[Grant], timeout: float = 30.0) -> int:
    """Create ``granted`` through an admin client of ``admin_config`` (the operator's);
    the number of bindings. Creating an ACL that exists is a no-op, so ``up`` repeats it."""
    admin = AdminClient(dict(admin_config))
    wanted = bindings(granted)
    for future in admin.create_acls(wanted, request_timeout=timeout).values():
        future.result()
    return len(wanted)
