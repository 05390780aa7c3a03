"""The partners' JSON bodies are written directly, yet are byte for byte what
``json.dumps`` makes of the documented objects (sorted keys, no spaces, ASCII)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from consumers.partners.payload import (
    batch_body,
    instruction_document,
    instruction_json,
    webhook_body,
)
from schemas.events import InstructionIssued, Subject
from schemas.taxonomy import Action, Channel, Purpose, Regime, Right, SinkFamily, SubjectKind


def dumped(document: Any) -> bytes:
    return json.dumps(document, sort_keys=True, separators=(",", ":")).encode("utf-8")


# Any text, so that quotes, backslashes, control and non-ASCII characters are escaped as
# json.dumps escapes them (the contract's ids are plainer than this).
texts = st.text(min_size=1, max_size=40)
times = st.datetimes(
    min_value=datetime(2000, 1, 1),
    max_value=datetime(2100, 1, 1),
    timezones=st.sampled_from([UTC, timezone(timedelta(hours=2))]),
)


@st.composite
def instructions(draw: st.DrawFn) -> InstructionIssued:
    return InstructionIssued(
        instruction_id=draw(texts),
        event_id=draw(texts),
        event_type="ConsentChanged",
        subject=Subject(id="subject-1", kind=draw(st.sampled_from(SubjectKind))),
        sink_family=SinkFamily.PARTNER_SHARING,
        destination="criteo",
        action=draw(st.sampled_from(Action)),
        purposes=tuple(draw(st.lists(st.sampled_from(Purpose), max_size=4))),
        channels=tuple(draw(st.lists(st.sampled_from(Channel), max_size=3))),
        right=draw(st.none() | st.sampled_from(Right)),
        regime=draw(st.sampled_from(Regime)),
        occurred_at=draw(times),
        issued_at=draw(times),
        receipt_requested=draw(st.booleans()),
    )


@given(instructions(), texts, texts)
def test_an_instructions_json_is_what_json_dumps_makes_of_its_document(
    instruction: InstructionIssued, partner: str, pseudonym: str
) -> None:
    document = instruction_document(instruction, partner, pseudonym)
    assert instruction_json(instruction, partner, pseudonym).encode() == dumped(document)
    assert webhook_body(instruction, partner, pseudonym) == dumped(document)


@given(st.lists(instructions(), max_size=5))
def test_a_batch_body_is_what_json_dumps_makes_of_the_documents_in_order(
    batch: list[InstructionIssued],
) -> None:
    documents = [instruction_document(i, "criteo", f"p{n}") for n, i in enumerate(batch)]
    objects = [instruction_json(i, "criteo", f"p{n}") for n, i in enumerate(batch)]
    assert batch_body(objects) == dumped({"instructions": documents})
