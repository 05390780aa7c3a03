"""The state record's writer: fastavro's bytes exactly, for any state, cached or not."""

from __future__ import annotations

import io
import json
import struct
from typing import Any

import fastavro
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from schemas.codec import SHIPPED, WIRE_MAGIC, schema_text
from schemas.events import ConsentStateRecorded
from schemas.taxonomy import Choice, Purpose, Recipient, Regime, SubjectKind
from streams.engine.wire import RegistryEncoder
from streams.intake import state_writer
from streams.intake.records import StateAvro, consent_state, state_record
from streams.intake.resolution import (
    HISTORY,
    Claim,
    ConsentKey,
    Decision,
    Effect,
    Erasure,
    SubjectState,
    Toggle,
    apply,
)
from streams.intake.state_writer import StateSchemaError, StateWriter

SCHEMA = SHIPPED[ConsentStateRecorded].parsed
KEYS: list[ConsentKey] = [
    (Purpose.MARKETING_EMAIL, Regime.GDPR, None),
    (Purpose.MARKETING_EMAIL, Regime.CCPA, None),
    (Purpose.COOKIES_MARKETING, Regime.GDPR, None),
    (Purpose.TARGETED_ADVERTISING, Regime.GDPR, Recipient.CRITEO),
    (Purpose.TARGETED_ADVERTISING, Regime.GDPR, None),
    (Purpose.TARGETED_ADVERTISING, Regime.GDPR, Recipient.BING),
    (Purpose.SHARE_WITH_BUSINESS_PARTNERS, Regime.OTHER, Recipient.INSURERS),
]
TIMES = st.integers(-(2**40), 2**45)
IDS = st.text(min_size=0, max_size=80)


def fastavro_bytes(avro: dict[str, Any]) -> bytes:
    buf = io.BytesIO()
    fastavro.schemaless_writer(buf, SCHEMA, avro)
    return buf.getvalue()


@st.composite
def states(draw: st.DrawFn) -> SubjectState:
    decisions: dict[ConsentKey, tuple[Decision, ...]] = {}
    for key in draw(st.lists(st.sampled_from(KEYS), unique=True, max_size=len(KEYS))):
        history = draw(
            st.lists(
                st.builds(
                    Decision,
                    TIMES,
                    st.sampled_from(list(Choice)),
                    IDS,
                    st.none() | TIMES,
                ),
                min_size=1,
                max_size=HISTORY,
            )
        )
        decisions[key] = tuple(sorted(history, key=lambda d: d.rank))
    toggles = draw(st.lists(st.builds(Toggle, TIMES, st.booleans(), IDS), max_size=HISTORY))
    erasure = draw(st.none() | st.builds(Erasure, TIMES, IDS))
    return SubjectState(
        draw(st.sampled_from(list(SubjectKind))),
        decisions,
        tuple(sorted(toggles, key=lambda t: t.rank)),
        erasure,
    )


WRITER = StateWriter()


def test_every_current_choice_is_an_entry_recipients_included_in_a_fixed_order() -> None:
    decisions = {
        key: (Decision(n, Choice.WITHDRAWN if n % 2 else Choice.GRANTED, f"e-{n}"),)
        for n, key in enumerate(KEYS)
    }
    forwards = SubjectState(SubjectKind.ACCOUNT, decisions, (), None)
    backwards = SubjectState(SubjectKind.ACCOUNT, dict(reversed(decisions.items())), (), None)
    avro = consent_state("s-1", forwards, 7)
    assert WRITER.body(avro) == fastavro_bytes(avro)
    reordered = consent_state("s-1", backwards, 7)
    assert WRITER.body(reordered) == fastavro_bytes(reordered)
    # The history follows the state's keys; the entries do not.
    assert reordered["entries"] == avro["entries"]
    assert [(e["purpose"], e["regime"], e["recipient"]) for e in avro["entries"]] == [
        (Purpose.COOKIES_MARKETING, Regime.GDPR, None),
        (Purpose.MARKETING_EMAIL, Regime.CCPA, None),
        (Purpose.MARKETING_EMAIL, Regime.GDPR, None),
        (Purpose.SHARE_WITH_BUSINESS_PARTNERS, Regime.OTHER, Recipient.INSURERS),
        (Purpose.TARGETED_ADVERTISING, Regime.GDPR, None),
        (Purpose.TARGETED_ADVERTISING, Regime.GDPR, Recipient.BING),
        (Purpose.TARGETED_ADVERTISING, Regime.GDPR, Recipient.CRITEO),
    ]


