"""The Python client against the real broker and registry: every verb, sync and asyncio."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from producers import builders
from producers.aio import AsyncConsentClient
from producers.client import ConsentClient
from producers.metrics import ProducerMetrics
from producers.publisher import Published
from producers.verbs import ConsentVerbs
from schemas.errors import ValidationError
from schemas.events import ConsentChanged, CookiePreferencesSet, RightsRequested
from schemas.partitioning import partition_for
from schemas.runtime.kafka import KafkaSettings
from schemas.taxonomy import (
    Channel,
    Choice,
    CookieCategory,
    Purpose,
    Regime,
    Requester,
    Right,
    Source,
)

from .conftest import read_back

# (call on a client, expected record type, check on the decoded record)
VERBS: list[tuple[Callable[[ConsentVerbs[Any]], Any], type[Any], Callable[[Any], bool]]] = [
    (
        lambda c: c.grant("s-1", [Purpose.MARKETING_EMAIL, Purpose.MARKETING_SMS]),
        ConsentChanged,
        lambda e: e.choice is Choice.GRANTED and len(e.purposes) == 2,
    ),
    (
        lambda c: c.withdraw("s-1", [Purpose.MARKETING_SMS]),
        ConsentChanged,
        lambda e: e.choice is Choice.WITHDRAWN,
    ),
    (
        lambda c: c.refuse_marketing("s-2", [Channel.TELEPHONE]),
        RightsRequested,
        lambda e: e.right is Right.REFUSE_MARKETING and e.channels == (Channel.TELEPHONE,),
    ),
    (
        lambda c: c.object_to_direct_marketing("s-2"),
        RightsRequested,
        lambda e: e.right is Right.OBJECT_TO_DIRECT_MARKETING,
    ),
    (
        lambda c: c.object_to_legitimate_interest("s-3", [Purpose.RESEARCH_AND_STATISTICS]),
        RightsRequested,
        lambda e: e.right is Right.OBJECT_TO_LEGITIMATE_INTEREST,
    ),
    (
        lambda c: c.request_erasure("s-3"),
        RightsRequested,
        lambda e: e.right is Right.ERASURE,
    ),
    (
        lambda c: c.request_erasure_of_minor("s-4"),
        RightsRequested,
        lambda e: e.right is Right.ERASURE_OF_MINOR and e.requested_by is Requester.GUARDIAN,
    ),
    (
        lambda c: c.restrict_processing("s-5"),
        RightsRequested,
        lambda e: e.right is Right.RESTRICT_PROCESSING,
    ),
    (
        lambda c: c.lift_restriction("s-5"),
        RightsRequested,
        lambda e: e.right is Right.LIFT_RESTRICTION,
    ),
    (
        lambda c: c.record_gpc_signal("s-6"),
        RightsRequested,
        lambda e: (
            e.right is Right.OPT_OUT_OF_SALE_OR_SHARING
            and e.source is Source.GPC_SIGNAL
            and e.regime is Regime.CCPA
        ),
    ),
    (
        lambda c: c.opt_out_of_sale_or_sharing("s-6", requested_by=Requester.AUTHORISED_AGENT),
        RightsRequested,
        lambda e: e.requested_by is Requester.AUTHORISED_AGENT,
    ),
    (lambda c: c.request_access("s-7"), RightsRequested, lambda e: e.right is Right.ACCESS),
    (
        lambda c: c.request_portability("s-7"),
        RightsRequested,
        lambda e: e.right is Right.PORTABILITY,
    ),
    (
        lambda c: c.request_rectification("s-7"),
        RightsRequested,
        lambda e: e.right is Right.RECTIFICATION,
    ),
    (
        lambda c: c.set_cookie_preferences(
            "device-1", granted=[CookieCategory.STATISTICS], refused=[CookieCategory.MARKETING]
        ),
        CookiePreferencesSet,
        lambda e: e.refused == (CookieCategory.MARKETING,) and e.subject.id == "device-1",
    ),
]


def check_round_trip(settings: KafkaSettings, acks: list[Published]) -> None:
    """Every acknowledged event is on the consent topic, keyed and partitioned by subject."""
    received = read_back(settings, settings.topics.consent, len(acks))
    by_id = {r.record.event_id: r for r in received}
    assert set(by_id) == {a.event_id for a in acks}
    for ack, (_verb, record_type, check) in zip(acks, VERBS, strict=True):
        got = by_id[ack.event_id]
        assert isinstance(got.record, record_type)
        assert check(got.record), got.record
        assert got.key == got.record.subject.id.encode()
        assert (got.partition, got.offset) == (ack.partition, ack.offset)
        assert got.partition == partition_for(got.key, settings.partitions)


def test_sync_client_publishes_every_verb(relay_settings: KafkaSettings) -> None:
    registry = CollectorRegistry()
    with ConsentClient(relay_settings, metrics=ProducerMetrics.create(registry)) as client:
        acks = [verb(client) for verb, _type, _check in VERBS]
    assert all(isinstance(a, Published) for a in acks)
    assert all(a.topic == relay_settings.topics.consent for a in acks)
    check_round_trip(relay_settings, acks)
    assert (
        registry.get_sample_value(
            "consent_relay_events_published_total",
            {"event_type": "RightsRequested", "source": "GPC_SIGNAL"},
        )
        == 1
    )


def test_async_client_publishes_every_verb(relay_settings: KafkaSettings) -> None:
    async def run() -> list[Published]:
        async with AsyncConsentClient(relay_settings) as client:
            return [await verb(client) for verb, _type, _check in VERBS]

    check_round_trip(relay_settings, asyncio.run(run()))


def test_batches_keep_each_subjects_order(relay_settings: KafkaSettings) -> None:
    subjects = [f"batch-{i}" for i in range(5)]

    async def run_async() -> list[Published]:
        async with AsyncConsentClient(relay_settings) as client:
            futures = [
                client.withdraw(s, [Purpose.MARKETING_EMAIL], evidence_ref=f"a{n}")
                for n in range(40)
                for s in subjects
            ]
            return list(await asyncio.gather(*futures))

    with ConsentClient(relay_settings) as client:
        futures = [
            client.send(builders.grant(s, [Purpose.MARKETING_EMAIL], evidence_ref=f"s{n}"))
            for n in range(40)
            for s in subjects
        ]
        assert client.flush(30) == 0
        sync_acks = [f.result(0) for f in futures]
    async_acks = asyncio.run(run_async())
    received = read_back(relay_settings, relay_settings.topics.consent, 400)
    for subject in subjects:
        refs = [r.record.evidence_ref for r in received if r.record.subject.id == subject]
        assert refs == [f"s{n}" for n in range(40)] + [f"a{n}" for n in range(40)]
    assert len({a.event_id for a in sync_acks + async_acks}) == 400


def test_invalid_input_is_rejected_before_sending(relay_settings: KafkaSettings) -> None:
    with ConsentClient(relay_settings) as client:
        with pytest.raises(ValidationError) as caught:
            client.withdraw("s-9", [Purpose.ACCOUNT_MANAGEMENT])
        assert caught.value.field_name == "purposes"
        with pytest.raises(ValidationError) as caught:
            client.request_erasure("")
        assert caught.value.field_name == "subject.id"
        # PostgreSQL refuses NUL in text: such a withdrawal could never be honoured.
        with pytest.raises(ValidationError) as caught:
            client.withdraw("s-9\x00", [Purpose.MARKETING_EMAIL])
        assert caught.value.field_name == "subject.id"
        with pytest.raises(ValidationError) as caught:
            client.send(builders.withdraw("s-9\x1b", [Purpose.MARKETING_EMAIL]))
        assert caught.value.field_name == "subject.id"
        assert client.publisher.in_flight() == 0
        sentinel = client.request_access("s-9")

    async def run_async() -> Published:
        async with AsyncConsentClient(relay_settings) as client:
            with pytest.raises(ValidationError) as caught:
                await client.withdraw("s-9\x00", [Purpose.MARKETING_EMAIL])
            assert caught.value.field_name == "subject.id"
            with pytest.raises(ValidationError) as caught:
                await client.set_cookie_preferences("dev\x85", granted=["STATISTICS"])
            assert caught.value.field_name == "subject.id"
            return await client.request_access("s-9")

    async_sentinel = asyncio.run(run_async())
    received = read_back(relay_settings, relay_settings.topics.consent, 2)
    assert {r.record.event_id for r in received} == {sentinel.event_id, async_sentinel.event_id}
