"""A circuit breaker per partner: stop calling a partner that keeps failing, probe it later.

CLOSED lets calls through and counts consecutive failures; at ``failure_threshold`` it
turns OPEN and refuses calls for ``reset_seconds``; then HALF_OPEN lets one probe
through: success closes it, failure opens it again. While it is open the sink fails
fast with a retriable error, so the partner's own pipeline backs off without waiting
for timeouts, and other partners (separate pipelines) are never affected.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from enum import StrEnum


class BreakerState(StrEnum):
    """Where the breaker is in its cycle."""

    CLOSED = "CLOSED"
    OPEN = "OPEN"
    HALF_OPEN = "HALF_OPEN"


class CircuitBreaker:
    """Consecutive-failure circuit breaker with an injectable clock."""

    def __init__(
        self,
        *,
        failure_threshold: int = 5,
        reset_seconds: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
        on_change: Callable[[BreakerState], None] | None = None,
    ) -> None:
        if failure_threshold < 1 or reset_seconds <= 0:
            raise ValueError("a breaker needs failure_threshold >= 1 and reset_seconds > 0")
        self._threshold = failure_threshold
        self._reset = reset_seconds
        self._clock = clock
        self.on_change = on_change
        """Called with the new state on every transition (e.g. to set a gauge)."""
        self._lock = threading.Lock()
        self._state = BreakerState.CLOSED
        self._failures = 0
        self._opened_at = 0.0
        self._probing = False

    @property
    def state(self) -> BreakerState:
        """The current state (an OPEN breaker past its reset time reads HALF_OPEN)."""
        with self._lock:
            self._advance()
            return self._state

    def allow(self) -> bool:
        """Whether a call may go out now; in HALF_OPEN only one probe at a time."""
        with self._lock:
            self._advance()
            if self._state is BreakerState.CLOSED:
                return True
            if self._state is BreakerState.HALF_OPEN and not self._probing:
                self._probing = True
                return True
            return False

    def seconds_until_probe(self) -> float:
        """How long until an OPEN breaker lets a probe through (0 when not OPEN)."""
        with self._lock:
            self._advance()
            if self._state is not BreakerState.OPEN:
                return 0.0
            return max(0.0, self._opened_at + self._reset - self._clock())

    def record_success(self) -> None:
        """A call succeeded: the partner is healthy."""
        with self._lock:
            self._failures = 0
            self._probing = False
            self._set(BreakerState.CLOSED)

    def record_failure(self) -> None:
        """A call failed in a way that says the partner is unwell (5xx, timeout, refused)."""
        with self._lock:
            self._probing = False
            self._failures += 1
            if self._state is BreakerState.HALF_OPEN or self._failures >= self._threshold:
                self._opened_at = self._clock()
                self._set(BreakerState.OPEN)

    def _advance(self) -> None:
        if self._state is BreakerState.OPEN and self._clock() >= self._opened_at + self._reset:
            self._set(BreakerState.HALF_OPEN)

    def _set(self, state: BreakerState) -> None:
        if state is not self._state:
            self._state = state
            if self.on_change is not None:
                self.on_change(state)
