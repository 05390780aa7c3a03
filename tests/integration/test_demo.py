"""The README's main job runs: the demo's relay honours every withdrawal it publishes."""

from __future__ import annotations

import os
import subprocess
import sys
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
