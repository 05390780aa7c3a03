"""The consent gate against the real broker: data flows only where consent allowed it at
the time the data was produced."""

from __future__ import annotations

from typing import Any

from confluent_kafka import ConsumerGroupTopicPartitions
from confluent_kafka.admin import AdminClient  # type: ignore[attr-defined]

from schemas.events import DeadLettered
from schemas.taxonomy import Choice, Purpose, Regime, Right


def test_gate_lets_through_only_consented_data(stream_kit: Any, events: Any) -> None:
    kit = stream_kit
    topics = kit.topics
    ago = events.ago
    gdpr = events.subject()
    stranger = events.subject()
    ccpa = events.subject()
    restricted = events.subject()

    consent = [
        events.changed(gdpr, Choice.GRANTED, Purpose.MARKETING_EMAIL, at=ago(100)),
        events.changed(gdpr, Choice.WITHDRAWN, Purpose.MARKETING_EMAIL, at=ago(50)),
        events.changed(ccpa, Choice.GRANTED, Purpose.COOKIES_STATISTICS, regime=Regime.CCPA),
        events.right(ccpa, Right.OPT_OUT_OF_SALE_OR_SHARING, regime=Regime.CCPA, at=ago(40)),
        events.right(restricted, Right.RESTRICT_PROCESSING, at=ago(30)),
    ]
    allowed = {
        "while granted": events.data(gdpr, Purpose.MARKETING_EMAIL, at=ago(80)),
        "contract, unknown subject": events.data(stranger, Purpose.ACCOUNT_MANAGEMENT),
        "legitimate interest, not objected": events.data(stranger, Purpose.RESEARCH_AND_STATISTICS),
        "opt-out regime, nothing recorded": events.data(ccpa, Purpose.MARKETING_SMS),
        "before the opt-out": events.data(ccpa, Purpose.SHARE_WITH_BUSINESS_PARTNERS, at=ago(45)),
        "before the restriction": events.data(restricted, Purpose.ACCOUNT_MANAGEMENT, at=ago(60)),
    }
    dropped = {
        "after the withdrawal": events.data(gdpr, Purpose.MARKETING_EMAIL, at=ago(10)),
        "before any grant (opt-in)": events.data(gdpr, Purpose.MARKETING_EMAIL, at=ago(200)),
        "unknown subject, opt-in default": events.data(stranger, Purpose.MARKETING_EMAIL),
        "after the opt-out": events.data(ccpa, Purpose.SHARE_WITH_BUSINESS_PARTNERS),
        "while restricted": events.data(restricted, Purpose.ACCOUNT_MANAGEMENT, at=ago(5)),
    }
    worker = kit.start_worker()
    # Consent and data arrive together: the gate must still see the withdrawals first.
    kit.publish(*consent)
    kit.publish(*allowed.values(), *dropped.values(), topic=topics.data_events)
    kit.publish_raw(topics.data_events, b"\x00\x7f\xff\xff\xf0garbage", key=b"x")

    out = kit.reader(topics.data_allowed)
    dead = kit.reader(topics.dead_letters)
    wanted = {e.event_id for e in allowed.values()}
    kit.wait_until(lambda: wanted <= {e.event_id for e in out.poll(0.3)})
    kit.wait_until(lambda: dead.poll(0.3))
    total = len(allowed) + len(dropped)
    kit.wait_until(
        lambda: (
            sum(
                kit.metric(worker.url, "consent_relay_stream_events_total", event_type=t, status=s)
                or 0
                for t, s in (("DataEventCaptured", "allowed"), ("DataEventCaptured", "dropped"))
            )
            == total
        )
    )
    passed = {e.event_id: e for e in out.poll(0.5)}
    leaked = [name for name, e in dropped.items() if e.event_id in passed]
    assert leaked == []
    assert set(passed) == wanted
    letter: DeadLettered = dead.records[0]
    assert letter.stage == "stream.gate"
    assert letter.source_topic == topics.data_events
    assert (
        kit.metric(
            worker.url,
            "consent_relay_gate_events_total",
            decision="withdrawn",
            purpose="MARKETING_EMAIL",
        )
        == 1
    )
    assert kit.metric(worker.url, "consent_relay_gate_delay_seconds_count") == total


def test_withdrawn_data_stays_out_bad_data_is_dead_lettered_and_a_kill_loses_nothing(
    stream_kit: Any, events: Any
) -> None:
    kit = stream_kit
    topics = kit.topics
    ago = events.ago
    email = Purpose.MARKETING_EMAIL
    withdrawn, consenting = events.subject(), events.subject()
    kit.publish(
        events.changed(withdrawn, Choice.GRANTED, email, at=ago(100)),
        events.changed(withdrawn, Choice.WITHDRAWN, email, at=ago(50)),
        events.changed(consenting, Choice.GRANTED, email, at=ago(100)),
    )
    # Small batches, so the kill below lands while the backlog is being worked through.
    worker = kit.start_worker(STREAMS_GATE_BATCH_SIZE="10")
    kit.publish(
        events.data(withdrawn, email), events.data(consenting, email), topic=topics.data_events
    )
    kit.publish_raw(topics.data_events, b"\x00\x7f\xff\xff\xf0garbage", key=b"bad")
    source = kit.reader(topics.data_events, decode=False)
    kit.wait_until(lambda: len(source.poll(0.3)) == 3)
    garbage_at = source.coordinates[source.records.index(b"\x00\x7f\xff\xff\xf0garbage")]
    dead = kit.reader(topics.dead_letters)
    kit.wait_until(lambda: dead.poll(0.3))
    letter: DeadLettered = dead.records[0]
    assert (letter.stage, letter.source_topic) == ("stream.gate", topics.data_events)
    assert (letter.source_partition, letter.source_offset) == garbage_at
    assert letter.original_value == b"\x00\x7f\xff\xff\xf0garbage"

    # A backlog, and the worker SIGKILLed while it works through it.
    backlog = [events.data(s, email) for _ in range(1500) for s in (withdrawn, consenting)]
    out = kit.reader(topics.data_allowed)
    kit.wait_until(lambda: len(out.poll(0.3)) == 1)
    kit.publish(*backlog, topic=topics.data_events)
    kit.wait_until(lambda: len(out.poll(0.1)) > 1)
    worker.kill()
    seen_before_kill = len(out.records)
    kit.start_worker()

    wanted = {e.event_id for e in backlog if e.subject == consenting}
    kit.wait_until(
        lambda: wanted <= {e.event_id for e in out.poll(0.5)},
        timeout=120,
        describe=lambda: f"{len(wanted - {e.event_id for e in out.records})} missing",
    )
    assert {e.subject.id for e in out.poll(1.0)} == {consenting.id}
    assert seen_before_kill < len(wanted)  # the restarted worker did part of it
    # The gate's group has committed exactly past every data event, garbage included.
    admin = AdminClient(kit.settings.admin_config())
    group = f"{kit.app_id_full}-gate"

    def committed() -> int:
        request = [ConsumerGroupTopicPartitions(group)]
        found = admin.list_consumer_group_offsets(request)[group].result().topic_partitions
        return sum(tp.offset for tp in found or () if tp.topic == topics.data_events)

    kit.wait_until(lambda: committed() == 3 + len(backlog), describe=lambda: str(committed()))
