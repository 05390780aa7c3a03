"""``python -m consumers.partners`` as a real process: serve, stop on SIGTERM, resume.

A partner that is down when the process stops gets everything after a restart, while a
partner that was already served gets nothing twice (its offsets were committed); bad
configuration stops the process naming the entry; logs never carry subject ids.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import pytest

from schemas.events import new_event_id
from schemas.taxonomy import Action, Purpose, SinkFamily
from tests.integration.consumers import partner_servers as servers
from tests.support.processes import free_port

SECRET = "entrypoint-webhook-secret-0123"
FAMILY = SinkFamily.PARTNER_SHARING


@pytest.fixture
def partners() -> Iterator[dict[str, Any]]:
    made = {n: servers.PartnerServer(n, SECRET.encode()) for n in ("criteo", "facebook")}
    with ExitStack() as stack:
        for server in made.values():
            stack.enter_context(server.running())
        yield made


def config_file(tmp_path: Path, partners: dict[str, Any]) -> Path:
    lines = ['pseudonym_key = "env:TEST_PSEUDONYM_KEY"']
    for name, server in partners.items():
        lines += [
            f"[partners.{name}]",
            f'url = "{server.url}"',
            'secret = "env:TEST_WEBHOOK_SECRET"',
            'known_subjects = "all"',
            "timeout_seconds = 2",
        ]
    path = tmp_path / "partners.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


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


def stop(proc: subprocess.Popen[bytes], log: Path) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        code = proc.wait(60)
    except subprocess.TimeoutExpired:
        pytest.fail(f"no exit within 60 s of SIGTERM:\n{log.read_text()}")
    assert code == 0, log.read_text()


def test_serves_stops_and_resumes_where_it_left_off(
    tmp_path: Path,
    partners: dict[str, Any],
    relay_env: dict[str, str],
    sink_kit: Any,
    until: Callable[..., Any],
) -> None:
    port = free_port()
    env = {
        **relay_env,
        "PARTNER_SINK_CONFIG": str(config_file(tmp_path, partners)),
        "PARTNER_SINK_GROUP_ID": sink_kit.group,
        "PARTNER_SINK_HTTP_PORT": str(port),
        "PARTNER_SINK_HTTP_HOST": "127.0.0.1",
        "PARTNER_SINK_BACKOFF_MAX_SECONDS": "0.5",
        "PARTNER_SINK_LOG_LEVEL": "DEBUG",
        "TEST_PSEUDONYM_KEY": "entrypoint-pseudonym-key-0123",
        "TEST_WEBHOOK_SECRET": SECRET,
    }
    subjects = [f"acct-entry-{n}" for n in range(8)]
    # One withdrawal per subject, reaching every partner: one record each, as the stream
    # writes it.
    events = {s: new_event_id() for s in subjects}
    batch = [
        sink_kit.instruction(
            Action.SUPPRESS,
            subject=s,
            purposes=(Purpose.SHARE_WITH_ADVERTISING_PLATFORMS,),
            destination=name,
            family=FAMILY,
            event_id=events[s],
        )
        for s in subjects
        for name in partners
    ]
    log = tmp_path / "partners.log"
    partners["facebook"].fail()
    sink_kit.publish_routed(batch)

    with sink_process(env, log) as proc:
        until(lambda: len(partners["criteo"].applied) == len(subjects), timeout=90)
        until(lambda: partners["facebook"].statuses.count(500) >= 2, timeout=30)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
            metrics = r.read().decode()
        assert 'consent_relay_circuit_breaker_open{destination="facebook"}' in metrics
        assert 'destination="criteo",outcome="APPLIED",sink_family="PARTNER_SHARING"' in metrics
        stop(proc, log)
    assert partners["facebook"].applied == []

    partners["facebook"].recover()
    with sink_process(env, log) as proc:
        until(lambda: len(partners["facebook"].applied) == len(subjects), timeout=90)
        stop(proc, log)
    assert len(partners["criteo"].applied) == len(subjects)
    assert partners["criteo"].duplicates == 0, "committed work must not be redelivered"

    text = log.read_text()
    assert "partners: criteo, facebook" in text
    for subject in subjects:
        assert subject not in text, "logs must not carry subject ids"


def test_bad_partner_entry_stops_the_process_naming_it(
    tmp_path: Path, relay_env: dict[str, str]
) -> None:
    path = tmp_path / "partners.toml"
    path.write_text(
        'pseudonym_key = "pseudonym-key-0123456789"\n'
        "[partners.acme]\n"
        'url = "https://acme.example/"\nsecret = "acme-secret-0123456789"\n'
    )
    env = {**os.environ, **relay_env, "PARTNER_SINK_CONFIG": str(path)}
    done = subprocess.run(
        [sys.executable, "-m", "consumers.partners"],
        env=env,
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert b"partners.acme" in done.stderr
