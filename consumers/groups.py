"""Each sink's consumer group, named inside its deployment, and an existing deployment's
move to that name.

A sink's default group is ``<CONSENT_RELAY_TOPIC_PREFIX>consent-relay.sink.<family>``:
two deployments sharing a broker, each with its own topic prefix, never share a group
(the stream workers' and the gate's groups carry the prefix the same way). Earlier
versions left the prefix out of the sinks' groups, so a deployment with a prefix finds
its sinks' groups renamed when it upgrades. On the first start under the new name,
:func:`adopt_legacy_group` commits for it what the old group had committed on the
sink's topic (offsets and their metadata, e.g. the partner sink's per-partner
positions), and the sink resumes exactly where it was. Once the new group has offsets
the old one is never read again; it can be deleted
(``kafka-consumer-groups.sh --delete --group consent-relay.sink.<family>``).

Stop the old version's sinks before starting the new one's, as for any upgrade: an old
sink still consuming under the old name would go on committing there, unseen. A group
set explicitly (``<SINK>_SINK_GROUP_ID``) is used as it is and never renamed.
"""

from __future__ import annotations

import logging
import threading

from confluent_kafka import Consumer, KafkaException, TopicPartition

from consumers.committed import held, held_by
from schemas.errors import ConsentRelayError
from schemas.runtime.admin import attempt_seconds
from schemas.runtime.kafka import KafkaSettings
from schemas.taxonomy import SinkFamily

log = logging.getLogger(__name__)


def legacy_group(family: SinkFamily) -> str:
    """A family's default group as versions before the prefix named it."""
    return f"consent-relay.sink.{family.value.lower()}"


def default_group(family: SinkFamily, prefix: str = "") -> str:
    """The consumer group of a family's sink when none is configured, in the deployment
    of topic prefix ``prefix``."""
    return f"{prefix}{legacy_group(family)}"


def adopt_legacy_group(
    kafka: KafkaSettings,
    group: str,
    legacy: str,
    topic: str,
    *,
    timeout: float = 30.0,
    stop: threading.Event | None = None,
) -> dict[int, int]:
    """On ``group``'s first start, commit for it ``legacy``'s offsets on ``topic``; what
    was committed, per partition (nothing when the names are the same, ``group`` has
    offsets already, or ``legacy`` has none). A broker not reachable yet is waited for,
    until ``stop`` is set."""
    if group == legacy:
        return {}
    attempt = 0
    while True:
        attempt += 1
        try:
            return _adopt(kafka, group, legacy, topic, timeout)
        except ConsentRelayError as exc:
            wait = attempt_seconds(attempt)
            log.warning(
                "cannot move group %s to %s yet (%s); again in %.1f s", legacy, group, exc, wait
            )
            if stop is None or stop.wait(wait):
                raise


def _adopt(
    kafka: KafkaSettings, group: str, legacy: str, topic: str, timeout: float
) -> dict[int, int]:
    # Offsets are read and committed by consumers that never subscribe, so never join a
    # group: a commit to a group another process has joined meanwhile is refused.
    consumer = Consumer(kafka.consumer_config(group))
    try:
        found = consumer.list_topics(topic, timeout=timeout).topics.get(topic)
        if found is None or found.error is not None or not found.partitions:
            return {}  # no topic yet: nothing was ever committed on it
        partitions = [TopicPartition(topic, p) for p in sorted(found.partitions)]
        if held(consumer, partitions, timeout):
            return {}
        old = held_by(kafka, legacy, partitions, timeout)
        if not old:
            return {}
        consumer.commit(offsets=[_copy(tp) for tp in old], asynchronous=False)
    except KafkaException as exc:
        raise ConsentRelayError(f"cannot read or commit offsets on {topic}: {exc}") from exc
    finally:
        consumer.close()
    log.info(
        "first start of group %s: resuming from group %s's offsets on %d partition(s)",
        group,
        legacy,
        len(old),
    )
    return {tp.partition: tp.offset for tp in old}


def _copy(tp: TopicPartition) -> TopicPartition:
    """A commit of ``tp``'s offset, with its metadata if it has any."""
    if tp.metadata is None:
        return TopicPartition(tp.topic, tp.partition, tp.offset)
    return TopicPartition(tp.topic, tp.partition, tp.offset, tp.metadata)
