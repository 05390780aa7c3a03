"""Batched partner webhooks against the real broker and real loopback HTTP servers.

A partner configured with ``batch_size`` gets its instructions in signed
``{"instructions": [...]}`` POSTs of at most that many: a backlog of N arrives in
ceil(N / batch_size) requests or fewer, every instruction once, in order, each
receipted APPLIED. The benchmark's partner receiver (``python -m deploy.bench.receiver``,
a real process) accepts both the single and the batch body and counts instructions.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import math
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from consumers.partners.config import load_config
from consumers.partners.process import PartnerSinkProcess
from consumers.partners.pseudonym import pseudonymous_id
from consumers.partners.settings import PartnerSinkSettings
from schemas.events import InstructionIssued, PropagationReceipt
from schemas.taxonomy import Action, Outcome, Purpose, SinkFamily
from tests.support.processes import relay_process, wait_for
from tests.support.threads import running_in_thread

FAMILY = SinkFamily.PARTNER_SHARING
SECRET = "criteo-webhook-secret-0123456789"
MASTER = "pseudonym-master-key-0123456789"


@dataclass
class BatchPartner:
    """A partner endpoint taking batches: checks the signature (written from the
    documented scheme, not with the sink's code) and records every request."""

    secret: bytes
    requests: list[tuple[str, list[dict[str, Any]]]] = field(default_factory=list)
    bad_signatures: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def receive(self, headers: Any, body: bytes) -> int:
        stamp = headers.get("X-ConsentRelay-Timestamp", "")
        mac = hmac.new(self.secret, f"{stamp}.".encode() + body, hashlib.sha256).hexdigest()
        fresh = stamp.isdigit() and abs(time.time() - int(stamp)) <= 300
        if not fresh or not hmac.compare_digest(
            headers.get("X-ConsentRelay-Signature", ""), f"sha256={mac}"
        ):
            with self.lock:
                self.bad_signatures += 1
            return 401
        with self.lock:
            self.requests.append((headers["Idempotency-Key"], json.loads(body)["instructions"]))
        return 200

    def instruction_ids(self) -> list[str]:
        with self.lock:
            return [doc["instruction_id"] for _, docs in self.requests for doc in docs]

    @contextmanager
    def running(self) -> Iterator[str]:
        partner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                self.send_response(partner.receive(self.headers, body))
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                return

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        server.daemon_threads = True
        thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
        thread.start()
        try:
            yield f"http://127.0.0.1:{server.server_address[1]}/consent"
        finally:
            server.shutdown()
            server.server_close()
            thread.join()


def write_config(tmp_path: Path, partners: dict[str, tuple[str, int]]) -> Path:
    """A partners file: name → (url, batch_size)."""
    lines = [f'pseudonym_key = "{MASTER}"', ""]
    for name, (url, batch_size) in partners.items():
        lines += [
            f"[partners.{name}]",
            f'url = "{url}"',
            f'secret = "{SECRET}"',
            'known_subjects = "all"',
            f"batch_size = {batch_size}",
            "",
        ]
    path = tmp_path / "partners.toml"
    path.write_text("\n".join(lines))
    return path


def running(process: PartnerSinkProcess) -> AbstractContextManager[PartnerSinkProcess]:
    return running_in_thread(process, name="partner-process", ready=lambda: process.wait_ready(60))


def backlog(kit: Any, partner: str, count: int, subjects: int) -> list[InstructionIssued]:
    """``count`` instructions for ``partner``, alternating actions per subject."""
    return [
        kit.instruction(
            Action.SUPPRESS if (n // subjects) % 2 == 0 else Action.ALLOW,
            subject=f"acct-{n % subjects:04d}",
            purposes=(Purpose.SHARE_WITH_ADVERTISING_PLATFORMS,),
            destination=partner,
            family=FAMILY,
        )
        for n in range(count)
    ]


def applied_receipts(reader: Any, expected: set[str]) -> Callable[[], bool]:
    def done() -> bool:
        seen = {
            r.instruction_id: r.outcome
            for r in reader.poll()
            if isinstance(r, PropagationReceipt) and r.instruction_id in expected
        }
        assert set(seen.values()) <= {Outcome.APPLIED}, seen
        return set(seen) == expected

    return done


def test_a_backlog_arrives_in_full_batches_once_each_in_order_all_applied(
    tmp_path: Path, sink_kit: Any, until: Callable[..., Any]
) -> None:
    count, batch_size = 1000, 100
    partner = BatchPartner(SECRET.encode())
    with partner.running() as url:
        config_path = write_config(tmp_path, {"criteo": (url, batch_size)})
        config = load_config(config_path, {})
        # One subject: one partition, so the runner's chunks are full and the bound exact.
        instructions = backlog(sink_kit, "criteo", count, subjects=1)
        sink_kit.publish_routed(instructions)
        receipts = sink_kit.reader(sink_kit.settings.topics.receipts)
        settings = PartnerSinkSettings(
            config=config_path, group_id=sink_kit.group, poll_timeout_seconds=0.2
        )
        process = PartnerSinkProcess(sink_kit.settings, settings, config, metrics_port=0)
        started = time.monotonic()
        with running(process):
            expected = {i.instruction_id for i in instructions}
            until(applied_receipts(receipts, expected), timeout=90)
        seconds = time.monotonic() - started

    sizes = [len(docs) for _, docs in partner.requests]
    print(f"\n{count} instructions in {len(sizes)} POSTs of {sizes} in {seconds:.2f}s")
    assert partner.bad_signatures == 0
    assert len(sizes) <= math.ceil(count / batch_size)
    assert max(sizes) <= batch_size
    assert partner.instruction_ids() == [i.instruction_id for i in instructions]
    key = config.partner("criteo").pseudonym_key
    for _, docs in partner.requests:
        assert {d["subject"]["id"] for d in docs} == {pseudonymous_id(key, "acct-0000")}
    assert len({k for k, _ in partner.requests}) == len(partner.requests)


def test_the_bench_receiver_counts_single_and_batched_instructions(
    tmp_path: Path, sink_kit: Any, until: Callable[..., Any]
) -> None:
    port_file, stats_file = tmp_path / "receiver.port", tmp_path / "receiver.json"
    args = ("--secret", SECRET, "--port-file", str(port_file), "--stats-file", str(stats_file))
    with relay_process("deploy.bench.receiver", {}, tmp_path / "receiver.log", args=args):
        port = wait_for("the receiver's port", lambda: port_file.exists() and port_file.read_text())
        base = f"http://127.0.0.1:{port}/hooks"
        config_path = write_config(
            tmp_path, {"google": (f"{base}/google", 500), "criteo": (f"{base}/criteo", 1)}
        )
        config = load_config(config_path, {})
        instructions = [
            *backlog(sink_kit, "google", 1200, subjects=40),
            *backlog(sink_kit, "criteo", 150, subjects=40),
        ]
        sink_kit.publish_routed(instructions)
        receipts = sink_kit.reader(sink_kit.settings.topics.receipts)
        settings = PartnerSinkSettings(
            config=config_path, group_id=sink_kit.group, poll_timeout_seconds=0.2
        )
        process = PartnerSinkProcess(sink_kit.settings, settings, config, metrics_port=0)
        with running(process):
            until(applied_receipts(receipts, {i.instruction_id for i in instructions}), 90)
    # The receiver wrote its counts when it stopped (SIGTERM on leaving the block).
    counts = json.loads(stats_file.read_text())
    assert counts == {"/hooks/google": 1200, "/hooks/criteo": 150}
