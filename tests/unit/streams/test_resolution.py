"""The resolution rules, including properties over any interleaving and duplication."""

from __future__ import annotations

import itertools
from dataclasses import dataclass

from hypothesis import given, settings
from hypothesis import strategies as st

from schemas.taxonomy import Choice, Purpose, Recipient, Regime, SubjectKind
from streams.intake.resolution import HISTORY, Claim, Effect, SubjectState, apply

EMAIL = (Purpose.MARKETING_EMAIL, Regime.GDPR, None)
EMAIL_CCPA = (Purpose.MARKETING_EMAIL, Regime.CCPA, None)
ACCOUNT = SubjectKind.ACCOUNT


def choose(choice: Choice, key: tuple[Purpose, Regime, Recipient | None] = EMAIL) -> Effect:
    return Effect(claims=(Claim(key, choice),))


def fold(*events: tuple[str, int, Effect]) -> SubjectState | None:
    state = None
    for event_id, at, effect in events:
        state = apply(state, ACCOUNT, event_id, at, effect).state
    return state


def test_newest_event_time_wins() -> None:
    state = fold(("a", 1, choose(Choice.GRANTED)), ("b", 2, choose(Choice.WITHDRAWN)))
    assert state is not None
    current = state.current(EMAIL)
    assert current is not None
    assert (current.choice, current.event_id) == (Choice.WITHDRAWN, "b")


def test_a_late_older_grant_never_re_grants() -> None:
    first = apply(None, ACCOUNT, "w", 10, choose(Choice.WITHDRAWN))
    late = apply(first.state, ACCOUNT, "g", 5, choose(Choice.GRANTED))
    assert late.won == ()
    current = late.state.current(EMAIL)
    assert current is not None
    assert current.choice is Choice.WITHDRAWN
    assert late.changed  # kept in the history, for the gate


def test_on_a_tie_withdrawal_wins_whatever_the_order() -> None:
    for order in itertools.permutations(
        [("g", 7, choose(Choice.GRANTED)), ("w", 7, choose(Choice.WITHDRAWN))]
    ):
        state = fold(*order)
        assert state is not None
        current = state.current(EMAIL)
        assert current is not None
        assert current.choice is Choice.WITHDRAWN


def test_a_duplicate_changes_nothing_but_is_still_current() -> None:
    once = apply(None, ACCOUNT, "w", 10, choose(Choice.WITHDRAWN))
    twice = apply(once.state, ACCOUNT, "w", 10, choose(Choice.WITHDRAWN))
    assert not twice.changed
    assert twice.state is once.state
    assert twice.won == once.won  # re-routed: instruction ids are deterministic


def test_gdpr_and_ccpa_choices_do_not_overwrite_each_other() -> None:
    state = fold(
        ("w", 10, choose(Choice.WITHDRAWN, EMAIL)),
        ("g", 20, choose(Choice.GRANTED, EMAIL_CCPA)),
    )
    assert state is not None
    gdpr, ccpa = state.current(EMAIL), state.current(EMAIL_CCPA)
    assert gdpr is not None
    assert ccpa is not None
    assert (gdpr.choice, ccpa.choice) == (Choice.WITHDRAWN, Choice.GRANTED)
    assert state.regimes == {Regime.GDPR, Regime.CCPA}


def test_recipient_choice_and_general_choice_newest_wins_for_that_recipient() -> None:
    criteo = (Purpose.TARGETED_ADVERTISING, Regime.GDPR, Recipient.CRITEO)
    general = (Purpose.TARGETED_ADVERTISING, Regime.GDPR, None)
    state = fold(
        ("specific-no", 10, choose(Choice.WITHDRAWN, criteo)),
        ("all-yes", 5, choose(Choice.GRANTED, general)),
    )
    assert state is not None
    for_criteo = state.effective(Purpose.TARGETED_ADVERTISING, Regime.GDPR, Recipient.CRITEO)
    for_bing = state.effective(Purpose.TARGETED_ADVERTISING, Regime.GDPR, Recipient.BING)
    assert for_criteo is not None
    assert for_bing is not None
    assert (for_criteo.event_id, for_bing.event_id) == ("specific-no", "all-yes")


def test_choice_at_answers_for_a_past_moment() -> None:
    state = fold(
        ("g", 10, choose(Choice.GRANTED)),
        ("w", 20, choose(Choice.WITHDRAWN)),
        ("g2", 30, choose(Choice.GRANTED)),
    )
    assert state is not None
    assert state.choice_at(EMAIL, 5) is None
    assert [state.choice_at(EMAIL, t).event_id for t in (10, 25, 31)] == ["g", "w", "g2"]  # type: ignore[union-attr]


