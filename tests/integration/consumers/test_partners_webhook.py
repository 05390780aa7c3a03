"""The webhook client over real HTTP on 127.0.0.1: what it sends, and how answers map to
retriable or permanent failures (no broker needed, but real sockets)."""

from __future__ import annotations

import hashlib
import hmac
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from consumers.partners.webhook import WebhookClient
from consumers.protocol import PermanentSinkError, RetriableSinkError

SECRET = b"webhook-test-secret-0123456789"


class Answer:
    """What the test server answers next, and what it saw."""

    def __init__(self) -> None:
        self.status = 204
        self.delay = 0.0
        self.seen: list[tuple[str, dict[str, str], bytes]] = []


@pytest.fixture
def server() -> Iterator[tuple[str, Answer]]:
    answer = Answer()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            answer.seen.append((self.path, dict(self.headers.items()), body))
            time.sleep(answer.delay)
            self.send_response(answer.status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            return

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/hook?v=1", answer
    httpd.shutdown()
    httpd.server_close()
    thread.join()


def test_sends_signed_json_with_idempotency_key(server: tuple[str, Answer]) -> None:
    url, answer = server
    client = WebhookClient(url, SECRET, timeout_seconds=2, clock=lambda: 1_800_000_000.7)
    assert client.post(b'{"x":1}', "ins-1") == 204
    [(path, headers, body)] = answer.seen
    assert path == "/hook?v=1"
    assert body == b'{"x":1}'
    assert headers["Content-Type"] == "application/json"
    assert headers["Idempotency-Key"] == "ins-1"
    assert headers["X-ConsentRelay-Timestamp"] == "1800000000"
    mac = hmac.new(SECRET, b"1800000000." + body, hashlib.sha256).hexdigest()
    assert headers["X-ConsentRelay-Signature"] == f"sha256={mac}"


@pytest.mark.parametrize("status", [500, 502, 503, 408, 429])
def test_server_errors_timeouts_and_throttling_are_retriable(
    server: tuple[str, Answer], status: int
) -> None:
    url, answer = server
    answer.status = status
    with pytest.raises(RetriableSinkError, match=str(status)):
        WebhookClient(url, SECRET).post(b"{}", "k")


@pytest.mark.parametrize("status", [400, 401, 403, 404, 410, 301])
def test_other_refusals_are_permanent(server: tuple[str, Answer], status: int) -> None:
    url, answer = server
    answer.status = status
    with pytest.raises(PermanentSinkError, match=str(status)):
        WebhookClient(url, SECRET).post(b"{}", "k")


def test_a_slow_partner_times_out_as_retriable(server: tuple[str, Answer]) -> None:
    url, answer = server
    answer.delay = 2.0
    started = time.monotonic()
    with pytest.raises(RetriableSinkError, match="within"):
        WebhookClient(url, SECRET, timeout_seconds=0.3).post(b"{}", "k")
    assert time.monotonic() - started < 1.9


def test_a_closed_port_is_retriable() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(RetriableSinkError, match="unreachable"):
        WebhookClient(f"http://127.0.0.1:{port}/", SECRET, timeout_seconds=1).post(b"{}", "k")
