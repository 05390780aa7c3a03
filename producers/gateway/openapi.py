"""The gateway's OpenAPI 3.1 document, generated from what the gateway runs with.

- Request bodies: pydantic's JSON Schema generator run over the :mod:`schemas.events`
  records that :func:`producers.drafts.build` validates each body into, plus the rules of
  :func:`schemas.converters.from_dict` and the contract it cannot see in the types (field
  docs, unknown fields refused, list members unique, times also as epoch milliseconds,
  the envelope fields a draft may leave out not required).
- Responses: the :class:`~producers.gateway.handlers.Accepted` and
  :class:`~producers.gateway.problems.Problem` types the handlers build their bodies as.
- Paths: every route registered on the application, so a new route cannot be missed.

Served at ``GET /openapi.json``.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from typing import Any, Final

from aiohttp import web
from pydantic import TypeAdapter
from pydantic.json_schema import GenerateJsonSchema, JsonSchemaMode, JsonSchemaValue
from pydantic_core import core_schema

from producers.drafts import FILLED_IN
from producers.gateway import unsubscribe
from producers.gateway.handlers import Accepted
from producers.gateway.problems import PROBLEM_JSON, Problem
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

REF: Final = "#/components/schemas/{model}"
TIME: Final = "ISO-8601 with a timezone (or epoch milliseconds)"


class ContractSchema(GenerateJsonSchema):
    """pydantic's generator, told what :mod:`schemas.converters` enforces beyond the types."""

    def dataclass_schema(self, schema: core_schema.DataclassSchema) -> JsonSchemaValue:
        """A record: each field documented by its ``doc``, unknown fields refused."""
        generated = super().dataclass_schema(schema)
        docs = {f.name: f.metadata.get("doc") for f in dataclasses.fields(schema["cls"])}
        for name, prop in generated.get("properties", {}).items():
            if docs.get(name):
                prop["description"] = docs[name]
        generated["additionalProperties"] = False
        return generated

    def tuple_schema(self, schema: core_schema.TupleSchema) -> JsonSchemaValue:
        """A record's list: the contract refuses a member listed twice."""
        generated = super().tuple_schema(schema)
        if schema.get("variadic_item_index") is not None:
            generated["uniqueItems"] = True
        return generated

    def datetime_schema(self, schema: core_schema.DatetimeSchema) -> JsonSchemaValue:
        """A time: ISO-8601 text, which the converters also take as epoch milliseconds."""
        return {**super().datetime_schema(schema), "description": TIME}


@functools.cache
def _schemas() -> tuple[dict[type[Any], JsonSchemaValue], dict[str, JsonSchemaValue]]:
    """Each body and answer type's ``$ref``, and the components they refer to."""
    kinds: list[type[Any]] = [kind for kind, _summary in PUBLISH_ROUTES.values()]
    mode: JsonSchemaMode = "validation"
    inputs = [(kind, mode, TypeAdapter[Any](kind)) for kind in [*kinds, Accepted, Problem]]
    refs, defs = TypeAdapter.json_schemas(inputs, ref_template=REF, schema_generator=ContractSchema)
    components: dict[str, JsonSchemaValue] = defs.get("$defs", {})
    for kind in kinds:
        record = components[kind.__name__]
        record["required"] = [name for name in record["required"] if name not in FILLED_IN]
    return {kind: ref for (kind, _mode), ref in refs.items()}, components


def document(app: web.Application) -> dict[str, Any]:
    """The OpenAPI document of ``app``'s routes."""
    refs, components = _schemas()
    paths: dict[str, dict[str, Any]] = {}
    for route in app.router.routes():
        if route.method == "HEAD" or route.resource is None:
            continue  # aiohttp answers HEAD on every GET route
        path = route.resource.canonical
        paths.setdefault(path, {})[route.method.lower()] = _operation(path, route.handler, refs)
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


async def serve(request: web.Request) -> web.Response:
    """This document."""
    return web.json_response(document(request.app))


def _operation(
    path: str, handler: Callable[..., Any], refs: dict[type[Any], JsonSchemaValue]
) -> dict[str, Any]:
    if path in PUBLISH_ROUTES:
        record, summary = PUBLISH_ROUTES[path]
        return {
            "summary": summary,
            "security": [{"bearer": []}],
            "parameters": [_GPC_HEADER],
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": refs[record]}},
            },
            "responses": _responses(refs),
        }
    if path == unsubscribe.PATH:
        return {
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
                _GPC_HEADER,
            ],
            "requestBody": {"required": True, "content": _one_click_form()},
            "responses": {k: v for k, v in _responses(refs).items() if k != "401"},
        }
    summary = " ".join((handler.__doc__ or "").split())
    return {"summary": summary, "responses": {"200": {"description": "OK"}}}


_GPC_HEADER: Final = {
    "name": "Sec-GPC",
    "in": "header",
    "required": False,
    "schema": {"type": "string", "enum": ["1"]},
    "description": "Global Privacy Control: also records an opt-out of sale/sharing (CCPA).",
}


def _one_click_form() -> dict[str, Any]:
    field = unsubscribe.ONE_CLICK_FIELD
    schema = {
        "type": "object",
        "properties": {field: {"const": unsubscribe.ONE_CLICK_VALUE}},
        "required": [field],
    }
    return {"application/x-www-form-urlencoded": {"schema": schema}}


def _responses(refs: dict[type[Any], JsonSchemaValue]) -> dict[str, Any]:
    problem = {PROBLEM_JSON: {"schema": refs[Problem]}}
    accepted = {"application/json": {"schema": refs[Accepted]}}
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
