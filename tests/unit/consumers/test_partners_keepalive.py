"""The webhook client keeps one connection alive per partner and replaces it when the
partner has closed it while idle (loopback HTTP, no broker)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from consumers.partners.webhook import WebhookClient


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    connections: set[tuple[str, int]] = set()
    close_after_reply = False

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        self.connections.add(self.client_address)
        self.send_response(204)
        self.send_header("Content-Length", "0")
        self.end_headers()
        if type(self).close_after_reply:
            # Closed without telling the client: what an idle timeout on the partner does.
            self.close_connection = True

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet."""


@pytest.fixture
def server() -> Iterator[ThreadingHTTPServer]:
    _Handler.connections = set()
    _Handler.close_after_reply = False
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()


def _client(httpd: ThreadingHTTPServer) -> WebhookClient:
    return WebhookClient(f"http://127.0.0.1:{httpd.server_address[1]}/hook", b"s" * 32)


def test_one_connection_serves_many_webhooks(server: ThreadingHTTPServer) -> None:
    client = _client(server)
    for i in range(5):
        assert client.post(b"{}", f"key-{i}") == 204
    client.close()
    assert len(_Handler.connections) == 1


def test_a_connection_the_partner_closed_is_replaced(server: ThreadingHTTPServer) -> None:
    _Handler.close_after_reply = True
    client = _client(server)
    assert client.post(b"{}", "key-1") == 204
    assert client.post(b"{}", "key-2") == 204
    client.close()
    assert len(_Handler.connections) == 2
