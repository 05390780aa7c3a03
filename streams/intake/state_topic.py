"""The state table's changelog is the contract's state topic: reading it back.

Intake publishes each changed subject's state once per batch as a
:class:`~schemas.events.ConsentStateRecorded` on ``consent.state`` (compacted, keyed by
subject, on the subject's consent partition number), with the whole state in its
``history`` (:func:`streams.intake.records.consent_state`). That one record is what the sinks
seed from, what the worker's ``consent-state`` table recovers and keeps its standbys
from (:mod:`streams.engine.faust_codecs`), and what the consent gate, its own process, rebuilds
its subjects from (:mod:`streams.gate.state`). This module turns such a record back
into the :class:`~streams.intake.resolution.SubjectState` it was made from. It does not import
Faust: the gate must not load it.

A record without ``history`` (written before the field existed) still gives a state,
from what it has: each entry becomes its key's only decision (its recipient's, for an
entry that names one; entries written before ``ConsentEntry.recipient`` existed name
none), a restriction counts from the start of time and an erasure from when the record
was computed, which withholds more data at the gate, never less. Past decisions, and the
choices limited to a recipient of writers older than that field, are not in such a
record: ``python -m streams.intake.upgrade_state`` rewrites an existing
deployment's states with their history from the old table changelog before the first
start of a worker that recovers from this topic.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Final

from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.error import SchemaRegistryError

from schemas.codec import REGISTRY_TRANSPORT_ERRORS, EventDecoder, subject_name
from schemas.errors import ConsentRelayError, RegistryUnavailableError
from schemas.events import ConsentStateRecorded
from schemas.taxonomy import Choice, Purpose, Recipient, Regime, SubjectKind
from streams.intake.resolution import ConsentKey, Decision, Erasure, SubjectState, Toggle
from streams.intake.times import to_ms

_PURPOSES: Final = {m.value: m for m in Purpose}
_REGIMES: Final = {m.value: m for m in Regime}
_RECIPIENTS: Final = {m.value: m for m in Recipient}
_CHOICES: Final = {m.value: m for m in Choice}
_KINDS: Final = {m.value: m for m in SubjectKind}


class StateRecordError(ConsentRelayError):
    """A state topic record that is not a subject's state this code can apply."""


class StateReader:
    """Reads state topic records (Confluent wire format) into subject states.

    Writer schemas come from the registry by id, once each (:class:`EventDecoder`);
    :meth:`prefetch` looks up every registered version of the state record ahead, so
    reading needs no registry call at all in the usual case.
    """

    def __init__(self, decoder: EventDecoder) -> None:
        self.decoder = decoder

    def prefetch(self, registry: SchemaRegistryClient) -> int:
        """Look up every registered version of the state record now, so that a table's
        recovery (inside Faust, where a failed read is only logged) does not depend on
        the registry answering then; how many. RegistryUnavailableError if it is down."""
        subject = subject_name(ConsentStateRecorded)
        try:
            versions = registry.get_versions(subject)
            ids = [registry.get_version(subject, v).schema_id for v in versions]
        except SchemaRegistryError as exc:
            if exc.http_status_code == 404:
                return 0  # nothing registered yet: nothing written yet
            raise RegistryUnavailableError(f"{subject}: registry error: {exc}") from exc
        except REGISTRY_TRANSPORT_ERRORS as exc:
            raise RegistryUnavailableError(f"schema registry unreachable: {exc}") from exc
        for schema_id in ids:
            if schema_id is not None:
                self.decoder.prefetch(schema_id)
        return len(ids)

    def read(self, data: bytes) -> SubjectState:
        """The subject state in ``data``; InvalidEventError, RegistryUnavailableError or
        :class:`StateRecordError` if it cannot be read."""
        # Times as the longs on the wire: the state keeps epoch ms, and fastavro's
        # datetimes were half the cost of reading a state (the gate reads every one).
        event_type, record = self.decoder.decode_dict(data, epoch_ms=True)
        if event_type is not ConsentStateRecorded:
            raise StateRecordError(f"{event_type.__name__} where a state record was expected")
        return state_from_avro(record)


def state_from_avro(record: dict[str, Any]) -> SubjectState:
    """The subject state of a ConsentStateRecorded's Avro dict (as fastavro reads it)."""
    try:
        kind = _KINDS[record["subject"]["kind"]]
        history = record.get("history")
        if history is None:
            return _from_entries(kind, record)
        decisions: dict[ConsentKey, list[Decision]] = {}
        for d in history["decisions"]:
            recipient = d["recipient"]
            key = (
                _PURPOSES[d["purpose"]],
                _REGIMES[d["regime"]],
                None if recipient is None else _RECIPIENTS[recipient],
            )
            expires = d["expires_at"]
            decision = Decision(
                _ms(d["occurred_at"]),
                _CHOICES[d["choice"]],
                d["event_id"],
                None if expires is None else _ms(expires),
            )
            decisions.setdefault(key, []).append(decision)
        erasure = history["erasure"]
        return SubjectState(
            kind,
            {key: tuple(kept) for key, kept in decisions.items()},
            tuple(
                Toggle(_ms(t["occurred_at"]), t["restricted"], t["event_id"])
                for t in history["restrictions"]
            ),
            None if erasure is None else Erasure(_ms(erasure["occurred_at"]), erasure["event_id"]),
        )
    except (KeyError, TypeError, AttributeError) as exc:
        # An UNKNOWN symbol (a newer writer's) or a malformed record: deciding without
        # this subject's state could let withdrawn data through, so it is an error.
        raise StateRecordError(f"a state record cannot be read: {exc!r}") from exc


def _from_entries(kind: SubjectKind, record: dict[str, Any]) -> SubjectState:
    """What a record without history says (see the module's docstring)."""
    decisions: dict[ConsentKey, tuple[Decision, ...]] = {}
    for e in record["entries"]:
        # .get: a record read without resolution to today's schema may lack the field.
        recipient = e.get("recipient")
        key = (
            _PURPOSES[e["purpose"]],
            _REGIMES[e["regime"]],
            None if recipient is None else _RECIPIENTS[recipient],
        )
        decisions[key] = (Decision(_ms(e["occurred_at"]), _CHOICES[e["choice"]], e["event_id"]),)
    updated = _ms(record["updated_at"])
    return SubjectState(
        kind,
        decisions,
        (Toggle(0, True, ""),) if record["restricted"] else (),
        Erasure(updated, "") if record["erased"] else None,
    )


def _ms(value: datetime | int) -> int:
    """Epoch ms of a timestamp-millis as fastavro reads it (a datetime) or as written."""
    return value if isinstance(value, int) else to_ms(value)
