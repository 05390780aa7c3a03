"""The ``consent-relay`` CLI run as a real process against the real broker and registry."""

from __future__ import annotations

import json
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
from confluent_kafka import Producer

from producers import builders
from producers.client import ConsentClient
from schemas.codec import EventSerializer
from schemas.events import (
    ConsentChanged,
    ConsentEntry,
    ConsentStateRecorded,
    DeadLettered,
    InstructionIssued,
    InstructionsIssued,
    RightsRequested,
    Subject,
    new_event_id,
    utc_now,
)
from schemas.examples import example
from schemas.runtime.admin import ensure_topics
from schemas.runtime.kafka import KafkaSettings
from schemas.taxonomy import Choice, Purpose, Regime, Right, SinkFamily, SubjectKind
from schemas.topics import TopicSpec
from tests.support.access import API_TOKEN

from .conftest import read_back, run_cli, start_gateway


def produce(settings: KafkaSettings, topic: str, items: list[tuple[bytes, bytes | None]]) -> None:
    producer = Producer(settings.producer_config())
    for key, value in items:
        producer.produce(topic, key=key, value=value)
    assert producer.flush(30) == 0


def test_publish_from_flags_and_from_json(
    relay_settings: KafkaSettings, relay_env: dict[str, str]
) -> None:
    flags = run_cli(
        relay_env,
        "publish",
        "ConsentChanged",
        "--subject",
        "cli-1",
        "--choice",
        "WITHDRAWN",
        "--purposes",
        "MARKETING_EMAIL,MARKETING_POSTAL_MAIL",
        "--evidence-ref",
        "call-7",
    )
    assert flags.returncode == 0, flags.stderr
    from_json = run_cli(
        relay_env,
        "publish",
        "--json",
        "-",
        stdin=json.dumps(
            {
                "type": "RightsRequested",
                "subject": {"id": "cli-1", "kind": "ACCOUNT"},
                "right": "OBJECT_TO_DIRECT_MARKETING",
                "channels": ["EMAIL"],
            }
        ),
    )
    assert from_json.returncode == 0, from_json.stderr
    invalid = run_cli(
        relay_env,
        "publish",
        "ConsentChanged",
        "--subject",
        "cli-1",
        "--choice",
        "WITHDRAWN",
        "--purposes",
        "ANTI_MONEY_LAUNDERING",
    )
    assert invalid.returncode == 2
    assert "invalid: purposes:" in invalid.stderr

    first, second = (json.loads(p.stdout) for p in (flags, from_json))
    received = read_back(relay_settings, relay_settings.topics.consent, 2)
    assert [r.record.event_id for r in received] == [first["event_id"], second["event_id"]]
    change, objection = (r.record for r in received)
    assert isinstance(change, ConsentChanged)
    assert change.purposes == (Purpose.MARKETING_EMAIL, Purpose.MARKETING_POSTAL_MAIL)
    assert change.evidence_ref == "call-7"
    assert isinstance(objection, RightsRequested)
    assert objection.right is Right.OBJECT_TO_DIRECT_MARKETING
    assert first["offset"] == received[0].offset


def test_schemas_register_and_topics_create(kafka: Any, topic_prefix: str) -> None:
    env = {
        "KAFKA_BOOTSTRAP": kafka.bootstrap,
        "SCHEMA_REGISTRY_URL": kafka.registry_url,
        "CONSENT_RELAY_TOPIC_PREFIX": topic_prefix,
        "CONSENT_RELAY_PARTITIONS": "2",
    }
    registered = run_cli(env, "schemas", "register")
    assert registered.returncode == 0, registered.stderr
    assert "io.consentrelay.events.ConsentChanged" in json.loads(registered.stdout)
    created = run_cli(env, "topics", "create")
    assert created.returncode == 0, created.stderr
    report = json.loads(created.stdout)
    assert sorted(report["created"]) == sorted(report["all"])
    assert f"{topic_prefix}consent.events" in report["all"]
    again = run_cli(env, "topics", "create")
    assert json.loads(again.stdout)["created"] == []


def state_of(subject: str, choice: Choice, at_minutes: int) -> ConsentStateRecorded:
    when = utc_now() - timedelta(minutes=at_minutes)
    return ConsentStateRecorded(
        subject=Subject(id=subject, kind=SubjectKind.ACCOUNT),
        entries=(
            ConsentEntry(
                purpose=Purpose.MARKETING_EMAIL,
                regime=Regime.GDPR,
                choice=choice,
                occurred_at=when,
                event_id=new_event_id(),
            ),
        ),
        updated_at=when,
    )


