"""The circuit breaker's state machine, driven by a fake clock."""

from __future__ import annotations

import pytest

from consumers.partners.breaker import BreakerState, CircuitBreaker


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def breaker(clock: Clock, changes: list[BreakerState]) -> CircuitBreaker:
    return CircuitBreaker(
        failure_threshold=3, reset_seconds=10, clock=clock, on_change=changes.append
    )


def test_opens_after_threshold_consecutive_failures() -> None:
    clock, changes = Clock(), []
    b = breaker(clock, changes)
    for _ in range(2):
        assert b.allow()
        b.record_failure()
    assert b.state is BreakerState.CLOSED
    b.record_failure()
    assert b.state is BreakerState.OPEN
    assert not b.allow()
    assert b.seconds_until_probe() == pytest.approx(10)
    assert changes == [BreakerState.OPEN]


def test_success_resets_the_failure_count() -> None:
    clock, changes = Clock(), []
    b = breaker(clock, changes)
    b.record_failure()
    b.record_failure()
    b.record_success()
    b.record_failure()
    b.record_failure()
    assert b.state is BreakerState.CLOSED
    assert changes == []


def test_half_open_after_reset_lets_exactly_one_probe() -> None:
    clock, changes = Clock(), []
    b = breaker(clock, changes)
    for _ in range(3):
        b.record_failure()
    clock.now += 9.9
    assert not b.allow()
    clock.now += 0.1
    assert b.state is BreakerState.HALF_OPEN
    assert b.allow()
    assert not b.allow(), "a second concurrent probe must wait"
    assert b.seconds_until_probe() == 0


def test_probe_success_closes() -> None:
    clock, changes = Clock(), []
    b = breaker(clock, changes)
    for _ in range(3):
        b.record_failure()
    clock.now += 10
    assert b.allow()
    b.record_success()
    assert b.state is BreakerState.CLOSED
    assert b.allow()
    assert changes == [BreakerState.OPEN, BreakerState.HALF_OPEN, BreakerState.CLOSED]


def test_probe_failure_reopens_for_a_full_period() -> None:
    clock, changes = Clock(), []
    b = breaker(clock, changes)
    for _ in range(3):
        b.record_failure()
    clock.now += 10
    assert b.allow()
    b.record_failure()
    assert b.state is BreakerState.OPEN
    assert b.seconds_until_probe() == pytest.approx(10)
    assert changes == [BreakerState.OPEN, BreakerState.HALF_OPEN, BreakerState.OPEN]


@pytest.mark.parametrize(("threshold", "reset"), [(0, 1.0), (1, 0.0)])
def test_rejects_nonsense_limits(threshold: int, reset: float) -> None:
    with pytest.raises(ValueError, match="breaker"):
        CircuitBreaker(failure_threshold=threshold, reset_seconds=reset)
