"""The benchmark's knobs, from the command line, validated before anything starts.

``--rates idle,1000,5000,max`` lists the phases in order: ``idle`` sends
``--idle-events`` single withdrawals (each reaching all three sink families) 100 ms
apart, after ``--warmup`` seconds of the same; a number is an offered rate in consent
events per second held for ``--warmup`` + ``--duration`` seconds; ``max`` publishes a
backlog of ``--max-events`` as fast as the producer can (after a warm-up at 1,000
events/s) and measures how fast the relay eats it. Between phases the run waits until
every consumer group of the relay has caught up (``--drain-timeout``).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

ROOT: Final = Path(__file__).resolve().parents[2]
MAX: Final = "max"
MAX_WARMUP_RATE: Final = 1000
"""Offered rate of the warm-up before a ``max`` phase's backlog."""
IDLE: Final = "idle"
IDLE_RATE: Final = 10
"""The idle phase's withdrawals per second: one every 100 ms, so each finds the relay
with nothing else to do (issue 14's idle latency)."""


class BenchConfigError(ValueError):
    """A command-line value the benchmark cannot run with."""


@dataclass(frozen=True, slots=True)
class Phase:
    """One load phase: a fixed offered rate, ``None`` for the maximum, or the idle phase
    (single withdrawals to every family at :data:`IDLE_RATE`)."""

    rate: int | None
    idle: bool = False

    @classmethod
    def idle_phase(cls) -> Phase:
        """Single withdrawals, 100 ms apart."""
        return cls(IDLE_RATE, idle=True)

    @property
    def name(self) -> str:
        """``idle``, ``1000/s`` or ``max``."""
        if self.idle:
            return IDLE
        return MAX if self.rate is None else f"{self.rate}/s"

    @property
    def kind(self) -> str:
        """``idle``, ``rate`` or ``max``."""
        if self.idle:
            return IDLE
        return MAX if self.rate is None else "rate"


@dataclass(frozen=True, slots=True)
class BenchConfig:
    """Everything one benchmark run needs."""

    phases: tuple[Phase, ...]
    duration: float = 20.0
    warmup: float = 5.0
    max_events: int = 50_000
    idle_events: int = 200
    workers: int = 1
    partitions: int = 6
    subjects: int = 200_000
    zipf: float = 0.9
    seed: int = 8
    drain_timeout: float = 300.0
    startup_timeout: float = 180.0
    out: Path = ROOT / "results"
    baseline: bool = True
    gate: str = "auto"
    gate_events: int = 50_000
    gate_rate: int = 2000
    profile: bool = False
    revision: str | None = None
    source: Path | None = None
    keep_topics: bool = False

    def __post_init__(self) -> None:
        if not self.phases:
            raise BenchConfigError("--rates needs at least one phase")
        if self.duration <= 0 or self.warmup < 0:
            raise BenchConfigError("--duration must be > 0 and --warmup >= 0")
        if min(self.max_events, self.idle_events, self.gate_events, self.gate_rate) < 1:
            raise BenchConfigError(
                "--max-events, --idle-events, --gate-events and --gate-rate must be >= 1"
            )
        if self.workers < 1 or self.partitions < self.workers:
            raise BenchConfigError("need 1 <= --workers <= --partitions")
        if self.subjects < 10 or self.zipf < 0:
            raise BenchConfigError("--subjects must be >= 10 and --zipf >= 0")
        if self.gate not in {"auto", "on", "off"}:
            raise BenchConfigError("--gate is auto, on or off")
        if self.revision is not None and self.source is not None:
            raise BenchConfigError("give --revision or --source, not both")
        if self.source is not None and not (self.source / "streams").is_dir():
            raise BenchConfigError(f"--source {self.source} has no streams/ package")


