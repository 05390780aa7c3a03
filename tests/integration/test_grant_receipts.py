"""Receipts only where proof is wanted, on the real broker with the real processes.

One subject grants SMS marketing, then withdraws email marketing. The stream issues
both instructions to the marketing sink, the grant's with ``receipt_requested`` false.
The sink applies both (the subject may now be texted, not emailed) but answers only
the withdrawal, which the stream then reports fully propagated.

Both instructions carry the subject's key, so they share a partition, the grant's
first; the sink answers in that order on one keyed partition of the receipts topic.
A receipt for the grant would therefore arrive before the withdrawal's: reading up to
the withdrawal's receipt proves there is none.
"""

from __future__ import annotations

import urllib.parse
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer
from prometheus_client.parser import text_string_to_metric_families

from producers.client import ConsentClient
from schemas.codec import EventDecoder
from schemas.events import FullyPropagated, InstructionIssued, PropagationReceipt, receipts_in
from schemas.runtime.kafka import KafkaSettings
from schemas.taxonomy import Outcome, Purpose, SinkFamily, Source
from tests.support.access import get_json
from tests.support.processes import http_text, stream_and_marketing_sink, wait_for

SUBJECT = "subject-grant-then-withdraw"


def test_only_the_withdrawal_is_answered_and_both_are_applied(
    relay_settings: KafkaSettings, relay_env: dict[str, str], tmp_path: Path, unique_group: str
) -> None:
    with (
        stream_and_marketing_sink(relay_env, tmp_path, "grant-receipts", unique_group) as (
            _stream_url,
            sink_url,
        ),
        ConsentClient(relay_settings) as client,
        _Reader(relay_settings, f"{unique_group}-reader") as reader,
    ):
        grant = client.grant(SUBJECT, [Purpose.MARKETING_SMS], source=Source.PRIVACY_SETTINGS)
        withdrawal = client.withdraw(
            SUBJECT, [Purpose.MARKETING_EMAIL], source=Source.UNSUBSCRIBE_LINK
        )

        flags = wait_for(
            "both instructions on the marketing topic",
            lambda: (f := reader.receipt_flags(grant.event_id, withdrawal.event_id)) and f,
        )
        assert flags == {grant.event_id: {False}, withdrawal.event_id: {True}}

        answered = wait_for(
            "the withdrawal's receipt",
            lambda: reader.receipts_until(withdrawal.event_id),
            bound=120,
        )
        assert {r.event_id for r in answered} == {withdrawal.event_id}
        assert [(r.destination, r.outcome) for r in answered] == [
            ("suppression_list", Outcome.APPLIED)
        ]

        done = wait_for(
            "the withdrawal fully propagated",
            lambda: reader.propagated(withdrawal.event_id),
            bound=60,
        )
        assert [d.destination for d in done.destinations] == ["MARKETING/suppression_list"]

        # Applied all the same: the grant opened SMS, the withdrawal closed email.
        assert _may_contact(sink_url, "SMS", Purpose.MARKETING_SMS) is True
        assert _may_contact(sink_url, "EMAIL", Purpose.MARKETING_EMAIL) is False
        assert _applied(sink_url) == 2


def _applied(sink_url: str) -> float:
    """The sink's count of instructions APPLIED to the suppression list."""
    return sum(
        sample.value
        for family in text_string_to_metric_families(http_text(f"{sink_url}/metrics"))
        for sample in family.samples
        if sample.name == "consent_relay_sink_instructions_total"
        and sample.labels.get("outcome") == "APPLIED"
        and sample.labels.get("destination") == "suppression_list"
    )


def _may_contact(sink_url: str, channel: str, purpose: Purpose) -> bool:
    query = urllib.parse.urlencode({"subject": SUBJECT, "channel": channel, "purpose": purpose})
    return bool(get_json(f"{sink_url}/v1/may-contact?{query}")["allowed"])


class _Reader:
    """Reads the marketing instructions, the receipts and the propagated topics."""

    def __init__(self, settings: KafkaSettings, group: str) -> None:
        self._registry = settings.registry_client()
        self._decoder = EventDecoder(self._registry)
        self._topics = settings.topics
        self._consumer = Consumer(settings.consumer_config(group))
        self._consumer.subscribe(
            [
                settings.topics.instructions(SinkFamily.MARKETING),
                settings.topics.receipts,
                settings.topics.propagated,
            ]
        )
        self._flags: dict[str, set[bool]] = {}
        self._receipts: list[PropagationReceipt] = []
        self._propagated: dict[str, FullyPropagated] = {}

    def __enter__(self) -> _Reader:
        return self

    def __exit__(self, *_exc: object) -> None:
        self._consumer.close()
        self._registry.close()

    def _poll(self) -> None:
        for msg in self._consumer.consume(100, 0.5):
            if msg.error() or msg.value() is None:
                continue
            event: Any = self._decoder.decode(msg.value())
            if isinstance(event, InstructionIssued):
                self._flags.setdefault(event.event_id, set()).add(event.receipt_requested)
            elif receipts := receipts_in(event):
                self._receipts += [r for r in receipts if r.subject.id == SUBJECT]
            elif isinstance(event, FullyPropagated):
                self._propagated[event.event_id] = event

    def receipt_flags(self, *event_ids: str) -> dict[str, set[bool]] | None:
        """Each event's receipt_requested values, once every event has an instruction."""
        self._poll()
        if all(e in self._flags for e in event_ids):
            return {e: self._flags[e] for e in event_ids}
        return None

    def receipts_until(self, event_id: str) -> list[PropagationReceipt] | None:
        """The subject's receipts up to and including the first for ``event_id``."""
        self._poll()
        for i, receipt in enumerate(self._receipts):
            if receipt.event_id == event_id:
                return self._receipts[: i + 1]
        return None

    def propagated(self, event_id: str) -> FullyPropagated | None:
        """The FullyPropagated of ``event_id`` once seen."""
        self._poll()
        return self._propagated.get(event_id)
