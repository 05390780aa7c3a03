"""Defaults and per-call overrides for the envelope every consent event carries.

A service sets its collection method, regime and policy version once
(:class:`EnvelopeDefaults`); a call may override any of them, and may pass its own
``event_id`` so that a retry after a failed delivery is recognised downstream as the
same event.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TypedDict

from schemas.events import Subject, new_event_id, utc_now
from schemas.taxonomy import PolicyVersion, Regime, Source, SubjectKind


class Envelope(TypedDict, total=False):
    """Optional envelope overrides accepted by every typed client method."""

    event_id: str
    occurred_at: datetime
    source: Source
    regime: Regime
    policy_version: PolicyVersion
    evidence_ref: str | None


@dataclass(frozen=True, slots=True, kw_only=True)
class EnvelopeDefaults:
    """What a service's events carry unless a call says otherwise."""

    source: Source = Source.API
    regime: Regime = Regime.GDPR
    policy_version: PolicyVersion = PolicyVersion.V2019_07_15

    def fill(self, overrides: Envelope) -> dict[str, object]:
        """The complete envelope keyword arguments for one event, recorded now."""
        now = utc_now()
        return {
            "event_id": overrides.get("event_id") or new_event_id(),
            "occurred_at": overrides.get("occurred_at") or now,
            "recorded_at": now,
            "source": overrides.get("source", self.source),
            "regime": overrides.get("regime", self.regime),
            "policy_version": overrides.get("policy_version", self.policy_version),
            "evidence_ref": overrides.get("evidence_ref"),
        }


def as_subject(subject: Subject | str, kind: SubjectKind = SubjectKind.ACCOUNT) -> Subject:
    """A :class:`Subject` from a record or a bare id (an account unless ``kind`` says)."""
    return subject if isinstance(subject, Subject) else Subject(id=subject, kind=kind)
