"""The one small HTTP server of the sinks and the gate: open routes, the token rule on
the others, and a stalled client let go (loopback sockets, no network)."""

from __future__ import annotations

import socket
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping

import pytest
from prometheus_client import CollectorRegistry, Counter

from schemas.runtime import http_server
from schemas.runtime.http_server import HttpServer, Response, open_routes
from schemas.runtime.settings import Secret

TOKEN = "http-server-test-token-0123"


def _lookup(query: Mapping[str, str]) -> Response:
    return Response.json(200, {"asked": sorted(query)})


@pytest.fixture
def base(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    monkeypatch.setattr(http_server, "REQUEST_TIMEOUT_S", 0.3)
    registry = CollectorRegistry()
    Counter("served", "Requests served.", registry=registry).inc()
    routes = {**open_routes(registry), "/v1/lookup": _lookup}
    server = HttpServer("127.0.0.1", 0, routes, token=Secret(TOKEN)).start()
    yield f"http://127.0.0.1:{server.port}"
    server.stop()


def _get(url: str, token: str | None = None) -> tuple[int, bytes]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=5) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def test_metrics_and_health_are_open(base: str) -> None:
    status, body = _get(f"{base}/metrics")
    assert status == 200
    assert b"served_total 1.0" in body
    assert _get(f"{base}/healthz") == (200, b'{"status": "ok"}')


def test_other_routes_want_the_token(base: str) -> None:
    assert _get(f"{base}/v1/lookup?a=1")[0] == 401
    assert _get(f"{base}/v1/lookup?a=1", "wrong-token-0123456789")[0] == 401
    assert _get(f"{base}/v1/lookup?a=1", TOKEN) == (200, b'{"asked": ["a"]}')
    assert _get(f"{base}/nowhere", TOKEN) == (404, b'{"error": "not found"}')


def test_a_silent_connection_is_closed(base: str) -> None:
    host, port = base.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=5) as conn:
        conn.sendall(b"GET /healthz HTTP/1.1\r\n")  # and never the rest
        assert conn.recv(1024) == b""  # closed by the server, unanswered
