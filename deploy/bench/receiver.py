"""``python -m deploy.bench.receiver``: every partner's webhook endpoint, on one local port.

A threading HTTP/1.1 server that checks each request's HMAC signature once (401 if
wrong) and answers 200, counting instructions per partner path: one for a
single-instruction body, one per element of a ``{"instructions": [...]}`` batch body
(``consumers/partners/WEBHOOK.md``). It stands in for partners in the bench and in the
demo (``deploy/demo.py``), so it is kept cheap and out of the relay's way: connections
stay open (HTTP/1.1, one thread per partner connection, not one per request), the
listen backlog takes every partner pipeline connecting at once (with the default of 5,
the others wait out the kernel's 1 s SYN retry), and a batch is counted from its bytes
without parsing the JSON. It runs as its own process so its CPU is measured apart from
the relay and the load generator. It writes its port to ``--port-file`` once listening
and its counts to ``--stats-file`` on SIGTERM.

Two options serve the fault harness (``deploy/faults``): ``--record FILE`` appends every
signed body, as one line, with the path it came to (what each partner was told, to
reconcile), and ``--fail-file FILE`` answers 500 to the partner paths listed in FILE
while it exists (a partner that is down).
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import signal
import threading
from collections import Counter
from collections.abc import Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import FrameType
from typing import IO, Any, ClassVar, Final

SIGNATURE_HEADER: Final = "X-ConsentRelay-Signature"
TIMESTAMP_HEADER: Final = "X-ConsentRelay-Timestamp"
BATCH_PREFIX: Final = b'{"instructions":['
INSTRUCTION_KEY: Final = b'"instruction_id":'


def instructions_in(body: bytes) -> int:
    """How many instructions a signed body carries.

    The sink writes sorted keys without spaces, and no value can contain the quoted key
    (ids are UUIDs and hex, the rest enums and timestamps), so counting the key is exact.
    """
    if body.startswith(BATCH_PREFIX):
        return body.count(INSTRUCTION_KEY)
    return 1


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 512  # sixteen partner pipelines connect at once


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep the sink's connection open between requests
    secret: ClassVar[bytes] = b""
    counts: ClassVar[Counter[str]] = Counter()
    lock: ClassVar[threading.Lock] = threading.Lock()
    record: ClassVar[IO[bytes] | None] = None
    fail_file: ClassVar[Path | None] = None

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        stamp = self.headers.get(TIMESTAMP_HEADER, "")
        expected = hmac.new(self.secret, stamp.encode() + b"." + body, hashlib.sha256)
        good = hmac.compare_digest(
            self.headers.get(SIGNATURE_HEADER, ""), "sha256=" + expected.hexdigest()
        )
        status = 200 if good else 401
        if good and self._failing():
            status = 500
        with self.lock:
            if status == 200:
                self.counts[self.path] += instructions_in(body)
                if self.record is not None:
                    # One line per request: the sink's JSON has no raw newlines.
                    self.record.write(self.path.encode() + b" " + body + b"\n")
                    self.record.flush()
            else:
                self.counts["unsigned" if status == 401 else "failed"] += 1
        self.send_response_only(status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def _failing(self) -> bool:
        if self.fail_file is None:
            return False
        try:
            listed = self.fail_file.read_text().split()
        except FileNotFoundError:
            return False
        return self.path in listed

    def log_message(self, format: str, *args: Any) -> None:
        """No per-request log: bodies carry pseudonyms, and it would cost CPU."""


def main(argv: Sequence[str] | None = None) -> int:
    """Serve until SIGTERM, then write the counts."""
    parser = argparse.ArgumentParser(prog="python -m deploy.bench.receiver")
    parser.add_argument("--secret", required=True)
    parser.add_argument("--port-file", type=Path, required=True)
    parser.add_argument("--stats-file", type=Path, required=True)
    parser.add_argument("--record", type=Path, help="append every signed body to this file")
    parser.add_argument("--fail-file", type=Path, help="answer 500 to the paths it lists")
    args = parser.parse_args(argv)
    _Handler.secret = args.secret.encode()
    _Handler.fail_file = args.fail_file
    if args.record is not None:
        _Handler.record = args.record.open("ab")
    server = _Server(("127.0.0.1", 0), _Handler)

    def stop(_signum: int, _frame: FrameType | None) -> None:
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    args.port_file.write_text(str(server.server_address[1]))
    server.serve_forever()
    server.server_close()
    with _Handler.lock:
        args.stats_file.write_text(json.dumps(dict(_Handler.counts), indent=2))
        if _Handler.record is not None:
            _Handler.record.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
