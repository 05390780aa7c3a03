"""The OpenAPI document follows the records the gateway accepts."""

from __future__ import annotations

import json

from producers.gateway.openapi import document
from schemas.taxonomy import Purpose, Right


def test_routes_and_schemas() -> None:
    doc = document()
    json.dumps(doc)  # serializable as served
    assert doc["openapi"].startswith("3.1")
    assert {"/v1/consents", "/v1/rights", "/v1/cookie-preferences", "/v1/unsubscribe"} <= set(
        doc["paths"]
    )
    schemas = doc["components"]["schemas"]
    assert schemas["Purpose"]["enum"] == [p.value for p in Purpose]
    assert schemas["Right"]["enum"] == [r.value for r in Right]
    consent = schemas["ConsentChanged"]
    assert set(consent["required"]) == {"subject", "choice", "purposes"}
    assert consent["additionalProperties"] is False
    assert consent["properties"]["occurred_at"]["format"] == "date-time"
    post = doc["paths"]["/v1/consents"]["post"]
    assert {"202", "400", "401", "403", "408", "413", "422", "503"} <= set(post["responses"])
    assert post["security"] == [{"bearer": []}]
