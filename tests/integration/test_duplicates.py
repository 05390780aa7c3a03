"""Duplicates cost nothing downstream, tried as a new user would: the same withdrawal
event, id and all, published five times to the real relay.

The stream worker, the marketing, analytics and partner sinks run as their own
processes on the real broker and registry, with their real stores, and each partner is
a real HTTP server counting every request it gets. Three copies go out at once (a
client retrying), two more once the first is fully propagated (a producer replaying).
Every destination applies it once, answers it with exactly one receipt, and each
partner is called exactly once; the copies are counted as duplicates.
"""

from __future__ import annotations

import json
import re
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

from confluent_kafka import Consumer, TopicPartition

from producers import builders
from producers.client import ConsentClient
from schemas.codec import EventDecoder
from schemas.events import FullyPropagated, receipts_in
from schemas.runtime.kafka import KafkaSettings
from schemas.taxonomy import PARTNER_DESTINATIONS, Purpose, SinkFamily
from tests.integration.consumers.partner_servers import PartnerServer
from tests.support.processes import (
    free_port,
    http_text,
    relay_process,
    stream_and_marketing_sink,
    wait_for,
)

SECRET = "duplicates-webhook-secret-0123"
PSEUDONYM_KEY = "duplicates-pseudonym-key-0123456789"
SUBJECT = "subject-sent-five-times"
PURPOSES = (
    Purpose.MARKETING_EMAIL,
    Purpose.RESEARCH_AND_STATISTICS,
    Purpose.SHARE_WITH_ADVERTISING_PLATFORMS,
)
"""A withdrawal reaching all three families: marketing, analytics and several partners."""


def test_the_same_withdrawal_sent_five_times_is_answered_once_everywhere(
    relay_settings: KafkaSettings, relay_env: dict[str, str], tmp_path: Path, unique_group: str
) -> None:
    withdrawal = builders.withdraw(SUBJECT, PURPOSES)
    with (
        partner_servers() as partners,
        stream_and_marketing_sink(relay_env, tmp_path, "duplicates", unique_group) as (
            _stream,
            marketing_url,
        ),
        analytics_sink(relay_env, tmp_path, unique_group) as analytics_url,
        partner_sink(relay_env, tmp_path, unique_group, partners) as partners_url,
        ConsentClient(relay_settings) as client,
        Watcher(relay_settings, withdrawal.event_id) as watcher,
    ):
        for _ in range(3):
            client.send(withdrawal)
        client.flush(30)
        done = wait_for("FullyPropagated", watcher.fully_propagated, bound=180)
        for _ in range(2):
            client.publish(withdrawal)
        wait_for(
            "the sinks to take every copy", lambda: caught_up(relay_settings, unique_group), 120
        )
        time.sleep(1.0)  # any receipt or call a copy would cause has had time to land
        watcher.poll(1.0)

        destinations = {d.destination for d in done.destinations}
        assert any(d.startswith("PARTNER_SHARING/") for d in destinations), destinations
        assert {"MARKETING/suppression_list", "ANALYTICS/analytics_store"} <= destinations
        assert watcher.receipts == Counter(dict.fromkeys(destinations, 1))
        assert len(watcher.propagated) == 1

        told = {f"PARTNER_SHARING/{n}" for n, p in partners.items() if p.statuses}
        assert told == {d for d in destinations if d.startswith("PARTNER_SHARING/")}
        for name, partner in partners.items():
            assert partner.statuses in ([], [204]), (name, partner.statuses)
            assert partner.duplicates == 0

        metrics = [http_text(f"{url}/metrics") for url in (marketing_url, analytics_url)]
        metrics.append(http_text(f"{partners_url}/metrics"))
        dropped = sum(total(text, "consent_relay_sink_duplicates_total") for text in metrics)
        # Five copies reach each destination; four of each are dropped as duplicates.
        assert dropped == 4 * len(destinations)


@contextmanager
def partner_servers() -> Iterator[dict[str, PartnerServer]]:
    made = {name: PartnerServer(name, SECRET.encode()) for name in PARTNER_DESTINATIONS}
    with ExitStack() as stack:
        for server in made.values():
            stack.enter_context(server.running())
        yield made


