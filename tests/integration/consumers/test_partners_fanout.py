"""The partner sink's one consumer against the real broker: a partner down for long holds
up no one (its lane fills, is detached and reads on by itself, then is attached again),
a SIGKILL resumes every partner where it was with no second call or receipt, and the
first start of the one group resumes each partner from its own old group's offsets."""

from __future__ import annotations

import json
import os
import signal
import statistics
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer, TopicPartition

from consumers.partners.config import load_config
from consumers.partners.process import PartnerSinkProcess
from consumers.partners.settings import PartnerSinkSettings
from schemas.events import InstructionIssued, PropagationReceipt, new_event_id
from schemas.taxonomy import Action, Outcome, Purpose, SinkFamily
from tests.integration.consumers import partner_servers as servers
from tests.support.threads import running_in_thread

FAMILY = SinkFamily.PARTNER_SHARING
SECRET = "fanout-webhook-secret-0123456789"
NAMES = ("criteo", "facebook", "google")


@pytest.fixture
def partners() -> Iterator[dict[str, Any]]:
    made = {n: servers.PartnerServer(n, SECRET.encode()) for n in NAMES}
    with ExitStack() as stack:
        for server in made.values():
            stack.enter_context(server.running())
        yield made


def config_file(tmp_path: Path, partners: dict[str, Any], timeout: float = 2) -> Path:
    lines = ['pseudonym_key = "fanout-pseudonym-key-0123456789"']
    for name, server in partners.items():
        lines += [
            f"[partners.{name}]",
            f'url = "{server.url}"',
            f'secret = "{SECRET}"',
            'known_subjects = "all"',
            f"timeout_seconds = {timeout}",
            "failure_threshold = 2",
            "reset_seconds = 0.5",
        ]
    path = tmp_path / "partners.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def event(kit: Any, subject: str) -> list[InstructionIssued]:
    """One withdrawal reaching every partner: one record on the partners' topic."""
    event_id = new_event_id()
    return [
        kit.instruction(
            Action.SUPPRESS,
            subject=subject,
            purposes=(Purpose.SHARE_WITH_ADVERTISING_PLATFORMS,),
            destination=name,
            family=FAMILY,
            event_id=event_id,
        )
        for name in NAMES
    ]


