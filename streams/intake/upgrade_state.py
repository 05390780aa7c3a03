"""Upgrading a deployment whose state table still has its own JSON changelog.

Before the state table's changelog became the state topic, the workers kept each
subject's whole state in ``<app id>-consent-state-changelog`` (compact JSON) and wrote
only the current choices to ``consent.state``. A worker that recovers from
``consent.state`` would find no history in those records (:mod:`streams.intake.state_topic`
reads them as the current choices only: choices limited to one recipient, past
decisions and grant expiries would be missing until each subject's next change).

``python -m streams upgrade-state`` copies every subject's state from the old changelog
to the state topic as a full :class:`~schemas.events.ConsentStateRecorded`, on the same
partition, once. Run it after the old workers have stopped and before the new ones
start (the old workers would overwrite records without history); afterwards the old
changelog is not read by anything and can be deleted. Running it again rewrites the
same states; a deployment without the old changelog has nothing to copy.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from confluent_kafka import KafkaException

from schemas.errors import ConsentRelayError
from schemas.events import ConsentStateRecorded
from schemas.runtime.confirming_producer import Confirmations, ConfirmingProducer
from schemas.runtime.kafka import KafkaSettings
from streams.engine import tables
from streams.engine.table_codecs import decode_state
from streams.engine.wire import RegistryEncoder
from streams.intake import records
from streams.intake.resolution import SubjectState
from streams.intake.times import now_ms
from streams.proof.query import read_compacted

log = logging.getLogger(__name__)


class UpgradeError(ConsentRelayError):
    """The old changelog could not be read or the state topic not written."""


@dataclass(frozen=True, slots=True)
class Upgraded:
    """What :func:`upgrade` did."""

    source: str
    subjects: int


def upgrade(kafka: KafkaSettings, app_id: str, timeout: float = 300.0) -> Upgraded:
    """Copy each subject's newest state from the old changelog of ``app_id``'s state
    table to the state topic, with its history; how many subjects."""
    source = tables.changelog_topic(app_id, tables.STATE)
    states = _read_newest(kafka, source, timeout)
    target = kafka.topics.state
    encode = RegistryEncoder(kafka.registry_client())
    # A state acknowledged without an offset may not be stored (schemas.runtime.delivery):
    # the upgrade fails, and running it again rewrites every state.
    confirmations = Confirmations()
    producer = ConfirmingProducer(kafka, "upgrade-state", renew=False)
    at = now_ms()
    for key, (partition, state) in states.items():
        value = encode(ConsentStateRecorded, records.consent_state(key.decode(), state, at), target)
        producer.send(target, value, key, partition=partition, confirm=confirmations)
        producer.poll(0)
    confirmed = producer.confirm(confirmations, timeout)
    if not confirmed.ok:
        reason = (
            confirmed.failures[0]
            if confirmed.failures
            else f"{confirmed.unacknowledged} not acknowledged within {timeout}s"
        )
        raise UpgradeError(f"writing {target}: {reason}")
    log.info("upgrade-state: %d subject(s) from %s to %s", len(states), source, target)
    return Upgraded(source, len(states))


def _read_newest(
    kafka: KafkaSettings, topic: str, timeout: float
) -> dict[bytes, tuple[int, SubjectState]]:
    """Subject key → (partition, newest state) of the old changelog, read to its end."""
    try:
        latest = read_compacted(kafka, topic, timeout)
    except (ConsentRelayError, KafkaException) as exc:
        raise UpgradeError(f"reading {topic}: {exc}") from exc
    if not latest:
        log.info("upgrade-state: %s is empty or missing, nothing to copy", topic)
    try:
        return {key: (partition, decode_state(value)) for key, (partition, value) in latest.items()}
    except (ValueError, KeyError, TypeError, IndexError) as exc:
        raise UpgradeError(f"a record of {topic} cannot be read: {exc!r}") from exc