@contextmanager
def analytics_sink(env: dict[str, str], tmp_path: Path, group: str) -> Iterator[str]:
    port = free_port()
    sink_env = {
        **env,
        "ANALYTICS_SINK_DATABASE": str(tmp_path / "analytics.sqlite"),
        "ANALYTICS_SINK_GROUP_ID": f"{group}-analytics",
        "ANALYTICS_SINK_HTTP_PORT": str(port),
    }
    url = f"http://127.0.0.1:{port}"
    log = tmp_path / "analytics.log"
    with relay_process("consumers.analytics", sink_env, log, ready_url=f"{url}/metrics"):
        yield url


@contextmanager
def partner_sink(
    env: dict[str, str], tmp_path: Path, group: str, partners: dict[str, PartnerServer]
) -> Iterator[str]:
    config = {
        "pseudonym_key": PSEUDONYM_KEY,
        "partners": {
            name: {"url": server.url, "secret": SECRET, "known_subjects": "all"}
            for name, server in partners.items()
        },
    }
    path = tmp_path / "partners.json"
    path.write_text(json.dumps(config))
    port = free_port()
    sink_env = {
        **env,
        "PARTNER_SINK_CONFIG": str(path),
        "PARTNER_SINK_DATABASE": str(tmp_path / "partner-state.sqlite"),
        "PARTNER_SINK_GROUP_ID": f"{group}-partners",
        "PARTNER_SINK_HTTP_PORT": str(port),
    }
    url = f"http://127.0.0.1:{port}"
    log = tmp_path / "partners.log"
    with relay_process("consumers.partners", sink_env, log, ready_url=f"{url}/metrics"):
        yield url


class Watcher:
    """Reads the receipts and propagated topics for one event."""

    def __init__(self, settings: KafkaSettings, event_id: str) -> None:
        self.event_id = event_id
        self.receipts: Counter[str] = Counter()
        self.propagated: list[FullyPropagated] = []
        self._registry = settings.registry_client()
        self._decoder = EventDecoder(self._registry)
        self._consumer = Consumer(settings.consumer_config(f"watch-{event_id}"))
        topics = [settings.topics.receipts, settings.topics.propagated]
        self._consumer.assign(
            [
                TopicPartition(topic, p, 0)
                for topic in topics
                for p in self._consumer.list_topics(topic, timeout=30).topics[topic].partitions
            ]
        )

    def __enter__(self) -> Watcher:
        return self

    def __exit__(self, *_exc: object) -> None:
        self._consumer.close()
        self._registry.close()

    def poll(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            message = self._consumer.poll(0.1)
            if message is None or message.error() is not None:
                continue
            event = self._decoder.decode(message.value())
            for receipt in receipts_in(event):
                if receipt.event_id == self.event_id:
                    self.receipts[f"{receipt.sink_family.value}/{receipt.destination}"] += 1
            if isinstance(event, FullyPropagated) and event.event_id == self.event_id:
                self.propagated.append(event)

    def fully_propagated(self) -> FullyPropagated | None:
        self.poll(0.5)
        return self.propagated[0] if self.propagated else None


def caught_up(settings: KafkaSettings, group: str) -> bool:
    """Every sink's group has committed the end of the instruction topic it reads."""
    topics = settings.topics
    readers = {
        f"{group}-marketing": topics.instructions(SinkFamily.MARKETING),
        f"{group}-analytics": topics.instructions(SinkFamily.ANALYTICS),
    }
    # The partner sink's one group commits only what every partner has made durable.
    readers[f"{group}-partners"] = topics.instructions(SinkFamily.PARTNER_SHARING)
    for reader, topic in readers.items():
        consumer = Consumer(settings.consumer_config(reader))
        try:
            partitions = consumer.list_topics(topic, timeout=30).topics[topic].partitions
            wanted = [TopicPartition(topic, p) for p in partitions]
            for tp in consumer.committed(wanted, timeout=30):
                _, high = consumer.get_watermark_offsets(tp, timeout=30)
                if high > max(tp.offset, 0):
                    return False
        finally:
            consumer.close()
    return True


def total(text: str, name: str) -> float:
    """Sum of every sample of ``name`` in a /metrics page."""
    found = re.findall(rf"^{re.escape(name)}(?:\{{[^}}]*\}})? (\S+)$", text, flags=re.M)
    return sum(float(v) for v in found)
