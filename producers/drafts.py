"""Consent events from JSON-style documents (HTTP bodies, CLI flags, import rows).

A draft is the record's own field layout (``schemas.converters`` spelling: nested
``subject``, lists, ISO-8601 or epoch-millisecond times). :func:`build` fills what a
caller may leave out (a fresh event id, "now" as event and recording time, the
service's source, regime and policy version) and builds the record through
:func:`schemas.converters.from_dict`, which validates it and names the offending field.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from producers.envelope import EnvelopeDefaults
from schemas.converters import from_dict
from schemas.errors import ValidationError
from schemas.events import CONSENT_EVENT_TYPES, ConsentEvent, new_event_id, utc_now

EVENT_TYPES: Final[Mapping[str, type[ConsentEvent]]] = {t.__name__: t for t in CONSENT_EVENT_TYPES}
"""Consent event types by record name."""

FILLED_IN: Final = frozenset(
    {"event_id", "occurred_at", "recorded_at", "source", "regime", "policy_version"}
)
"""Envelope fields a draft may omit."""


def event_type(name: object) -> type[ConsentEvent]:
    """The consent event type called ``name``; ValidationError on ``type`` otherwise."""
    found = EVENT_TYPES.get(name) if isinstance(name, str) else None
    if found is None:
        raise ValidationError("type", f"unknown event type {name!r} (one of {sorted(EVENT_TYPES)})")
    return found


def build(
    kind: type[ConsentEvent],
    draft: Mapping[str, Any],
    defaults: EnvelopeDefaults | None = None,
    *,
    forced: Mapping[str, Any] | None = None,
) -> ConsentEvent:
    """The validated record of ``kind`` for ``draft``; ``forced`` fields override the draft."""
    if not isinstance(draft, Mapping):
        raise ValidationError(kind.__name__, "must be a JSON object")
    defaults = defaults or EnvelopeDefaults()
    now = utc_now()
    data: dict[str, Any] = {
        "event_id": new_event_id(),
        "occurred_at": now,
        "recorded_at": now,
        "source": defaults.source.value,
        "regime": defaults.regime.value,
        "policy_version": defaults.policy_version.value,
    }
    data.update({k: v for k, v in draft.items() if not (k in FILLED_IN and v is None)})
    data.update(forced or {})
    if isinstance(data.get("subject"), str):
        raise ValidationError("subject", 'must be an object: {"id": ..., "kind": "ACCOUNT"}')
    return from_dict(kind, data)


def build_typed(
    draft: Mapping[str, Any],
    defaults: EnvelopeDefaults | None = None,
    *,
    default_type: str | None = None,
    forced: Mapping[str, Any] | None = None,
) -> ConsentEvent:
    """Like :func:`build`, the type named by the draft's ``type`` key (or ``default_type``)."""
    if not isinstance(draft, Mapping):
        raise ValidationError("type", "the event must be a JSON object")
    body = dict(draft)
    kind = event_type(body.pop("type", default_type))
    return build(kind, body, defaults, forced=forced)