@settings(max_examples=300, deadline=None)
@given(state=states(), subject_id=IDS, now=TIMES)
def test_any_state_is_written_as_fastavro_writes_its_dict(
    state: SubjectState, subject_id: str, now: int
) -> None:
    avro = consent_state(subject_id, state, now)
    assert WRITER.body(avro) == fastavro_bytes(avro)
    assert WRITER.body(avro) == fastavro_bytes(avro)  # again, from the cache
    # Without the entries' and history's dicts, the same bytes.
    assert WRITER.body(state_record(subject_id, state, now)) == fastavro_bytes(avro)


def test_a_subject_changing_one_key_at_a_time_reuses_the_others() -> None:
    writer = StateWriter()
    state: SubjectState | None = None
    for n in range(3 * HISTORY * len(KEYS)):
        key = KEYS[n % len(KEYS)]
        choice = Choice.WITHDRAWN if n % 3 else Choice.GRANTED
        effect = Effect(claims=(Claim(key, choice),), restrict=(n % 7 == 0) or None)
        state = apply(state, SubjectKind.ACCOUNT, f"e-{n}", 1_000 + n, effect).state
        avro = consent_state("busy", state, 5_000 + n)
        assert writer.body(avro) == fastavro_bytes(avro)


def test_a_history_shared_by_two_keys_is_written_under_each() -> None:
    history = (Decision(1, Choice.GRANTED, "g"),)
    state = SubjectState(SubjectKind.ACCOUNT, {KEYS[0]: history, KEYS[1]: history})
    avro = consent_state("s", state, 2)
    assert StateWriter().body(avro) == fastavro_bytes(avro)


def test_an_evicted_key_is_written_again() -> None:
    writer = StateWriter(capacity=1)
    one = SubjectState(SubjectKind.ACCOUNT, {KEYS[0]: (Decision(1, Choice.GRANTED, "x"),)})
    other = SubjectState(SubjectKind.ACCOUNT, {KEYS[2]: (Decision(2, Choice.WITHDRAWN, "y"),)})
    first, second = consent_state("a", one, 3), consent_state("b", other, 3)
    for avro in (first, second, first, second):
        assert writer.body(avro) == fastavro_bytes(avro)


class _Registry:
    """Answers the one lookup the encoder makes."""

    class _Registered:
        schema_id = 42

    def lookup_schema(self, *_args: Any, **_kwargs: Any) -> Any:
        return self._Registered()


def test_the_stream_encoder_writes_state_records_with_the_writer() -> None:
    state = SubjectState(
        SubjectKind.DEVICE,
        {
            KEYS[3]: (Decision(5, Choice.WITHDRAWN, "w"),),
            KEYS[0]: (Decision(6, Choice.GRANTED, "g"),),
        },
        (Toggle(1, True, "r"),),
        Erasure(9, "e"),
    )
    avro = consent_state("dev-1", state, 10)
    assert isinstance(avro, StateAvro)
    encoded = RegistryEncoder(_Registry())(ConsentStateRecorded, avro, "consent.state")  # type: ignore[arg-type]
    assert encoded == struct.pack(">BI", WIRE_MAGIC, 42) + fastavro_bytes(avro)
    # A plain dict of the same record still goes through fastavro, to the same bytes.
    plain = RegistryEncoder(_Registry())(ConsentStateRecorded, dict(avro), "consent.state")  # type: ignore[arg-type]
    assert plain == encoded
    lean = state_record("dev-1", state, 10)
    assert RegistryEncoder(_Registry())(ConsentStateRecorded, lean, "consent.state") == encoded  # type: ignore[arg-type]


def test_a_lean_record_is_refused_by_fastavro_not_written_without_its_choices() -> None:
    state = SubjectState(SubjectKind.ACCOUNT, {KEYS[0]: (Decision(1, Choice.WITHDRAWN, "w"),)})
    with pytest.raises(ValueError, match="entries"):
        fastavro_bytes(state_record("s", state, 2))


def test_a_schema_this_writer_does_not_know_stops_it(monkeypatch: pytest.MonkeyPatch) -> None:
    raw = json.loads(schema_text(ConsentStateRecorded))
    raw["fields"].insert(3, {"name": "note", "type": "string", "default": ""})
    monkeypatch.setattr(state_writer, "schema_text", lambda _t: json.dumps(raw))
    with pytest.raises(StateSchemaError, match="fields"):
        StateWriter()
