"""The gate process loads no Faust and no aiokafka: one Kafka client library per process
(ADR 0001), and none of Faust's import time or interpreter-wide setup in the gate."""

from __future__ import annotations

import json
import subprocess
import sys

WORKER_ONLY = frozenset({"faust", "mode", "aiokafka"})
PROBE = """
import json, sys
import streams.gate.__main__
print(json.dumps(sorted({name.split(".")[0] for name in sys.modules})))
"""


def test_the_gate_entrypoint_imports_no_faust() -> None:
    # A fresh interpreter: this test process has Faust loaded by other tests already.
    result = subprocess.run(
        [sys.executable, "-c", PROBE], capture_output=True, text=True, check=True, timeout=60
    )
    loaded = set(json.loads(result.stdout))
    assert "streams" in loaded
    assert not loaded & WORKER_ONLY
