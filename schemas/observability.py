"""What every process's metrics and logs share, so dashboards and operators can compare them.

Histograms of latencies use the same buckets everywhere; propagation latencies go on
to an hour, because a destination that is down for a while is exactly what an
operator must see (an alert on "slower than 60 s" needs buckets beyond 60 s).
Every process's log handlers limit repeated records (:class:`RepeatLimit`), so an
outage shows as a few lines a minute instead of thousands a second.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

LATENCY_BUCKETS: Final = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
"""Seconds; request and processing latencies."""

PROPAGATION_BUCKETS: Final = (*LATENCY_BUCKETS, 120, 300, 900, 3600)
"""Seconds; event time of a consent choice to its effect downstream."""


_VERDICT: Final = "_consent_relay_repeat_limit"
"""Record attribute holding a RepeatLimit's verdict on it."""


class RepeatLimit(logging.Filter):
    """A handler filter that lets at most ``burst`` records of one kind through per
    ``period`` seconds, a kind being the logger, the level and the message template.

    A client whose broker is down logs the same error thousands of times a second;
    the first records of each kind still say what is wrong, the rest are counted, and
    the first record let through after a quiet spell says how many were left out.
    Installed on handlers (a logger's filter would not see its children's records).
    """

    def __init__(
        self,
        period: float = 10.0,
        burst: int = 5,
        *,
        max_kinds: int = 1024,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__()
        if period <= 0 or burst < 1 or max_kinds < 1:
            raise ValueError("period > 0, burst >= 1 and max_kinds >= 1 are required")
        self.period = period
        self.burst = burst
        self.max_kinds = max_kinds
        self._clock = clock
        self._lock = threading.Lock()
        self._windows: OrderedDict[tuple[str, int, str], _Window] = OrderedDict()

    def filter(self, record: logging.LogRecord) -> bool:
        """True to log ``record`` (annotated if records of its kind were left out)."""
        # One record passes every handler of a logger: decide once per record.
        decided = getattr(record, _VERDICT, None)
        if decided is not None and decided[0] is self:
            return bool(decided[1])
        with self._lock:
            verdict = self._admit(record)
        setattr(record, _VERDICT, (self, verdict))
        return verdict

    def _admit(self, record: logging.LogRecord) -> bool:
        kind = (record.name, record.levelno, str(record.msg))
        now = self._clock()
        window = self._windows.get(kind)
        if window is not None and now - window.start < self.period:
            if window.passed < self.burst:
                window.passed += 1
                return True
            window.suppressed += 1
            return False
        if window is not None and window.suppressed:
            record.msg = (
                f"{record.msg} [{window.suppressed} more like this not logged "
                f"in the {now - window.start:.0f} s before]"
            )
        self._windows[kind] = _Window(start=now)
        self._windows.move_to_end(kind)
        while len(self._windows) > self.max_kinds:
            self._windows.popitem(last=False)
        return True


@dataclass(slots=True)
class _Window:
    """Records of one kind since ``start``: let through, and left out."""

    start: float
    passed: int = 1
    suppressed: int = 0


def limit_repeats(logger: logging.Logger | None = None, limit: RepeatLimit | None = None) -> None:
    """Install one :class:`RepeatLimit` on every handler of ``logger`` (default: root)."""
    target = logger or logging.getLogger()
    shared = limit or RepeatLimit()
    for handler in target.handlers:
        if not any(isinstance(f, RepeatLimit) for f in handler.filters):
            handler.addFilter(shared)


LOG_FORMAT: Final = "%(asctime)s %(levelname)s %(name)s %(message)s"
"""The sinks' and tools' log line: time, level, logger, message."""


def configure_logging(level: str | int = logging.INFO, *, line: str = LOG_FORMAT) -> None:
    """A process's logging: ``line`` (:data:`LOG_FORMAT`) on stderr at ``level``, repeats
    limited.

    Like :func:`logging.basicConfig`, it leaves a root logger that already has handlers
    (a host such as pytest configured it) as it is."""
    root = logging.getLogger()
    if root.handlers:
        return
    root.setLevel(level.upper() if isinstance(level, str) else level)
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter(line))
    handler.addFilter(RepeatLimit())
    root.addHandler(handler)
