"""A sink's bootstrap waits for a broker that is away, and rides out a blip while it
reads the state topic (a fake consumer: no network)."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from confluent_kafka import KafkaError, KafkaException

from consumers import bootstrap as bootstrap_module
from consumers.bootstrap import BootstrapError, bootstrap
from consumers.state_records import state_avro, typed_state
from schemas.codec import EventDecoder
from schemas.errors import InvalidEventError, ValidationError
from schemas.events import ConsentStateRecorded, Subject
from schemas.runtime.kafka import KafkaSettings
from schemas.taxonomy import SubjectKind

SETTINGS = KafkaSettings(bootstrap="127.0.0.1:9", registry_url="http://127.0.0.1:8081")


class FakeError:
    def __init__(self, code: int, fatal: bool = False) -> None:
        self._code, self._fatal = code, fatal

    def code(self) -> int:
        return self._code

    def fatal(self) -> bool:
        return self._fatal

    def __str__(self) -> str:
        return f"error {self._code}"


class FakeMessage:
    def __init__(
        self, offset: int, error: FakeError | None = None, value: bytes | None = None
    ) -> None:
        self._offset, self._error = offset, error
        self._value = value

    def error(self) -> FakeError | None:
        return self._error

    def partition(self) -> int:
        return 0

    def offset(self) -> int:
        return self._offset

    def value(self) -> bytes:
        return self._value or f"s-{self._offset}".encode()


class FakeConsumer:
    """One partition holding two state records; the broker away ``down`` times first."""

    down = 0
    listings: list[float] = []
    script: list[FakeMessage | list[FakeMessage] | None] = []
    end = 2

    def __init__(self, _config: dict[str, Any]) -> None:
        pass

    def list_topics(self, topic: str, timeout: float) -> Any:
        FakeConsumer.listings.append(timeout)
        if FakeConsumer.down > 0:
            FakeConsumer.down -= 1
            raise KafkaException(KafkaError(KafkaError._TRANSPORT))

        class Info:
            error = None
            partitions = {0: None}

        class Metadata:
            topics = {topic: Info()}

        return Metadata()

    def get_watermark_offsets(self, _tp: Any, timeout: float) -> tuple[int, int]:
        return 0, FakeConsumer.end

    def assign(self, _partitions: Any) -> None:
        pass

    def consume(self, _count: int, _timeout: float) -> list[FakeMessage]:
        message = FakeConsumer.script.pop(0) if FakeConsumer.script else None
        if isinstance(message, list):
            return message
        return [] if message is None else [message]

    def position(self, partitions: Any) -> Any:
        return partitions

    def close(self) -> None:
        pass


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> type[FakeConsumer]:
    FakeConsumer.down = 0
    FakeConsumer.listings = []
    FakeConsumer.script = [FakeMessage(0), FakeMessage(1)]
    FakeConsumer.end = 2
    monkeypatch.setattr(bootstrap_module, "Consumer", FakeConsumer)
    monkeypatch.setattr(
        bootstrap_module, "decode_state_avro", lambda _d, value: state_avro(state(value))
    )
    return FakeConsumer


def state(value: bytes) -> ConsentStateRecorded:
    """``b"<subject>"`` or ``b"<subject>@<seconds>"`` (its time); ``b"bad"`` is invalid."""
    if value == b"bad":
        raise ValidationError("subject.id", "refused")
    subject, _, seconds = value.decode().partition("@")
    return ConsentStateRecorded(
        subject=Subject(id=subject, kind=SubjectKind.ACCOUNT),
        entries=(),
        restricted=bool(seconds),
        updated_at=datetime(2024, 1, 1, tzinfo=UTC) + timedelta(seconds=int(seconds or 0)),
    )


def run(stop: threading.Event | None = None) -> tuple[int, list[Any]]:
    states: list[Any] = []
    count = bootstrap(
        SETTINGS,
        group_id="g",
        decoder=EventDecoder(None),
        on_state=states.append,
        on_invalid=lambda _m, exc: pytest.fail(f"invalid: {exc}"),
        stop=stop or threading.Event(),
        timeout=30,
    )
    return count, states


def test_the_broker_is_waited_for_with_growing_attempts(fake: type[FakeConsumer]) -> None:
    fake.down = 2
    began = time.monotonic()
    count, states = run()
    assert (count, len(states)) == (2, 2)
    assert fake.listings == [0.5, 1.0, 2.0]
    assert time.monotonic() - began >= 1.5  # no tight loop while the broker refuses


def test_stop_ends_the_wait(fake: type[FakeConsumer]) -> None:
    fake.down = 1000
    stop = threading.Event()
    threading.Timer(0.3, stop.set).start()
    assert run(stop) == (0, [])
    assert len(fake.listings) <= 2


def test_a_broker_blip_while_reading_is_ridden_out(fake: type[FakeConsumer]) -> None:
    fake.script = [
        FakeMessage(0),
        FakeMessage(-1, FakeError(KafkaError._TRANSPORT)),
        FakeMessage(1),
    ]
    assert run()[0] == 2


def test_a_fatal_error_while_reading_fails_the_bootstrap(fake: type[FakeConsumer]) -> None:
    fake.script = [FakeMessage(0), FakeMessage(-1, FakeError(KafkaError._FATAL, fatal=True))]
    with pytest.raises(BootstrapError, match="reading"):
        run()


@pytest.mark.parametrize("avro", [False, True])
def test_a_batch_carries_the_newest_state_of_each_subject(
    fake: type[FakeConsumer], avro: bool
) -> None:
    fake.end = 6
    fake.script = [
        [
            FakeMessage(0, value=b"a@1"),
            FakeMessage(1, value=b"b@1"),
            FakeMessage(2, value=b"a@3"),
            FakeMessage(3, value=b"bad"),
            FakeMessage(4, value=b"a@2"),  # older than a@3 (another partition, once)
            FakeMessage(5, value=b"b@5"),
            FakeMessage(6, value=b"c@9"),  # written after the seed began: not read
        ]
    ]
    batches: list[list[ConsentStateRecorded]] = []
    invalid: list[InvalidEventError] = []
    count = bootstrap(
        SETTINGS,
        group_id="g",
        decoder=EventDecoder(None),
        # Both given: the Avro dicts are preferred (no typed records built).
        on_states=lambda states: batches.append(list(states)),
        on_avro=(lambda states: batches.append([typed_state(s) for s in states])) if avro else None,
        on_invalid=lambda _m, exc: invalid.append(exc),
        stop=threading.Event(),
        timeout=30,
    )
    assert count == 5
    assert len(invalid) == 1
    assert len(batches) == 1
    newest = {s.subject.id: s.updated_at.second for s in batches[0]}
    assert newest == {"a": 3, "b": 5}


def test_the_store_is_written_on_the_callers_thread(fake: type[FakeConsumer]) -> None:
    threads: set[int] = set()
    bootstrap(
        SETTINGS,
        group_id="g",
        decoder=EventDecoder(None),
        on_states=lambda _states: threads.add(threading.get_ident()),
        on_invalid=lambda _m, exc: pytest.fail(f"invalid: {exc}"),
        stop=threading.Event(),
        timeout=30,
    )
    assert threads == {threading.get_ident()}


def test_a_store_failure_stops_the_reader(fake: type[FakeConsumer]) -> None:
    fake.end = 1000
    fake.script = [[FakeMessage(i)] for i in range(1000)]

    def fail(_states: object) -> None:
        raise RuntimeError("store down for good")

    with pytest.raises(RuntimeError, match="store down"):
        bootstrap(
            SETTINGS,
            group_id="g",
            decoder=EventDecoder(None),
            on_states=fail,
            on_invalid=lambda _m, exc: pytest.fail(f"invalid: {exc}"),
            stop=threading.Event(),
            timeout=30,
        )
    assert len(fake.script) > 900  # the reader quit instead of reading on
