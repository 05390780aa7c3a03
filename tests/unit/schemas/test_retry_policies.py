"""The two retry policies every process shares (schemas.runtime.backoff)."""

from __future__ import annotations

from schemas.runtime.admin import attempt_seconds
from schemas.runtime.backoff import RETRY, STARTUP


def test_a_start_up_attempt_may_take_half_a_second_doubling_to_five() -> None:
    assert [attempt_seconds(n) for n in range(1, 8)] == [0.5, 1.0, 2.0, 4.0, 5.0, 5.0, 5.0]
    assert attempt_seconds(10_000) == STARTUP.maximum


def test_retries_start_within_a_fifth_of_a_second_and_wait_at_most_five() -> None:
    assert all(0.1 <= RETRY.delay(1) <= 0.2 for _ in range(100))
    assert all(2.5 <= RETRY.delay(n) <= 5.0 for n in (6, 7, 100, 10_000))
