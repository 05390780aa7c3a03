"""The sink runner's retry delays: exponential, capped, jittered, never zero."""

from __future__ import annotations

import random

import pytest

from schemas.runtime.backoff import Backoff


def test_ceiling_doubles_from_initial_until_the_cap() -> None:
    backoff = Backoff(initial=0.1, maximum=1.0, multiplier=2.0)
    assert [backoff.ceiling(n) for n in range(1, 7)] == pytest.approx(
        [0.1, 0.2, 0.4, 0.8, 1.0, 1.0]
    )


def test_delay_is_jittered_within_half_to_full_ceiling() -> None:
    backoff = Backoff(initial=0.5, maximum=8.0, rng=random.Random(7))
    for attempt in range(1, 20):
        top = backoff.ceiling(attempt)
        delays = {backoff.delay(attempt) for _ in range(50)}
        assert all(top / 2 <= d <= top for d in delays)
        assert len(delays) > 1  # jitter spreads retries of many sinks


def test_a_very_long_outage_neither_overflows_nor_exceeds_the_cap() -> None:
    backoff = Backoff(initial=0.1, maximum=30.0)
    assert backoff.ceiling(10_000) == 30.0
    assert 15.0 <= backoff.delay(10_000) <= 30.0


def test_same_seed_gives_same_delays() -> None:
    first = Backoff(rng=random.Random(1))
    second = Backoff(rng=random.Random(1))
    assert [first.delay(n) for n in range(1, 10)] == [second.delay(n) for n in range(1, 10)]


@pytest.mark.parametrize(
    ("initial", "maximum", "multiplier"), [(0, 1, 2), (2, 1, 2), (0.1, 1, 0.5)]
)
def test_nonsense_parameters_are_refused(initial: float, maximum: float, multiplier: float) -> None:
    with pytest.raises(ValueError, match="backoff"):
        Backoff(initial, maximum, multiplier)


def test_attempts_are_one_based() -> None:
    with pytest.raises(ValueError, match="1-based"):
        Backoff().ceiling(0)
