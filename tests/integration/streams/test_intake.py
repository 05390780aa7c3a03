"""Intake against the real broker: routing, resolution, consent state and dead letters."""

from __future__ import annotations

import uuid
from collections import defaultdict
from typing import Any

from confluent_kafka.admin import AdminClient, ConfigResource

from schemas.converters import to_dict
from schemas.events import (
    ConsentChanged,
    ConsentStateRecorded,
    DeadLettered,
    InstructionIssued,
)
from schemas.taxonomy import (
    Action,
    Channel,
    Choice,
    CookieCategory,
    Purpose,
    Regime,
    Right,
    SinkFamily,
    Source,
)
from streams.engine.tables import DONE, PENDING, STATE, changelog_topic

ADS = ("google", "facebook", "instagram", "twitter", "vkontakte")
COOKIE_ADS = ("criteo", "bing", "yahoo", "mail_ru", "yandex")
ALL_DESTINATIONS = {
    ("MARKETING", "suppression_list"),
    ("ANALYTICS", "analytics_store"),
    *(
        ("PARTNER_SHARING", name)
        for name in (
            "sellers",
            "business_partners",
            "group_companies",
            *ADS,
            *COOKIE_ADS,
            "google_analytics",
            "analytics_providers",
            "others_by_consent",
        )
    ),
}


def _by_event(instructions: list[InstructionIssued]) -> dict[str, set[tuple[str, str, str]]]:
    routed: dict[str, set[tuple[str, str, str]]] = defaultdict(set)
    for i in instructions:
        routed[i.event_id].add((i.sink_family.value, i.destination, i.action.value))
    return routed


