"""The idle phase's withdrawals reach all three sink families under the routing policy."""

from __future__ import annotations

import random
from datetime import UTC, datetime
from itertools import product

import pytest

from deploy.bench.workload import (
    IDLE_MIX,
    REACHES_ANALYTICS,
    REACHES_MARKETING_AND_PARTNERS,
    cookies_refused_all,
)
from schemas.events import CookiePreferencesSet
from schemas.taxonomy import PURPOSE_SPECS, Purpose, SinkFamily
from streams.intake.routing import load_policy


def _families(purposes: set[Purpose]) -> set[SinkFamily]:
    policy = load_policy()
    return {d.family for p in purposes for d in policy.hearing(p)}


@pytest.mark.parametrize(
    ("first", "second"), list(product(REACHES_MARKETING_AND_PARTNERS, REACHES_ANALYTICS))
)
def test_each_purpose_pair_of_the_idle_withdrawals_reaches_every_family(
    first: Purpose, second: Purpose
) -> None:
    assert _families({first, second}) == set(SinkFamily)


def test_a_cookie_banner_refusing_everything_reaches_every_family() -> None:
    event = cookies_refused_all(random.Random(1), "1", datetime.now(UTC))
    assert isinstance(event, CookiePreferencesSet)
    purposes = {p for p, spec in PURPOSE_SPECS.items() if spec.cookie_category in event.refused}
    assert _families(purposes) == set(SinkFamily)


def test_every_idle_kind_builds_a_valid_withdrawal() -> None:
    rng = random.Random(2)
    for kind, _, is_withdrawal, build in IDLE_MIX:
        event = build(rng, "7", datetime.now(UTC))
        assert is_withdrawal, kind
        assert event.subject.id.endswith("7")
