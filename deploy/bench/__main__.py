"""``python -m deploy.bench [--rates 1000,5000,max --duration 20 --warmup 5 ...]``."""

from __future__ import annotations

import signal
import sys
from collections.abc import Sequence
from types import FrameType

from deploy.bench.config import BenchConfigError, from_args
from deploy.bench.relay import RelayError
from deploy.bench.run import main as run


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark; 2 on a bad option, 1 if the relay could not be run."""
    try:
        config = from_args(argv)
    except BenchConfigError as exc:
        sys.stderr.write(f"deploy.bench: {exc}\n")
        return 2
    signal.signal(signal.SIGTERM, _stop)
    try:
        return run(config)
    except RelayError as exc:
        sys.stderr.write(f"deploy.bench: the relay failed: {exc}\n")
        return 1


def _stop(signum: int, _frame: FrameType | None) -> None:
    # Unwind through the run's finally blocks, which stop the relay's processes.
    raise SystemExit(128 + signum)


if __name__ == "__main__":
    sys.exit(main())
