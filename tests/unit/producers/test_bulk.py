"""Bulk import without a broker: parsing, rejected rows, deterministic ids, resuming."""

from __future__ import annotations

import json
from concurrent.futures import Future
from pathlib import Path

import pytest

from producers import bulk
from producers.errors import BrokerUnavailableError
from producers.publisher import Published
from schemas.events import ConsentChanged, ConsentEvent
from schemas.taxonomy import Choice, Source

HEADER = "type,subject_id,occurred_at,choice,purposes,evidence_ref\n"
ROWS = [
    "ConsentChanged,h-1,2019-08-01T10:00:00Z,GRANTED,MARKETING_EMAIL|MARKETING_SMS,old:1\n",
    "ConsentChanged,h-2,2019-08-02T10:00:00Z,WITHDRAWN,ACCOUNT_MANAGEMENT,old:2\n",
    ",h-1,2019-09-01T10:00:00Z,WITHDRAWN,MARKETING_SMS,old:3\n",
    "ConsentChanged,h-3,2019-09-01T10:00:00Z,GRANTED,NOT_A_PURPOSE,old:4\n",
    "ConsentChanged,h-4,2019-09-01T10:00:00Z,GRANTED,MARKETING_PUSH,old:5,extra\n",
]


class RecordingSender:
    """Acknowledges every event at once, or fails after ``fail_after`` events."""

    def __init__(self, fail_after: int | None = None) -> None:
        self.sent: list[ConsentEvent] = []
        self.fail_after = fail_after

    def send(self, event: ConsentEvent) -> Future[Published]:
        future: Future[Published] = Future()
        if self.fail_after is not None and len(self.sent) >= self.fail_after:
            future.set_exception(BrokerUnavailableError("down"))
            return future
        self.sent.append(event)
        future.set_result(Published(event.event_id, type(event).__name__, "t", 0, len(self.sent)))
        return future


def write(path: Path, *rows: str) -> Path:
    path.write_text(HEADER + "".join(rows))
    return path


def test_good_rows_published_in_order_bad_rows_reported(tmp_path: Path) -> None:
    source = write(tmp_path / "history.csv", *ROWS)
    sender = RecordingSender()
    rejected: list[bulk.RowError] = []
    summary = bulk.run_import(
        source, sender, checkpoint_path=tmp_path / "cp.json", on_reject=rejected.append
    )
    assert [e.subject.id for e in sender.sent] == ["h-1", "h-1"]
    first, second = sender.sent
    assert isinstance(first, ConsentChanged)
    assert isinstance(second, ConsentChanged)
    assert first.choice is Choice.GRANTED
    assert second.choice is Choice.WITHDRAWN
    assert all(e.source is Source.BULK_IMPORT for e in sender.sent)
    assert first.evidence_ref == "old:1"
    assert [(r.line, r.field) for r in rejected] == [(3, "purposes"), (5, "purposes"), (6, None)]
    assert "unknown Purpose 'NOT_A_PURPOSE'" in str(rejected[1])
    assert summary.published == 2
    assert summary.last_line == 6
    saved = json.loads((tmp_path / "cp.json").read_text())
    assert saved["line"] == 6
    assert saved["published"] == 2
    assert saved["rejected"] == 3


def test_event_ids_are_deterministic_per_import_and_line(tmp_path: Path) -> None:
    source = write(tmp_path / "history.csv", ROWS[0])
    one, two = RecordingSender(), RecordingSender()
    bulk.run_import(source, one, checkpoint_path=tmp_path / "a.json")
    bulk.run_import(source, two, checkpoint_path=tmp_path / "b.json")
    assert one.sent[0].event_id == two.sent[0].event_id == bulk.event_id_for("history.csv", 2)


def test_resume_continues_after_the_checkpoint(tmp_path: Path) -> None:
    source = write(tmp_path / "history.csv", ROWS[0])
    checkpoint = tmp_path / "cp.json"
    bulk.run_import(source, RecordingSender(), checkpoint_path=checkpoint)
    with source.open("a") as more:
        more.write(ROWS[2])
    sender = RecordingSender()
    summary = bulk.run_import(source, sender, checkpoint_path=checkpoint)
    assert summary.resumed_after_line == 2
    assert [e.evidence_ref for e in sender.sent] == ["old:3"]
    assert json.loads(checkpoint.read_text())["published"] == 2


def test_a_changed_file_is_not_resumed(tmp_path: Path) -> None:
    source = write(tmp_path / "history.csv", ROWS[0])
    checkpoint = tmp_path / "cp.json"
    bulk.run_import(source, RecordingSender(), checkpoint_path=checkpoint)
    write(source, ROWS[2], ROWS[0])
    with pytest.raises(bulk.ImportFileError, match="changed"):
        bulk.run_import(source, RecordingSender(), checkpoint_path=checkpoint)


def test_failed_delivery_keeps_the_last_acknowledged_batch(tmp_path: Path) -> None:
    rows = [
        f"ConsentChanged,s-{i},2019-08-01T10:00:00Z,GRANTED,MARKETING_EMAIL,r{i}\n"
        for i in range(5)
    ]
    source = write(tmp_path / "history.csv", *rows)
    checkpoint = tmp_path / "cp.json"
    with pytest.raises(BrokerUnavailableError):
        bulk.run_import(
            source, RecordingSender(fail_after=3), checkpoint_path=checkpoint, batch_size=2
        )
    assert json.loads(checkpoint.read_text())["line"] == 3  # header + the first batch of two
    sender = RecordingSender()
    bulk.run_import(source, sender, checkpoint_path=checkpoint, batch_size=2)
    assert [e.evidence_ref for e in sender.sent] == ["r2", "r3", "r4"]


