"""deploy/acls.py's grants without a broker: each role gets what its process needs,
under any topic prefix, and nothing that would let it act as another role."""

from __future__ import annotations

from typing import Any

from schemas.taxonomy import SinkFamily
from schemas.topics import Topics
from tests.support.processes import load_local_stack

acls = load_local_stack().load_acls()
Grant, Op, Resource = acls.Grant, acls.Op, acls.Resource

TOPICS = Topics("tenant-a.")


def _of(role: str) -> set[tuple[Any, str, Any, bool]]:
    return {
        (g.resource, g.name, g.operation, g.prefixed)
        for g in acls.grants(TOPICS)
        if g.principal == role
    }


def _topic_ops(role: str, name: str) -> set[Any]:
    return {op for resource, n, op, _ in _of(role) if resource is Resource.TOPIC and n == name}


def test_every_relay_role_has_grants_and_the_operator_none() -> None:
    roles = {g.principal for g in acls.grants(TOPICS)}
    assert roles == {"producers", "streams", "marketing", "analytics", "partner_sharing", "gate"}


def test_every_topic_name_carries_the_prefix() -> None:
    for grant in acls.grants(TOPICS):
        if grant.resource is Resource.TOPIC:
            assert grant.name.startswith("tenant-a."), grant


def test_only_the_producers_and_nobody_else_write_consent_events() -> None:
    writers = {
        g.principal
        for g in acls.grants(TOPICS)
        if g.name == TOPICS.consent and g.operation in {Op.WRITE, Op.ALL}
    }
    assert writers == {"producers"}


def test_the_marketing_sink_reads_its_instructions_and_writes_receipts_and_dead_letters() -> None:
    marketing = TOPICS.instructions(SinkFamily.MARKETING)
    assert _topic_ops("marketing", marketing) == {Op.DESCRIBE, Op.READ}
    assert Op.WRITE in _topic_ops("marketing", TOPICS.receipts)
    assert Op.WRITE in _topic_ops("marketing", TOPICS.dead_letters)
    assert Op.READ in _topic_ops("marketing", TOPICS.state)
    assert _topic_ops("marketing", TOPICS.consent) == {Op.DESCRIBE}
    partner_prefix = TOPICS.instruction_prefix(SinkFamily.PARTNER_SHARING)
    assert not any(name.startswith(partner_prefix) for _, name, _, _ in _of("marketing"))
    own = (Resource.GROUP, "tenant-a.consent-relay.sink.marketing", Op.READ, True)
    assert own in _of("marketing")
    # Its group's name before the prefix: read once on upgrade, never joined.
    legacy = (Resource.GROUP, "consent-relay.sink.marketing", Op.DESCRIBE, True)
    assert legacy in _of("marketing")
    assert not any(
        g[1] == "consent-relay.sink.marketing" and g[2] is not Op.DESCRIBE for g in _of("marketing")
    )


def test_the_partner_sink_reads_its_familys_topic_and_sees_the_legacy_ones() -> None:
    family = TOPICS.instructions(SinkFamily.PARTNER_SHARING)
    # Reads, and never creates: the stream worker is the topics' one owner.
    assert _topic_ops("partner_sharing", family) == {Op.DESCRIBE, Op.READ}
    legacy = TOPICS.instruction_prefix(SinkFamily.PARTNER_SHARING)
    prefixed = {(name, op) for _, name, op, is_prefix in _of("partner_sharing") if is_prefix}
    assert {op for name, op in prefixed if name == legacy} == {Op.DESCRIBE}


def test_only_the_stream_worker_creates_topics() -> None:
    creators = {g.principal for g in acls.grants(TOPICS) if g.operation in {Op.CREATE, Op.ALL}}
    assert creators == {"streams"}


def test_the_stream_worker_writes_every_familys_topic_and_no_legacy_one() -> None:
    for family in SinkFamily:
        assert Op.WRITE in _topic_ops("streams", TOPICS.instructions(family))
    legacy = TOPICS.instruction_prefix(SinkFamily.PARTNER_SHARING)
    assert not any(name.startswith(legacy) for _, name, _, _ in _of("streams"))


def test_the_stream_worker_owns_its_faust_topics_and_group_under_the_prefix() -> None:
    app = "tenant-a.consent-relay-streams"
    assert (Resource.TOPIC, app, Op.ALL, True) in _of("streams")
    assert (Resource.GROUP, app, Op.ALL, False) in _of("streams")
    assert (Resource.GROUP, app, Op.DESCRIBE, False) in _of("gate")
    assert (Resource.GROUP, app, Op.READ, False) not in _of("gate")


def test_the_state_topic_is_the_state_tables_changelog() -> None:
    # The worker writes it and reads it back on recovery; the gate follows it; neither
    # needs the old per-app changelog of the state table (the gate has no grant on it).
    assert {Op.WRITE, Op.READ} <= _topic_ops("streams", TOPICS.state)
    assert _topic_ops("gate", TOPICS.state) == {Op.DESCRIBE, Op.READ}
    old = "tenant-a.consent-relay-streams-consent-state-changelog"
    assert not any(name == old for _, name, _, _ in _of("gate"))


def test_bindings_are_allow_rules_for_user_principals() -> None:
    grant = Grant("gate", Resource.GROUP, "g", Op.READ, prefixed=True)
    (binding,) = acls.bindings([grant])
    assert binding.principal == "User:gate"
    assert binding.host == "*"
    assert binding.resource_pattern_type.name == "PREFIXED"
    assert binding.operation.name == "READ"
    assert binding.permission_type.name == "ALLOW"
