"""``python -m consumers.analytics`` as a real process: apply, answer may-process, stop.

The store's tables are created at start, an instruction published on the real broker
reaches the SQLite file, ``GET /may-process`` on the configured port answers from it,
SIGTERM exits cleanly, a bad setting exits 2 naming it, and logs carry no subject id.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from consumers.analytics.sink import DESTINATION
from consumers.analytics.store import AnalyticsRecord, AnalyticsStore
from schemas.events import Subject, utc_now
from schemas.taxonomy import Action, Purpose, SinkFamily, SubjectKind
from tests.support.access import API_TOKEN, get
from tests.support.processes import free_port

SUBJECT = "acct-analytics-entry-1"


def may_process(port: int) -> bool | None:
    url = f"http://127.0.0.1:{port}/may-process?subject_id={SUBJECT}"
    try:
        answer = get(url)
    except (urllib.error.URLError, ConnectionError):
        return None
    return bool(answer.json()["may_process"]) if answer.status == 200 else None


def test_runs_applies_answers_and_stops_cleanly(
    tmp_path: Path, relay_env: dict[str, str], sink_kit: Any, until: Callable[..., Any]
) -> None:
    db = tmp_path / "analytics.sqlite"
    store = AnalyticsStore(db)
    store.ensure_schema()
    store.add_events(
        [
            AnalyticsRecord(
                event_id="e-1",
                subject=Subject(id=SUBJECT, kind=SubjectKind.ACCOUNT),
                purpose=Purpose.RESEARCH_AND_STATISTICS,
                name="search",
                occurred_at=utc_now(),
            )
        ]
    )
    store.close()
    port = free_port()
    env = {
        **os.environ,
        **relay_env,
        "ANALYTICS_SINK_DATABASE": str(db),
        "ANALYTICS_SINK_GROUP_ID": sink_kit.group,
        "ANALYTICS_SINK_HTTP_PORT": str(port),
        "ANALYTICS_SINK_HTTP_HOST": "127.0.0.1",
        "ANALYTICS_SINK_API_TOKEN": API_TOKEN,
        "ANALYTICS_SINK_LOG_LEVEL": "DEBUG",
    }
    log = tmp_path / "analytics.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "consumers.analytics"], env=env, stdout=out, stderr=out
        )
    try:
        assert until(lambda: may_process(port) is True, timeout=60)
        sink_kit.publish(
            [
                sink_kit.instruction(
                    Action.ERASE,
                    subject=SUBJECT,
                    purposes=(),
                    destination=DESTINATION,
                    family=SinkFamily.ANALYTICS,
                ),
                sink_kit.instruction(
                    Action.SUPPRESS,
                    subject=SUBJECT,
                    purposes=(Purpose.RESEARCH_AND_STATISTICS,),
                    destination=DESTINATION,
                    family=SinkFamily.ANALYTICS,
                ),
            ],
            topic=sink_kit.settings.topics.instructions(SinkFamily.ANALYTICS),
        )
        until(lambda: may_process(port) is False, timeout=60)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 0, log.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(30)
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT count(*) FROM analytics_events").fetchone() == (0,)
    conn.close()
    assert SUBJECT not in log.read_text(), "logs must not carry subject ids"


def test_bad_setting_stops_the_process_naming_it(tmp_path: Path, relay_env: dict[str, str]) -> None:
    env = {
        **os.environ,
        **relay_env,
        "ANALYTICS_SINK_DATABASE": str(tmp_path / "a.sqlite"),
        "ANALYTICS_SINK_ERASURE_MODE": "shred",
    }
    done = subprocess.run(
        [sys.executable, "-m", "consumers.analytics"],
        env=env,
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert b"ANALYTICS_SINK_ERASURE_MODE" in done.stderr
