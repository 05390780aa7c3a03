"""Which destinations the workload reaches, from the relay's own routing policy.

Read from ``streams/intake/routing.toml`` rather than written down here, so a change of policy
changes what the harness expects instead of making it report phantom losses.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from schemas.taxonomy import Purpose, SinkFamily
from streams.intake.routing import load_policy


@dataclass(frozen=True, slots=True)
class Target:
    """A destination and the workload purposes it hears."""

    family: SinkFamily
    name: str
    purposes: tuple[Purpose, ...]

    @property
    def label(self) -> str:
        """``FAMILY/name``, as receipts spell it."""
        return f"{self.family.value}/{self.name}"


def targets(purposes: Iterable[Purpose]) -> tuple[Target, ...]:
    """Every destination hearing any of ``purposes``, in policy order."""
    wanted = tuple(purposes)
    policy = load_policy()
    out = []
    for dest in policy.destinations:
        heard = tuple(p for p in wanted if p in dest.purposes)
        if heard:
            out.append(Target(dest.family, dest.name, heard))
    return tuple(out)