def test_a_partner_down_for_long_delays_no_one_and_catches_up_by_itself(
    tmp_path: Path, partners: dict[str, Any], sink_kit: Any, until: Callable[..., Any]
) -> None:
    path = config_file(tmp_path, partners)
    bound = 5
    settings = PartnerSinkSettings(
        config=path,
        group_id=sink_kit.group,
        lane_records=bound,
        backoff_initial_seconds=0.05,
        backoff_max_seconds=0.3,
        poll_timeout_seconds=0.2,
    )
    process = PartnerSinkProcess(sink_kit.settings, settings, load_config(path, {}), metrics_port=0)
    receipts = sink_kit.reader(sink_kit.settings.topics.receipts)
    partners["facebook"].fail()
    sent: list[InstructionIssued] = []
    delays: list[float] = []
    with running_in_thread(process, name="partners", ready=lambda: process.wait_ready(60)):
        # A trickle, one withdrawal at a time: far more than facebook's lane holds.
        for n in range(8 * bound):
            instructions = event(sink_kit, f"acct-fanout-{n % 4}")
            published = time.monotonic()
            sink_kit.publish_routed(instructions)
            sent += instructions
            for name in ("criteo", "google"):
                until(lambda name=name, n=n: len(partners[name].applied) == n + 1, timeout=30)
            # When the later of the two partners got it (the server's own clock).
            applied = max(partners[name].applied[-1].received_at for name in ("criteo", "google"))
            delays.append(applied - published)
            if n >= 2 * bound:
                assert not process.lanes.attached("facebook"), "the full lane was not detached"
        assert partners["facebook"].applied == []
        delays.sort()
        p50, worst = statistics.median(delays), delays[-1]
        print(
            f"\nwith facebook down: publish → both healthy partners applied p50 "
            f"{p50 * 1000:.0f} ms, max {worst * 1000:.0f} ms over {len(delays)} events"
        )
        # Not a latency benchmark (a shared, loaded machine): it must not wait on facebook,
        # whose retries back off to 0.3 s and whose lane was full after 5 events.
        assert p50 < 1.0, delays

        partners["facebook"].recover()
        until(lambda: len(partners["facebook"].applied) == 8 * bound, timeout=60)
        until(lambda: process.lanes.attached("facebook"), timeout=30)
        # Attached again: the next event reaches it through the shared consumer.
        sent += event(sink_kit, "acct-fanout-0")
        sink_kit.publish_routed(sent[-3:])
        until(lambda: len(partners["facebook"].applied) == 8 * bound + 1, timeout=30)
        wanted = {i.instruction_id for i in sent}
        until(
            lambda: (
                wanted
                <= {r.instruction_id for r in receipts.poll() if isinstance(r, PropagationReceipt)}
            ),
            timeout=60,
        )
    for server in partners.values():
        assert server.duplicates == 0
        assert sorted(server.applied_keys()) == sorted(
            i.instruction_id for i in sent if i.destination == server.name
        )
    facebook = [i.instruction_id for i in sent if i.destination == "facebook"]
    # In order per subject (all four subjects' events interleave in publishing order).
    order = {key: n for n, key in enumerate(partners["facebook"].applied_keys())}
    for subject in range(4):
        mine = [i for n, i in enumerate(facebook) if n % 4 == subject][: 8 * bound // 4]
        assert [order[i] for i in mine] == sorted(order[i] for i in mine)
    answered = Counter(
        r.instruction_id for r in receipts.poll() if isinstance(r, PropagationReceipt)
    )
    assert set(answered.values()) == {1}, "a receipt was sent twice"


@contextmanager
def sink_process(env: dict[str, str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "consumers.partners"],
            env={**os.environ, **env},
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(30)


def test_a_sigkill_resumes_every_partner_where_it_was(
    tmp_path: Path,
    partners: dict[str, Any],
    relay_env: dict[str, str],
    sink_kit: Any,
    until: Callable[..., Any],
) -> None:
    env = {
        **relay_env,
        "PARTNER_SINK_CONFIG": str(config_file(tmp_path, partners)),
        "PARTNER_SINK_DATABASE": str(tmp_path / "answers.sqlite"),
        "PARTNER_SINK_GROUP_ID": sink_kit.group,
        "PARTNER_SINK_HTTP_PORT": "0",
        "PARTNER_SINK_BACKOFF_MAX_SECONDS": "0.3",
        "PARTNER_SINK_COMMIT_INTERVAL_SECONDS": "5",
    }
    receipts = sink_kit.reader(sink_kit.settings.topics.receipts)
    first = [i for n in range(10) for i in event(sink_kit, f"acct-kill-{n}")]
    log = tmp_path / "partners.log"
    partners["facebook"].fail()
    with sink_process(env, log) as proc:
        sink_kit.publish_routed(first)
        until(lambda: len(partners["criteo"].applied) == 10, timeout=90)
        until(lambda: len(partners["google"].applied) == 10, timeout=30)
        until(
            lambda: (
                sum(
                    isinstance(r, PropagationReceipt) and r.destination == "criteo"
                    for r in receipts.poll()
                )
                == 10
            ),
            timeout=30,
        )
        time.sleep(0.5)  # their answered ids are recorded right after the receipts' acks
        proc.kill()  # SIGKILL: no last commit (they are at most 5 s apart)
        proc.wait(30)

    partners["facebook"].recover()
    second = [i for n in range(5) for i in event(sink_kit, f"acct-kill-{n}")]
    sink_kit.publish_routed(second)
    with sink_process(env, log) as proc:
        until(lambda: len(partners["facebook"].applied) == 15, timeout=90)
        until(lambda: len(partners["criteo"].applied) == 15, timeout=30)
        wanted = {i.instruction_id for i in first + second}
        until(
            lambda: (
                wanted
                <= {r.instruction_id for r in receipts.poll() if isinstance(r, PropagationReceipt)}
            ),
            timeout=60,
        )
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 0, log.read_text()
    for server in partners.values():
        assert server.duplicates == 0, f"{server.name} was called twice for one instruction"
        assert len(server.applied) == 15
    answered = Counter(
        r.instruction_id for r in receipts.poll() if isinstance(r, PropagationReceipt)
    )
    assert set(answered.values()) == {1}, "a replayed instruction was answered again"
    assert all(
        r.outcome is Outcome.APPLIED for r in receipts.poll() if isinstance(r, PropagationReceipt)
    )


def test_the_first_start_resumes_each_partner_from_its_own_old_group(
    tmp_path: Path, partners: dict[str, Any], sink_kit: Any, until: Callable[..., Any]
) -> None:
    # One subject: every record on one partition, in publishing order.
    published = [event(sink_kit, "acct-upgrade") for _ in range(10)]
    landed = sink_kit.publish_routed([i for e in published for i in e])
    topic, partition = landed[0].topic, landed[0].partition
    at = [landed[3 * n].offset for n in range(10)]
    # The previous version's groups, one per partner: criteo had done 6 events, facebook 3,
    # google had never committed (it reads from the beginning, as its own group would).
    for name, done in (("criteo", 6), ("facebook", 3)):
        old = Consumer(sink_kit.settings.consumer_config(f"{sink_kit.group}.{name}"))
        try:
            old.commit(offsets=[TopicPartition(topic, partition, at[done])], asynchronous=False)
        finally:
            old.close()

    path = config_file(tmp_path, partners)
    settings = PartnerSinkSettings(config=path, group_id=sink_kit.group, poll_timeout_seconds=0.2)
    process = PartnerSinkProcess(sink_kit.settings, settings, load_config(path, {}), metrics_port=0)
    with running_in_thread(process, name="partners", ready=lambda: process.wait_ready(60)):
        until(lambda: len(partners["google"].applied) == 10, timeout=60)
        until(lambda: len(partners["criteo"].applied) == 4, timeout=30)
        until(lambda: len(partners["facebook"].applied) == 7, timeout=30)
        time.sleep(1.0)
    for name, done in (("criteo", 6), ("facebook", 3), ("google", 0)):
        expected = [e[NAMES.index(name)].instruction_id for e in published[done:]]
        assert partners[name].applied_keys() == expected, name
    assert sink_kit.committed(topic) >= at[-1] + 1


def test_a_rebalance_hands_each_partner_over_where_it_was(
    tmp_path: Path, partners: dict[str, Any], sink_kit: Any, until: Callable[..., Any]
) -> None:
    path = config_file(tmp_path, partners)
    settings = PartnerSinkSettings(
        config=path,
        group_id=sink_kit.group,
        backoff_initial_seconds=0.05,
        backoff_max_seconds=0.3,
        poll_timeout_seconds=0.2,
    )
    config = load_config(path, {})
    first = PartnerSinkProcess(sink_kit.settings, settings, config, metrics_port=0)
    second = PartnerSinkProcess(sink_kit.settings, settings, config, metrics_port=0)
    topic = sink_kit.settings.topics.instructions(FAMILY)
    subjects = [f"acct-rebalance-{n}" for n in range(6)]
    before = [i for n in range(30) for i in event(sink_kit, subjects[n % 6])]
    after = [i for n in range(30) for i in event(sink_kit, subjects[n % 6])]
    partners["facebook"].fail()
    with running_in_thread(first, name="first", ready=lambda: first.wait_ready(60)):
        sink_kit.publish_routed(before)
        until(lambda: len(partners["criteo"].applied) == 30, timeout=60)
        until(lambda: len(partners["google"].applied) == 30, timeout=30)
        time.sleep(0.5)  # their receipts acknowledged: nothing of theirs in flight
        # A second process joins: partitions move, with every partner's position.
        with running_in_thread(second, name="second", ready=lambda: second.wait_ready(60)):
            until(lambda: any(second.lanes.owns((topic, p)) for p in range(3)), timeout=60)
            sink_kit.publish_routed(after)
            until(lambda: len(partners["criteo"].applied) == 60, timeout=60)
            until(lambda: len(partners["google"].applied) == 60, timeout=30)
            partners["facebook"].recover()
            until(lambda: len(partners["facebook"].applied) == 60, timeout=90)
    for server in partners.values():
        assert server.duplicates == 0, f"{server.name} was called twice for one instruction"
        assert sorted(server.applied_keys()) == sorted(
            i.instruction_id for i in before + after if i.destination == server.name
        )
    order = {key: n for n, key in enumerate(partners["facebook"].applied_keys())}
    for subject in subjects:
        mine = [
            order[i.instruction_id]
            for i in before + after
            if i.destination == "facebook" and i.subject.id == subject
        ]
        assert mine == sorted(mine), "facebook got a person's decisions out of order"


def test_partitions_handed_back_while_the_consumer_was_paused_are_fetched_again(
    tmp_path: Path, partners: dict[str, Any], sink_kit: Any, until: Callable[..., Any]
) -> None:
    """librdkafka keeps a partition's pause across its revocation and a new assignment
    (as for the runner: tests/integration/consumers/test_runner_rebalance.py). The one
    consumer pauses while a lane is full and cannot be detached (here: the only partner,
    down); a partition taken away then and handed back after it resumed must be fetched
    again. Afterwards the lane never fills again (one instruction at a time), so no later
    pause and resume of the whole assignment can mend a partition left paused."""
    path = config_file(tmp_path, {"criteo": partners["criteo"]})
    settings = PartnerSinkSettings(
        config=path,
        group_id=sink_kit.group,
        batch_size=1,
        lane_records=5,
        backoff_initial_seconds=0.05,
        backoff_max_seconds=0.3,
        poll_timeout_seconds=0.2,
    )
    process = PartnerSinkProcess(sink_kit.settings, settings, load_config(path, {}), metrics_port=0)
    topic = sink_kit.settings.topics.instructions(FAMILY)
    partitions = set(range(sink_kit.settings.partitions))

    def to_criteo(subject: str) -> InstructionIssued:
        return sink_kit.instruction(
            Action.SUPPRESS,
            subject=subject,
            purposes=(Purpose.SHARE_WITH_ADVERTISING_PLATFORMS,),
            destination="criteo",
            family=FAMILY,
        )

    partners["criteo"].fail()
    first = [to_criteo(f"acct-paused-{n}") for n in range(12)]
    with running_in_thread(process, name="partners", ready=lambda: process.wait_ready(60)):
        landed = sink_kit.publish_routed(first)
        assert {d.partition for d in landed} == partitions
        # Its lane is full and it is the only one: the consumer pauses (back-pressure).
        until(process.lanes.blocked, timeout=60)
        # A second member takes partitions away from the paused consumer. It never
        # commits, so nothing it happens to fetch is lost to the sink.
        other = Consumer(sink_kit.settings.consumer_config(sink_kit.group))
        try:
            other.subscribe([topic])
            deadline = time.monotonic() + 60
            while not other.assignment() and time.monotonic() < deadline:
                other.poll(0.2)
            assert other.assignment(), "the second member never got a partition"
            until(lambda: not all(process.lanes.owns((topic, p)) for p in partitions))
            # The partner recovers: the lane drains, the consumer resumes what it holds.
            partners["criteo"].recover()
            until(lambda: not process.lanes.blocked(), timeout=60)
            time.sleep(1.0)
        finally:
            other.close()  # leaves the group: its partitions go back to the sink
        until(lambda: all(process.lanes.owns((topic, p)) for p in partitions), timeout=60)
        wanted = {i.instruction_id for i in first}
        until(lambda: wanted <= set(partners["criteo"].applied_keys()), timeout=60)
        reached: set[int] = set()
        for n in range(12):
            later = to_criteo(f"acct-paused-later-{n}")
            reached |= {d.partition for d in sink_kit.publish_routed([later])}
            until(
                lambda later=later: later.instruction_id in partners["criteo"].applied_keys(),
                timeout=30,
            )
        assert reached == partitions
    assert partners["criteo"].duplicates == 0


def test_a_revocation_waits_for_the_partners_calls_in_flight(
    tmp_path: Path, partners: dict[str, Any], sink_kit: Any, until: Callable[..., Any]
) -> None:
    """A partner's pipeline runs beside the one consumer: when partitions are revoked
    while it is calling its partner with their records, the revocation waits for the call
    (and the receipts) and commits past them, so the next owner neither calls again nor
    gets ahead of the call with the person's next instruction."""
    path = config_file(tmp_path, {"criteo": partners["criteo"]}, timeout=30)
    settings = PartnerSinkSettings(config=path, group_id=sink_kit.group, poll_timeout_seconds=0.2)
    config = load_config(path, {})
    first = PartnerSinkProcess(sink_kit.settings, settings, config, metrics_port=0)
    second = PartnerSinkProcess(sink_kit.settings, settings, config, metrics_port=0)
    topic = sink_kit.settings.topics.instructions(FAMILY)
    subjects = [f"acct-revoke-{n}" for n in range(9)]

    def to_criteo(action: Action, subject: str) -> InstructionIssued:
        return sink_kit.instruction(
            action,
            subject=subject,
            purposes=(Purpose.SHARE_WITH_ADVERTISING_PLATFORMS,),
            destination="criteo",
            family=FAMILY,
        )

    allowed = [to_criteo(Action.ALLOW, s) for s in subjects]
    landed = sink_kit.publish_routed(allowed)
    assert {d.partition for d in landed} == set(range(sink_kit.settings.partitions))
    # Committed starts: every partition is fetchable at once (no offset reset to wait
    # for), so the first chunk, the one in flight, holds records of all of them.
    starts = Consumer(sink_kit.settings.consumer_config(sink_kit.group))
    try:
        starts.commit(
            offsets=[
                TopicPartition(topic, p, min(d.offset for d in landed if d.partition == p))
                for p in range(sink_kit.settings.partitions)
            ],
            asynchronous=False,
        )
    finally:
        starts.close()
    criteo = partners["criteo"]
    criteo.hold()  # applies each call at once, answers only when released
    with running_in_thread(first, name="first", ready=lambda: first.wait_ready(60)):
        # The first call is in flight (the rest of the chunk behind it, in order).
        until(lambda: criteo.held() >= 1, timeout=60)
        with running_in_thread(second, name="second", ready=lambda: second.wait_ready(60)):
            # The second process joins while the call is held: partitions are revoked.
            time.sleep(8)
            criteo.release()
            until(lambda: any(second.lanes.owns((topic, p)) for p in range(3)), timeout=60)
            until(lambda: len(criteo.applied) == len(subjects), timeout=60)
            withdrawn = [to_criteo(Action.SUPPRESS, s) for s in subjects]
            sink_kit.publish_routed(withdrawn)
            until(lambda: len(criteo.applied) == 2 * len(subjects), timeout=60)
            time.sleep(1.0)
    assert criteo.duplicates == 0, "an instruction in flight at the revocation was sent again"
    assert sorted(criteo.applied_keys()) == sorted(i.instruction_id for i in allowed + withdrawn)
    for actions in criteo.actions_by_subject().values():
        assert actions == ["ALLOW", "SUPPRESS"]


FORGOT_EVERY_BROKER = {
    "name": "partners#consumer-1",
    "brokers": {"GroupCoordinator": {"nodeid": -1, "source": "logical", "state": "TRY_CONNECT"}},
    "cgrp": {"state": "query-coord", "join_state": "init", "stateage": 52063},
}
"""Statistics of a client that forgot every broker (tests/integration/consumers/
test_runner_broker_loss.py)."""


def test_a_consumer_that_forgot_every_broker_is_replaced_and_nothing_is_lost(
    tmp_path: Path, partners: dict[str, Any], sink_kit: Any, until: Callable[..., Any]
) -> None:
    path = config_file(tmp_path, partners)
    settings = PartnerSinkSettings(config=path, group_id=sink_kit.group, poll_timeout_seconds=0.2)
    process = PartnerSinkProcess(sink_kit.settings, settings, load_config(path, {}), metrics_port=0)
    fanout = process._fanout
    replaced = fanout.metrics.clients_replaced.labels(sink_kit.group)
    with running_in_thread(process, name="partners", ready=lambda: process.wait_ready(60)):
        before = [i for n in range(12) for i in event(sink_kit, f"acct-lost-{n}")]
        sink_kit.publish_routed(before)
        until(lambda: all(len(s.applied) == 12 for s in partners.values()), timeout=60)
        watch = fanout._watch
        assert watch is not None
        watch(json.dumps(FORGOT_EVERY_BROKER))  # as librdkafka's stats thread would
        until(lambda: fanout._watch is not watch, timeout=30)  # a new consumer, a new watch
        assert replaced._value.get() == 1
        after = [i for n in range(30) for i in event(sink_kit, f"acct-lost-after-{n}")]
        landed = sink_kit.publish_routed(after)
        assert {d.partition for d in landed} == set(range(sink_kit.settings.partitions))
        until(lambda: all(len(s.applied) == 42 for s in partners.values()), timeout=60)
    for server in partners.values():
        assert sorted(server.applied_keys()) == sorted(
            i.instruction_id for i in before + after if i.destination == server.name
        )
