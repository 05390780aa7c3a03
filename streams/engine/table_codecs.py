"""How the propagation tables' values are written to their compacted changelog topics.

Table values are compact JSON (short keys, epoch-millisecond times), registered as
Faust codecs (:mod:`streams.engine.faust_codecs`) so tables hold Python objects in memory and
encode only on write. This module does not import Faust: the same functions let
:mod:`streams.proof.query` read the changelog topics without it.

The state table's changelog is the state topic (:mod:`streams.intake.state_topic`);
:func:`encode_state` and :func:`decode_state` are the format of its old JSON changelog,
kept for :mod:`streams.intake.upgrade_state`, which copies such a changelog over once.
"""

from __future__ import annotations

import json
from typing import Any

from schemas.taxonomy import Choice, Outcome, Purpose, Recipient, Regime, SubjectKind
from streams.intake.resolution import ConsentKey, Decision, Erasure, SubjectState, Toggle
from streams.proof.propagation import Answer, Orphan, Propagation, SubjectPropagations

_W, _G = "W", "G"


def encode_state(state: SubjectState) -> bytes:
    """Changelog bytes of a subject's state."""
    doc = {
        "k": state.kind.value,
        "d": [
            [
                p.value,
                g.value,
                None if r is None else r.value,
                [
                    [d.at_ms, _W if d.choice is Choice.WITHDRAWN else _G, d.event_id, d.expires_ms]
                    for d in history
                ],
            ]
            for (p, g, r), history in state.decisions.items()
        ],
        "r": [[t.at_ms, t.on, t.event_id] for t in state.restrictions],
        "e": None if state.erasure is None else [state.erasure.at_ms, state.erasure.event_id],
    }
    return json.dumps(doc, separators=(",", ":")).encode()


def decode_state(data: bytes) -> SubjectState:
    """A subject's state from changelog bytes."""
    doc = json.loads(data)
    decisions: dict[ConsentKey, tuple[Decision, ...]] = {}
    for purpose, regime, recipient, history in doc["d"]:
        key = (
            Purpose(purpose),
            Regime(regime),
            None if recipient is None else Recipient(recipient),
        )
        decisions[key] = tuple(
            Decision(at, Choice.WITHDRAWN if c == _W else Choice.GRANTED, eid, exp)
            for at, c, eid, exp in history
        )
    erasure = doc["e"]
    return SubjectState(
        SubjectKind(doc["k"]),
        decisions,
        tuple(Toggle(at, on, eid) for at, on, eid in doc["r"]),
        None if erasure is None else Erasure(erasure[0], erasure[1]),
    )


def encode_done(records: tuple[Propagation, ...]) -> bytes:
    """Changelog bytes of one subject's completed propagations: the JSON list of their
    documents, each record's own JSON made once (:class:`DoneFragments`)."""
    return b"[" + b",".join([_DONE_FRAGMENTS.fragment(r) for r in records]) + b"]"


class DoneFragments:
    """Each propagation's JSON, kept for the next writes of its subject.

    A subject's completed propagations are written whole on each completion (up to
    ``completed_per_subject`` records, every one unchanged since it completed: frozen,
    and nothing modifies its mappings), so a subject that withdraws often had all of
    them rebuilt and dumped again for each new one (50 records: ~0.3-0.9 ms per write).
    Its pending ones likewise, on each new one and each answer (which replaces only the
    answered record). Records are kept by identity, with a reference to each (so its id
    cannot be reused while it is kept), the oldest forgotten first beyond ``size``.
    """

    __slots__ = ("_by_id", "_size")

    def __init__(self, size: int) -> None:
        self._size = size
        self._by_id: dict[int, tuple[Propagation, bytes]] = {}

    def fragment(self, record: Propagation) -> bytes:
        """``record``'s document as compact JSON."""
        kept = self._by_id.get(id(record))
        if kept is not None and kept[0] is record:
            return kept[1]
        data = json.dumps(_prop_doc(record), separators=(",", ":")).encode()
        if len(self._by_id) >= self._size:
            del self._by_id[next(iter(self._by_id))]
        self._by_id[id(record)] = (record, data)
        return data


_DONE_FRAGMENTS = DoneFragments(4096)
"""Some ten seconds of completions at the bench's 1,000 events/s (a few MB of JSON)."""


def decode_done(data: bytes) -> tuple[Propagation, ...]:
    """One subject's completed propagations from changelog bytes."""
    return tuple(_prop_from_doc(d) for d in json.loads(data))


_PENDING_FRAGMENTS = DoneFragments(4096)
"""Pending propagations of the subjects written in the last few batches."""


def encode_pending(value: SubjectPropagations) -> bytes:
    """Changelog bytes of one subject's pending propagations and early receipts: the
    JSON of ``{"p": [records' documents], "o": [orphans]}``, each unchanged record's
    document made once (:class:`DoneFragments`)."""
    orphans = (
        json.dumps(
            [
                [o.event_id, o.instruction_id, o.outcome.value, o.applied_at_ms, o.received_at_ms]
                for o in value.orphans
            ],
            separators=(",", ":"),
        ).encode()
        if value.orphans
        else b"[]"
    )
    return b"".join(
        (
            b'{"p":[',
            b",".join([_PENDING_FRAGMENTS.fragment(r) for r in value.pending]),
            b'],"o":',
            orphans,
            b"}",
        )
    )


def decode_pending(data: bytes) -> SubjectPropagations:
    """One subject's pending propagations from changelog bytes."""
    doc = json.loads(data)
    return SubjectPropagations(
        tuple(_prop_from_doc(d) for d in doc["p"]),
        tuple(
            Orphan(eid, iid, Outcome(outcome), applied, received)
            for eid, iid, outcome, applied, received in doc["o"]
        ),
    )


def _prop_doc(record: Propagation) -> dict[str, Any]:
    return {
        "e": record.event_id,
        "t": record.event_type,
        "k": record.subject_kind.value,
        "o": record.occurred_at_ms,
        "i": record.issued_at_ms,
        "r": dict(record.required),
        "a": {
            label: [a.outcome.value, a.applied_at_ms, a.instruction_id]
            for label, a in record.answers.items()
        },
        "c": record.completed_at_ms,
    }


def _prop_from_doc(doc: dict[str, Any]) -> Propagation:
    return Propagation(
        event_id=doc["e"],
        event_type=doc["t"],
        subject_kind=SubjectKind(doc["k"]),
        occurred_at_ms=doc["o"],
        issued_at_ms=doc["i"],
        required=dict(doc["r"]),
        answers={label: Answer(Outcome(o), at, iid) for label, (o, at, iid) in doc["a"].items()},
        completed_at_ms=doc["c"],
    )
