"""Bulk import through the CLI against the real broker: order, bad rows, resuming."""

from __future__ import annotations

import json
from pathlib import Path

from producers.bulk import event_id_for
from schemas.events import ConsentChanged, CookiePreferencesSet
from schemas.runtime.kafka import KafkaSettings
from schemas.taxonomy import Choice, Source

from .conftest import read_back, run_cli

HEADER = "type,subject_id,subject_kind,occurred_at,choice,purposes,regime,evidence_ref\n"
GOOD = [
    "ConsentChanged,imp-1,ACCOUNT,2019-08-01T10:00:00Z,GRANTED,MARKETING_EMAIL|MARKETING_SMS,GDPR,old:1\n",
    "ConsentChanged,imp-2,ACCOUNT,2019-08-01T11:00:00Z,GRANTED,MARKETING_EMAIL,GDPR,old:2\n",
    "ConsentChanged,imp-1,ACCOUNT,2019-09-01T10:00:00Z,WITHDRAWN,MARKETING_SMS,GDPR,old:3\n",
    ",imp-1,,2020-02-01T10:00:00Z,WITHDRAWN,MARKETING_EMAIL,GDPR,old:4\n",
]
BAD = [
    "ConsentChanged,imp-3,ACCOUNT,2019-08-01T10:00:00Z,WITHDRAWN,ANTI_MONEY_LAUNDERING,GDPR,bad:1\n",
    "ConsentChanged,imp-3,ACCOUNT,2019-08-01T10:00:00Z,GRANTED,MIND_READING,GDPR,bad:2\n",
    "ConsentChanged,imp-3,ROBOT,2019-08-01T10:00:00Z,GRANTED,MARKETING_EMAIL,GDPR,bad:3\n",
    "ConsentChanged,imp-3,ACCOUNT,2018-01-01T10:00:00Z,GRANTED,MARKETING_EMAIL,GDPR,bad:4\n",
]


def test_csv_import_publishes_good_rows_in_order_and_reports_bad_ones(
    relay_settings: KafkaSettings, relay_env: dict[str, str], tmp_path: Path
) -> None:
    source = tmp_path / "legacy.csv"
    # good, bad, good, bad, bad, good, bad, good -> lines 2..9
    rows = [GOOD[0], BAD[0], GOOD[1], BAD[1], BAD[2], GOOD[2], BAD[3], GOOD[3]]
    source.write_text(HEADER + "".join(rows))
    errors = tmp_path / "rejected.jsonl"

    done = run_cli(relay_env, "import", str(source), "--errors", str(errors))
    assert done.returncode == 3, done.stderr  # finished, with rejected rows
    summary = json.loads(done.stdout)
    assert summary["published"] == 4
    assert summary["rejected"] == 4
    assert summary["last_line"] == 9
    assert "rejected line 3: purposes: ANTI_MONEY_LAUNDERING rests on" in done.stderr
    assert "rejected line 5: purposes: unknown Purpose 'MIND_READING'" in done.stderr
    assert "rejected line 6: subject.kind: unknown SubjectKind 'ROBOT'" in done.stderr
    assert "rejected line 8: policy_version:" in done.stderr
    assert "import [" in done.stderr  # the progress bar
    rejected = [json.loads(line) for line in errors.read_text().splitlines()]
    assert [(r["line"], r["field"]) for r in rejected] == [
        (3, "purposes"),
        (5, "purposes"),
        (6, "subject.kind"),
        (8, "policy_version"),
    ]

    received = read_back(relay_settings, relay_settings.topics.consent, 4)
    events = [r.record for r in received]
    assert all(isinstance(e, ConsentChanged) for e in events)
    assert all(e.source is Source.BULK_IMPORT for e in events)
    imp1 = [e for e in events if e.subject.id == "imp-1"]
    assert [e.evidence_ref for e in imp1] == ["old:1", "old:3", "old:4"]  # file order kept
    assert [e.choice for e in imp1] == [Choice.GRANTED, Choice.WITHDRAWN, Choice.WITHDRAWN]
    assert {e.event_id for e in events} == {
        event_id_for("legacy.csv", line) for line in (2, 4, 7, 9)
    }

    checkpoint = json.loads((tmp_path / "legacy.csv.checkpoint.json").read_text())
    assert checkpoint["line"] == 9
    assert checkpoint["published"] == 4

    # Re-running publishes nothing; rows appended later are picked up from the checkpoint.
    again = run_cli(relay_env, "import", str(source), "--quiet")
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["published"] == 0
    with source.open("a") as more:
        more.write("CookiePreferencesSet,dev-imp,DEVICE,2021-05-05T05:05:05Z,,,GDPR,old:5\n")
    extra = tmp_path / "cookies.jsonl"
    extra.write_text(
        json.dumps(
            {
                "type": "CookiePreferencesSet",
                "subject": {"id": "dev-imp", "kind": "DEVICE"},
                "device_id": "dev-imp",
                "granted": ["STATISTICS"],
                "occurred_at": "2021-05-05T05:05:05Z",
            }
        )
        + "\n"
    )
    jsonl = run_cli(relay_env, "import", str(extra), "--quiet")
    assert jsonl.returncode == 0, jsonl.stderr
    received = read_back(relay_settings, relay_settings.topics.consent, 5)
    (cookie,) = [r.record for r in received if isinstance(r.record, CookiePreferencesSet)]
    assert cookie.source is Source.BULK_IMPORT
    assert cookie.event_id == event_id_for("cookies.jsonl", 1)

    appended = run_cli(relay_env, "import", str(source), "--quiet")
    assert appended.returncode == 3  # the appended CSV row lacks device_id
    assert json.loads(appended.stdout)["resumed_after_line"] == 9
    assert "rejected line 10: device_id: is required" in appended.stderr