def parse_rates(text: str) -> tuple[Phase, ...]:
    """``"idle,1000,5000,max"`` as phases."""
    phases = []
    for raw in text.split(","):
        item = raw.strip().lower()
        if item == MAX:
            phases.append(Phase(None))
            continue
        if item == IDLE:
            phases.append(Phase.idle_phase())
            continue
        try:
            rate = int(float(item.removesuffix("/s")))
        except ValueError as exc:
            raise BenchConfigError(f"--rates: {raw!r} is not a number, 'idle' or 'max'") from exc
        if rate < 1:
            raise BenchConfigError(f"--rates: {raw!r} must be at least 1 event/s")
        phases.append(Phase(rate))
    return tuple(phases)


def parser() -> argparse.ArgumentParser:
    """The command line of ``python -m deploy.bench``."""
    p = argparse.ArgumentParser(
        prog="python -m deploy.bench",
        description="Propagation benchmark: the real relay on the real broker under load.",
    )
    p.add_argument("--rates", default="idle,1000,5000,max", help="phases, e.g. idle,1000,5000,max")
    p.add_argument("--duration", type=float, default=20.0, help="measured seconds per phase")
    p.add_argument("--warmup", type=float, default=5.0, help="unmeasured seconds per phase")
    p.add_argument("--max-events", type=int, default=50_000, help="backlog of the max phase")
    p.add_argument(
        "--idle-events", type=int, default=200, help="withdrawals of the idle phase (100 ms apart)"
    )
    p.add_argument("--workers", type=int, default=1, help="stream worker processes")
    p.add_argument("--partitions", type=int, default=6, help="partitions per relay topic")
    p.add_argument("--subjects", type=int, default=200_000, help="distinct subjects")
    p.add_argument("--zipf", type=float, default=0.9, help="subject skew exponent (0 = uniform)")
    p.add_argument("--seed", type=int, default=8, help="workload random seed")
    p.add_argument("--drain-timeout", type=float, default=300.0, help="catch-up bound per phase")
    p.add_argument("--startup-timeout", type=float, default=180.0, help="relay start-up bound")
    p.add_argument("--out", type=Path, default=ROOT / "results", help="results directory")
    p.add_argument("--no-baseline", action="store_true", help="skip the bare-loop baseline")
    p.add_argument(
        "--gate", choices=("auto", "on", "off"), default="auto", help="consent-gate phase"
    )
    p.add_argument("--gate-rate", type=int, default=2000, help="data events/s for the gate delay")
    p.add_argument("--gate-events", type=int, default=50_000, help="data-event backlog of the gate")
    p.add_argument(
        "--profile", action="store_true", help="run the stream worker under pyinstrument"
    )
    p.add_argument(
        "--revision",
        help="run the relay from this git revision (e.g. HEAD) instead of the working tree",
    )
    p.add_argument(
        "--source",
        type=Path,
        help="run the relay from this directory (e.g. a scratch copy with an experiment)",
    )
    p.add_argument(
        "--keep-topics",
        action="store_true",
        help="leave the run's topics and consumer groups on the broker (default: delete them)",
    )
    return p


def from_args(argv: Sequence[str] | None = None) -> BenchConfig:
    """Parse and validate the command line."""
    args = parser().parse_args(argv)
    return BenchConfig(
        phases=parse_rates(args.rates),
        duration=args.duration,
        warmup=args.warmup,
        max_events=args.max_events,
        idle_events=args.idle_events,
        workers=args.workers,
        partitions=args.partitions,
        subjects=args.subjects,
        zipf=args.zipf,
        seed=args.seed,
        drain_timeout=args.drain_timeout,
        startup_timeout=args.startup_timeout,
        out=args.out,
        baseline=not args.no_baseline,
        gate=args.gate,
        gate_events=args.gate_events,
        gate_rate=args.gate_rate,
        profile=args.profile,
        revision=args.revision,
        source=args.source,
        keep_topics=args.keep_topics,
    )


def run_id() -> str:
    """A timestamp naming this run's results directory and topic prefix."""
    return time.strftime("%Y%m%dT%H%M%S", time.gmtime())
