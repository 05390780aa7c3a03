"""deploy.bench.progress without a broker: when the relay counts as caught up."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from deploy.bench import progress
from deploy.bench.offsets import GroupLag
from schemas.runtime.kafka import KafkaSettings

PREFIX = "bench-x."
STREAM_GROUP = f"{PREFIX}consent-relay-streams"


class FakeOffsets:
    """A stream group assigned the state topic (the state table's changelog), which it
    never commits: counted as input, its records would read as lag forever."""

    def __init__(self, settings: KafkaSettings) -> None:
        self.state = settings.topics.state
        self.consent = settings.topics.consent

    def groups(self, prefix: str) -> list[str]:
        return [STREAM_GROUP]

    def lag(self, group: str, only: set[str]) -> GroupLag:
        assigned = {self.state: 250, self.consent: 0}
        return GroupLag(group, {t: n for t, n in assigned.items() if t in only})


def test_the_state_topic_is_not_stream_input(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = KafkaSettings(
        bootstrap="127.0.0.1:1", registry_url="http://127.0.0.1:1", topic_prefix=PREFIX
    )
    monkeypatch.setattr(progress, "instruction_topics", lambda _settings: [])
    relay: Any = SimpleNamespace(
        settings=settings, stream_group=STREAM_GROUP, check_alive=lambda: None
    )
    monkeypatch.setattr(progress.time, "sleep", lambda _s: None)
    offsets: Any = FakeOffsets(settings)
    caught_up, _seconds, lags = progress.wait_caught_up(offsets, relay, 5.0)
    assert caught_up
    assert lags[STREAM_GROUP].total == 0
