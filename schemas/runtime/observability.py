"""What every process's metrics and logs share, so dashboards and operators can compare them.

Histograms of latencies use the same buckets everywhere; propagation latencies go on
to an hour, because a destination that is down for a while is exactly what an
operator must see (an alert on "slower than 60 s" needs buckets beyond 60 s).
Every process's log handlers limit repeated records (:class:`RepeatLimit`), so an
outage shows as a few lines a minute instead of thousands a second, and a window that
left records out ends with one line saying how many.
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
    the first records of each kind still say what is wrong, the rest are counted. When
    a window that left records out ends, :meth:`summarize` logs the last of them once,
    "… [and N more like it …]": records of a kind that stops (sixteen partner groups
    each saying which topic it consumes, at start) are not left unsaid until the kind
    comes back. A thread of this filter's own calls it at each such window's end
    (``background``; tests call it themselves); if a record of the kind comes first, that
    record carries the count instead. Installed on handlers (a logger's filter would not
    see its children's records); the summary goes out through the record's logger.
    """

    def __init__(
        self,
        period: float = 10.0,
        burst: int = 5,
        *,
        max_kinds: int = 1024,
        clock: Callable[[], float] = time.monotonic,
        background: bool = True,
    ) -> None:
        super().__init__()
        if period <= 0 or burst < 1 or max_kinds < 1:
            raise ValueError("period > 0, burst >= 1 and max_kinds >= 1 are required")
        self.period = period
        self.burst = burst
        self.max_kinds = max_kinds
        self._clock = clock
        self._background = background
        self._lock = threading.Lock()
        self._windows: OrderedDict[tuple[str, int, str], _Window] = OrderedDict()
        self._summarizer: threading.Thread | None = None

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
            window.last = record
            if window.suppressed == 1:
                self._summarize_later()
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

    def summarize(self) -> int:
        """Log one line for each kind whose window ended with records left out: the last
        of them, saying how many more there were; how many lines."""
        now = self._clock()
        with self._lock:
            ended = [
                (kind, window)
                for kind, window in self._windows.items()
                if window.suppressed and now - window.start >= self.period
            ]
            for kind, _window in ended:
                del self._windows[kind]  # the kind's next record opens a window
        for _kind, window in ended:
            line = _summary(window, now)
            setattr(line, _VERDICT, (self, True))
            logging.getLogger(line.name).handle(line)
        return len(ended)

    def _summarize_later(self) -> None:
        """Start the thread that summarizes ended windows, unless it runs (lock held)."""
        if not self._background or self._summarizer is not None:
            return
        self._summarizer = threading.Thread(
            target=self._summarize_until_done, name="log-repeat-summaries", daemon=True
        )
        self._summarizer.start()

    def _summarize_until_done(self) -> None:
        try:
            while True:
                with self._lock:
                    ends = [w.start + self.period for w in self._windows.values() if w.suppressed]
                    if not ends:
                        # Under the lock: a record left out from now on starts a thread.
                        self._summarizer = None
                        return
                    wait = min(ends) - self._clock()
                if wait > 0:
                    time.sleep(wait)
                self.summarize()
        except BaseException:
            # Not left set by a thread that died: later summaries would never come.
            with self._lock:
                self._summarizer = None
            raise


@dataclass(slots=True)
class _Window:
    """Records of one kind since ``start``: let through, and left out."""

    start: float
    passed: int = 1
    suppressed: int = 0
    last: logging.LogRecord | None = None


def _summary(window: _Window, now: float) -> logging.LogRecord:
    """The last record ``window`` left out, saying how many others it left out."""
    last = window.last
    assert last is not None  # set with every record left out
    line = logging.makeLogRecord(last.__dict__)
    more = window.suppressed - 1
    seconds = f"{now - window.start:.0f} s"
    # Formatted with its arguments in the handler, like every record: a bad log call
    # fails there (logging reports it), not in the thread that summarizes every kind.
    line.msg = (
        f"{last.msg} [and {more} more like it in the {seconds} before, not logged]"
        if more
        else f"{last.msg} [held back up to {seconds} by the repeat limit]"
    )
    # One line: a traceback, if any, was logged with the first records of the kind.
    line.exc_info = line.exc_text = line.stack_info = None
    return line


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
