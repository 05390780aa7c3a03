"""Offline benchmark of the partner sink's CPU per consent event; prints figures.

No broker: the partner sink's own parts (one :class:`~consumers.partners.lanes.Lanes`,
a :class:`~consumers.partners.lane.LaneRunner` per partner in its thread, the shared
decodes, :class:`~consumers.publisher.Publisher` on one shared producer) are fed
InstructionsIssued records in the Confluent wire format (confluent-kafka's in-process
``mock://`` registry), the records' destination headers naming 1-16 of the bench's 16
partners (most 8-16; 30% of the events want receipts, as the bench's mix of withdrawals
and grants). Webhooks go to a real loopback HTTP server in its own process
(``python -m deploy.bench.receiver``, batch bodies of up to 500 instructions, as the
bench configures them); receipts go to a producer stand-in that acknowledges each at
once. What is measured is this process's CPU time (every thread) from the first record
handed to the lanes to the last one every lane has made durable, per consent event.

    .venv/bin/python -m deploy.bench.parts.partner_sink \\
        [--events 20000] [--rate 0 | 1000]

``--rate 0`` hands everything over as fast as the lanes take it (the bench's max
phase: chunks of up to 500); a rate paces the records in 10 ms slices (its 1000/s
phase: small chunks). ``--chunk N`` runs every pipeline's step in turn in one thread,
N records at a time: no thread switching, so the steadiest figure of the work itself.
No thresholds.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from confluent_kafka import Message
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient

from consumers.joined_receipts import JoinedReceipts
from consumers.partners.breaker import CircuitBreaker
from consumers.partners.config import KnownSubjects, PartnerConfig
from consumers.partners.lane import LaneRunner
from consumers.partners.lanes import Lanes
from consumers.partners.pseudonym import partner_key
from consumers.partners.settings import PartnerSinkSettings
from consumers.partners.sink import PartnerSink
from consumers.partners.webhook import WebhookClient
from consumers.shared_decodes import SharedDecodes
from schemas.codec import EventDecoder, EventSerializer, schema_text, subject_name
from schemas.events import EVENT_TYPES, DestinationInstruction, InstructionsIssued, Subject, utc_now
from schemas.runtime.kafka import KafkaSettings
from schemas.taxonomy import PARTNER_DESTINATIONS, Action, Purpose, Regime, SinkFamily, SubjectKind
from schemas.topics import DESTINATION_HEADER, destinations_header

if TYPE_CHECKING:
    from consumers.instruction_records import SharedInstructions

SECRET = "bench-partner-secret-0123456789"
PARTNERS = PARTNER_DESTINATIONS
PARTITIONS = 6
KAFKA = KafkaSettings(
    bootstrap="127.0.0.1:1", registry_url="http://127.0.0.1:1", partitions=PARTITIONS
)
REGISTRY_URL = "mock://bench-partner-sink"
TOPIC = KAFKA.topics.instructions(SinkFamily.PARTNER_SHARING)


@dataclass(frozen=True, slots=True)
class Record:
    """What the sink reads of a consumed message."""

    at: int
    part: int
    body: bytes
    names: bytes
    subject: bytes

    def topic(self) -> str:
        return TOPIC

    def partition(self) -> int:
        return self.part

    def offset(self) -> int:
        return self.at

    def error(self) -> None:
        return None

    def headers(self) -> list[tuple[str, bytes]]:
        return [(DESTINATION_HEADER, self.names)]

    def key(self) -> bytes:
        return self.subject

    def value(self) -> bytes:
        return self.body


@dataclass
class Report:
    """A delivery report as librdkafka gives one: stored at an offset."""

    def offset(self) -> int:
        return 0


@dataclass
class Metadata:
    partitions: dict[int, object]
    error: None = None


@dataclass
class Topics:
    topics: dict[str, Metadata]


@dataclass
class AcknowledgingProducer:
    """The shared producer's client: every record acknowledged as it is produced."""

    produced: list[bytes] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def produce(self, topic: str, **kwargs: Any) -> None:
        with self.lock:
            self.produced.append(kwargs["value"])
        on_delivery: Callable[[Any, Any], None] = kwargs["on_delivery"]
        on_delivery(None, Report())

    def poll(self, timeout: float = 0) -> int:
        del timeout
        return 0

    def flush(self, timeout: float = 0) -> int:
        del timeout
        return 0

    def list_topics(self, topic: str, timeout: float = 0) -> Topics:
        del timeout
        return Topics({topic: Metadata(dict.fromkeys(range(PARTITIONS)))})


