"""Published gate batches land (their offsets may be stored) in the order their data was
read, and only once every record of theirs is reported stored (pure)."""

from __future__ import annotations

from typing import Any

from confluent_kafka import KafkaError

from schemas.runtime.delivery import NOT_STORED
from streams.gate.flights import Flight, Flights
from streams.gate.judge import GateBatch


class Report:
    """What a delivery report's message says of where the record went."""

    def __init__(self, offset: int | None) -> None:
        self._offset = offset

    def offset(self) -> int | None:
        return self._offset


def flight(records: int, offsets: dict[int, int]) -> Flight:
    published = Flight(GateBatch(), offsets, sent_at=0.0)
    for _ in range(records):
        published.sent()
    return published


def report(to: Flight, offset: int | None, error: Any = None) -> None:
    to(error, Report(offset))  # type: ignore[arg-type]


def test_a_batch_lands_once_every_record_is_reported_stored() -> None:
    flights = Flights()
    first = flight(2, {0: 10})
    flights.add(first)
    report(first, 41)
    assert flights.landed() == []
    report(first, 42)
    assert flights.landed() == [first]
    assert flights.first is None


def test_a_later_batch_waits_for_an_earlier_one() -> None:
    flights = Flights()
    earlier, later, empty = flight(1, {0: 10}), flight(1, {0: 12, 1: 3}), flight(0, {1: 5})
    for published in (earlier, later, empty):
        flights.add(published)
    report(later, 7)
    # Storing offset 12 now would commit past the earlier batch's unconfirmed record.
    assert flights.landed() == []
    report(earlier, 6)
    assert flights.landed() == [earlier, later, empty]


def test_an_implicit_acknowledgement_or_an_error_fails_the_batch() -> None:
    flights = Flights()
    implicit, refused, after = flight(1, {0: 1}), flight(1, {0: 2}), flight(1, {0: 3})
    for published in (implicit, refused, after):
        flights.add(published)
    report(implicit, None)  # acknowledged without an offset: maybe not stored
    report(refused, None, KafkaError(KafkaError._MSG_TIMED_OUT))
    report(after, 9)
    assert flights.landed() == []
    assert flights.first is implicit
    assert implicit.failures == [NOT_STORED]
    assert refused.failures
    assert not refused.stored
    assert flights.take_all() == [implicit, refused, after]
    assert len(flights) == 0
