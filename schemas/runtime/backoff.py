"""Exponential backoff, the one retry policy of every process.

:data:`RETRY` spaces the retries of work a failure stopped (a stream batch or a gate
batch not published, the registry not answering); :data:`STARTUP` bounds each attempt
to reach a broker that is not up yet; a sink's store and partners retry with the
:class:`Backoff` its settings configure.

The delay before retry ``n`` (1-based) is drawn uniformly from
``[cap_n / 2, cap_n]`` where ``cap_n = min(maximum, initial * multiplier ** (n - 1))``
("equal jitter"): never zero, so a flapping store is not hammered, and spread, so many
sink instances do not retry in lock-step.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Final


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


RETRY: Final = Backoff(initial=0.2, maximum=5.0)
"""Between attempts at work a failure stopped: 0.1-0.2 s first, doubling up to 2.5-5 s."""

STARTUP: Final = Backoff(initial=0.5, maximum=5.0)
"""How long each attempt to reach a broker at start may take (its :meth:`Backoff.ceiling`:
0.5, 1, 2, 4, then 5 s): the longest silence between two log lines is 5 s."""
