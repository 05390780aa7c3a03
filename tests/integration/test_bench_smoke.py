"""The propagation benchmark runs end to end on a tiny load and loses nothing.

It starts the real relay (stream worker, the three sinks, a partner receiver) against
the session's broker and registry, sends a few idle withdrawals 100 ms apart, then a few
seconds of consent events at a low rate, and must write ``bench.json`` (with
``lost == 0``, records and CPU per consent event), ``bench.md`` and the plot.
No speed is checked: the benchmark reports figures, it does not assert them.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]


def test_bench_runs_on_a_tiny_load_and_loses_nothing(kafka: Any, tmp_path: Path) -> None:
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP": kafka.bootstrap,
        "SCHEMA_REGISTRY_URL": kafka.registry_url,
    }
    command = [
        sys.executable,
        "-m",
        "deploy.bench",
        "--rates",
        "idle,40",
        "--idle-events",
        "5",
        "--duration",
        "3",
        "--warmup",
        "1",
        "--partitions",
        "2",
        "--subjects",
        "500",
        "--gate-rate",
        "50",
        "--gate-events",
        "300",
        "--drain-timeout",
        "60",
        "--startup-timeout",
        "60",
        "--out",
        str(tmp_path),
    ]
    done = subprocess.run(
        command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=240, check=False
    )
    output = (done.stdout + done.stderr)[-4000:]
    assert done.returncode == 0, output

    [run_dir] = [p for p in tmp_path.iterdir() if p.is_dir()]
    result = json.loads((run_dir / "bench.json").read_text())
    assert result["lost_total"] == 0, output
    idle, phase = result["phases"]
    assert idle["sent"] == 15  # 1 s of warm-up at 10/s, then the 5 measured
    assert idle["reconciliation"]["families_reached"] == {"3": 15}
    assert set(idle["reconciliation"]["family_latency_ms"]) == {
        "MARKETING",
        "ANALYTICS",
        "PARTNER_SHARING",
    }
    assert idle["records_written"]["total"] > 0
    assert phase["records_written"]["inputs"]["consent.events"] == 160
    assert phase["cpu_ms_per_event"]["whole relay"] > 0
    reconciliation = phase["reconciliation"]
    assert phase["sent"] == 160
    assert phase["failed"] == 0
    assert reconciliation["withdrawals_sent"] > 0
    assert reconciliation["expected_receipts"] > 0
    assert reconciliation["receipted"] == reconciliation["expected_receipts"]
    assert reconciliation["fully_propagated"] == reconciliation["withdrawals_routed"]
    assert reconciliation["latency_ms"]["fully propagated"]["count"] > 0
    assert result["baseline"]["events"] > 0
    assert (run_dir / "bench.md").read_text().startswith("# Propagation benchmark")
    assert (run_dir / "latency.png").stat().st_size > 0
