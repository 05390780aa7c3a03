"""The harness's progress lines, on stdout, time-stamped."""

from __future__ import annotations

import sys
import time


def say(text: str) -> None:
    """Print one progress line."""
    sys.stdout.write(f"[faults {time.strftime('%H:%M:%S')}] {text}\n")
    sys.stdout.flush()
