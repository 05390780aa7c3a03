"""The gateway's OpenAPI 3.1 document, derived from the event records themselves.

Request bodies are JSON Schemas walked from the :mod:`schemas.events` dataclasses (field
docs, enum symbols, list and time formats), so the document cannot drift from what the
gateway accepts. Served at ``GET /openapi.json``.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from datetime import datetime
from enum import StrEnum
from typing import Any

from producers.drafts import FILLED_IN
from schemas.events import ConsentChanged, ConsentEvent, CookiePreferencesSet, RightsRequested

PUBLISH_ROUTES: dict[str, tuple[type[ConsentEvent], str]] = {
    "/v1/consents": (ConsentChanged, "Grant or withdraw consent for purposes."),
    "/v1/rights": (
        RightsRequested,
        "Exercise a right: refuse marketing, object, restrict, erase, opt out, access, ...",
    ),
    "/v1/cookie-preferences": (CookiePreferencesSet, "Save cookie preferences for a device."),
}
"""Route → (record it publishes, summary)."""


def json_schema(tp: Any, components: dict[str, Any]) -> dict[str, Any]:
    """The JSON Schema of a record field type; records and enums become components."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        inner = json_schema(next(a for a in args if a is not type(None)), components)
        return {"anyOf": [inner, {"type": "null"}]}
    if origin is tuple:
        return {"type": "array", "items": json_schema(args[0], components), "uniqueItems": True}
    if isinstance(tp, type) and issubclass(tp, StrEnum):
        components.setdefault(
            tp.__name__,
            {"type": "string", "enum": [m.value for m in tp], "description": _doc(tp)},
        )
        return {"$ref": f"#/components/schemas/{tp.__name__}"}
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        if tp.__name__ not in components:
            components[tp.__name__] = {}  # placeholder against recursion
            components[tp.__name__] = record_schema(tp, components)
        return {"$ref": f"#/components/schemas/{tp.__name__}"}
    if tp is datetime:
        return {
            "type": "string",
            "format": "date-time",
            "description": "ISO-8601 with a timezone (or epoch milliseconds)",
        }
    return {"type": {str: "string", bool: "boolean", int: "integer", bytes: "string"}[tp]}


def record_schema(cls: type[Any], components: dict[str, Any]) -> dict[str, Any]:
    """A record as a JSON object schema; envelope fields the gateway fills are optional."""
    hints = typing.get_type_hints(cls)
    properties: dict[str, Any] = {}
    required: list[str] = []
    for f in dataclasses.fields(cls):
        prop = json_schema(hints[f.name], components)
        properties[f.name] = {**prop, "description": f.metadata.get("doc", "")}
        has_default = (
            f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING
        )
        if not has_default and f.name not in FILLED_IN:
            required.append(f.name)
    return {
        "type": "object",
        "description": _doc(cls),
        "properties": properties,
        "required": required,
        "additionalProperties": False,
    }


def document() -> dict[str, Any]:
    """The whole OpenAPI document."""
    components: dict[str, Any] = {
        "Accepted": {
            "type": "object",
            "properties": {
                "event_id": {"type": "string", "format": "uuid"},
                "gpc_event_id": {
                    "type": "string",
                    "format": "uuid",
                    "description": "Set when a Sec-GPC: 1 header was recorded as an opt-out.",
                },
            },
            "required": ["event_id"],
        },
        "Problem": {
            "type": "object",
            "description": "RFC 9457 problem details; `field` names the offending field.",
            "properties": {
                "title": {"type": "string"},
                "status": {"type": "integer"},
                "detail": {"type": "string"},
                "field": {"type": "string"},
            },
        },
    }
    paths: dict[str, Any] = {}
    for path, (record, summary) in PUBLISH_ROUTES.items():
        paths[path] = {
            "post": {
                "summary": summary,
                "security": [{"bearer": []}],
                "parameters": [_gpc_header()],
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": json_schema(record, components)}},
                },
                "responses": _responses(),
            }
        }
    paths["/v1/unsubscribe"] = {
        "post": {
            "summary": "RFC 8058 one-click unsubscribe: withdraw email marketing consent.",
            "parameters": [
                {"name": "s", "in": "query", "required": True, "schema": {"type": "string"}},
                {
                    "name": "sig",
                    "in": "query",
                    "required": True,
                    "schema": {"type": "string"},
                    "description": "hex HMAC-SHA256 of `s` under the gateway's unsubscribe key",
                },
                _gpc_header(),
            ],
            "requestBody": {
                "required": True,
                "content": {
                    "application/x-www-form-urlencoded": {
                        "schema": {
                            "type": "object",
                            "properties": {"List-Unsubscribe": {"const": "One-Click"}},
                            "required": ["List-Unsubscribe"],
                        }
                    }
                },
            },
            "responses": {k: v for k, v in _responses().items() if k != "401"},
        }
    }
    for path, summary in {
        "/healthz": "Liveness.",
        "/readyz": "Readiness: 200 when the broker answers, else 503.",
        "/metrics": "Prometheus metrics.",
        "/openapi.json": "This document.",
    }.items():
        paths[path] = {"get": {"summary": summary, "responses": {"200": {"description": "OK"}}}}
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Consent Relay gateway",
            "version": "1",
            "description": "Publish consent events to Consent Relay over HTTP. A 202 means the "
            "Kafka broker acknowledged the event (acks=all); a 503 means it did not and the "
            "request should be retried (send the same event_id to keep it idempotent).",
        },
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }


def _gpc_header() -> dict[str, Any]:
    return {
        "name": "Sec-GPC",
        "in": "header",
        "required": False,
        "schema": {"type": "string", "enum": ["1"]},
        "description": "Global Privacy Control: also records an opt-out of sale/sharing (CCPA).",
    }


def _responses() -> dict[str, Any]:
    problem = {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}
    accepted = {"application/json": {"schema": {"$ref": "#/components/schemas/Accepted"}}}
    return {
        "202": {"description": "The broker acknowledged the event.", "content": accepted},
        "400": {
            "description": "Not plain JSON: malformed, nested too deeply, a member twice, NaN.",
            "content": problem,
        },
        "401": {
            "description": "No bearer token, or an unknown one (RFC 6750 invalid_token).",
            "content": problem,
        },
        "403": {
            "description": "Action not allowed (checked before the body), or forged link.",
            "content": problem,
        },
        "408": {
            "description": "The body did not arrive within the read deadline; connection closed.",
            "content": problem,
        },
        "413": {"description": "Body too large.", "content": problem},
        "422": {"description": "Invalid event; `field` names the field.", "content": problem},
        "503": {"description": "The broker did not acknowledge; retry.", "content": problem},
    }


def _doc(obj: Any) -> str:
    return " ".join((obj.__doc__ or "").split())