@dataclass
class SharedStandIn:
    """The sink's shared producer, with the same joined receipts over the stand-in."""

    client: AcknowledgingProducer = field(default_factory=AcknowledgingProducer)
    receipts: JoinedReceipts = field(init=False)

    def __post_init__(self) -> None:
        self.receipts = JoinedReceipts(self.producer, "bench.receipts")

    def producer(self) -> AcknowledgingProducer:
        return self.client


def records(count: int, registry: SchemaRegistryClient, seed: int = 7) -> list[Record]:
    """``count`` wire-format InstructionsIssued, round-robin over the partitions."""
    rng = random.Random(seed)
    serialize = EventSerializer(registry, InstructionsIssued)
    offsets = [0] * PARTITIONS
    out = []
    for n in range(count):
        event_id = str(uuid.uuid4())
        reach = rng.choice((16, 16, 16, 12, 12, 8, 8, 8, 4, 1))
        partners = rng.sample(PARTNERS, reach)
        tracked = rng.random() < 0.3
        now = utc_now()
        subject = f"subject-{rng.randrange(100_000)}"
        event = InstructionsIssued(
            event_id=event_id,
            event_type="ConsentChanged",
            subject=Subject(id=subject, kind=SubjectKind.ACCOUNT),
            sink_family=SinkFamily.PARTNER_SHARING,
            instructions=tuple(
                DestinationInstruction(
                    instruction_id=str(
                        uuid.uuid5(uuid.NAMESPACE_URL, f"{event_id}/PARTNER_SHARING/{p}")
                    ),
                    destination=p,
                    action=Action.SUPPRESS if tracked else Action.ALLOW,
                    purposes=(Purpose.TARGETED_ADVERTISING,),
                )
                for p in partners
            ),
            regime=Regime.GDPR,
            occurred_at=now,
            issued_at=now,
            receipt_requested=tracked,
        )
        part = n % PARTITIONS
        out.append(
            Record(
                offsets[part],
                part,
                serialize(event, TOPIC),
                destinations_header(partners),
                subject.encode(),
            )
        )
        offsets[part] += 1
    return out


def start_receiver(state: Path) -> tuple[subprocess.Popen[bytes], int]:
    port_file = state / "port"
    child = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "deploy.bench.receiver",
            "--secret",
            SECRET,
            "--port-file",
            str(port_file),
            "--stats-file",
            str(state / "stats.json"),
        ]
    )
    deadline = time.monotonic() + 30
    while not port_file.exists() or not port_file.read_text():
        if time.monotonic() > deadline:
            child.kill()
            raise RuntimeError("the receiver did not start")
        time.sleep(0.05)
    return child, int(port_file.read_text())


def runners(
    port: int, registry: SchemaRegistryClient, lanes: Lanes, shared: SharedStandIn
) -> list[LaneRunner]:
    settings = PartnerSinkSettings(config=Path("unused"), lane_records=5000)
    decodes: SharedDecodes[SharedInstructions] = SharedDecodes()
    out = []
    for name in PARTNERS:
        partner = PartnerConfig(
            name=name,
            url=f"http://127.0.0.1:{port}/hooks/{name}",
            secret=SECRET.encode(),
            pseudonym_key=partner_key(b"bench-pseudonym-master-key-0123456789", name),
            known_subjects=KnownSubjects.ALL,
            batch_size=500,
        )
        sink = PartnerSink(
            partner,
            client=WebhookClient(partner.url, partner.secret),
            breaker=CircuitBreaker(failure_threshold=5, reset_seconds=5.0),
            identities=None,
        )
        runner = LaneRunner(
            sink,
            KAFKA,
            family=SinkFamily.PARTNER_SHARING,
            options=settings.model_copy(update={"breaker_threshold": 5}),
            serve_http=False,
            producer=shared,  # type: ignore[arg-type]
            decodes=decodes,
            lanes=lanes,
        )
        # What run() sets up, without its HTTP server.
        runner.connect(registry)
        out.append(runner)
    return out


