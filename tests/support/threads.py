"""Run a blocking service (``run()`` until ``stop()``) in a thread for the length of a test.

Sink runners and the partner process block in ``run()``; a test drives them from the
outside, so each runs in a daemon thread here. On exit the service is stopped and must
end within the bound; an exception it raised is re-raised in the test.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Protocol, TypeVar


class Service(Protocol):
    """Anything that blocks in ``run`` until ``stop`` is called."""

    def run(self) -> None: ...

    def stop(self) -> None: ...


S = TypeVar("S", bound=Service)


@contextmanager
def running_in_thread(
    service: S,
    *,
    name: str,
    ready: Callable[[], bool] | None = None,
    stop_within: float = 60.0,
) -> Iterator[S]:
    """``service.run()`` in a thread; stopped, joined and its error re-raised on exit.

    ``ready``, when given, must answer true before the body runs.
    """
    errors: list[BaseException] = []

    def target() -> None:
        try:
            service.run()
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=target, name=name, daemon=True)
    thread.start()
    try:
        if ready is not None:
            assert ready(), f"{name} did not get ready"
        yield service
    finally:
        service.stop()
        thread.join(stop_within)
        assert not thread.is_alive(), f"{name} did not stop within {stop_within:g} s"
    if errors:
        raise errors[0]
