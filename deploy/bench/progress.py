"""How far the relay has got: the stream's event counters over time, and catching up.

:class:`Sampler` records, every second, how many consent and data events the stream
workers and the consent gate have consumed, from their
``consent_relay_stream_events_total`` metric (or, if they do not export it, their
groups' committed offsets). Throughput is read
off that series: over a window for a fixed rate, over the middle 80% of a backlog for
the maximum. :func:`wait_caught_up` waits until every relay consumer group has no lag
on the relay's topics.
"""

from __future__ import annotations

import itertools
import threading
import time
from dataclasses import dataclass, field

from confluent_kafka import KafkaException

from deploy.bench.collect import instruction_topics
from deploy.bench.offsets import GroupLag, Offsets
from deploy.bench.relay import Relay, scrape
from deploy.bench.say import say
from schemas.events import CONSENT_EVENT_TYPES, DataEventCaptured

CONSENT_TYPES = frozenset(t.__name__ for t in CONSENT_EVENT_TYPES)
DATA_TYPE = DataEventCaptured.__name__
SAMPLE_EVERY_S = 1.0
Series = list[tuple[float, float]]


@dataclass(slots=True)
class Progress:
    """The stream's progress over time: (wall time, events counted)."""

    consent: Series = field(default_factory=list)
    data: Series = field(default_factory=list)
    source: str = "metrics"


class Sampler(threading.Thread):
    """Records the stream workers' consumed-event counters every second."""

    def __init__(self, relay: Relay) -> None:
        super().__init__(name="bench-sampler", daemon=True)
        self.relay = relay
        self.progress = Progress()
        self._halt = threading.Event()
        self._offsets = Offsets(relay.settings)
        self._urls = [c.metrics_url for c in relay.stream_children if c.metrics_url]

    def sample(self) -> tuple[float, float]:
        """Consent and data events consumed so far, from metrics or committed offsets."""
        consent = data = 0.0
        for url in self._urls:
            for name, labels, value in scrape(url):
                if name != "consent_relay_stream_events_total":
                    continue
                if labels.get("event_type") in CONSENT_TYPES:
                    consent += value
                elif labels.get("event_type") == DATA_TYPE:
                    data += value
        if consent == 0 and data == 0:
            self.progress.source = "committed offsets"
            group = [self.relay.stream_group]
            topics = self.relay.settings.topics
            consent = float(self._offsets.consumed(group, topics.consent))
            gates = [self.relay.gate_group]
            data = float(self._offsets.consumed(gates, topics.data_events))
        return consent, data

    def run(self) -> None:
        """Sample until :meth:`stop`."""
        while not self._halt.is_set():
            now = time.time()
            consent, data = self.sample()
            self.progress.consent.append((now, consent))
            self.progress.data.append((now, data))
            self._halt.wait(SAMPLE_EVERY_S)

    def stop(self) -> None:
        """End the thread."""
        self._halt.set()
        self.join(10)


def _at(series: Series, when: float) -> float:
    """The counter at ``when``, linearly interpolated."""
    before = [s for s in series if s[0] <= when]
    after = [s for s in series if s[0] >= when]
    if not before:
        return series[0][1] if series else 0.0
    if not after:
        return before[-1][1]
    (t0, v0), (t1, v1) = before[-1], after[0]
    return v0 if t1 == t0 else v0 + (v1 - v0) * (when - t0) / (t1 - t0)


def _when(series: Series, value: float) -> float | None:
    """When the counter first reached ``value``, linearly interpolated."""
    for (t0, v0), (t1, v1) in itertools.pairwise(series):
        if v1 >= value:
            return t1 if v1 == v0 else t0 + (t1 - t0) * (value - v0) / (v1 - v0)
    return None


def rate_between(series: Series, start: float, end: float) -> float | None:
    """Events per second between two times."""
    if end <= start or not series:
        return None
    return (_at(series, end) - _at(series, start)) / (end - start)


def backlog_rate(series: Series, since: float, size: int) -> float | None:
    """Events per second over the middle 80% of a backlog of ``size`` published at ``since``."""
    base = _at(series, since)
    t10, t90 = _when(series, base + 0.1 * size), _when(series, base + 0.9 * size)
    if t10 is None or t90 is None or t90 <= t10:
        return None
    return 0.8 * size / (t90 - t10)


def relay_groups(offsets: Offsets, prefix: str) -> list[str]:
    """The relay's consumer groups (not the benchmark's own readers)."""
    return [g for g in offsets.groups(prefix) if not g.startswith(f"{prefix}bench.")]


def wait_caught_up(
    offsets: Offsets, relay: Relay, timeout: float
) -> tuple[bool, float, dict[str, GroupLag]]:
    """Until every relay group has no lag twice in a row; (caught up, seconds, lags)."""
    prefix = relay.settings.topic_prefix
    # Every instruction topic on the broker: a relay revision from when partners had a
    # topic each created them as its processes started, and their lag must count too.
    inputs = {spec.name for spec in relay.settings.topics.all()}
    inputs.update(instruction_topics(relay.settings))
    # The state topic is the workers' state table's changelog: Faust assigns it to their
    # group to recover from, never commits it, and no relay group reads it as input.
    inputs.discard(relay.settings.topics.state)
    started = told = time.monotonic()
    quiet = 0
    lags: dict[str, GroupLag] = {}
    while time.monotonic() - started < timeout:
        relay.check_alive()
        try:
            lags = {g: offsets.lag(g, inputs) for g in relay_groups(offsets, prefix)}
        except KafkaException as exc:
            # A loaded broker may answer an admin request late; ask again.
            say(f"  lag not readable this time ({exc.args[0].str()}); asking again")
            quiet = 0
            continue
        busy = relay.stream_group not in lags or any(lag.total for lag in lags.values())
        quiet = 0 if busy else quiet + 1
        if quiet >= 2:
            return True, time.monotonic() - started, lags
        if time.monotonic() - told >= 15:
            told = time.monotonic()
            behind = summary(lags, prefix)
            say(f"  catching up for {told - started:.0f} s; lag: {behind or 'none yet'}")
        time.sleep(1.0)
    return False, time.monotonic() - started, lags


def summary(lags: dict[str, GroupLag], prefix: str) -> dict[str, int]:
    """Lag per stage: the stream's inputs, and each sink family (partners summed)."""
    out: dict[str, int] = {}
    for group, lag in lags.items():
        name = group.removeprefix(prefix)
        for topic, n in lag.by_topic.items():
            if not n:
                continue
            if name.endswith("streams"):
                key = f"stream on {topic.removeprefix(prefix)}"
            elif ".partner_sharing." in name:
                key = "partner sinks (summed over partners)"
            else:
                key = name
            out[key] = out.get(key, 0) + n
    return out
