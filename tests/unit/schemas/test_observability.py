"""RepeatLimit: a flood of identical log records becomes a few lines and a count, said
at the end of the window that left records out."""

from __future__ import annotations

import io
import logging
import time

import pytest

from schemas.runtime.observability import RepeatLimit, configure_logging, limit_repeats


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def logged(clock: Clock) -> tuple[logging.Logger, io.StringIO]:
    """A logger with one handler writing messages to a buffer, repeats limited."""
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(logging.Formatter("%(name)s %(message)s"))
    logger = logging.getLogger(f"test.repeats.{id(out)}")
    logger.handlers = [handler]
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    limit_repeats(logger, RepeatLimit(period=10, burst=3, clock=clock, background=False))
    return logger, out


def test_a_flood_of_one_error_is_cut_to_the_burst(
    logged: tuple[logging.Logger, io.StringIO],
) -> None:
    logger, out = logged
    for node in range(6800):
        logger.error("Unable connect to node with id %s", node % 2)
    assert out.getvalue().count("Unable connect") == 3


def test_the_next_period_logs_again_and_counts_what_was_left_out(
    logged: tuple[logging.Logger, io.StringIO], clock: Clock
) -> None:
    logger, out = logged
    for _ in range(10):
        logger.error("Unable to update metadata from %s", [1])
    clock.now += 10
    logger.error("Unable to update metadata from %s", [1])
    lines = out.getvalue().splitlines()
    assert len(lines) == 4
    assert lines[-1].endswith(
        "Unable to update metadata from [1] [7 more like this not logged in the 10 s before]"
    )


def test_a_window_that_left_records_out_ends_with_one_line_saying_how_many(
    logged: tuple[logging.Logger, io.StringIO], clock: Clock
) -> None:
    """Sixteen partner groups each say what they consume, once, at start: the 4th to the
    16th must not stay unsaid until the kind comes back, which it never does."""
    logger, out = logged
    for n in range(16):
        logger.info("consuming %s as group %s", f"t.{n}", f"g.{n}")
    limit = next(f for f in logger.handlers[0].filters if isinstance(f, RepeatLimit))
    clock.now += 9
    assert limit.summarize() == 0  # the window is still open
    clock.now += 1
    assert limit.summarize() == 1
    assert limit.summarize() == 0  # said once
    lines = out.getvalue().splitlines()
    assert len(lines) == 4
    assert lines[-1] == (
        f"{logger.name} consuming t.15 as group g.15 "
        "[and 12 more like it in the 10 s before, not logged]"
    )
    logger.info("consuming %s as group %s", "t.16", "g.16")  # a new window, no count
    assert out.getvalue().splitlines()[-1] == f"{logger.name} consuming t.16 as group g.16"


def test_a_single_record_left_out_is_logged_late(
    logged: tuple[logging.Logger, io.StringIO], clock: Clock
) -> None:
    logger, out = logged
    for _ in range(4):
        logger.warning("dead letter for %s", "a topic")
    clock.now += 10
    limit = next(f for f in logger.handlers[0].filters if isinstance(f, RepeatLimit))
    assert limit.summarize() == 1
    assert out.getvalue().splitlines()[-1] == (
        f"{logger.name} dead letter for a topic [held back up to 10 s by the repeat limit]"
    )


