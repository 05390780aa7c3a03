"""The done and pending tables' changelog bytes: each propagation's JSON is made once and
kept, and the bytes are exactly the JSON of the records' documents, written the plain
way, whatever was kept or forgotten before."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from schemas.taxonomy import Outcome, SubjectKind
from streams.engine import table_codecs
from streams.engine.table_codecs import (
    DoneFragments,
    decode_done,
    decode_pending,
    encode_done,
    encode_pending,
)
from streams.proof.propagation import Answer, Orphan, Propagation, SubjectPropagations

TEXT = st.text(max_size=12)  # any text: the JSON escapes non-ASCII and quotes the same way
MS = st.integers(0, 2**53)


@st.composite
def completed(draw: st.DrawFn) -> Propagation:
    required = draw(st.dictionaries(TEXT, TEXT, max_size=4))
    answers = {
        label: Answer(draw(st.sampled_from(list(Outcome))), draw(MS), iid)
        for iid, label in required.items()
    }
    return Propagation(
        event_id=draw(TEXT),
        event_type=draw(st.sampled_from(["ConsentChanged", "RightsRequested"])),
        subject_kind=draw(st.sampled_from(list(SubjectKind))),
        occurred_at_ms=draw(MS),
        issued_at_ms=draw(MS),
        required=required,
        answers=answers,
        completed_at_ms=draw(MS),
    )


def plain(records: tuple[Propagation, ...]) -> bytes:
    """The bytes as they were written before the fragments were kept."""
    docs = [table_codecs._prop_doc(r) for r in records]  # the format itself
    return json.dumps(docs, separators=(",", ":")).encode()


@settings(max_examples=200, deadline=None)
@given(
    pool=st.lists(completed(), min_size=1, max_size=6),
    writes=st.lists(st.lists(st.integers(0, 5), max_size=6), min_size=1, max_size=8),
)
def test_done_bytes_are_the_plain_json(pool: list[Propagation], writes: list[list[int]]) -> None:
    fragments = DoneFragments(size=3)  # smaller than the pool: records are forgotten too
    for picks in writes:
        records = tuple(pool[i % len(pool)] for i in picks)
        expected = plain(records)
        assert b"[" + b",".join(fragments.fragment(r) for r in records) + b"]" == expected
        assert encode_done(records) == expected
        assert decode_done(encode_done(records)) == records


def test_a_new_record_is_never_served_an_old_ones_json() -> None:
    fragments = DoneFragments(size=2)
    for n in range(50):
        # Each record dies after its write: a new one may get its id once it is forgotten.
        record = Propagation(f"e{n}", "ConsentChanged", SubjectKind.ACCOUNT, n, n, {}, {}, n)
        assert json.loads(fragments.fragment(record))["e"] == f"e{n}"


@st.composite
def orphans(draw: st.DrawFn) -> Orphan:
    return Orphan(draw(TEXT), draw(TEXT), draw(st.sampled_from(list(Outcome))), draw(MS), draw(MS))


@settings(max_examples=200, deadline=None)
@given(
    pool=st.lists(completed(), min_size=1, max_size=6),
    parked=st.lists(orphans(), max_size=3),
    writes=st.lists(st.lists(st.integers(0, 5), max_size=6), min_size=1, max_size=8),
)
def test_pending_bytes_are_the_plain_json(
    pool: list[Propagation], parked: list[Orphan], writes: list[list[int]]
) -> None:
    for picks in writes:
        holder = SubjectPropagations(tuple(pool[i % len(pool)] for i in picks), tuple(parked))
        doc = {
            "p": [table_codecs._prop_doc(r) for r in holder.pending],
            "o": [
                [o.event_id, o.instruction_id, o.outcome.value, o.applied_at_ms, o.received_at_ms]
                for o in holder.orphans
            ],
        }
        assert encode_pending(holder) == json.dumps(doc, separators=(",", ":")).encode()
        assert decode_pending(encode_pending(holder)) == holder