def drained(lanes: Lanes, ends: dict[tuple[str, int], int]) -> bool:
    commits = lanes.commits()
    return all(commits.get(tp, (0, ""))[0] >= end for tp, end in ends.items())


def serial(pipelines: list[LaneRunner], lanes: Lanes, batch: list[Record], chunk: int) -> None:
    """Every ``chunk`` records through each pipeline's step in turn, in this thread."""
    for start in range(0, len(batch), chunk):
        lanes.dispatch(cast(list[Message], batch[start : start + chunk]))
        for runner in pipelines:
            taken = lanes.take(runner.lane, chunk, 0)
            if taken:
                runner.progress.finished.clear()
                runner.step_over(taken)
                lanes.settle(runner.lane)


def run(events: int, rate: float, chunk: int) -> None:
    registry = SchemaRegistryClient.new_client({"url": REGISTRY_URL})
    for event_type in EVENT_TYPES:
        registry.register_schema(subject_name(event_type), Schema(schema_text(event_type), "AVRO"))
    batch = records(events, registry)
    ends: dict[tuple[str, int], int] = {}
    for r in batch:
        ends[(TOPIC, r.part)] = r.at + 1
    with tempfile.TemporaryDirectory() as state:
        receiver, port = start_receiver(Path(state))
        try:
            lanes = Lanes(PARTNERS, bound=5000)
            lanes.assign(dict.fromkeys(ends))
            shared = SharedStandIn()
            pipelines = runners(port, registry, lanes, shared)
            threads = [threading.Thread(target=r._consume, daemon=True) for r in pipelines]
            if not chunk:
                for t in threads:
                    t.start()
                time.sleep(0.5)
            times0, wall0 = os.times(), time.monotonic()
            if chunk:
                serial(pipelines, lanes, batch, chunk)
            elif rate <= 0:
                for start in range(0, len(batch), 500):
                    while lanes.blocked():
                        lanes.wait_for_room(0.05)
                    lanes.dispatch(cast(list[Message], batch[start : start + 500]))
            else:
                per_slice = max(1, round(rate / 100))
                next_at = time.monotonic()
                for start in range(0, len(batch), per_slice):
                    lanes.dispatch(cast(list[Message], batch[start : start + per_slice]))
                    next_at += per_slice / rate
                    pause = next_at - time.monotonic()
                    if pause > 0:
                        time.sleep(pause)
            while not drained(lanes, ends):
                time.sleep(0.01)
            times, wall = os.times(), time.monotonic() - wall0
            user, system = times.user - times0.user, times.system - times0.system
            cpu = user + system
            for pipeline in pipelines:
                pipeline.stop()
            for t in threads:
                if t.is_alive():
                    t.join(5)
            for pipeline in pipelines:
                pipeline.sink.close()
        finally:
            receiver.terminate()
            receiver.wait(10)
        delivered = sum(json.loads((Path(state) / "stats.json").read_text()).values())
    instructions = sum(r.names.count(b",") + 1 for r in batch)
    # What came out, checked after the clock stopped: every instruction told its partner
    # once, every tracked one answered once.
    decoder = EventDecoder(registry)
    answered = [decoder.decode(value) for value in shared.client.produced]
    receipts = sum(len(a.receipts) for a in answered)
    print(
        f"events={events} rate={'max' if rate <= 0 else rate:>4} chunk={chunk} "
        f"instructions={instructions} delivered={delivered} receipts={receipts} "
        f"receipt_records={len(answered)} wall={wall:.2f}s cpu={cpu:.2f}s "
        f"(user {user:.2f}s, system {system:.2f}s) "
        f"cpu/event={1000 * cpu / events:.3f} ms ({events / wall:.0f} ev/s, "
        f"{100 * cpu / wall:.0f}% of a core) load={os.getloadavg()[0]:.2f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--rate", type=float, default=0.0)
    parser.add_argument(
        "--chunk", type=int, default=0, help="records per step, every pipeline in one thread"
    )
    args = parser.parse_args()
    run(args.events, args.rate, args.chunk)


if __name__ == "__main__":
    main()
