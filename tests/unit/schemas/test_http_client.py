"""The one HTTP client: its User-Agent, no redirects followed, and transport failures as
the project's errors (loopback sockets, no network)."""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from schemas.errors import ConsentRelayError
from schemas.runtime import http_client
from schemas.runtime.http_client import NoAnswerError, UnreachableError


class _Handler(BaseHTTPRequestHandler):
    seen: list[dict[str, str]] = []
    delay = 0.0

    def do_GET(self) -> None:
        type(self).seen.append(dict(self.headers.items()))
        time.sleep(type(self).delay)
        self.send_response(302 if self.path == "/moved" else 200)
        self.send_header("Location", "/elsewhere")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet."""


@pytest.fixture
def base() -> Iterator[str]:
    _Handler.seen, _Handler.delay = [], 0.0
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.daemon_threads = True
    threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def test_sends_the_relay_user_agent_and_follows_no_redirect(base: str) -> None:
    with http_client.client("tester", 2, {"X-Extra": "1"}) as client:
        response = client.get(f"{base}/moved")
    assert response.status_code == 302
    [headers] = _Handler.seen
    assert headers["User-Agent"] == "consent-relay-tester/1"
    assert headers["X-Extra"] == "1"


def test_a_slow_server_is_no_answer(base: str) -> None:
    _Handler.delay = 1.0
    with (
        pytest.raises(NoAnswerError, match="the test server does not answer") as caught,
        http_client.client("tester", 0.2) as client,
        http_client.reaching("the test server"),
    ):
        client.get(f"{base}/slow")
    assert isinstance(caught.value, ConsentRelayError)
    assert caught.value.__cause__ is not None


def test_a_closed_port_is_unreachable() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with (
        pytest.raises(UnreachableError) as caught,
        http_client.client("tester", 1) as client,
        http_client.reaching("the test server"),
    ):
        client.get(f"http://127.0.0.1:{port}/")
    assert not isinstance(caught.value, NoAnswerError)
    assert caught.value.cause_name == "ConnectError"
    assert not caught.value.dropped


def test_request_urls_are_not_logged(base: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    with http_client.client("tester", 2) as client:
        client.get(f"{base}/propagation?subject=someone")
    assert "someone" not in caplog.text
