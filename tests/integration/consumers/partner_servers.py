"""Real local HTTP servers standing in for partners in the integration tests.

Each :class:`PartnerServer` listens on a free port of 127.0.0.1 and behaves like a
partner's webhook endpoint: it checks the HMAC signature and timestamp itself (written
here independently of ``consumers.partners.signing``, from the documented scheme), drops
redeliveries by their ``Idempotency-Key`` (so "applied once in effect" is observable),
and can be told to answer 500, to hang, to hold its answers (applied at once, answered
when released), or to insist on valid signatures (401 if not).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

HANG_LIMIT_SECONDS = 60.0
"""A hanging handler gives up after this long even if never released."""


@dataclass
class Applied:
    """One webhook the partner accepted (first delivery of its idempotency key)."""

    idempotency_key: str
    body: dict[str, Any]
    received_at: float


@dataclass
class PartnerServer:
    """One fake partner; start with :meth:`running`."""

    name: str
    secret: bytes
    strict_signatures: bool = False
    applied: list[Applied] = field(default_factory=list)
    duplicates: int = 0
    statuses: list[int] = field(default_factory=list)
    bad_signatures: int = 0
    _arrived: int = 0
    _failing: bool = False
    _hang: threading.Event = field(default_factory=threading.Event)
    _hold: threading.Event = field(default_factory=threading.Event)
    _released: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}/consent-relay/{self.name}"

    def fail(self) -> None:
        """Answer 500 to everything until :meth:`recover`."""
        self._failing = True

    def recover(self) -> None:
        self._failing = False

    def hang(self) -> None:
        """Hold every request without answering until :meth:`release`."""
        self._released.clear()
        self._hang.set()

    def hold(self) -> None:
        """Apply every request at once but answer it only at :meth:`release` (a slow
        partner: the caller waits while the effect is done)."""
        self._released.clear()
        self._hold.set()

    def held(self) -> int:
        """Requests answered, or waiting to be: how many arrived."""
        with self._lock:
            return self._arrived

    def release(self) -> None:
        self._hang.clear()
        self._hold.clear()
        self._released.set()

    def applied_keys(self) -> list[str]:
        with self._lock:
            return [a.idempotency_key for a in self.applied]

    def actions_by_subject(self) -> dict[str, list[str]]:
        """Pseudonymous subject id → actions in the order they were applied."""
        with self._lock:
            out: dict[str, list[str]] = {}
            for a in self.applied:
                out.setdefault(a.body["subject"]["id"], []).append(a.body["action"])
            return out

    @contextmanager
    def running(self) -> Iterator[PartnerServer]:
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._server.daemon_threads = True
        thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True)
        thread.start()
        try:
            yield self
        finally:
            self.release()
            self._server.shutdown()
            self._server.server_close()
            thread.join()

    def _signature_ok(self, headers: Any, body: bytes) -> bool:
        timestamp = headers.get("X-ConsentRelay-Timestamp", "")
        given = headers.get("X-ConsentRelay-Signature", "")
        if not timestamp.isdigit() or abs(time.time() - int(timestamp)) > 300:
            return False
        expected = hmac.new(self.secret, f"{timestamp}.".encode() + body, hashlib.sha256)
        return hmac.compare_digest("sha256=" + expected.hexdigest(), given)

    def _receive(self, headers: Any, body: bytes) -> int:
        if self._hang.is_set():
            self._released.wait(HANG_LIMIT_SECONDS)
            return 0  # the caller gave up long ago: close without answering
        if self._failing:
            return 500
        if not self._signature_ok(headers, body):
            with self._lock:
                self.bad_signatures += 1
            if self.strict_signatures:
                return 401
        key = headers.get("Idempotency-Key", "")
        if not key:
            return 400
        with self._lock:
            self._arrived += 1
            if key in {a.idempotency_key for a in self.applied}:
                self.duplicates += 1
            else:
                self.applied.append(Applied(key, json.loads(body), time.monotonic()))
        if self._hold.is_set():
            self._released.wait(HANG_LIMIT_SECONDS)
        return 204


def _handler(partner: PartnerServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            body = self.rfile.read(length)
            status = partner._receive(self.headers, body)
            if status == 0:
                self.close_connection = True
                return
            with partner._lock:
                partner.statuses.append(status)
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            return

    return Handler
