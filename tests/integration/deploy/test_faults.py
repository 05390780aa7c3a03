"""The fault harness's short run against the real parts: nothing lost, nothing misapplied,
every malformed record dead-lettered.

``python -m deploy.faults --short`` starts its own broker, registry and PostgreSQL (it
stops the broker, so never the shared stack), the real relay processes, publishes a few
thousand grants and withdrawals while it SIGKILLs the stream worker and each sink, stops
PostgreSQL and the broker, makes a partner answer 500 and publishes a burst of malformed
records of every kind, then reconciles every sink's real store. Recovery seconds are
reported, not asserted here (their 10 s target is the harness's table's business).
"""

from __future__ import annotations

import ctypes
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
BOUND_S = 1500
"""Generous: the short run takes about three minutes when recoveries take seconds, more
while they take the 45 s of a sink's session timeout."""

_PR_SET_PDEATHSIG = 1


def _terminate_with_parent() -> None:
    """In the child: SIGTERM when the test process dies, so the harness unwinds and stops
    the relay, PostgreSQL and its stack instead of leaving them running."""
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def test_short_fault_run_loses_nothing_and_dead_letters_every_malformed_record(
    tmp_path: Path,
) -> None:
    env = {
        k: v for k, v in os.environ.items() if k not in {"KAFKA_BOOTSTRAP", "SCHEMA_REGISTRY_URL"}
    }
    done = subprocess.run(
        [sys.executable, "-m", "deploy.faults", "--short", "--out", str(tmp_path)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=BOUND_S,
        check=False,
        preexec_fn=_terminate_with_parent,
    )
    output = (done.stdout + done.stderr)[-6000:]
    table = [line for line in done.stdout.splitlines() if line.startswith("|")]
    sys.stdout.write("\n".join(table) + "\n")  # shown with -rA: the recovery seconds
    [run_dir] = [p for p in tmp_path.iterdir() if p.is_dir()]
    assert (run_dir / "faults.md").is_file(), output
    result = json.loads((run_dir / "faults.json").read_text())
    sent, totals, dead = result["sent"], result["totals"], result["dead_letters"]

    assert sent["valid"] >= 3000, output
    assert sent["duplicates"] > 0, output
    assert totals["lost"] == 0, output
    assert totals["misapplied"] == 0, output
    assert dead["malformed_sent"] >= 500, output
    assert dead["malformed_dead_lettered"] == dead["malformed_sent"], output
    assert dead["kinds"] >= 20, output
    assert dead["valid_dead_lettered"] == 0, output
    assert {r["fault"].split()[0] for r in result["recoveries"]} >= {
        "stream",
        "marketing",
        "analytics",
        "partner",
        "PostgreSQL",
        "broker",
        "malformed",
    }, output
    assert "| lost | 0 (0 withdrawals) | 0 | yes |" in done.stdout, output
    assert done.returncode == 0, output