def test_a_record_that_cannot_be_formatted_does_not_stop_the_summaries(
    logged: tuple[logging.Logger, io.StringIO],
    clock: Clock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A bad log call fails in the handler, as any record's would (logging reports it),
    not in the summary: the summarizing thread must live on for the other kinds."""
    monkeypatch.setattr(logging, "raiseExceptions", False)
    logger, out = logged
    for _ in range(5):
        logger.info("%d partitions", "not a number")
    for _ in range(5):
        logger.info("fine %s", "then")
    clock.now += 10
    limit = next(f for f in logger.handlers[0].filters if isinstance(f, RepeatLimit))
    assert limit.summarize() == 2
    assert out.getvalue().splitlines()[-1] == (
        f"{logger.name} fine then [and 1 more like it in the 10 s before, not logged]"
    )


def test_the_summary_comes_on_its_own_when_nothing_else_is_logged() -> None:
    out = io.StringIO()
    logger = logging.getLogger("test.repeats.background")
    logger.handlers = [logging.StreamHandler(out)]
    logger.propagate = False
    limit_repeats(logger, RepeatLimit(period=0.2, burst=1))
    for _ in range(3):
        logger.error("gone")
    deadline = time.monotonic() + 5
    while "more like it" not in out.getvalue() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert out.getvalue().splitlines() == [
        "gone",
        "gone [and 1 more like it in the 0 s before, not logged]",
    ]


def test_kinds_are_counted_apart(logged: tuple[logging.Logger, io.StringIO]) -> None:
    logger, out = logged
    for _ in range(5):
        logger.error("fetch failed")
        logger.warning("fetch failed")
        logger.error("heartbeat failed")
    assert out.getvalue().count("fetch failed") == 6
    assert out.getvalue().count("heartbeat failed") == 3


def test_a_record_through_two_handlers_counts_once(clock: Clock) -> None:
    first, second = io.StringIO(), io.StringIO()
    logger = logging.getLogger("test.repeats.two-handlers")
    logger.handlers = [logging.StreamHandler(first), logging.StreamHandler(second)]
    logger.propagate = False
    limit_repeats(logger, RepeatLimit(period=10, burst=2, clock=clock, background=False))
    for _ in range(4):
        logger.error("same")
    assert first.getvalue().count("same") == second.getvalue().count("same") == 2


def test_children_of_the_root_are_limited_by_its_handlers(clock: Clock) -> None:
    out = io.StringIO()
    root = logging.getLogger()
    handler = logging.StreamHandler(out)
    root.addHandler(handler)
    try:
        limit_repeats(root, RepeatLimit(period=10, burst=1, clock=clock, background=False))
        child = logging.getLogger("aiokafka.client.test")
        for _ in range(50):
            child.error("Unable connect to node with id 1")
    finally:
        root.removeHandler(handler)
    assert out.getvalue().count("Unable connect") == 1


def test_few_kinds_are_remembered_at_most(clock: Clock) -> None:
    limit = RepeatLimit(period=10, burst=1, max_kinds=2, clock=clock, background=False)

    def record(msg: str) -> logging.LogRecord:
        return logging.LogRecord("x", logging.ERROR, __file__, 1, msg, None, None)

    assert limit.filter(record("a"))
    assert limit.filter(record("b"))
    assert limit.filter(record("c"))  # forgets "a"
    assert limit.filter(record("a"))
    assert not limit.filter(record("c"))


def test_bad_limits_are_refused() -> None:
    with pytest.raises(ValueError, match="burst"):
        RepeatLimit(burst=0)


def test_configure_logging_limits_repeats_on_the_handler_it_adds(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    root = logging.getLogger()
    monkeypatch.setattr(root, "handlers", [])
    monkeypatch.setattr(root, "level", root.level)
    configure_logging("warning")
    (handler,) = root.handlers
    assert root.level == logging.WARNING
    assert any(isinstance(f, RepeatLimit) for f in handler.filters)


def test_configure_logging_leaves_a_configured_root_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    root = logging.getLogger()
    existing = logging.NullHandler()
    monkeypatch.setattr(root, "handlers", [existing])
    configure_logging("debug")
    assert root.handlers == [existing]
    assert not existing.filters


def test_configure_logging_writes_the_line_a_tool_asks_for(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    root = logging.getLogger()
    monkeypatch.setattr(root, "handlers", [])
    monkeypatch.setattr(root, "level", root.level)
    configure_logging(logging.WARNING, line="consent-relay: %(message)s")
    (handler,) = root.handlers
    assert handler.format(logging.makeLogRecord({"msg": "hi"})) == "consent-relay: hi"
    assert any(isinstance(f, RepeatLimit) for f in handler.filters)
