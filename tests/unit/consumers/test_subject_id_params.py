"""A subject id the contract's id rule refuses gets 400 naming the parameter from the
sinks' per-person routes, served by their real HTTP server on this machine, and never
reaches the store (PostgreSQL refuses a NUL in text: the lookup failed instead)."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from consumers.analytics.__main__ import build
from consumers.analytics.settings import AnalyticsSinkSettings
from consumers.marketing.api import routes
from consumers.marketing.database import Database
from consumers.marketing.hashing import AddressHasher
from consumers.marketing.store import MarketingStore
from schemas.runtime.http_server import HttpServer
from schemas.runtime.settings import Secret

TOKEN = "subject-params-test-token-0123"
MARKETING = "/v1/may-contact?channel=EMAIL&purpose=MARKETING_EMAIL&subject="
ANALYTICS = "/may-process?subject_id="
# Percent-encoded as a client would send them: NUL, a newline, ESC, DEL, a C1 control.
SINKS = [(MARKETING, "subject"), (ANALYTICS, "subject_id")]
REFUSED = ("s-1%00", "s-1%0A", "%1B%5B0m", "s%7F1", "s%C2%851")


@pytest.fixture
def asked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, list[str]]]:
    """A server with both sinks' routes on real SQLite stores, and the ids they were asked."""
    marketing = MarketingStore(
        Database(f"sqlite://{tmp_path}/m.db"), AddressHasher(b"subject-params-key-0123")
    )
    analytics = build(AnalyticsSinkSettings(database=tmp_path / "a.sqlite"))
    seen: list[str] = []
    may_contact, may_process = marketing.may_contact, analytics.store.may_process

    def contact(subject_id: str, *args: Any) -> Any:
        seen.append(subject_id)
        return may_contact(subject_id, *args)

    def process(subject_id: str, *args: Any) -> Any:
        seen.append(subject_id)
        return may_process(subject_id, *args)

    monkeypatch.setattr(marketing, "may_contact", contact)
    monkeypatch.setattr(analytics.store, "may_process", process)
    server = HttpServer(
        "127.0.0.1", 0, {**routes(marketing), **analytics.http_routes()}, token=Secret(TOKEN)
    ).start()
    try:
        yield f"http://127.0.0.1:{server.port}", seen
    finally:
        server.stop()
        marketing.close()
        analytics.close()


def get(url: str) -> tuple[int, Any]:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {TOKEN}"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


@pytest.mark.parametrize("subject", REFUSED)
@pytest.mark.parametrize(("path", "param"), SINKS, ids=["marketing", "analytics"])
def test_a_control_character_in_the_subject_id_is_a_bad_request(
    asked: tuple[str, list[str]], path: str, param: str, subject: str
) -> None:
    base, seen = asked
    status, body = get(base + path + subject)
    assert status == 400
    assert f"query parameter {param!r} contains a control character" in body["error"]
    assert "s-1" not in body["error"]  # the reason names a position, never the id
    assert seen == []


@pytest.mark.parametrize(("path", "param"), SINKS, ids=["marketing", "analytics"])
def test_a_valid_id_is_looked_up_exactly_as_given(
    asked: tuple[str, list[str]], path: str, param: str
) -> None:
    base, seen = asked
    assert get(base + path + "%20s-1%20")[0] == 200
    assert seen == [" s-1 "]
    status, body = get(base + path)
    assert (status, body["error"]) == (400, f"query parameter {param!r} is required")
