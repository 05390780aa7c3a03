"""A new sink's stores seeded from a state topic of 2,000 subjects (the bench's
generator, ``deploy.bench.state_scale``), on the real broker and registry: every
subject's answer is the one its newest state gives, duplicates not yet compacted away
included. Correctness only; the bench command reports the speed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from consumers.analytics.store import AnalyticsStore
from consumers.marketing.database import Database
from consumers.marketing.hashing import AddressHasher
from consumers.marketing.store import Decision, MarketingStore
from deploy.bench import state_scale
from schemas.runtime.kafka import KafkaSettings
from schemas.taxonomy import Channel, Purpose

SUBJECTS = 2_000
REWRITTEN = 100
"""Subjects given a second, newer state (every choice withdrawn) after the first."""


def rewritten(index: int) -> dict[str, Any]:
    newer = state_scale.state_dict(index)
    newer["updated_at"] += 86_400_000
    for entry in newer["entries"]:
        entry["choice"] = "WITHDRAWN"
        entry["occurred_at"] += 86_400_000
    return newer


def expected_marketing(index: int) -> Decision:
    if index % 100 == 99:
        return Decision(False, "erased")
    if index % 20 == 0:
        return Decision(False, "restricted")
    if index < REWRITTEN or index % 3 == 0:
        return Decision(False, "suppressed")
    return Decision(True, "granted")


def expected_analytics(index: int) -> bool:
    return not (index % 20 == 0 or index < REWRITTEN or index % 3 == 0)


def test_stores_seed_every_subject_to_its_newest_state(
    relay_settings: KafkaSettings, tmp_path: Path
) -> None:
    state_scale.write_states(relay_settings, SUBJECTS)
    state_scale.write_states(relay_settings, REWRITTEN, make=rewritten)

    marketing = state_scale.seed_marketing(relay_settings, tmp_path)
    analytics = state_scale.seed_analytics(relay_settings, tmp_path)
    assert marketing.count == analytics.count == SUBJECTS + REWRITTEN

    store = MarketingStore(
        Database(f"sqlite:///{tmp_path / 'marketing.db'}"), AddressHasher(b"k" * 32)
    )
    assert not store.needs_bootstrap()
    wrong = [
        i
        for i in range(SUBJECTS)
        if store.may_contact(state_scale.subject_id(i), Channel.EMAIL, Purpose.MARKETING_EMAIL)
        != expected_marketing(i)
    ]
    store.close()
    assert wrong == []

    seeded = AnalyticsStore(tmp_path / "analytics.db")
    assert seeded.is_seeded()
    wrong = [
        i
        for i in range(SUBJECTS)
        if seeded.may_process(state_scale.subject_id(i), Purpose.RESEARCH_AND_STATISTICS)
        != expected_analytics(i)
    ]
    assert wrong == []
