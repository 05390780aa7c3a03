"""``python -m deploy.faults [--short]``: 0 clean, 1 loss/misapplication/missed dead letter."""

from __future__ import annotations

import signal
import sys
from collections.abc import Sequence
from types import FrameType

from deploy.bench.relay import RelayError
from deploy.faults.cluster import ClusterError
from deploy.faults.config import FaultsConfigError, from_args
from deploy.faults.postgres import PostgresError
from deploy.faults.run import main as run


def main(argv: Sequence[str] | None = None) -> int:
    """Run the harness; 2 on a bad option, 3 if the stack or the relay could not be run."""
    try:
        config = from_args(argv)
    except FaultsConfigError as exc:
        sys.stderr.write(f"deploy.faults: {exc}\n")
        return 2
    signal.signal(signal.SIGTERM, _stop)
    try:
        return run(config)
    except (RelayError, ClusterError, PostgresError) as exc:
        sys.stderr.write(f"deploy.faults: could not run: {exc}\n")
        return 3


def _stop(signum: int, _frame: FrameType | None) -> None:
    # Unwind through the run's cleanups, which stop the relay, PostgreSQL and the stack.
    raise SystemExit(128 + signum)


if __name__ == "__main__":
    sys.exit(main())