def test_intake_routes_resolves_and_dead_letters(stream_kit: Any, events: Any) -> None:
    kit = stream_kit
    topics = kit.topics
    email = events.subject()
    objector = events.subject()
    gpc = events.subject()
    eraser = events.subject()
    late = events.subject()
    device = events.subject()
    regimes = events.subject()
    misrouted = events.subject()

    withdraw_email = events.changed(email, Choice.WITHDRAWN, Purpose.MARKETING_EMAIL)
    objection = events.right(objector, Right.OBJECT_TO_DIRECT_MARKETING, channels=(Channel.EMAIL,))
    opt_out = events.right(
        gpc, Right.OPT_OUT_OF_SALE_OR_SHARING, regime=Regime.CCPA, source=Source.GPC_SIGNAL
    )
    erasure = events.right(eraser, Right.ERASURE)
    newer_withdrawal = events.changed(
        late, Choice.WITHDRAWN, Purpose.MARKETING_EMAIL, at=events.ago(60)
    )
    older_grant = events.changed(late, Choice.GRANTED, Purpose.MARKETING_EMAIL, at=events.ago(600))
    cookie_prefs = events.cookies(
        device, refused=(CookieCategory.MARKETING,), granted=(CookieCategory.STATISTICS,)
    )
    gdpr_no = events.changed(regimes, Choice.WITHDRAWN, Purpose.RESEARCH_AND_STATISTICS)
    ccpa_yes = events.changed(
        regimes, Choice.GRANTED, Purpose.RESEARCH_AND_STATISTICS, regime=Regime.CCPA
    )
    wrong_key = events.changed(misrouted, Choice.WITHDRAWN, Purpose.MARKETING_POSTAL_MAIL)

    kit.start_worker()
    kit.publish(
        withdraw_email,
        objection,
        opt_out,
        erasure,
        newer_withdrawal,
        older_grant,
        older_grant,  # a duplicate changes nothing
        cookie_prefs,
        gdpr_no,
        ccpa_yes,
    )
    kit.publish_raw(topics.consent, b"not avro at all", key=b"junk")
    unknown_purpose: dict[str, Any] = to_dict(
        events.changed(events.subject(), Choice.WITHDRAWN, Purpose.MARKETING_SMS)
    )
    unknown_purpose["purposes"] = ["UNKNOWN"]
    kit.publish_dict(ConsentChanged, unknown_purpose, key=b"x")
    kit.publish_raw(
        topics.consent,
        kit._serializers[ConsentChanged](wrong_key, topics.consent),
        key=b"not-the-subject",
    )

    reader = kit.instruction_reader()
    dead = kit.reader(topics.dead_letters)
    states = kit.reader(topics.state)

    def all_instructions() -> list[InstructionIssued]:
        return list(reader.poll(0.3))

    expected_events = {
        withdraw_email.event_id,
        objection.event_id,
        opt_out.event_id,
        erasure.event_id,
        newer_withdrawal.event_id,
        cookie_prefs.event_id,
        gdpr_no.event_id,
        ccpa_yes.event_id,
        wrong_key.event_id,
    }
    kit.wait_until(lambda: expected_events <= set(_by_event(all_instructions())))
    kit.wait_until(lambda: len(dead.poll(0.3)) >= 2)
    instructions = all_instructions()
    routed = _by_event(instructions)

    for i in instructions:
        # The agreed deterministic id, and the right topic and key.
        name = f"{i.event_id}/{i.sink_family.value}/{i.destination}"
        assert i.instruction_id in {
            str(uuid.uuid5(uuid.NAMESPACE_URL, name)),
            str(uuid.uuid5(uuid.NAMESPACE_URL, f"{name}/{i.action.value}")),
        }

    assert routed[withdraw_email.event_id] == {("MARKETING", "suppression_list", "SUPPRESS")}
    # Objection to direct marketing is absolute: every channel, ads, every ad platform.
    assert routed[objection.event_id] == {
        ("MARKETING", "suppression_list", "SUPPRESS"),
        *(("PARTNER_SHARING", n, "SUPPRESS") for n in (*ADS, *COOKIE_ADS)),
    }
    objection_marketing = next(
        i
        for i in instructions
        if i.event_id == objection.event_id and i.sink_family is SinkFamily.MARKETING
    )
    assert set(objection_marketing.channels) == set(Channel)
    assert Purpose.TARGETED_ADVERTISING in objection_marketing.purposes
    # GPC: every sale/sharing recipient plus targeted advertising; never analytics_store.
    assert routed[opt_out.event_id] == {
        ("MARKETING", "suppression_list", "SUPPRESS"),
        *(
            ("PARTNER_SHARING", n, "SUPPRESS")
            for n in (
                "sellers",
                "business_partners",
                *ADS,
                *COOKIE_ADS,
                "google_analytics",
                "analytics_providers",
                "others_by_consent",
            )
        ),
    }
    # Erasure reaches every destination holding personal data (GDPR Art. 19).
    assert routed[erasure.event_id] == {(f, n, "ERASE") for f, n in ALL_DESTINATIONS}
    # The older grant arrived late: it must not re-grant.
    assert older_grant.event_id not in routed
    assert routed[newer_withdrawal.event_id] == {("MARKETING", "suppression_list", "SUPPRESS")}
    # Cookie preferences: marketing refused, statistics granted.
    assert routed[cookie_prefs.event_id] == {
        ("MARKETING", "suppression_list", "SUPPRESS"),
        ("ANALYTICS", "analytics_store", "ALLOW"),
        ("PARTNER_SHARING", "google_analytics", "ALLOW"),
        *(
            ("PARTNER_SHARING", n, "SUPPRESS")
            for n in ("google", "facebook", "twitter", *COOKIE_ADS)
        ),
    }
    assert routed[gdpr_no.event_id] == {("ANALYTICS", "analytics_store", "SUPPRESS")}
    assert routed[ccpa_yes.event_id] == {("ANALYTICS", "analytics_store", "ALLOW")}
    # A message keyed by something else is re-keyed, not lost.
    assert routed[wrong_key.event_id] == {("MARKETING", "suppression_list", "SUPPRESS")}
    assert all(
        key == i.subject.id.encode() for i, key in zip(reader.records, reader.keys, strict=True)
    )
    # Each on its family's topic (the partners' of one event in one record).
    on = list(zip(reader.records, reader.topics, strict=True))
    assert all(topic == topics.instructions(i.sink_family) for i, topic in on)

    letters: list[DeadLettered] = dead.poll(0.1)
    by_class = {d.error_class: d for d in letters}
    assert by_class["BadMagicByteError"].source_topic == topics.consent
    assert by_class["BadMagicByteError"].original_value == b"not avro at all"
    assert by_class["ValidationError"].field_name == "purposes"
    assert all(d.stage == "stream.intake" for d in letters)
    assert len(letters) == 2

    def state_of(subject_id: str) -> ConsentStateRecorded | None:
        found = [s for s in states.poll(0.3) if s.subject.id == subject_id]
        return found[-1] if found else None

    both = kit.wait_until(
        lambda: (s := state_of(regimes.id)) is not None and len(s.entries) == 2 and s
    )
    assert {(e.regime, e.choice) for e in both.entries} == {
        (Regime.GDPR, Choice.WITHDRAWN),
        (Regime.CCPA, Choice.GRANTED),
    }
    late_state = kit.wait_until(lambda: state_of(late.id))
    assert [(e.choice, e.event_id) for e in late_state.entries] == [
        (Choice.WITHDRAWN, newer_withdrawal.event_id)
    ]
    erased = kit.wait_until(lambda: state_of(eraser.id))
    assert erased.erased
    assert Action.ERASE.value == "ERASE"


def test_the_tables_changelogs_compact_within_minutes(stream_kit: Any, events: Any) -> None:
    """A restarted worker replays its changelogs: they must not keep a week of changes."""
    stream_kit.start_worker()
    stream_kit.publish(events.changed(events.subject(), Choice.WITHDRAWN, Purpose.MARKETING_EMAIL))
    admin = AdminClient(stream_kit.settings.admin_config())
    # The state table's changelog is the state topic; Faust makes the other two.
    names = [changelog_topic(stream_kit.app_id_full, t) for t in (PENDING, DONE)]
    names.append(stream_kit.topics.state)

    def described() -> dict[str, dict[str, str]] | None:
        if not set(names) <= set(admin.list_topics(timeout=10).topics):
            return None
        asked = [ConfigResource(ConfigResource.Type.TOPIC, n) for n in names]
        return {
            r.name: {k: v.value for k, v in f.result().items()}
            for r, f in admin.describe_configs(asked).items()
        }

    configs = stream_kit.wait_until(described, timeout=60)
    old_changelog = changelog_topic(stream_kit.app_id_full, STATE)
    listed = admin.list_topics(timeout=10).topics
    assert old_changelog not in listed
    # No leader-election topic: its partition alone in a fetch held the input back 1.5 s.
    assert f"{stream_kit.app_id_full}-__assignor-__leader" not in listed
    for name in names:
        assert configs[name]["cleanup.policy"] == "compact"
        assert configs[name]["segment.ms"] == "60000"
        assert configs[name]["delete.retention.ms"] == "600000"
