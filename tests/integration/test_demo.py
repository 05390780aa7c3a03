"""The README's main job runs: the demo's relay honours every withdrawal it publishes."""

from __future__ import annotations

import hashlib
import hmac
import http.client
import importlib.util
import json
import os
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import ModuleType
from typing import Any

from tests.support.processes import ROOT


def test_demo_reports_every_withdrawal_fully_propagated(kafka: Any) -> None:
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP": kafka.bootstrap,
        "SCHEMA_REGISTRY_URL": kafka.registry_url,
    }
    result = subprocess.run(
        [sys.executable, "deploy/demo.py", "--once", "--bound", "120"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=400,
        check=False,
    )
    out = result.stdout
    assert result.returncode == 0, out + result.stderr
    assert "rejected before sending" in out
    assert "NOT fully propagated" not in out, out
    assert out.count("fully propagated to") == 8, out
    assert "SKIPPED" in out  # sellers know only some buyers
    # The worker's view answers the demo's token, and nobody without it.
    assert "HTTP 200" in out, out
    assert "without the token: HTTP 401" in out, out


def _load_demo() -> ModuleType:
    spec = importlib.util.spec_from_file_location("consent_relay_demo", ROOT / "deploy" / "demo.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    # Its dataclasses look their module up by name.
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def _signed_posts(port: int, secret: str, start: threading.Barrier, posts: int) -> float:
    """Connect when every caller is ready, POST ``posts`` signed bodies on the one
    connection; the seconds it took."""
    start.wait()
    began = time.monotonic()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        for n in range(posts):
            body = json.dumps({"instruction_id": f"i-{n}"}).encode()
            stamp = str(int(time.time()))
            mac = hmac.new(secret.encode(), stamp.encode() + b"." + body, hashlib.sha256)
            conn.request(
                "POST",
                "/hooks/google",
                body=body,
                headers={
                    "X-ConsentRelay-Timestamp": stamp,
                    "X-ConsentRelay-Signature": "sha256=" + mac.hexdigest(),
                },
            )
            response = conn.getresponse()
            response.read()
            assert response.status == 200
            # HTTP/1.1 with a Content-Length: the connection stays open for the next one.
            assert not response.will_close
    finally:
        conn.close()
    return time.monotonic() - began


def test_the_demos_partner_receiver_takes_every_partner_pipeline_at_once(tmp_path: Path) -> None:
    """Sixteen partner pipelines (and more) connect at the same moment: none waits for the
    kernel's 1 s SYN retry (a listen backlog of 5 made the demo print ~1 s for ~0.1 s)."""
    demo = _load_demo()
    callers, posts = 48, 3
    start = threading.Barrier(callers)
    with (
        demo.partner_receiver(tmp_path) as receiver,
        ThreadPoolExecutor(callers) as pool,
    ):
        took = list(
            pool.map(
                lambda _: _signed_posts(receiver.port, demo.PARTNER_SECRET, start, posts),
                range(callers),
            )
        )
    assert max(took) < 0.8, sorted(took)[-5:]
    assert receiver.instructions() == callers * posts