def test_history_is_bounded_and_keeps_the_newest() -> None:
    events = [(f"e{i:02}", i, choose(Choice.GRANTED)) for i in range(HISTORY + 5)]
    state = fold(*events)
    assert state is not None
    kept = state.decisions[EMAIL]
    assert len(kept) == HISTORY
    assert kept[-1].event_id == f"e{HISTORY + 4:02}"
    # An event older than everything kept is a no-op, not a change.
    assert not apply(state, ACCOUNT, "ancient", -1, choose(Choice.WITHDRAWN)).changed


def test_restriction_and_lifting_newest_wins_restriction_on_a_tie() -> None:
    state = fold(("r", 10, Effect(restrict=True)), ("l", 20, Effect(restrict=False)))
    assert state is not None
    assert not state.restricted
    assert state.restricted_at(15)
    tie = fold(("l", 10, Effect(restrict=False)), ("r", 10, Effect(restrict=True)))
    assert tie is not None
    assert tie.restricted
    late = apply(state, ACCOUNT, "old-r", 5, Effect(restrict=True))
    assert not late.restriction_won


def test_erasure_keeps_the_latest_and_is_always_routed() -> None:
    state = fold(("e2", 20, Effect(erase=True)), ("e1", 10, Effect(erase=True)))
    assert state is not None
    assert state.erasure is not None
    assert state.erasure.event_id == "e2"
    assert apply(state, ACCOUNT, "e1", 10, Effect(erase=True)).erase


def test_grant_expiry_is_kept_for_the_gate() -> None:
    state = fold(("g", 10, Effect(claims=(Claim(EMAIL, Choice.GRANTED),), expires_ms=20)))
    assert state is not None
    decision = state.current(EMAIL)
    assert decision is not None
    assert decision.in_force_at(19)
    assert not decision.in_force_at(20)


# ---------------------------------------------------------------- properties

KEYS = [EMAIL, EMAIL_CCPA, (Purpose.TARGETED_ADVERTISING, Regime.GDPR, Recipient.CRITEO)]


@dataclass(frozen=True)
class Ev:
    event_id: str
    at: int
    effect: Effect


@st.composite
def event_sets(draw: st.DrawFn) -> list[Ev]:
    count = draw(st.integers(1, 14))
    evs = []
    for n in range(count):
        kind = draw(st.sampled_from(["choice", "choice", "choice", "restrict", "erase"]))
        at = draw(st.integers(0, 6))  # few distinct times: plenty of ties
        if kind == "choice":
            claims = tuple(
                Claim(key, draw(st.sampled_from(list(Choice))))
                for key in draw(st.sets(st.sampled_from(KEYS), min_size=1))
            )
            effect = Effect(claims=claims)
        elif kind == "restrict":
            effect = Effect(restrict=draw(st.booleans()))
        else:
            effect = Effect(erase=True)
        evs.append(Ev(f"ev-{n:02}", at, effect))
    return evs


def _final(order: list[Ev]) -> SubjectState | None:
    return fold(*((e.event_id, e.at, e.effect) for e in order))


def _snapshot(state: SubjectState | None) -> object:
    assert state is not None
    return (
        {k: v for k, v in state.decisions.items()},
        state.restrictions,
        state.erasure,
    )


@settings(max_examples=300, deadline=None)
@given(
    evs=event_sets(),
    data=st.data(),
)
def test_any_interleaving_and_duplication_gives_the_same_state(
    evs: list[Ev], data: st.DataObject
) -> None:
    replayed = data.draw(st.lists(st.sampled_from(evs), max_size=len(evs) * 2))
    shuffled = data.draw(st.permutations(evs + replayed))
    assert _snapshot(_final(shuffled)) == _snapshot(_final(evs))


@settings(max_examples=300, deadline=None)
@given(evs=event_sets(), data=st.data())
def test_no_late_event_ever_re_grants(evs: list[Ev], data: st.DataObject) -> None:
    order = data.draw(st.permutations(evs))
    state = None
    applied: list[tuple[Ev, Claim]] = []
    for e in order:
        result = apply(state, ACCOUNT, e.event_id, e.at, e.effect)
        state = result.state
        applied.extend((e, c) for c in e.effect.claims)
        for claim in result.won:
            # A claim is reported in force only if nothing applied so far outranks it.
            rivals = [
                (o.at, c.choice is Choice.WITHDRAWN, o.event_id)
                for o, c in applied
                if c.key == claim.key
            ]
            assert (e.at, claim.choice is Choice.WITHDRAWN, e.event_id) == max(rivals)
    # At the end, every key's current choice is the greatest of all its claims.
    assert state is not None
    for key in KEYS:
        rivals = [
            (o.at, c.choice is Choice.WITHDRAWN, o.event_id) for o, c in applied if c.key == key
        ]
        current = state.current(key)
        if not rivals:
            assert current is None
        else:
            assert current is not None
            assert current.rank == max(rivals)
