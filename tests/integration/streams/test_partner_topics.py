"""The partners' instructions of one event as one record, end to end with the real
stream and sink; and a choice limited to one partner, as a sink seeding from the state
topic gets it.

A withdrawal limited to two recipients is routed to those two partners only; the real
stream worker writes ONE InstructionsIssued for both to the partners' topic
(``consent.instructions.partner_sharing``), naming both in its destination header; the
partner-sharing sink fetches it once (one consumer group for every partner) and hands
it to the pipeline of each partner it names, which takes its own item and calls its
webhook; the receipts of both complete the withdrawal.
"""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from consumers.bootstrap import bootstrap
from consumers.partners.config import load_config
from consumers.partners.process import PartnerSinkProcess
from consumers.partners.settings import PartnerSinkSettings
from consumers.state_records import StateAvro, in_force
from schemas.codec import EventDecoder
from schemas.events import ConsentStateRecorded, FullyPropagated, InstructionsIssued
from schemas.taxonomy import Action, Choice, Purpose, Recipient, SinkFamily
from schemas.topics import DESTINATION_HEADER
from tests.support.threads import running_in_thread

PARTNERS = ("google", "facebook")
SECRET = "partner-topics-webhook-secret-0123"
MASTER = "partner-topics-pseudonym-key-0123456789"


@contextmanager
def webhooks() -> Iterator[tuple[str, list[tuple[str, list[dict[str, Any]]]]]]:
    """A local endpoint for every partner: (base URL, [(path, instruction documents)])."""
    received: list[tuple[str, list[dict[str, Any]]]] = []
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            documents = body.get("instructions", [body])
            with lock:
                received.append((self.path.rsplit("/", 1)[-1], documents))
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/hooks", received
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def running(process: PartnerSinkProcess) -> AbstractContextManager[PartnerSinkProcess]:
    return running_in_thread(process, name="partner-process")


def partners_file(tmp_path: Path, base_url: str) -> Path:
    lines = [f'pseudonym_key = "{MASTER}"', ""]
    for name in PARTNERS:
        lines += [
            f"[partners.{name}]",
            f'url = "{base_url}/{name}"',
            f'secret = "{SECRET}"',
            'known_subjects = "all"',
            "",
        ]
    path = tmp_path / "partners.toml"
    path.write_text("\n".join(lines))
    return path


def test_a_withdrawal_for_two_partners_is_one_record_each_partner_takes_its_own_from(
    stream_kit: Any, events: Any, tmp_path: Path
) -> None:
    kit = stream_kit
    topics = kit.topics
    withdrawal = events.changed(
        events.subject(),
        Choice.WITHDRAWN,
        Purpose.SHARE_WITH_ADVERTISING_PLATFORMS,
        recipients=(Recipient.GOOGLE, Recipient.FACEBOOK),
    )
    with webhooks() as (base_url, received):
        config_path = partners_file(tmp_path, base_url)
        settings = PartnerSinkSettings(
            config=config_path, group_id=f"{kit.app_id}-partners", poll_timeout_seconds=0.2
        )
        process = PartnerSinkProcess(
            kit.settings, settings, load_config(config_path, {}), metrics_port=0
        )
        with running(process):
            assert process.wait_ready(60)
            family_topic = topics.instructions(SinkFamily.PARTNER_SHARING)
            assert {r.topic for r in process.runners.values()} == {family_topic}
            # One group for every partner: the process fetches each record once and hands
            # it to the partners it names (consumers/partners/fanout.py).
            assert len({r.group_id for r in process.runners.values()}) == 1
            kit.start_worker()
            kit.publish(withdrawal)
            kit.wait_until(
                lambda: {path for path, _ in received} == set(PARTNERS),
                describe=lambda: "both partners' webhooks called",
            )
            propagated = kit.reader(topics.propagated)
            done = kit.wait_until(
                lambda: [p for p in propagated.poll(0.3) if p.event_id == withdrawal.event_id],
                describe=lambda: "the withdrawal fully propagated",
            )
        raw = kit.reader(family_topic, decode=False)
        raw.poll(2.0)
        reader = kit.instruction_reader()
        reader.poll(2.0)

    # One record on the partners' topic for the withdrawal, for both partners, whom its
    # header names.
    decoder = EventDecoder(kit.registry)
    ((record, headers),) = [
        (r, h)
        for r, h in zip(map(decoder.decode, raw.records), raw.headers, strict=True)
        if isinstance(r, InstructionsIssued) and r.event_id == withdrawal.event_id
    ]
    names = [i.destination for i in record.instructions]
    assert sorted(names) == sorted(PARTNERS)
    assert headers == [(DESTINATION_HEADER, ",".join(names).encode())]
    issued = [
        (topic, i)
        for i, topic in zip(reader.records, reader.topics, strict=True)
        if i.event_id == withdrawal.event_id
    ]
    assert sorted((topic, i.destination) for topic, i in issued) == sorted(
        (family_topic, name) for name in PARTNERS
    )
    by_partner = {i.destination: i.instruction_id for _, i in issued}
    for path, documents in received:
        assert [d["instruction_id"] for d in documents] == [by_partner[path]]
    assert isinstance(done[0], FullyPropagated)
    assert {d.destination for d in done[0].destinations} == {
        f"PARTNER_SHARING/{name}" for name in PARTNERS
    }


