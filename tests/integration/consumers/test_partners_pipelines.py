"""The partner-sharing sink against the real broker and real local partner servers.

Five partners run as separate pipelines in one process: criteo is healthy, facebook
answers 500 for a while, twitter hangs (timeouts), google insists on valid signatures,
sellers only knows some of the subjects (the others are skipped with a reason), and
yahoo is configured with the wrong secret (401: a permanent failure, dead-lettered).
Every withdrawal ends applied once in effect, in order per subject, with receipts, and
the healthy partners are not held up by the broken ones.
"""

from __future__ import annotations

import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, ExitStack
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from consumers.partners.config import load_config
from consumers.partners.identities import IdentityMap
from consumers.partners.process import PartnerSinkProcess
from consumers.partners.pseudonym import pseudonymous_id
from consumers.partners.settings import PartnerSinkSettings
from schemas.events import (
    DeadLettered,
    InstructionIssued,
    PropagationReceipt,
    new_event_id,
    utc_now,
)
from schemas.taxonomy import Action, Outcome, Purpose, SinkFamily
from tests.integration.consumers import partner_servers as servers
from tests.support.threads import running_in_thread

SUBJECTS = 12
SEQUENCE = (Action.SUPPRESS, Action.ALLOW, Action.SUPPRESS)
FAMILY = SinkFamily.PARTNER_SHARING
SECRETS = {
    name: f"{name}-webhook-secret-0123456789"
    for name in ("criteo", "facebook", "twitter", "google", "sellers", "yahoo")
}
MASTER = "pseudonym-master-key-0123456789"


@pytest.fixture
def partners() -> Iterator[dict[str, Any]]:
    made = {name: servers.PartnerServer(name, secret.encode()) for name, secret in SECRETS.items()}
    made["google"].strict_signatures = True
    # Yahoo checks against a secret we were never told: every request is refused with 401.
    made["yahoo"] = servers.PartnerServer("yahoo", b"yahoo-real-secret-we-do-not-have", True)
    with ExitStack() as stack:
        for server in made.values():
            stack.enter_context(server.running())
        yield made


def write_config(tmp_path: Path, partners: dict[str, Any]) -> tuple[Path, dict[str, str]]:
    env = {f"{name.upper()}_SECRET": secret for name, secret in SECRETS.items()}
    env["MASTER_KEY"] = MASTER
    lines = ['pseudonym_key = "env:MASTER_KEY"', 'identity_map = "identities.sqlite"', ""]
    for name, server in partners.items():
        lines += [
            f"[partners.{name}]",
            f'url = "{server.url}"',
            f'secret = "env:{name.upper()}_SECRET"',
            "timeout_seconds = 1.0",
            "failure_threshold = 2",
            "reset_seconds = 1.0",
            'known_subjects = "mapped"' if name == "sellers" else 'known_subjects = "all"',
            "",
        ]
    path = tmp_path / "partners.toml"
    path.write_text("\n".join(lines))
    return path, env


def running(process: PartnerSinkProcess) -> AbstractContextManager[PartnerSinkProcess]:
    return running_in_thread(process, name="partner-process")


