"""The agents' topics hand each message's key and value bytes through as they came
(streams.engine.raw), exactly what Faust's ``raw`` serializers gave, without the app's
serializer registry."""

from __future__ import annotations

import asyncio
from typing import Any, NoReturn

import faust
import pytest
from faust.types import Message

from streams.engine.raw import RawMessages


def message(key: bytes | None, value: bytes | None) -> Message:
    return Message("consent", 3, 17, 1_700_000_000.0, None, [("h", b"1")], key, value, None)


def decoded(app: faust.App, topic: Any, msg: Message) -> tuple[Any, Any, Any]:
    event = asyncio.run(topic.decode(msg))
    return event.key, event.value, event.message


KINDS = [(b"subject-key", b"\x00\x01avro"), (None, b"value"), (b"key", None), (b"", b"")]


@pytest.mark.parametrize(("key", "value"), KINDS)
def test_same_as_the_raw_serializers(key: bytes | None, value: bytes | None) -> None:
    app = faust.App("raw-test", store="memory://", autodiscover=False)
    msg = message(key, value)
    ours = decoded(app, app.topic("consent", schema=RawMessages()), msg)
    before = decoded(app, app.topic("consent", key_serializer="raw", value_serializer="raw"), msg)
    assert ours == before == (key, value, msg)


def test_the_serializer_registry_is_not_consulted(monkeypatch: pytest.MonkeyPatch) -> None:
    app = faust.App("raw-test", store="memory://", autodiscover=False)

    def refuse(*args: Any, **kwargs: Any) -> NoReturn:
        raise AssertionError("the serializer registry was called")

    monkeypatch.setattr(app.serializers, "loads_key", refuse)
    monkeypatch.setattr(app.serializers, "loads_value", refuse)
    msg = message(b"k", b"v")
    key, value, _ = decoded(app, app.topic("consent", schema=RawMessages()), msg)
    assert key is msg.key
    assert value is msg.value


def test_bytes_sent_through_the_topic_stay_as_they_are() -> None:
    app = faust.App("raw-test", store="memory://", autodiscover=False)
    schema = RawMessages()
    assert schema.dumps_key(app, b"k", headers=None) == (b"k", None)
    assert schema.dumps_value(app, b"\x00v", headers=None) == (b"\x00v", None)
