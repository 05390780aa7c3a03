"""Upgrading a deployment whose state table had its own JSON changelog: ``python -m
streams upgrade-state`` copies each subject's whole state to the state topic, and a new
worker's state table recovers from that topic with the full history (a choice limited to
one recipient, past decisions), not just the current choices the old records held."""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Any

from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

from schemas.codec import EventDecoder
from schemas.events import ConsentEntry, ConsentStateRecorded
from schemas.taxonomy import Choice, Purpose, Recipient, Regime
from streams.engine.table_codecs import encode_state
from streams.engine.tables import STATE, changelog_topic
from streams.intake.resolution import Claim, Effect, SubjectState, apply
from streams.intake.state_topic import StateReader
from streams.intake.times import from_ms, to_ms

ADS = Purpose.SHARE_WITH_ADVERTISING_PLATFORMS
GENERAL = (ADS, Regime.GDPR, None)
CRITEO = (ADS, Regime.GDPR, Recipient.CRITEO)


def newest_states(kit: Any, reader: Any) -> dict[bytes, SubjectState]:
    """Subject key → newest state the (raw) reader has read from the state topic so far."""
    states = StateReader(EventDecoder(kit.registry))
    newest = dict(zip(reader.keys, reader.records, strict=True))
    return {key: states.read(value) for key, value in newest.items() if key is not None}


def test_upgrade_copies_whole_states_and_a_new_worker_recovers_from_them(
    stream_kit: Any, events: Any
) -> None:
    kit = stream_kit
    topics = kit.topics
    subject = events.subject()
    key = subject.id.encode()
    t0 = to_ms(events.ago(300))
    state = apply(
        None, subject.kind, "e-grant", t0, Effect(claims=(Claim(GENERAL, Choice.GRANTED),))
    )
    state = apply(
        state.state,
        subject.kind,
        "e-criteo",
        t0 + 100_000,
        Effect(claims=(Claim(CRITEO, Choice.WITHDRAWN),)),
    )
    whole = state.state

    # What an old deployment holds: the state in the old JSON changelog, and on the
    # state topic only the current choice covering every recipient (no history).
    old = changelog_topic(kit.app_id_full, STATE)
    admin = AdminClient(kit.settings.admin_config())
    created = admin.create_topics([NewTopic(old, kit.settings.partitions, 1)])
    created[old].result(30)
    kit.producer.produce(old, encode_state(whole), key=key)
    kit.publish(
        ConsentStateRecorded(
            subject=subject,
            entries=(
                ConsentEntry(
                    purpose=ADS,
                    regime=Regime.GDPR,
                    choice=Choice.GRANTED,
                    occurred_at=from_ms(t0),
                    event_id="e-grant",
                ),
            ),
            updated_at=from_ms(t0 + 100_000),
        ),
        topic=topics.state,
    )

    env = {**os.environ, **kit.env, "STREAMS_APP_ID": kit.app_id}
    result = subprocess.run(
        [sys.executable, "-m", "streams", "upgrade-state"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "1 subject(s) copied" in result.stdout

    reader = kit.reader(topics.state, decode=False)
    # The old record without history, then the copy with it.
    kit.wait_until(lambda: len(reader.poll(0.3)) == 2)
    assert newest_states(kit, reader)[key] == whole

    # A grant for Criteo older than the withdrawal: a worker whose table recovered the
    # history keeps the withdrawal in force; one that had only the current choices
    # would make the late grant current.
    kit.start_worker()
    late = events.changed(
        subject, Choice.GRANTED, ADS, recipients=(Recipient.CRITEO,), at=from_ms(t0 + 50_000)
    )
    kit.publish(late)

    def recovered() -> SubjectState | None:
        reader.poll(0.3)
        found = newest_states(kit, reader).get(key)
        history = found.decisions.get(CRITEO, ()) if found else ()
        return found if len(history) == 2 else None

    after = kit.wait_until(recovered, timeout=60)
    current = after.current(CRITEO)
    assert current is not None
    assert (current.choice, current.event_id) == (Choice.WITHDRAWN, "e-criteo")
    assert after.decisions[GENERAL] == whole.decisions[GENERAL]