def breaker_gauges(port: int) -> dict[str, float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        text = response.read().decode()
    gauges: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        if family.name == "consent_relay_circuit_breaker_open":
            for sample in family.samples:
                gauges[sample.labels["destination"]] = sample.value
    return gauges


def test_every_partner_ends_applied_once_in_order_and_broken_ones_delay_no_one(
    tmp_path: Path,
    partners: dict[str, Any],
    sink_kit: Any,
    until: Callable[..., Any],
) -> None:
    config_path, env = write_config(tmp_path, partners)
    config = load_config(config_path, env)
    subjects = [f"acct-{n:03d}" for n in range(SUBJECTS)]
    known_to_sellers = subjects[: SUBJECTS // 2]
    IdentityMap(tmp_path / "identities.sqlite").record("sellers", known_to_sellers)
    settings = PartnerSinkSettings(
        config=config_path,
        group_id=sink_kit.group,
        backoff_initial_seconds=0.05,
        backoff_max_seconds=0.5,
        poll_timeout_seconds=0.2,
    )

    start = utc_now() - timedelta(seconds=10)
    instructions: dict[str, list[InstructionIssued]] = {name: [] for name in partners}
    for subject in subjects:
        for step, action in enumerate(SEQUENCE):
            # One event reaching every partner: one record on the partners' topic.
            event_id = new_event_id()
            for name in partners:
                instructions[name].append(
                    sink_kit.instruction(
                        action,
                        subject=subject,
                        purposes=(Purpose.SHARE_WITH_ADVERTISING_PLATFORMS,),
                        occurred_at=start + timedelta(seconds=step),
                        destination=name,
                        family=FAMILY,
                        event_id=event_id,
                    )
                )
    receipts = sink_kit.reader(sink_kit.settings.topics.receipts)
    dead_letters = sink_kit.reader(sink_kit.settings.topics.dead_letters)

    partners["facebook"].fail()
    partners["twitter"].hang()
    process = PartnerSinkProcess(sink_kit.settings, settings, config, metrics_port=0)
    with running(process):
        assert process.wait_ready(60)
        published_at = time.monotonic()
        sink_kit.publish_routed([i for name in partners for i in instructions[name]])
        per_partner = SUBJECTS * len(SEQUENCE)

        # Healthy partners finish while facebook fails and twitter hangs.
        until(lambda: len(partners["criteo"].applied) == per_partner, timeout=60)
        until(lambda: len(partners["google"].applied) == per_partner, timeout=60)
        until(lambda: len(partners["sellers"].applied) == len(known_to_sellers) * 3, timeout=60)
        healthy_seconds = time.monotonic() - published_at
        print(
            f"\nhealthy partners done {healthy_seconds:.2f}s after publishing "
            f"{len(partners) * per_partner} instructions, with facebook failing and "
            "twitter hanging"
        )
        assert partners["facebook"].applied == []
        assert partners["twitter"].applied == []
        port = process.http_port
        assert port is not None
        gauges = until(lambda: (g := breaker_gauges(port)).get("facebook") == 1 and g, 30)
        assert gauges["criteo"] == 0
        assert until(lambda: breaker_gauges(port).get("twitter") == 1, 30)

        partners["facebook"].recover()
        partners["twitter"].release()
        recovered_at = time.monotonic()
        until(lambda: len(partners["facebook"].applied) == per_partner, timeout=90)
        until(lambda: len(partners["twitter"].applied) == per_partner, timeout=90)
        print(
            f"facebook and twitter caught up {time.monotonic() - recovered_at:.2f}s "
            "after recovering"
        )
        until(lambda: breaker_gauges(port).get("facebook") == 0, 30)
        assert breaker_gauges(port).get("twitter") == 0

        expected_receipts = {i.instruction_id for ins in instructions.values() for i in ins}
        until(
            lambda: (
                expected_receipts
                <= {r.instruction_id for r in receipts.poll() if isinstance(r, PropagationReceipt)}
            ),
            timeout=60,
        )

    for name in ("criteo", "google", "facebook", "twitter"):
        server = partners[name]
        # Exactly the instructions sent to it, each applied once.
        assert sorted(server.applied_keys()) == sorted(i.instruction_id for i in instructions[name])
        key = config.partner(name).pseudonym_key
        expected = {pseudonymous_id(key, s): [a.value for a in SEQUENCE] for s in subjects}
        assert server.actions_by_subject() == expected, f"{name}: order per subject broken"
        assert server.bad_signatures == 0
        for applied in server.applied:
            assert applied.body["subject"]["id"] not in subjects
    assert 401 not in partners["google"].statuses, "our signatures must pass the strict check"

    seller_key = config.partner("sellers").pseudonym_key
    assert set(partners["sellers"].actions_by_subject()) == {
        pseudonymous_id(seller_key, s) for s in known_to_sellers
    }

    outcome = {
        (r.destination, r.subject.id, r.instruction_id): (r.outcome, r.reason)
        for r in receipts.poll()
        if isinstance(r, PropagationReceipt)
    }
    for name, sent in instructions.items():
        for instruction in sent:
            got, reason = outcome[(name, instruction.subject.id, instruction.instruction_id)]
            if name == "yahoo":
                assert got is Outcome.FAILED
                assert "401" in (reason or "")
            elif name == "sellers" and instruction.subject.id not in known_to_sellers:
                assert got is Outcome.SKIPPED
                assert "no identifier" in (reason or "")
            else:
                assert got is Outcome.APPLIED, (name, got, reason)

    yahoo_dead = until(
        lambda: [
            d
            for d in dead_letters.poll()
            if isinstance(d, DeadLettered) and d.stage == "sink.partner_sharing"
        ],
        timeout=30,
    )
    assert {d.error_class for d in yahoo_dead} == {"PermanentSinkError"}
    assert len(yahoo_dead) == len(instructions["yahoo"])
    assert partners["yahoo"].applied == []
