"""Upgrading from a topic per partner: refuse to start while one still holds unread work.

Releases 1 and 2 of the contract gave each partner an instruction topic of its own
(``consent.instructions.partner_sharing.<partner>``); the stream now writes one record
per consent event to the partners' family topic, and nothing writes the old ones. A sink
that reads only the family topic would never apply what the previous sink had left on an
old one, and reading both at once could tell a partner a person's newer decision before
an older one. So at start, for every partner whose legacy topic still exists, its group's
committed offsets are compared with the topic's end, and any instruction left unread
stops the process with :class:`LegacyBacklogError`, naming the topic and how many are
left. The upgrade order (``consumers/partners/WEBHOOK.md``): the stream first, then let
the previous partner sink drain every legacy topic, then start this one, then delete
the legacy topics.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from confluent_kafka import Consumer, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient

from consumers.committed import read_committed
from schemas.errors import ConsentRelayError
from schemas.runtime.kafka import KafkaSettings
from schemas.taxonomy import SinkFamily

log = logging.getLogger(__name__)

FAMILY = SinkFamily.PARTNER_SHARING


class LegacyBacklogError(ConsentRelayError):
    """A partner's legacy topic holds instructions its group has not read."""


def legacy_backlog(
    kafka: KafkaSettings, groups: Mapping[str, str], timeout: float = 30.0
) -> dict[str, int]:
    """Legacy topic → instructions its partner's group has not read, for every partner
    (name → group) whose legacy topic exists and is not read to its end."""
    try:
        existing = AdminClient(kafka.admin_config()).list_topics(timeout=timeout).topics
        backlog: dict[str, int] = {}
        for partner, group in groups.items():
            name = kafka.topics.legacy_instructions(FAMILY, partner)
            metadata = existing.get(name)
            if metadata is None:
                continue
            left = _unread(kafka, group, name, sorted(metadata.partitions), timeout)
            if left:
                backlog[name] = left
            else:
                log.info("legacy topic %s is drained; it can be deleted", name)
    except KafkaException as exc:
        raise ConsentRelayError(f"cannot read the legacy partner topics: {exc}") from exc
    return backlog


def _unread(
    kafka: KafkaSettings, group: str, topic: str, partitions: list[int], timeout: float
) -> int:
    # Only asks for offsets: the consumer never subscribes, so it never joins the group.
    consumer = Consumer(kafka.consumer_config(group))
    try:
        committed = read_committed(
            consumer, [TopicPartition(topic, p) for p in partitions], timeout
        )
        left = 0
        for tp in committed:
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, tp.partition), timeout)
            left += max(0, high - max(tp.offset, low))
        return left
    finally:
        consumer.close()


def refuse_legacy_backlog(kafka: KafkaSettings, groups: Mapping[str, str]) -> None:
    """Raise :class:`LegacyBacklogError` if any partner's legacy topic holds unread work."""
    backlog = legacy_backlog(kafka, groups)
    if backlog:
        left = ", ".join(f"{topic} ({count})" for topic, count in sorted(backlog.items()))
        raise LegacyBacklogError(
            f"instructions left unread on the legacy partner topics: {left}; run the previous "
            "partner sink until they are drained (lag 0), then start this one "
            "(consumers/partners/WEBHOOK.md, 'Upgrading from a topic per partner')"
        )
