"""Propagation records: receipts complete them; early receipts are adopted; the JSON
answer; and the changelog codecs round-trip every table value."""

from __future__ import annotations

from dataclasses import replace

from hypothesis import given, settings
from hypothesis import strategies as st

from schemas.taxonomy import (
    Action,
    Choice,
    Outcome,
    Purpose,
    Recipient,
    Regime,
    SinkFamily,
    SubjectKind,
)
from streams.engine.table_codecs import (
    decode_done,
    decode_pending,
    decode_state,
    encode_done,
    encode_pending,
    encode_state,
)
from streams.intake.fanout import Route
from streams.intake.resolution import HISTORY, Claim, Effect, SubjectState, apply
from streams.intake.routing import Destination
from streams.proof import propagation
from streams.proof.propagation import Orphan, SubjectPropagations

A = Destination(SinkFamily.MARKETING, "suppression_list", frozenset(), True)
B = Destination(SinkFamily.PARTNER_SHARING, "criteo", frozenset(), True, Recipient.CRITEO)


def record(*routes: Route) -> propagation.Propagation:
    return propagation.start(
        event_id="e1",
        event_type="RightsRequested",
        subject_kind=SubjectKind.ACCOUNT,
        occurred_at_ms=1_000,
        now_ms=2_000,
        routes=routes,
    )


def test_receipts_complete_a_propagation() -> None:
    rec = record(Route(A, Action.SUPPRESS, (), "i-a"), Route(B, Action.SUPPRESS, (), "i-b"))
    assert rec.pending == ("MARKETING/suppression_list", "PARTNER_SHARING/criteo")
    failed = propagation.answer(rec, "i-a", Outcome.FAILED, 2_500, 3_000)
    assert failed is not None
    assert failed.pending == rec.pending
    applied = propagation.answer(failed, "i-a", Outcome.APPLIED, 2_600, 3_100)
    assert applied is not None
    assert applied.pending == ("PARTNER_SHARING/criteo",)
    assert propagation.answer(applied, "i-a", Outcome.FAILED, 2_700, 3_200) is None
    assert propagation.answer(applied, "unknown", Outcome.APPLIED, 1, 1) is None
    done = propagation.answer(applied, "i-b", Outcome.SKIPPED, 2_800, 3_300)
    assert done is not None
    assert done.complete
    assert done.completed_at_ms == 3_300
    assert propagation.answer(done, "i-b", Outcome.APPLIED, 1, 1) is None
    answer = propagation.describe(done)
    assert answer["complete"]
    assert answer["honoured"] == ["MARKETING/suppression_list", "PARTNER_SHARING/criteo"]
    assert {d["outcome"] for d in answer["destinations"]} == {"APPLIED", "SKIPPED"}


def test_grants_are_not_tracked_and_nothing_to_do_is_complete_at_once() -> None:
    rec = record(Route(A, Action.ALLOW, (), "i-a"))
    assert rec.complete
    assert rec.required == {}


def test_early_receipts_are_adopted_and_expire() -> None:
    holder = SubjectPropagations().with_orphan(
        Orphan("e1", "i-a", Outcome.APPLIED, 1_500, received_at_ms=0), now_ms=0
    )
    rec, rest = holder.adopting(record(Route(A, Action.ERASE, (), "i-a")), now_ms=10)
    assert rec.complete
    assert not rest
    aged = holder.with_orphan(
        Orphan("e2", "i-x", Outcome.APPLIED, 1, propagation.ORPHAN_TTL_MS + 5),
        now_ms=propagation.ORPHAN_TTL_MS + 5,
    )
    assert [o.event_id for o in aged.orphans] == ["e2"]


def test_pending_and_done_codecs_round_trip() -> None:
    rec = record(Route(A, Action.SUPPRESS, (), "i-a"), Route(B, Action.SUPPRESS, (), "i-b"))
    half = propagation.answer(rec, "i-a", Outcome.APPLIED, 2_500, 3_000)
    assert half is not None
    holder = SubjectPropagations((half,), (Orphan("e9", "i-9", Outcome.FAILED, 1, 2),))
    assert decode_pending(encode_pending(holder)) == holder
    done = propagation.answer(half, "i-b", Outcome.APPLIED, 2_600, 3_100)
    assert done is not None
    assert decode_done(encode_done((done, half))) == (done, half)


KEYS = st.tuples(
    st.sampled_from([Purpose.MARKETING_EMAIL, Purpose.COOKIES_MARKETING]),
    st.sampled_from(list(Regime)),
    st.one_of(st.none(), st.sampled_from([Recipient.CRITEO, Recipient.GOOGLE])),
)
EVENTS = st.lists(
    st.tuples(
        st.integers(0, 10**13),
        st.one_of(
            st.builds(
                lambda key, c, exp: Effect(claims=(Claim(key, c),), expires_ms=exp),
                KEYS,
                st.sampled_from(list(Choice)),
                st.one_of(st.none(), st.integers(0, 10**13)),
            ),
            st.builds(lambda on: Effect(restrict=on), st.booleans()),
            st.just(Effect(erase=True)),
        ),
    ),
    max_size=HISTORY * 2,
)


@settings(max_examples=150, deadline=None)
@given(events=EVENTS, kind=st.sampled_from(list(SubjectKind)))
def test_state_codec_round_trips(events: list[tuple[int, Effect]], kind: SubjectKind) -> None:
    state: SubjectState | None = None
    for n, (at, effect) in enumerate(events):
        state = apply(state, kind, f"ev-{n}", at, effect).state
    state = state or SubjectState(kind)
    assert decode_state(encode_state(state)) == state


RECEIPTS = st.lists(
    st.tuples(st.sampled_from(["i-a", "i-a2", "i-b", "unknown"]), st.sampled_from(list(Outcome))),
    max_size=12,
)


def plain_answer(
    rec: propagation.Propagation, iid: str, outcome: Outcome, applied_at_ms: int, now_ms: int
) -> propagation.Propagation | None:
    """What a receipt does, the plain way: a destination's first honouring answer (or a
    later answer while it has none) is kept; the record completes when nothing is pending."""
    label = rec.required.get(iid)
    if label is None or rec.complete:
        return None
    previous = rec.answers.get(label)
    if previous is not None and previous.outcome in propagation.HONOURING:
        return None
    answers = {**rec.answers, label: propagation.Answer(outcome, applied_at_ms, iid)}
    updated = replace(rec, answers=answers)
    return updated if updated.pending else replace(updated, completed_at_ms=now_ms)


@settings(max_examples=300, deadline=None)
@given(receipts=RECEIPTS)
def test_receipts_answer_as_the_plain_rule(receipts: list[tuple[str, Outcome]]) -> None:
    # A destination with two tracked instructions (erase and suppress) and one with one.
    rec = record(
        Route(A, Action.ERASE, (), "i-a"),
        Route(A, Action.SUPPRESS, (), "i-a2"),
        Route(B, Action.SUPPRESS, (), "i-b"),
    )
    for n, (iid, outcome) in enumerate(receipts):
        updated = propagation.answer(rec, iid, outcome, 2_500 + n, 3_000 + n)
        assert updated == plain_answer(rec, iid, outcome, 2_500 + n, 3_000 + n)
        if updated is None:
            continue
        assert updated.complete == (not updated.pending)
        rec = updated
