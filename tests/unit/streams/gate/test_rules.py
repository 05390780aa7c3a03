"""The consent gate's decisions (pure)."""

from __future__ import annotations

import pytest

from schemas.taxonomy import Choice, Purpose, Recipient, Regime, SubjectKind
from streams.gate.rules import GatePolicy, Verdict, decide
from streams.intake.resolution import Claim, Effect, SubjectState, apply

GDPR = GatePolicy()
EMAIL = Purpose.MARKETING_EMAIL


def state_with(*events: tuple[str, int, Effect]) -> SubjectState:
    state = None
    for event_id, at, effect in events:
        state = apply(state, SubjectKind.ACCOUNT, event_id, at, effect).state
    assert state is not None
    return state


def choice(
    value: Choice,
    purpose: Purpose = EMAIL,
    regime: Regime = Regime.GDPR,
    recipient: Recipient | None = None,
    expires: int | None = None,
) -> Effect:
    return Effect(claims=(Claim((purpose, regime, recipient), value),), expires_ms=expires)


def test_data_after_a_withdrawal_is_dropped_before_it_is_not() -> None:
    state = state_with(("g", 100, choice(Choice.GRANTED)), ("w", 200, choice(Choice.WITHDRAWN)))
    assert decide(GDPR, state, EMAIL, None, 150) is Verdict.ALLOWED
    assert decide(GDPR, state, EMAIL, None, 200) is Verdict.WITHDRAWN
    assert decide(GDPR, state, EMAIL, None, 50) is Verdict.NO_CONSENT


def test_unknown_consent_opt_in_drops_opt_out_configurable() -> None:
    assert decide(GDPR, None, EMAIL, None, 1) is Verdict.NO_CONSENT
    ccpa_subject = state_with(
        ("g", 1, choice(Choice.GRANTED, Purpose.COOKIES_STATISTICS, Regime.CCPA))
    )
    assert decide(GDPR, ccpa_subject, EMAIL, None, 5) is Verdict.ALLOWED
    strict = GatePolicy(opt_out_default_allow=False)
    assert decide(strict, ccpa_subject, EMAIL, None, 5) is Verdict.NO_CONSENT
    assert decide(GatePolicy(default_regime=Regime.CCPA), None, EMAIL, None, 1) is Verdict.ALLOWED


def test_contract_data_flows_legitimate_interest_unless_objected() -> None:
    assert decide(GDPR, None, Purpose.ACCOUNT_MANAGEMENT, None, 1) is Verdict.ALLOWED
    assert decide(GDPR, None, Purpose.RESEARCH_AND_STATISTICS, None, 1) is Verdict.ALLOWED
    objected = state_with(("o", 10, choice(Choice.WITHDRAWN, Purpose.RESEARCH_AND_STATISTICS)))
    assert decide(GDPR, objected, Purpose.RESEARCH_AND_STATISTICS, None, 11) is Verdict.WITHDRAWN


def test_restriction_and_erasure_stop_even_contract_data() -> None:
    state = state_with(
        ("r", 10, Effect(restrict=True)),
        ("l", 20, Effect(restrict=False)),
        ("e", 30, Effect(erase=True)),
    )
    assert decide(GDPR, state, Purpose.ACCOUNT_MANAGEMENT, None, 15) is Verdict.RESTRICTED
    assert decide(GDPR, state, Purpose.ACCOUNT_MANAGEMENT, None, 25) is Verdict.ERASED
    assert decide(GDPR, state, Purpose.ACCOUNT_MANAGEMENT, None, 31) is Verdict.ALLOWED


def test_a_withdrawal_under_any_regime_drops() -> None:
    state = state_with(
        ("g", 10, choice(Choice.GRANTED, regime=Regime.GDPR)),
        ("w", 10, choice(Choice.WITHDRAWN, regime=Regime.CCPA)),
    )
    assert decide(GDPR, state, EMAIL, None, 11) is Verdict.WITHDRAWN


def test_recipient_specific_choices_apply_to_that_recipient() -> None:
    ads = Purpose.SHARE_WITH_ADVERTISING_PLATFORMS
    state = state_with(
        ("all", 10, choice(Choice.GRANTED, ads)),
        ("fb", 20, choice(Choice.WITHDRAWN, ads, recipient=Recipient.FACEBOOK)),
    )
    assert decide(GDPR, state, ads, Recipient.FACEBOOK, 21) is Verdict.WITHDRAWN
    assert decide(GDPR, state, ads, Recipient.GOOGLE, 21) is Verdict.ALLOWED


def test_an_expired_grant_is_no_consent() -> None:
    state = state_with(("g", 10, choice(Choice.GRANTED, expires=100)))
    assert decide(GDPR, state, EMAIL, None, 99) is Verdict.ALLOWED
    assert decide(GDPR, state, EMAIL, None, 100) is Verdict.NO_CONSENT


@pytest.mark.parametrize("verdict", list(Verdict))
def test_only_allowed_flows(verdict: Verdict) -> None:
    assert verdict.allowed is (verdict is Verdict.ALLOWED)
