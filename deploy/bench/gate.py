"""The consent gate under load: data events at a fixed rate (delay), then a backlog (speed).

The gate phase runs on a relay of its own after the consent phases, which first gets
``--warmup`` seconds of consent events at 200/s for the same subjects. The gate is the
relay's ``python -m streams.gate`` process (a thread of the stream worker in older
revisions). Its delay is the allowed message's Kafka timestamp (set when the gate
produced it) minus the data event's ``occurred_at`` (set when the load generator sent
it), for the events of the fixed-rate part. Its throughput is read off the gate's
data-event counter over the middle 80% of the backlog; when the gate clears the backlog
faster than that counter is sampled (once a second), it is read off the allowed backlog
messages' timestamps instead: 80% of the backlog over the time between the 10th and
90th percentile of those timestamps (allowed events are spread evenly through the
backlog). Either way it is bounded by how fast the load generator published the
backlog, which is reported next to it.
"""

from __future__ import annotations

from typing import Any

from deploy.bench.analysis import percentiles
from deploy.bench.collect import read_topic
from deploy.bench.config import BenchConfig
from deploy.bench.loadgen import LoadGenerator
from deploy.bench.offsets import Offsets
from deploy.bench.phases import cpu_meter, pids
from deploy.bench.progress import Sampler, backlog_rate, wait_caught_up
from deploy.bench.relay import Relay
from deploy.bench.say import say
from deploy.bench.workload import Workload
from schemas.codec import EventDecoder

CONSENT_RATE = 200
"""Consent events/s fed before the data events (enough for every partition and the
busiest subjects; little enough that the sinks need not catch up for long)."""


def gate_consumed(offsets: Offsets, relay: Relay) -> bool:
    """Whether the relay gates the data-events topic at all.

    As a process (``python -m streams.gate``) the gate is a member of its own group
    ``<stream group>-gate``. As a thread of the worker it assigned itself partitions by
    hand in that group, which then had no members, only the offsets it committed as it
    took them; as a Faust agent, before that, it was a member of the stream group.
    """
    data = relay.settings.topics.data_events
    if relay.has_gate_process:
        return True
    if data in offsets.assigned_topics(relay.stream_group):
        return True
    return any(topic == data for topic, _ in offsets.committed(relay.gate_group))


def run_gate(
    *,
    workload: Workload,
    relay: Relay,
    offsets: Offsets,
    sampler: Sampler,
    extra_pids: dict[str, int],
    config: BenchConfig,
) -> dict[str, Any]:
    """Data events through the consent gate: delay at a fixed rate, throughput on a backlog."""
    settings = relay.settings
    topics = settings.topics
    # Consent first, for the same skewed subjects: the gate then judges data against real
    # choices, and every consent partition has intake progress to wait for.
    consents = workload.prepare(int(CONSENT_RATE * max(config.warmup, 1)))
    paced = workload.prepare_data(int(config.gate_rate * config.duration))
    backlog = workload.prepare_data(config.gate_events)
    gen = LoadGenerator(settings, topics.data_events)
    consent_gen = LoadGenerator(settings, topics.consent)
    cpu: dict[str, float | None] = {}
    peaks: dict[str, float] = {}
    try:
        with cpu_meter(pids(relay, extra_pids), cpu, peaks):
            say(f"gate: {len(consents):,} consent events first, at {CONSENT_RATE}/s")
            consent_gen.send(consents, CONSENT_RATE, measured=False)
            wait_caught_up(offsets, relay, config.drain_timeout)
            say(f"gate: {len(paced):,} data events at {config.gate_rate}/s")
            gen.send(paced, config.gate_rate, measured=True)
            wait_caught_up(offsets, relay, config.drain_timeout)
            say(f"gate: backlog of {len(backlog):,} data events")
            sent = gen.send(backlog, None, measured=True)
            drained, _, _ = wait_caught_up(offsets, relay, config.drain_timeout)
    finally:
        gen.close()
        consent_gen.close()
    rate = backlog_rate(sampler.progress.data, sent.started, len(backlog))
    measured_ids = {e.event_id.encode() for e in paced}
    backlog_ids = {e.event_id.encode() for e in backlog}
    backlog_written: list[int] = []
    decoder = EventDecoder(settings.registry_client())
    delays, allowed = [], 0
    for message in read_topic(
        settings, offsets, topics.data_allowed, f"{settings.topic_prefix}bench.gate"
    ):
        allowed += 1
        _, record = decoder.decode_dict(message.value())
        event_id = record["event_id"].encode()
        written_ms = message.timestamp()[1]
        if event_id in measured_ids:
            delays.append(written_ms - int(record["occurred_at"].timestamp() * 1000))
        elif event_id in backlog_ids:
            backlog_written.append(written_ms)
    source = "data-event counter"
    if rate is None:
        rate = _rate_from_timestamps(backlog_written, len(backlog))
        source = "allowed messages' timestamps"
    say(f"gate: {rate or 0:,.0f} data events/s on the backlog; {allowed:,} allowed in all")
    return {
        "ran": True,
        "offered_rate": config.gate_rate,
        "seconds": config.duration,
        "sent": len(paced) + len(backlog),
        "allowed": allowed,
        "backlog": len(backlog),
        "events_per_second": None if rate is None else round(rate, 1),
        "events_per_second_from": source,
        "backlog_published_per_second": round(sent.achieved_rate, 1),
        "drained": drained,
        "delay_ms": percentiles(delays),
        "delay_definition": "allowed message's timestamp (set when the worker produced it) "
        "minus the data event's occurred_at (set when the load generator sent it)",
        "cpu_percent": cpu,
        "peak_rss_mb": peaks,
    }


def _rate_from_timestamps(written_ms: list[int], backlog: int) -> float | None:
    """Data events/s over the middle 80% of the backlog, from when its allowed events
    were written (they are a random, evenly spread share of it)."""
    if len(written_ms) < 10:
        return None
    ordered = sorted(written_ms)
    t10 = ordered[len(ordered) // 10]
    t90 = ordered[(len(ordered) * 9) // 10]
    if t90 <= t10:
        return None
    return 0.8 * backlog / ((t90 - t10) / 1000)
