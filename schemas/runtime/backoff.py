"""Exponential backoff with jitter for retrying a downstream system that is down.

The delay before retry ``n`` (1-based) is drawn uniformly from
``[cap_n / 2, cap_n]`` where ``cap_n = min(maximum, initial * multiplier ** (n - 1))``
("equal jitter"): never zero, so a flapping store is not hammered, and spread, so many
sink instances do not retry in lock-step.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Backoff:
    """How long to wait before each retry of a retriable failure."""

    initial: float = 0.1
    maximum: float = 30.0
    multiplier: float = 2.0
    rng: random.Random = field(default_factory=random.Random, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.initial <= 0 or self.maximum < self.initial or self.multiplier < 1:
            raise ValueError("backoff needs 0 < initial <= maximum and multiplier >= 1")

    def ceiling(self, attempt: int) -> float:
        """The largest delay before retry ``attempt`` (1-based), before jitter."""
        if attempt < 1:
            raise ValueError("attempt is 1-based")
        # Cap the exponent first: multiplier ** attempt overflows a float long before
        # a store outage ends.
        exponent = min(attempt - 1, 64)
        return min(self.maximum, self.initial * self.multiplier**exponent)

    def delay(self, attempt: int) -> float:
        """A jittered delay before retry ``attempt``, in ``[ceiling / 2, ceiling]``."""
        top = self.ceiling(attempt)
        return self.rng.uniform(top / 2, top)
