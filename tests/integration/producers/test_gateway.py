"""The HTTP gateway as a real process, over real HTTP, publishing to the real broker."""

from __future__ import annotations

import json
from pathlib import Path

import httpx

from producers.gateway import unsubscribe
from schemas.events import ConsentChanged, CookiePreferencesSet, RightsRequested
from schemas.runtime.kafka import KafkaSettings
from schemas.taxonomy import Choice, Purpose, Regime, Right, Source, SubjectKind

from .conftest import UNSUBSCRIBE_KEY, read_back, start_gateway

CRM = {"Authorization": "Bearer crm-token"}
WEB = {"Authorization": "Bearer web-token"}


def subject(sid: str, kind: str = "ACCOUNT") -> dict[str, str]:
    return {"id": sid, "kind": kind}


def test_accepted_requests_are_on_the_topic_in_order(
    relay_settings: KafkaSettings, relay_env: dict[str, str], tmp_path: Path
) -> None:
    with start_gateway(relay_env, tmp_path) as gw, httpx.Client(base_url=gw.url) as http:
        withdrawn = http.post(
            "/v1/consents",
            headers=CRM,
            json={
                "subject": subject("g-1"),
                "choice": "WITHDRAWN",
                "purposes": ["MARKETING_EMAIL", "MARKETING_SMS"],
                "evidence_ref": "crm-ticket-1",
            },
        )
        erased = http.post(
            "/v1/rights",
            headers={**CRM, "Sec-GPC": "1"},
            json={"subject": subject("g-1"), "right": "ERASURE"},
        )
        cookies = http.post(
            "/v1/cookie-preferences",
            headers=WEB,
            json={
                "subject": subject("dev-7", "DEVICE"),
                "device_id": "dev-7",
                "granted": ["STATISTICS"],
                "refused": ["MARKETING"],
                "occurred_at": "2024-03-01T12:00:00+01:00",
            },
        )
    assert withdrawn.status_code == 202, withdrawn.text
    assert erased.status_code == 202, erased.text
    assert cookies.status_code == 202, cookies.text
    assert set(erased.json()) == {"event_id", "gpc_event_id"}

    received = read_back(relay_settings, relay_settings.topics.consent, 4)
    by_id = {r.record.event_id: r for r in received}
    change = by_id[withdrawn.json()["event_id"]].record
    assert isinstance(change, ConsentChanged)
    assert change.choice is Choice.WITHDRAWN
    assert change.purposes == (Purpose.MARKETING_EMAIL, Purpose.MARKETING_SMS)
    assert change.source is Source.API
    assert change.evidence_ref == "crm-ticket-1"
    gpc = by_id[erased.json()["gpc_event_id"]]
    erasure = by_id[erased.json()["event_id"]]
    assert isinstance(gpc.record, RightsRequested)
    assert gpc.record.right is Right.OPT_OUT_OF_SALE_OR_SHARING
    assert gpc.record.source is Source.GPC_SIGNAL
    assert gpc.record.regime is Regime.CCPA
    assert erasure.record.right is Right.ERASURE
    assert gpc.record.occurred_at <= erasure.record.occurred_at  # observed on arrival
    # One subject, one partition; the GPC opt-out first, after the earlier withdrawal.
    assert gpc.partition == erasure.partition == by_id[change.event_id].partition
    assert by_id[change.event_id].offset < gpc.offset < erasure.offset
    prefs = by_id[cookies.json()["event_id"]].record
    assert isinstance(prefs, CookiePreferencesSet)
    assert prefs.subject.kind is SubjectKind.DEVICE
    assert prefs.occurred_at.isoformat() == "2024-03-01T11:00:00+00:00"


