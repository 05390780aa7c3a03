"""Records written and CPU per consent event, from offsets and /proc samples."""

from __future__ import annotations

from deploy.bench.costs import (
    LOAD_GENERATOR,
    PARTNER_RECEIVER,
    RELAY_TOTAL,
    cpu_ms_per_event,
    records_summary,
    records_written,
)

PREFIX = "bench-x-p1-1000ps."


def test_records_are_end_offset_differences_and_new_topics_count_from_zero() -> None:
    before = {f"{PREFIX}consent.events": 10, f"{PREFIX}consent.receipts": 40}
    after = {
        f"{PREFIX}consent.events": 1010,
        f"{PREFIX}consent.receipts": 2040,
        f"{PREFIX}consent-relay-streams-subjects-changelog": 700,
    }
    written = records_written(before, after)
    assert written == {
        f"{PREFIX}consent-relay-streams-subjects-changelog": 700,
        f"{PREFIX}consent.events": 1000,
        f"{PREFIX}consent.receipts": 2000,
    }
    summary = records_summary(written, 1000, PREFIX, [f"{PREFIX}consent.events"])
    assert summary == {
        "by_topic": {"consent-relay-streams-subjects-changelog": 700, "consent.receipts": 2000},
        "inputs": {"consent.events": 1000},
        "total": 2700,
        "per_event": 2.7,
    }


def test_relay_cpu_leaves_out_the_load_generator_and_the_partner_receiver() -> None:
    seconds = {
        "stream-worker-0": 1.0,
        "partner-sink": 0.5,
        "kafka broker": 0.5,
        "consent-gate": None,  # exited: unknown, left out of the sum
        LOAD_GENERATOR: 9.0,
        PARTNER_RECEIVER: 9.0,
    }
    per_event = cpu_ms_per_event(seconds, 1000)
    assert per_event["stream-worker-0"] == 1.0
    assert per_event["consent-gate"] is None
    assert per_event[LOAD_GENERATOR] == 9.0
    assert per_event[RELAY_TOTAL] == 2.0
    assert cpu_ms_per_event(seconds, 0) == {}
