"""The blocking Python client: each call returns once the broker acknowledged the event.

Usage::

    with ConsentClient() as client:            # KAFKA_BOOTSTRAP, SCHEMA_REGISTRY_URL, ...
        client.withdraw("user-42", [Purpose.MARKETING_EMAIL])

For batches, :meth:`ConsentClient.send` returns a ``concurrent.futures.Future`` at once;
events of one subject are delivered in the order they were sent.
"""

from __future__ import annotations

from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeoutError
from types import TracebackType

from producers.errors import BrokerUnavailableError, PublishError
from producers.publisher import Published
from producers.verbs import ConsentVerbs
from schemas.events import ConsentEvent

_GRACE_S = 5.0


class ConsentClient(ConsentVerbs[Published]):
    """Publishes consent events synchronously (or as futures with :meth:`send`)."""

    def send(self, event: ConsentEvent) -> Future[Published]:
        """Queue ``event``; the future resolves to its acknowledgement or a PublishError."""
        future: Future[Published] = Future()
        future.set_running_or_notify_cancel()

        def done(published: Published | None, error: PublishError | None) -> None:
            if published is not None:
                future.set_result(published)
            else:
                future.set_exception(error or PublishError("delivery failed"))

        self._publisher.produce(event, done)
        return future

    def publish(self, event: ConsentEvent, timeout: float | None = None) -> Published:
        """Publish ``event`` and wait for the broker's acknowledgement."""
        bound = self._publisher.delivery_timeout_s + _GRACE_S if timeout is None else timeout
        try:
            return self.send(event).result(bound)
        except FutureTimeoutError as exc:
            raise BrokerUnavailableError(f"no acknowledgement within {bound:g} s") from exc

    def _emit(self, event: ConsentEvent) -> Published:
        return self.publish(event)

    def flush(self, timeout: float | None = None) -> int:
        """Wait for everything sent; returns how many events are still unacknowledged."""
        return self._publisher.flush(timeout)

    def close(self, timeout: float | None = None) -> None:
        """Flush and close; unacknowledged futures fail rather than vanish."""
        self._publisher.close(timeout)

    def __enter__(self) -> ConsentClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