def test_state_shows_the_latest_state_of_one_subject(
    relay_settings: KafkaSettings, relay_env: dict[str, str]
) -> None:
    topic = relay_settings.topics.state
    with relay_settings.registry_client() as registry:
        encode = EventSerializer(registry, ConsentStateRecorded)
        produce(
            relay_settings,
            topic,
            [
                (b"st-1", encode(state_of("st-1", Choice.GRANTED, 30), topic)),
                (b"st-2", encode(state_of("st-2", Choice.GRANTED, 20), topic)),
                (b"st-1", encode(state_of("st-1", Choice.WITHDRAWN, 10), topic)),
                (b"st-3", encode(state_of("st-3", Choice.GRANTED, 5), topic)),
                (b"st-3", None),  # tombstone: the subject's state was deleted
            ],
        )
    shown = run_cli(relay_env, "state", "st-1")
    assert shown.returncode == 0, shown.stderr
    state = json.loads(shown.stdout)
    assert state["type"] == "ConsentStateRecorded"
    assert state["subject"] == {"id": "st-1", "kind": "ACCOUNT"}
    assert [e["choice"] for e in state["entries"]] == ["WITHDRAWN"]
    for missing in ("st-3", "nobody"):
        absent = run_cli(relay_env, "state", missing)
        assert absent.returncode == 1
        assert "no consent state" in absent.stderr


def test_tail_decodes_and_reports_undecodable_messages(
    relay_settings: KafkaSettings, relay_env: dict[str, str]
) -> None:
    with ConsentClient(relay_settings) as client:
        acks = [client.withdraw(f"tail-{i}", [Purpose.MARKETING_SMS]) for i in range(3)]
    produce(relay_settings, relay_settings.topics.consent, [(b"junk", b"\x07not avro")])
    tailed = run_cli(relay_env, "tail", "consent", "--from-beginning", "--max", "4")
    assert tailed.returncode == 0, tailed.stderr
    lines = [json.loads(line) for line in tailed.stdout.splitlines()]
    assert len(lines) == 4
    decoded = [line for line in lines if "event" in line]
    assert {line["event"]["event_id"] for line in decoded} == {a.event_id for a in acks}
    assert all(line["type"] == "ConsentChanged" for line in decoded)
    (bad,) = [line for line in lines if "error" in line]
    assert bad["key"] == "junk"
    assert bad["error"].startswith("BadMagicByteError")


def test_tail_of_the_partner_family_reads_its_topic_and_a_partners_short_name_its_legacy_one(
    relay_settings: KafkaSettings, relay_env: dict[str, str]
) -> None:
    topics = relay_settings.topics
    family = SinkFamily.PARTNER_SHARING
    legacy = topics.legacy_instructions(family, "bing")
    ensure_topics(relay_settings, (TopicSpec(legacy, topics.partitions),))
    together = example(InstructionsIssued)
    with relay_settings.registry_client() as registry:
        serialize = EventSerializer(registry, InstructionsIssued)
        produce(
            relay_settings,
            topics.instructions(family),
            [(b"subject", serialize(together, topics.instructions(family)))],
        )
        old = replace(example(InstructionIssued), destination="bing")
        produce(
            relay_settings,
            legacy,
            [(b"subject", EventSerializer(registry, InstructionIssued)(old, legacy))],
        )
    tailed = run_cli(
        relay_env, "tail", "instructions.partner_sharing", "--from-beginning", "--max", "1"
    )
    assert tailed.returncode == 0, tailed.stderr
    (line,) = [json.loads(line) for line in tailed.stdout.splitlines()]
    assert (line["topic"], line["type"]) == (topics.instructions(family), "InstructionsIssued")
    assert [i["destination"] for i in line["event"]["instructions"]] == [
        i.destination for i in together.instructions
    ]
    one = run_cli(
        relay_env, "tail", "instructions.partner_sharing.bing", "--from-beginning", "--max", "1"
    )
    assert [json.loads(line)["topic"] for line in one.stdout.splitlines()] == [legacy]


def dead_letter(source_topic: str, value: bytes | None, stage: str, key: bytes) -> DeadLettered:
    return DeadLettered(
        dead_letter_id=new_event_id(),
        stage=stage,
        source_topic=source_topic,
        source_partition=0,
        source_offset=1,
        original_key=key,
        original_value=value,
        error_class="ValidationError",
        field_name="purposes",
        reason="fixed since",
        dead_lettered_at=utc_now(),
    )


