"""``python -m deploy.bench.baseline``: the Python-on-this-machine limit for the routing job.

A bare confluent-kafka loop over the same backlog the relay processed: consume a batch,
decode each message with fastavro (:meth:`schemas.codec.EventDecoder.decode_dict`),
route it with a plain purpose → sink-family table, produce the original bytes to each
family's baseline topic, and at the end flush. No state, no receipts, no proof, no
Faust. It runs as its own process so that it has a core to itself, reads offsets
``--start`` to ``--end`` (JSON ``{"partition": offset}``) of ``--topic``, and writes
events/s and CPU seconds to ``--result``.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final

from confluent_kafka import Consumer, Producer, TopicPartition

from schemas.codec import EventDecoder
from schemas.runtime.admin import ensure_topics
from schemas.runtime.kafka import KafkaSettings
from schemas.taxonomy import (
    COOKIE_PURPOSES,
    DIRECT_MARKETING_PURPOSES,
    SALE_OR_SHARING_PURPOSES,
    CookieCategory,
    Purpose,
    SinkFamily,
)
from schemas.topics import TopicSpec

ANALYTICS_PURPOSES: Final = frozenset(
    {Purpose.RESEARCH_AND_STATISTICS, Purpose.COOKIES_STATISTICS, Purpose.COOKIES_PERSONALISATION}
)
FAMILIES_OF: Final[dict[str, tuple[SinkFamily, ...]]] = {
    p.value: tuple(
        family
        for family, members in (
            (SinkFamily.MARKETING, DIRECT_MARKETING_PURPOSES),
            (SinkFamily.ANALYTICS, ANALYTICS_PURPOSES),
            (SinkFamily.PARTNER_SHARING, SALE_OR_SHARING_PURPOSES | {Purpose.TARGETED_ADVERTISING}),
        )
        if p in members
    )
    for p in Purpose
}
COOKIE_PURPOSE_OF: Final = {
    c.value: COOKIE_PURPOSES[CookieCategory(c)].value for c in CookieCategory
}
EVERY_FAMILY: Final = tuple(SinkFamily)


def baseline_topic(prefix: str, family: SinkFamily) -> str:
    """Where the bare loop sends a family's events."""
    return f"{prefix}bench.baseline.{family.value.lower()}"


def route(record: dict[str, Any]) -> set[SinkFamily]:
    """The families an event concerns: by its purposes, or every family for a right."""
    if "right" in record:
        purposes = record.get("purposes") or ()
        if not purposes:
            return set(EVERY_FAMILY)
    elif "device_id" in record:
        purposes = [COOKIE_PURPOSE_OF[c] for c in (*record["granted"], *record["refused"])]
    else:
        purposes = record["purposes"]
    return {family for p in purposes for family in FAMILIES_OF.get(p, ())}


def run(
    settings: KafkaSettings, topic: str, start: dict[int, int], end: dict[int, int]
) -> dict[str, Any]:
    """Route ``topic`` from ``start`` to ``end``; the measured figures."""
    decoder = EventDecoder(settings.registry_client())
    outputs = {f: baseline_topic(settings.topic_prefix, f) for f in SinkFamily}
    consumer = Consumer(
        settings.consumer_config(f"{settings.topic_prefix}bench.baseline.{time.time_ns()}")
    )
    producer = Producer(settings.producer_config(**{"queue.buffering.max.messages": 500_000}))
    pending = {p for p in end if end[p] > start.get(p, 0)}
    consumer.assign([TopicPartition(topic, p, start.get(p, 0)) for p in pending])
    events = produced = 0
    cpu0 = _cpu()
    first = None
    try:
        while pending:
            batch = consumer.consume(10_000, 1.0)
            if first is None and batch:
                first, cpu0 = time.perf_counter(), _cpu()
            for message in batch:
                if message.error() is not None:
                    continue
                partition = message.partition() or 0
                offset = message.offset() or 0
                if partition not in pending or offset >= end[partition]:
                    continue
                _, record = decoder.decode_dict(message.value())
                for family in route(record):
                    while True:
                        try:
                            producer.produce(outputs[family], message.value(), message.key())
                            break
                        except BufferError:
                            producer.poll(0.01)
                    produced += 1
                events += 1
                if offset + 1 >= end[partition]:
                    pending.discard(partition)
            producer.poll(0)
        left = producer.flush(60)
        elapsed = time.perf_counter() - (first or time.perf_counter())
    finally:
        consumer.close()
    cpu = _cpu() - cpu0
    return {
        "events": events,
        "produced": produced,
        "undelivered": left,
        "seconds": round(elapsed, 3),
        "events_per_second": round(events / elapsed, 1) if elapsed > 0 else 0.0,
        "cpu_seconds": round(cpu, 3),
        "cpu_us_per_event": round(cpu / events * 1e6, 1) if events else 0.0,
    }


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def launch(
    settings: KafkaSettings,
    env: dict[str, str],
    *,
    start: dict[int, int],
    end: dict[int, int],
    out_dir: Path,
    cwd: Path,
) -> dict[str, Any]:
    """Run the loop as its own process over ``start``..``end`` of the consent topic."""
    ensure_topics(
        settings,
        tuple(
            TopicSpec(baseline_topic(settings.topic_prefix, f), settings.partitions)
            for f in SinkFamily
        ),
    )
    result = out_dir / "baseline.json"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "deploy.bench.baseline",
            "--topic",
            settings.topics.consent,
            "--start",
            json.dumps(start),
            "--end",
            json.dumps(end),
            "--result",
            str(result),
        ],
        env=env,
        cwd=cwd,
        check=True,
        timeout=600,
    )
    figures: dict[str, Any] = json.loads(result.read_text())
    return figures


def main(argv: Sequence[str] | None = None) -> int:
    """Run the loop once and write its figures."""
    parser = argparse.ArgumentParser(prog="python -m deploy.bench.baseline")
    parser.add_argument("--topic", required=True)
    parser.add_argument("--start", required=True, help='JSON {"partition": offset}')
    parser.add_argument("--end", required=True, help='JSON {"partition": offset}')
    parser.add_argument("--result", type=Path, required=True)
    args = parser.parse_args(argv)
    start = {int(p): int(o) for p, o in json.loads(args.start).items()}
    end = {int(p): int(o) for p, o in json.loads(args.end).items()}
    figures = run(KafkaSettings.from_env(), args.topic, start, end)
    args.result.write_text(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
