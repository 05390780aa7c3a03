"""The marketing sink's HTTP API: ``GET /v1/may-contact?subject=&channel=&purpose=``.

Answers ``{"allowed": bool, "reason": str}`` from the same database the sink writes,
so the answer is right the moment a receipt says APPLIED. Bad parameters get 400, a
subject id the contract's id rule refuses (a control character, say) too, without being
looked up; a database that is down 503. Parameters are never logged (they hold a subject
id). The route answers about a person, so :class:`~schemas.runtime.http_server.HttpServer` serves it
only to ``Authorization: Bearer <MARKETING_SINK_API_TOKEN>`` (401 otherwise, and to
everyone when no token is configured).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TypeVar

from consumers.marketing.store import MarketingStore
from schemas.runtime.http_server import BadRequestError, Response, Route, identifier_param
from schemas.taxonomy import Channel, Purpose

E = TypeVar("E", Channel, Purpose)


def routes(store: MarketingStore) -> dict[str, Route]:
    """Path → handler for the marketing API."""

    def may_contact(query: Mapping[str, str]) -> Response:
        subject = identifier_param(query, "subject")
        channel = _member(Channel, _required(query, "channel"), "channel")
        purpose = _member(Purpose, _required(query, "purpose"), "purpose")
        decision = store.may_contact(subject, channel, purpose)
        return Response.json(200, {"allowed": decision.allowed, "reason": decision.reason})

    return {"/v1/may-contact": may_contact}


def _required(query: Mapping[str, str], name: str) -> str:
    value = query.get(name, "").strip()
    if not value:
        raise BadRequestError(f"query parameter {name!r} is required")
    return value


def _member(enum: type[E], value: str, name: str) -> E:
    try:
        return enum(value.upper())
    except ValueError as exc:
        raise BadRequestError(f"{name} {value!r} is not one of {', '.join(enum)}") from exc
