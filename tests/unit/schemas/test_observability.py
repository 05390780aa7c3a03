"""RepeatLimit: a flood of identical log records becomes a few lines and a count."""

from __future__ import annotations

import io
import logging

import pytest

from schemas.observability import RepeatLimit, configure_logging, limit_repeats


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
    limit_repeats(logger, RepeatLimit(period=10, burst=3, clock=clock))
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
    limit_repeats(logger, RepeatLimit(period=10, burst=2, clock=clock))
    for _ in range(4):
        logger.error("same")
    assert first.getvalue().count("same") == second.getvalue().count("same") == 2


def test_children_of_the_root_are_limited_by_its_handlers(clock: Clock) -> None:
    out = io.StringIO()
    root = logging.getLogger()
    handler = logging.StreamHandler(out)
    root.addHandler(handler)
    try:
        limit_repeats(root, RepeatLimit(period=10, burst=1, clock=clock))
        child = logging.getLogger("aiokafka.client.test")
        for _ in range(50):
            child.error("Unable connect to node with id 1")
    finally:
        root.removeHandler(handler)
    assert out.getvalue().count("Unable connect") == 1


def test_few_kinds_are_remembered_at_most(clock: Clock) -> None:
    limit = RepeatLimit(period=10, burst=1, max_kinds=2, clock=clock)

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
