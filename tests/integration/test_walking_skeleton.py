"""The walking skeleton: one withdrawal travels the whole path on the real parts.

A service withdraws email-marketing consent through the Python client; the event goes
to Kafka as Avro (registry wire format), keyed by subject; the Faust worker routes it
to the marketing sink's topic; the marketing sink suppresses the subject in its SQLite
store and publishes a receipt; both processes count and time it in /metrics.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import urllib.parse
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer

from producers.client import ConsentClient
from schemas.codec import EventDecoder
from schemas.events import PropagationReceipt, receipts_in
from schemas.runtime.kafka import KafkaSettings
from schemas.taxonomy import Outcome, Purpose, SinkFamily, Source
from tests.support.access import API_TOKEN, get, get_json
from tests.support.processes import http_text, stream_and_marketing_sink, wait_for


def _metric(text: str, name: str, **labels: str) -> float:
    """Sum of the samples of ``name`` whose labels include ``labels``."""
    total = 0.0
    for line in text.splitlines():
        match = re.match(rf"^{re.escape(name)}(?:\{{(.*)\}})? (\S+)$", line)
        if not match:
            continue
        found = dict(re.findall(r'(\w+)="([^"]*)"', match.group(1) or ""))
        if all(found.get(k) == v for k, v in labels.items()):
            total += float(match.group(2))
    return total


def test_a_withdrawal_is_honoured_by_the_marketing_sink(
    relay_settings: KafkaSettings, relay_env: dict[str, str], tmp_path: Path, unique_group: str
) -> None:
    with (
        stream_and_marketing_sink(relay_env, tmp_path, "skeleton", unique_group) as (
            stream_url,
            sink_url,
        ),
        ConsentClient(relay_settings) as client,
    ):
        published = client.withdraw(
            "subject-skeleton", [Purpose.MARKETING_EMAIL], source=Source.UNSUBSCRIBE_LINK
        )
        assert published.topic == relay_settings.topics.consent

        receipt = _await_receipt(relay_settings, published.event_id, unique_group)
        assert receipt.sink_family is SinkFamily.MARKETING
        assert receipt.destination == "suppression_list"
        assert receipt.outcome is Outcome.APPLIED
        assert receipt.applied_at >= receipt.occurred_at

        query = urllib.parse.urlencode(
            {"subject": "subject-skeleton", "channel": "EMAIL", "purpose": "MARKETING_EMAIL"}
        )
        assert get(f"{sink_url}/v1/may-contact?{query}", token=None).status == 401
        decision = get_json(f"{sink_url}/v1/may-contact?{query}")
        assert decision["allowed"] is False

        sink_metrics = http_text(f"{sink_url}/metrics")
        assert (
            _metric(
                sink_metrics,
                "consent_relay_sink_instructions_total",
                sink_family="MARKETING",
                destination="suppression_list",
                outcome="APPLIED",
            )
            >= 1
        )
        assert (
            _metric(
                sink_metrics,
                "consent_relay_propagation_seconds_count",
                sink_family="MARKETING",
                destination="suppression_list",
            )
            >= 1
        )
        stream_metrics = wait_for(
            "the worker to count the instruction",
            lambda: (
                text
                if _metric(
                    text := http_text(f"{stream_url}/metrics"),
                    "consent_relay_instructions_total",
                    sink_family="MARKETING",
                )
                >= 1
                else None
            ),
            bound=30,
        )
        assert "subject-skeleton" not in stream_metrics + sink_metrics

        # The proof, as an operator asks for it: the CLI reads the worker's view.
        cli_env = {**relay_env, "STREAM_WORKER_URL": stream_url, "STREAM_WORKER_TOKEN": API_TOKEN}
        record = wait_for(
            "the worker to report the withdrawal fully propagated",
            lambda: _complete(_cli(cli_env, "propagation", published.event_id)),
            bound=60,
        )
        print(json.dumps(record, indent=2))
        state = wait_for(
            "the subject's state on the compacted topic",
            lambda: _cli(cli_env, "state", "subject-skeleton"),
            bound=60,
        )
        assert "MARKETING_EMAIL" in json.dumps(state)


def _cli(env: dict[str, str], *args: str) -> Any:
    """``consent-relay <args>`` as JSON, or None while it has nothing to say yet."""
    done = subprocess.run(
        [sys.executable, "-m", "producers.cli", *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if done.returncode != 0:
        return None
    return json.loads(done.stdout)


def _complete(record: Any) -> Any:
    """The record once it says every destination answered."""
    if record and record.get("complete"):
        return record
    return None


def _await_receipt(settings: KafkaSettings, event_id: str, group: str) -> PropagationReceipt:
    registry = settings.registry_client()
    decoder = EventDecoder(registry)
    consumer = Consumer(settings.consumer_config(f"{group}-receipts"))
    consumer.subscribe([settings.topics.receipts])
    try:

        def poll() -> PropagationReceipt | None:
            msg = consumer.poll(0.5)
            if msg is None or msg.error():
                return None
            for receipt in receipts_in(decoder.decode(msg.value())):
                if receipt.event_id == event_id:
                    return receipt
            return None

        return wait_for("the marketing sink's receipt", poll, bound=120)
    finally:
        consumer.close()
        registry.close()