def test_rejected_requests_publish_nothing(
    relay_settings: KafkaSettings, relay_env: dict[str, str], tmp_path: Path
) -> None:
    good = {"subject": subject("g-2"), "choice": "WITHDRAWN", "purposes": ["MARKETING_EMAIL"]}
    with start_gateway(relay_env, tmp_path) as gw, httpx.Client(base_url=gw.url) as http:
        no_token = http.post("/v1/consents", json=good)
        wrong_scheme = http.post("/v1/consents", json=good, headers={"Authorization": "Basic x"})
        bad_token = http.post("/v1/consents", json=good, headers={"Authorization": "Bearer x"})
        not_allowed = http.post("/v1/consents", headers=CRM, json={**good, "choice": "GRANTED"})
        malformed = http.post(
            "/v1/consents",
            headers={**WEB, "Content-Type": "application/json"},
            content=b'{"subject": ',
        )
        empty = http.post("/v1/consents", headers=WEB, content=b"")
        oversize = http.post(
            "/v1/consents",
            headers=WEB,
            json={**good, "evidence_ref": "x" * 20_000},
        )
        unknown_purpose = http.post(
            "/v1/consents", headers=WEB, json={**good, "purposes": ["MIND_READING"]}
        )
        unknown_field = http.post("/v1/consents", headers=WEB, json={**good, "colour": "red"})
        contract = http.post(
            "/v1/consents", headers=WEB, json={**good, "purposes": ["ACCOUNT_MANAGEMENT"]}
        )
        guardian = http.post(
            "/v1/rights", headers=WEB, json={"subject": subject("g-2"), "right": "ERASURE_OF_MINOR"}
        )
        not_an_object = http.post("/v1/rights", headers=WEB, json=["ERASURE"])
        accepted = http.post("/v1/consents", headers=CRM, json=good)
        log = gw.log()

    assert no_token.status_code == 401
    assert no_token.headers["WWW-Authenticate"] == "Bearer"
    assert wrong_scheme.status_code == 401
    assert bad_token.status_code == 401  # RFC 6750: an unknown token is invalid_token
    assert not_allowed.status_code == 403
    assert "grant" in not_allowed.json()["detail"]
    assert malformed.status_code == 400
    assert empty.status_code == 400
    assert oversize.status_code == 413
    for response, field in [
        (unknown_purpose, "purposes"),
        (unknown_field, "colour"),
        (contract, "purposes"),
        (guardian, "requested_by"),
        (not_an_object, "RightsRequested"),
    ]:
        assert response.status_code == 422, response.text
        assert response.headers["Content-Type"].startswith("application/problem+json")
        assert response.json()["field"] == field
    assert "MIND_READING" in unknown_purpose.json()["detail"]
    assert accepted.status_code == 202

    # Only the accepted request reached the topic: it is the first message there.
    (only,) = read_back(relay_settings, relay_settings.topics.consent, 1)
    assert only.record.event_id == accepted.json()["event_id"]
    # Tokens and subject ids never reach the log.
    assert "crm-token" not in log
    assert "web-token" not in log
    assert "g-2" not in log


def test_one_click_unsubscribe(
    relay_settings: KafkaSettings, relay_env: dict[str, str], tmp_path: Path
) -> None:
    link = unsubscribe.link("http://ignored", UNSUBSCRIBE_KEY, "mail-42")
    path_and_query = link.removeprefix("http://ignored")
    forged = path_and_query.replace("mail-42", "mail-43")
    one_click = {"List-Unsubscribe": "One-Click"}
    with start_gateway(relay_env, tmp_path) as gw, httpx.Client(base_url=gw.url) as http:
        forged_response = http.post(forged, data=one_click)
        unsigned = http.post("/v1/unsubscribe?s=mail-42", data=one_click)
        wrong_body = http.post(path_and_query, data={"List-Unsubscribe": "Yes-Please"})
        get = http.get(path_and_query)
        ok = http.post(path_and_query, data=one_click, headers={"Sec-GPC": "1"})
        log = gw.log()
    assert forged_response.status_code == 403
    assert unsigned.status_code == 403
    assert wrong_body.status_code == 400
    assert get.status_code == 405
    assert ok.status_code == 202, ok.text

    received = read_back(relay_settings, relay_settings.topics.consent, 2)
    gpc, withdrawal = (r.record for r in received)
    assert gpc.event_id == ok.json()["gpc_event_id"]
    assert gpc.source is Source.GPC_SIGNAL
    assert isinstance(withdrawal, ConsentChanged)
    assert withdrawal.event_id == ok.json()["event_id"]
    assert withdrawal.subject.id == "mail-42"
    assert withdrawal.choice is Choice.WITHDRAWN
    assert withdrawal.purposes == (Purpose.MARKETING_EMAIL,)
    assert withdrawal.source is Source.UNSUBSCRIBE_LINK
    assert "mail-42" not in log


def test_openapi_metrics_and_readiness(
    relay_settings: KafkaSettings, relay_env: dict[str, str], tmp_path: Path
) -> None:
    body = {"subject": subject("g-3"), "choice": "WITHDRAWN", "purposes": ["MARKETING_EMAIL"]}
    with start_gateway(relay_env, tmp_path) as gw, httpx.Client(base_url=gw.url) as http:
        assert http.post("/v1/consents", headers=CRM, json=body).status_code == 202
        assert http.post("/v1/consents", headers=CRM, json={}).status_code == 422
        assert http.get("/nowhere/g-3").status_code == 404
        spec = http.get("/openapi.json")
        ready = http.get("/readyz")
        metrics = http.get("/metrics").text
    assert gw.process.returncode == 0  # SIGTERM: drained, flushed, closed cleanly
    assert "Traceback" not in gw.log()
    assert spec.status_code == 200
    assert json.loads(spec.text)["paths"]["/v1/consents"]["post"]["responses"]["202"]
    assert ready.status_code == 200
    assert 'consent_relay_gateway_requests_total{route="/v1/consents",status="202"} 1.0' in metrics
    assert 'consent_relay_gateway_requests_total{route="/v1/consents",status="422"} 1.0' in metrics
    assert 'consent_relay_gateway_requests_total{route="unmatched",status="404"} 1.0' in metrics
    assert (
        'consent_relay_gateway_request_seconds_bucket{le="0.005",route="/v1/consents"}' in metrics
    )
    assert (
        'consent_relay_events_published_total{event_type="ConsentChanged",source="API"} 1.0'
        in metrics
    )
    assert "g-3" not in metrics