def test_a_withdrawal_for_one_partner_seeds_from_the_state_as_the_instructions_said(
    stream_kit: Any, events: Any
) -> None:
    """A grant for every recipient, then a withdrawal for Criteo only: the real worker
    routes the withdrawal to Criteo alone and writes it to ``consent.state`` as an entry
    naming Criteo. A seed from that topic alone (a new reader, no instruction read: what
    every sink's bootstrap reads) gives each destination that hears the purpose the same
    choice as the last instruction the stream issued it: Criteo withdrawn, every other
    partner and the marketing store granted."""
    kit = stream_kit
    topics = kit.topics
    subject = events.subject()
    purpose = Purpose.TARGETED_ADVERTISING
    grant = events.changed(subject, Choice.GRANTED, purpose, at=events.ago(60))
    withdrawal = events.changed(
        subject, Choice.WITHDRAWN, purpose, at=events.ago(30), recipients=(Recipient.CRITEO,)
    )
    kit.start_worker()
    kit.publish(grant, withdrawal)
    states = kit.reader(topics.state)

    def recorded() -> list[ConsentStateRecorded]:
        return [
            r
            for r in states.poll(0.3)
            if r.subject.id == subject.id and any(e.recipient for e in r.entries)
        ]

    [record, *_] = kit.wait_until(recorded, describe=lambda: "the state with Criteo's entry")
    assert [(e.recipient, e.choice, e.event_id) for e in record.entries] == [
        (None, Choice.GRANTED, grant.event_id),
        (Recipient.CRITEO, Choice.WITHDRAWN, withdrawal.event_id),
    ]
    instructions = kit.instruction_reader()
    last: dict[str, Action] = {}

    def issued() -> dict[str, Action]:
        last.clear()
        for i in instructions.poll(0.3):
            if i.subject.id == subject.id and purpose in i.purposes:
                last[i.destination] = i.action
        return last if last.get("criteo") is Action.SUPPRESS else {}

    kit.wait_until(issued, describe=lambda: f"Criteo's SUPPRESS among {last}")
    assert last["suppression_list"] is Action.ALLOW
    assert last["google"] is Action.ALLOW

    seeded: list[StateAvro] = []
    count = bootstrap(
        kit.settings,
        group_id=f"{kit.app_id}-seed-{uuid.uuid4().hex[:6]}",
        decoder=EventDecoder(kit.registry),
        on_avro=seeded.extend,
        on_invalid=lambda message, exc: pytest.fail(f"invalid state record: {exc}"),
        stop=threading.Event(),
        timeout=60,
    )
    assert count >= 1
    [state] = [s for s in seeded if s["subject"]["id"] == subject.id]
    for destination, action in last.items():
        recipient = None if destination == "suppression_list" else destination.upper()
        [entry] = in_force(state["entries"], recipient)
        expected = Choice.WITHDRAWN if action is Action.SUPPRESS else Choice.GRANTED
        assert (destination, entry["choice"]) == (destination, expected.value)
    assert len(last) > 3  # the marketing store and several advertising partners
