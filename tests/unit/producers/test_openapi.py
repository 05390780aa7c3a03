"""The OpenAPI document is valid OpenAPI 3.1, covers every route the gateway registers,
and describes the bodies the gateway validates (the records, as the converters read them)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from aiohttp import web
from openapi_spec_validator import validate
from prometheus_client import CollectorRegistry

from producers.drafts import FILLED_IN
from producers.gateway.app import create_app
from producers.gateway.openapi import PUBLISH_ROUTES, document
from producers.gateway.settings import GatewaySettings
from producers.gateway.tokens import Caller, TokenBook
from schemas.runtime.kafka import KafkaSettings
from schemas.taxonomy import Purpose, Right


@pytest.fixture
def app() -> web.Application:
    """The gateway's application, not started (no broker is reached)."""
    return create_app(
        GatewaySettings(tokens_file=Path("unused.toml"), unsubscribe_key="k" * 32),
        KafkaSettings(bootstrap="127.0.0.1:9", registry_url="http://127.0.0.1:9"),
        tokens=TokenBook({"token": Caller("tester", frozenset())}),
        registry=CollectorRegistry(),
    )


def test_the_document_is_valid_openapi(app: web.Application) -> None:
    doc = document(app)
    json.dumps(doc)  # serializable as served
    assert doc["openapi"].startswith("3.1")
    validate(doc)


def test_every_registered_route_is_documented(app: web.Application) -> None:
    paths = document(app)["paths"]
    registered = {
        (route.resource.canonical, route.method.lower())
        for route in app.router.routes()
        if route.resource is not None and route.method != "HEAD"
    }
    documented = {(path, method) for path, ops in paths.items() for method in ops}
    assert documented == registered
    assert {"/v1/consents", "/v1/rights", "/v1/cookie-preferences", "/v1/unsubscribe"} <= set(paths)


def test_bodies_are_the_records_the_gateway_builds(app: web.Application) -> None:
    doc = document(app)
    schemas = doc["components"]["schemas"]
    assert schemas["Purpose"]["enum"] == [p.value for p in Purpose]
    assert schemas["Right"]["enum"] == [r.value for r in Right]
    consent = schemas["ConsentChanged"]
    assert set(consent["required"]) == {"subject", "choice", "purposes"}
    assert not FILLED_IN & set(consent["required"])
    assert consent["additionalProperties"] is False
    assert consent["properties"]["occurred_at"]["format"] == "date-time"
    assert consent["properties"]["purposes"]["uniqueItems"] is True
    assert consent["properties"]["choice"]["description"].startswith("GRANTED or WITHDRAWN")
    assert schemas["Subject"]["required"] == ["id", "kind"]
    for path, (record, _summary) in PUBLISH_ROUTES.items():
        body = doc["paths"][path]["post"]["requestBody"]["content"]["application/json"]
        assert body["schema"] == {"$ref": f"#/components/schemas/{record.__name__}"}


def test_answers_are_the_types_the_handlers_send(app: web.Application) -> None:
    doc = document(app)
    schemas = doc["components"]["schemas"]
    assert schemas["Accepted"]["required"] == ["event_id"]
    assert set(schemas["Problem"]["properties"]) == {"title", "status", "detail", "field"}
    post = doc["paths"]["/v1/consents"]["post"]
    assert {"202", "400", "401", "403", "408", "413", "422", "503"} <= set(post["responses"])
    assert post["security"] == [{"bearer": []}]
    problem = post["responses"]["422"]["content"]["application/problem+json"]["schema"]
    assert problem == {"$ref": "#/components/schemas/Problem"}