def test_redrive_republishes_once_with_a_checkpoint(
    relay_settings: KafkaSettings, relay_env: dict[str, str], unique_group: str
) -> None:
    topics = relay_settings.topics
    with relay_settings.registry_client() as registry:
        original = EventSerializer(registry, ConsentChanged)(
            builders.withdraw("rd-1", [Purpose.MARKETING_EMAIL]), topics.consent
        )
        later = EventSerializer(registry, RightsRequested)(
            builders.request_erasure("rd-2"), topics.consent
        )
        encode = EventSerializer(registry, DeadLettered)
        letters = [
            dead_letter(topics.consent, original, "stream.intake", b"rd-1"),
            dead_letter("someone-elses.topic", original, "stream.intake", b"rd-1"),
            dead_letter(topics.consent, None, "sink.marketing", b"rd-1"),
        ]
        produce(
            relay_settings,
            topics.dead_letters,
            [(b"rd-1", encode(d, topics.dead_letters)) for d in letters],
        )
        extra = encode(dead_letter(topics.consent, later, "stream.intake", b"rd-2"), "x")

    dry = run_cli(relay_env, "redrive", "--group", unique_group, "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert json.loads(dry.stdout)["redriven"] == 1
    first = run_cli(relay_env, "redrive", "--group", unique_group)
    assert first.returncode == 0, first.stderr
    report = json.loads(first.stdout)
    assert report["redriven"] == 1
    assert len(report["skipped"]) == 2
    assert "redrive" in first.stderr  # the progress bar
    again = run_cli(relay_env, "redrive", "--group", unique_group)
    assert json.loads(again.stdout) == {"redriven": 0, "skipped": [], "dry_run": False}

    produce(relay_settings, topics.dead_letters, [(b"rd-2", extra)])
    third = run_cli(relay_env, "redrive", "--group", unique_group, "--stage", "stream.intake")
    assert json.loads(third.stdout)["redriven"] == 1

    received = read_back(relay_settings, topics.consent, 2)
    assert sorted(r.value for r in received) == sorted([original, later])
    assert {r.key for r in received} == {b"rd-1", b"rd-2"}


def test_redrive_puts_a_partner_sinks_dead_letter_back_on_the_partners_topic(
    relay_settings: KafkaSettings, relay_env: dict[str, str], unique_group: str
) -> None:
    topics = relay_settings.topics
    google = topics.instructions(SinkFamily.PARTNER_SHARING)
    with relay_settings.registry_client() as registry:
        instruction = example(InstructionsIssued)
        original = EventSerializer(registry, InstructionsIssued)(instruction, google)
        letter = dead_letter(google, original, "sink.partner_sharing", b"rd-p")
        encoded = EventSerializer(registry, DeadLettered)(letter, topics.dead_letters)
    produce(relay_settings, topics.dead_letters, [(b"rd-p", encoded)])
    done = run_cli(relay_env, "redrive", "--group", unique_group)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["redriven"] == 1
    (received,) = read_back(relay_settings, google, 1)
    assert received.value == original


@contextmanager
def stand_in_worker(answers: dict[str, tuple[int, Any]]) -> Iterator[str]:
    """A local HTTP server answering the stream worker's agreed propagation view.

    The stream worker (``python -m streams``) is another engineer's process; this stands
    in for its two JSON routes only, so the CLI's HTTP handling can be checked. Like the
    worker, it answers only ``Authorization: Bearer <API_TOKEN>`` (401 otherwise).
    """

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            status, body = answers.get(self.path, (404, {"found": False}))
            if self.headers.get("Authorization") != f"Bearer {API_TOKEN}":
                status, body = 401, {"error": "a bearer token is required"}
            payload = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *_args: Any) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_propagation_status_from_the_worker_view(relay_env: dict[str, str]) -> None:
    event_id = new_event_id()
    answer = {"event_id": event_id, "complete": True, "destinations": []}
    routes = {
        f"/propagation/{event_id}": (200, answer),
        "/propagation?subject=a+b": (200, {"propagations": [answer]}),
    }
    with stand_in_worker(routes) as url:
        env = {**relay_env, "STREAM_WORKER_URL": url, "STREAM_WORKER_TOKEN": API_TOKEN}
        found = run_cli(env, "propagation", event_id)
        by_subject = run_cli(env, "propagation", "--subject", "a b")
        unknown = run_cli(env, "propagation", new_event_id())
        no_token = run_cli({**env, "STREAM_WORKER_TOKEN": ""}, "propagation", event_id)
    assert found.returncode == 0, found.stderr
    assert json.loads(found.stdout) == answer
    assert json.loads(by_subject.stdout) == {"propagations": [answer]}
    assert unknown.returncode == 1
    assert "HTTP 404" in unknown.stderr
    assert no_token.returncode == 1
    assert "HTTP 401" in no_token.stderr
    assert "STREAM_WORKER_TOKEN" in no_token.stderr
    for run in (found, by_subject, unknown, no_token):
        assert API_TOKEN not in run.stdout + run.stderr
    down = run_cli({**relay_env, "STREAM_WORKER_URL": url}, "propagation", event_id)
    assert down.returncode == 1
    assert "does not answer" in down.stderr


def test_run_gateway_execs_the_gateway_process(
    relay_settings: KafkaSettings, relay_env: dict[str, str], tmp_path: Path
) -> None:
    command = [sys.executable, "-m", "producers.cli", "run", "gateway"]
    with (
        start_gateway(relay_env, tmp_path, command=command) as gw,
        httpx.Client(base_url=gw.url) as http,
    ):
        accepted = http.post(
            "/v1/rights",
            headers={"Authorization": "Bearer crm-token"},
            json={"subject": {"id": "run-1", "kind": "ACCOUNT"}, "right": "ERASURE"},
        )
    assert accepted.status_code == 202, accepted.text
    (only,) = read_back(relay_settings, relay_settings.topics.consent, 1)
    assert only.record.event_id == accepted.json()["event_id"]
