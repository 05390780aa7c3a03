"""The harness's knobs: the full run, ``--short``, and the few options that change them.

The full run is the proof for the closing note: 20,000 consent events over 2,500
subjects, at least 10,000 malformed records, the stream worker killed twice, every
fault held as long as the issue describes (PostgreSQL 30 s, a partner 60 s). ``--short``
keeps every fault once at a few thousand events, so an integration test can run it.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from deploy.bench.config import ROOT


class FaultsConfigError(ValueError):
    """A command-line value the harness cannot run with."""


@dataclass(frozen=True, slots=True)
class FaultsConfig:
    """Everything one run needs."""

    short: bool = False
    events: int = 20_000
    """Valid consent events published (duplicates included, probes not)."""
    subjects: int = 2_500
    malformed: int = 10_400
    """Malformed records in the burst (oversized ones included)."""
    oversized: int = 12
    """Of those, records of about 1 MB."""
    worker_kills: int = 2
    postgres_down_seconds: float = 30.0
    partner_down_seconds: float = 60.0
    broker_down_seconds: float = 15.0
    settle_seconds: float = 5.0
    """Quiet time after one fault recovered and before the next."""
    recovery_timeout: float = 180.0
    """How long to wait for the next honoured withdrawal after a fault before giving up."""
    drain_timeout: float = 600.0
    startup_timeout: float = 180.0
    partitions: int = 3
    seed: int = 13
    out: Path = ROOT / "results"
    revision: str | None = None
    """Run the relay from this git revision (a snapshot) instead of the working tree."""
    brokers: int = 1
    """Kafka nodes of the private stack; 3 adds the consent leader's SIGKILL to the faults."""

    def __post_init__(self) -> None:
        if self.events < 100 or self.subjects < 10:
            raise FaultsConfigError("--events must be >= 100 and --subjects >= 10")
        if not 0 <= self.oversized <= self.malformed:
            raise FaultsConfigError("--malformed must be >= the oversized records in it")
        if self.brokers not in (1, 3):
            raise FaultsConfigError("--brokers must be 1 or 3")
        if self.partitions < 1 or self.recovery_timeout <= 0 or self.longest_outage <= 0:
            raise FaultsConfigError("--partitions, timeouts and durations must be positive")

    @property
    def longest_outage(self) -> float:
        """Seconds of the longest outage (a slice of the load lasts that long)."""
        return max(self.postgres_down_seconds, self.partner_down_seconds, self.broker_down_seconds)

    @property
    def mode(self) -> str:
        """``short`` or ``full``."""
        return "short" if self.short else "full"


SHORT = FaultsConfig(
    short=True,
    events=3_000,
    subjects=300,
    malformed=600,
    oversized=3,
    worker_kills=1,
    postgres_down_seconds=8.0,
    partner_down_seconds=10.0,
    broker_down_seconds=6.0,
    settle_seconds=2.0,
    recovery_timeout=90.0,
    drain_timeout=240.0,
)


def parser() -> argparse.ArgumentParser:
    """The command line of ``python -m deploy.faults``."""
    p = argparse.ArgumentParser(
        prog="python -m deploy.faults",
        description="The relay under faults and malformed input, reconciled against the rule.",
    )
    p.add_argument("--short", action="store_true", help="a few thousand events, each fault once")
    p.add_argument("--events", type=int, help="valid consent events to publish")
    p.add_argument("--subjects", type=int, help="distinct subjects")
    p.add_argument("--malformed", type=int, help="malformed records in the burst")
    p.add_argument("--recovery-timeout", type=float, help="seconds to wait for each recovery")
    p.add_argument("--seed", type=int, help="workload random seed")
    p.add_argument(
        "--brokers",
        type=int,
        help="Kafka nodes of the private stack: 1 (default) or 3 (adds the leader's SIGKILL)",
    )
    p.add_argument("--out", type=Path, help="results directory (default: results/)")
    p.add_argument(
        "--revision", help="run the relay from this git revision instead of the working tree"
    )
    return p


def from_args(argv: Sequence[str] | None = None) -> FaultsConfig:
    """Parse and validate the command line."""
    args = parser().parse_args(argv)
    base = SHORT if args.short else FaultsConfig()
    given = {
        "events": args.events,
        "subjects": args.subjects,
        "malformed": args.malformed,
        "recovery_timeout": args.recovery_timeout,
        "seed": args.seed,
        "out": args.out,
        "revision": args.revision,
        "brokers": args.brokers,
    }
    return replace(base, **{k: v for k, v in given.items() if v is not None})