def test_jsonl_rows_and_their_errors(tmp_path: Path) -> None:
    source = tmp_path / "history.jsonl"
    good = {
        "subject": {"id": "j-1", "kind": "ACCOUNT"},
        "choice": "GRANTED",
        "purposes": ["MARKETING_EMAIL"],
    }
    rights = {"type": "RightsRequested", "subject": {"id": "j-1", "kind": "ACCOUNT"}}
    source.write_text(
        "\n".join([json.dumps(good), "{not json", "", "[1]", json.dumps(rights)]) + "\n"
    )
    sender = RecordingSender()
    rejected: list[bulk.RowError] = []
    bulk.run_import(source, sender, checkpoint_path=tmp_path / "cp.json", on_reject=rejected.append)
    assert len(sender.sent) == 1
    assert [(r.line, r.field) for r in rejected] == [(2, None), (4, None), (5, "right")]


def test_unknown_column_or_format_stops_before_publishing(tmp_path: Path) -> None:
    source = tmp_path / "history.csv"
    source.write_text("subject_id,favourite_colour\nh-1,blue\n")
    sender = RecordingSender()
    with pytest.raises(bulk.ImportFileError, match="favourite_colour"):
        bulk.run_import(source, sender, checkpoint_path=tmp_path / "cp.json")
    assert sender.sent == []
    with pytest.raises(bulk.ImportFileError):
        bulk.detect_format(tmp_path / "history.xlsx")


def test_non_utf8_row_is_rejected_alone(tmp_path: Path) -> None:
    source = tmp_path / "history.csv"
    source.write_bytes(
        HEADER.encode()
        + b"ConsentChanged,h-\xff,2019-08-01T10:00:00Z,GRANTED,MARKETING_EMAIL,x\n"
        + ROWS[0].encode()
    )
    sender = RecordingSender()
    rejected: list[bulk.RowError] = []
    bulk.run_import(source, sender, checkpoint_path=tmp_path / "cp.json", on_reject=rejected.append)
    assert [r.line for r in rejected] == [2]
    assert [e.subject.id for e in sender.sent] == ["h-1"]


def test_ids_with_control_characters_are_rejected_alone(tmp_path: Path) -> None:
    csv_source = write(
        tmp_path / "history.csv",
        "ConsentChanged,h-\x00-1,2019-08-01T10:00:00Z,WITHDRAWN,MARKETING_EMAIL,nul\n",
        "ConsentChanged,h-\x1b[2J,2019-08-01T10:00:00Z,WITHDRAWN,MARKETING_EMAIL,esc\n",
        ROWS[0],
    )
    jsonl_source = tmp_path / "history.jsonl"
    draft = {"choice": "WITHDRAWN", "purposes": ["MARKETING_EMAIL"]}
    jsonl_source.write_text(
        json.dumps({**draft, "subject": {"id": "j-\u0000", "kind": "ACCOUNT"}})
        + "\n"
        + json.dumps({**draft, "subject": {"id": "j-1", "kind": "ACCOUNT"}})
        + "\n"
    )
    for source, good in [(csv_source, "h-1"), (jsonl_source, "j-1")]:
        sender = RecordingSender()
        rejected: list[bulk.RowError] = []
        bulk.run_import(
            source,
            sender,
            checkpoint_path=tmp_path / f"{source.name}.cp",
            on_reject=rejected.append,
        )
        assert [e.subject.id for e in sender.sent] == [good]
        assert {r.field for r in rejected} == {"subject.id"}
        assert all("control character" in r.reason for r in rejected)


class WatchingSender(RecordingSender):
    """Notes how many events had been sent when each acknowledgement was first awaited."""

    def __init__(self) -> None:
        super().__init__()
        self.sent_when_awaited: list[int] = []

    def send(self, event: ConsentEvent) -> Future[Published]:
        future = super().send(event)
        sender = self

        class Watched(Future[Published]):
            def result(self, timeout: float | None = None) -> Published:
                sender.sent_when_awaited.append(len(sender.sent))
                return future.result(timeout)

        return Watched()


def test_the_next_batch_is_queued_before_the_last_one_is_awaited(tmp_path: Path) -> None:
    rows = [
        f"ConsentChanged,s-{i},2019-08-01T10:00:00Z,GRANTED,MARKETING_EMAIL,r{i}\n"
        for i in range(6)
    ]
    source = write(tmp_path / "history.csv", *rows, ROWS[3])  # and a bad row at the end
    checkpoint = tmp_path / "cp.json"
    sender = WatchingSender()
    summary = bulk.run_import(source, sender, checkpoint_path=checkpoint, batch_size=2)
    assert summary.published == 6
    # Batch one (rows 1-2) is awaited once batch two is queued, and so on.
    assert sender.sent_when_awaited[:2] == [4, 4]
    saved = json.loads(checkpoint.read_text())
    assert (saved["line"], saved["published"], saved["rejected"]) == (8, 6, 1)
