"""Bulk import of historical consents (CSV or JSON Lines), in order, resumable.

Each row becomes one consent event with source ``BULK_IMPORT``; its event id is the
row's own ``event_id`` or is derived from ``(import id, line number)``, so re-sending a
row after a crash is recognised downstream as the same event. Rows are published in
file order, in batches; after every batch is acknowledged the checkpoint records the
last line and the byte offset reached (with a digest of the bytes before it, so a
changed file is not resumed by mistake). A batch's acknowledgements are awaited only
once the next batch is queued, so the producer is never idle while the import waits.
A bad row is reported with its line number and the field and reason, and does not stop
the rows after it.

CSV: a header row naming columns among :data:`CSV_COLUMNS`; list cells separate values
with ``|``; empty cells are absent. JSON Lines: one object per line, the gateway's body
layout plus ``type`` (default ``ConsentChanged``).
"""

from __future__ import annotations

import csv
import hashlib
import json
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Final, Protocol

from producers import checkpoint, drafts
from producers.progress import Progress
from producers.publisher import Published
from schemas.errors import ConsentRelayError, ValidationError
from schemas.events import ConsentEvent
from schemas.ids import uuid5
from schemas.taxonomy import Source

CSV_COLUMNS: Final = (
    "type",
    "event_id",
    "subject_id",
    "subject_kind",
    "occurred_at",
    "recorded_at",
    "regime",
    "policy_version",
    "evidence_ref",
    "choice",
    "purposes",
    "recipients",
    "expires_at",
    "right",
    "channels",
    "requested_by",
    "device_id",
    "granted",
    "refused",
)
LIST_COLUMNS: Final = frozenset({"purposes", "recipients", "channels", "granted", "refused"})
DEFAULT_TYPE: Final = "ConsentChanged"
DEFAULT_BATCH: Final = 500
_ID_NAMESPACE: Final = uuid.UUID("8f6c3f0e-5b1a-4d43-9a57-3c1f2a0e6b21")


class Sender(Protocol):
    """What the import publishes through (a :class:`~producers.client.ConsentClient`)."""

    def send(self, event: ConsentEvent) -> Future[Published]:
        """Queue an event; the future resolves to its acknowledgement."""
        ...


class ImportFileError(ConsentRelayError):
    """The file as a whole cannot be imported (unknown format, bad header, changed file)."""


@dataclass(frozen=True, slots=True)
class RowError:
    """A rejected row: where, which field, why."""

    line: int
    field: str | None
    reason: str

    def __str__(self) -> str:
        where = f"{self.field}: " if self.field else ""
        return f"line {self.line}: {where}{self.reason}"


@dataclass(slots=True)
class ImportSummary:
    """What an import run did."""

    published: int = 0
    rejected: list[RowError] = field(default_factory=list)
    resumed_after_line: int = 0
    last_line: int = 0
    published_earlier: int = 0
    rejected_earlier: int = 0


@dataclass(slots=True)
class Cursor:
    """Position in the file: line number, byte offset, digest of the bytes read."""

    line: int = 0
    offset: int = 0
    digest: Any = field(default_factory=hashlib.sha256)


def detect_format(path: Path) -> str:
    """``csv`` or ``jsonl`` from the file name."""
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return "csv"
    if suffix in {".jsonl", ".ndjson"}:
        return "jsonl"
    raise ImportFileError(f"cannot tell the format of {path.name}; pass --format csv|jsonl")


def event_id_for(import_id: str, line: int) -> str:
    """The deterministic event id of a row without one."""
    return uuid5(f"{import_id}:{line}", _ID_NAMESPACE)


def csv_draft(row: dict[str, str]) -> dict[str, Any]:
    """A JSON-style draft from one CSV row."""
    draft: dict[str, Any] = {}
    for column, cell in row.items():
        value = (cell or "").strip()
        if not value or column in {"subject_id", "subject_kind"}:
            continue
        if column in LIST_COLUMNS:
            draft[column] = [v.strip() for v in value.split("|") if v.strip()]
        else:
            draft[column] = value
    subject_id = (row.get("subject_id") or "").strip()
    if subject_id:
        kind = (row.get("subject_kind") or "").strip() or "ACCOUNT"
        draft["subject"] = {"id": subject_id, "kind": kind}
    return draft


def build_row(draft: dict[str, Any], line: int, import_id: str) -> ConsentEvent:
    """The validated event of one row (source BULK_IMPORT, deterministic id by default)."""
    forced = {"source": Source.BULK_IMPORT.value}
    if not draft.get("event_id"):
        forced["event_id"] = event_id_for(import_id, line)
    return drafts.build_typed(draft, default_type=DEFAULT_TYPE, forced=forced)


def parse(
    fmt: str, lines: LineReader, header: list[str] | None
) -> Iterator[tuple[int, dict[str, Any] | RowError]]:
    """(line number, draft or error) for each row ``lines`` yields."""
    cursor = lines.cursor
    reader: Iterator[Any] = (
        lines if fmt == "jsonl" else csv.DictReader(lines, fieldnames=header, strict=True)
    )
    while True:
        try:
            item = next(reader)
        except StopIteration:
            return
        except NotUtf8Error as exc:
            yield cursor.line, RowError(cursor.line, None, str(exc))
            continue
        except csv.Error as exc:
            yield cursor.line, RowError(cursor.line, None, f"malformed CSV: {exc}")
            continue
        if fmt == "jsonl":
            if item.strip():
                yield cursor.line, _json_draft(cursor.line, item)
        elif None in item:
            yield cursor.line, RowError(cursor.line, None, "more cells than header columns")
        else:
            yield cursor.line, csv_draft(item)


def _json_draft(line: int, text: str) -> dict[str, Any] | RowError:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        return RowError(line, None, f"not valid JSON: {exc.msg}")
    if not isinstance(value, dict):
        return RowError(line, None, "must be a JSON object")
    return value


class NotUtf8Error(ConsentRelayError):
    """A line of the import file is not UTF-8 text."""


class LineReader:
    """Decoded lines from a binary stream, tracking line number, byte offset and digest."""

    def __init__(self, stream: IO[bytes], cursor: Cursor) -> None:
        self._stream = stream
        self.cursor = cursor

    def read_header(self) -> list[str]:
        """Read and check the CSV header row."""
        try:
            raw = next(self)
            columns = next(csv.reader([raw.lstrip("\ufeff")]))
        except StopIteration as exc:
            raise ImportFileError("the CSV file is empty; it needs a header row") from exc
        unknown = [c for c in columns if c not in CSV_COLUMNS]
        if unknown:
            raise ImportFileError(
                f"unknown CSV column {unknown[0]!r} (known: {', '.join(CSV_COLUMNS)})"
            )
        return columns

    def __iter__(self) -> LineReader:
        return self

    def __next__(self) -> str:
        raw = self._stream.readline()
        if not raw:
            raise StopIteration
        self.cursor.line += 1
        self.cursor.offset += len(raw)
        self.cursor.digest.update(raw)
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise NotUtf8Error(f"not UTF-8 text (byte {exc.start + 1})") from exc


def run_import(
    path: Path,
    client: Sender,
    *,
    checkpoint_path: Path,
    fmt: str | None = None,
    import_id: str | None = None,
    batch_size: int = DEFAULT_BATCH,
    on_reject: Callable[[RowError], None] = lambda _error: None,
    progress: Progress | None = None,
) -> ImportSummary:
    """Publish every row of ``path`` after the checkpoint; returns what happened.

    Raises :class:`~producers.errors.PublishError` when a batch is not acknowledged (the
    checkpoint then still points at the end of the previous batch) and
    :class:`ImportFileError` when the file or checkpoint cannot be used.
    """
    fmt = fmt or detect_format(path)
    import_id = import_id or path.name
    summary = ImportSummary()
    cursor = Cursor()
    with path.open("rb") as stream:
        lines = LineReader(stream, cursor)
        header = lines.read_header() if fmt == "csv" else None
        saved = checkpoint.load(checkpoint_path)
        if saved is not None:
            _resume(stream, cursor, saved, import_id, path)
            summary.resumed_after_line = cursor.line
            summary.published_earlier = int(saved.get("published", 0))
            summary.rejected_earlier = int(saved.get("rejected", 0))
        if progress is not None:
            progress.total = path.stat().st_size
            progress.update(cursor.offset)
        pending: list[Future[Published]] = []
        # The batch before the one being queued: its acknowledgements arrive while the
        # next batch is read and queued, so the producer never waits for the reader
        # and the reader only waits when the broker is behind.
        sent: tuple[list[Future[Published]], _Mark] | None = None
        for line, item in parse(fmt, lines, header):
            if isinstance(item, RowError):
                _reject(summary, item, on_reject)
            else:
                try:
                    event = build_row(item, line, import_id)
                except ValidationError as exc:
                    _reject(summary, RowError(line, exc.field_name, exc.reason), on_reject)
                else:
                    pending.append(client.send(event))
            if len(pending) >= batch_size:
                if sent is not None:
                    _settle(sent[0], summary)
                    _save(checkpoint_path, path, import_id, sent[1], summary)
                    if progress is not None:
                        progress.update(sent[1].offset, f"{summary.published} published")
                sent = pending, _Mark.of(cursor, summary)
                pending = []
        if sent is not None:
            _settle(sent[0], summary)
            _save(checkpoint_path, path, import_id, sent[1], summary)
        _settle(pending, summary)
        _save(checkpoint_path, path, import_id, _Mark.of(cursor, summary), summary)
        summary.last_line = cursor.line
        if progress is not None:
            progress.update(cursor.offset, f"{summary.published} published")
            progress.finish()
    return summary


def _resume(
    stream: IO[bytes], cursor: Cursor, saved: dict[str, Any], import_id: str, path: Path
) -> None:
    if saved.get("import_id") != import_id:
        raise ImportFileError(
            f"the checkpoint is for import {saved.get('import_id')!r}, not {import_id!r}"
        )
    offset, line = int(saved.get("offset", 0)), int(saved.get("line", 0))
    if offset < cursor.offset:
        raise ImportFileError("the checkpoint ends before the header; remove it to start anew")
    stream.seek(0)
    digest = hashlib.sha256()
    remaining = offset
    while remaining:
        chunk = stream.read(min(remaining, 1 << 20))
        if not chunk:
            raise ImportFileError(f"{path.name} is shorter than its checkpoint; was it replaced?")
        digest.update(chunk)
        remaining -= len(chunk)
    if digest.hexdigest() != saved.get("prefix_sha256"):
        raise ImportFileError(
            f"{path.name} changed before line {line}; remove the checkpoint to import it anew"
        )
    cursor.line, cursor.offset, cursor.digest = line, offset, digest


def _settle(pending: list[Future[Published]], summary: ImportSummary) -> None:
    """Wait for every queued row; the first failure stops the import."""
    try:
        for future in pending:
            future.result()
            summary.published += 1
    finally:
        pending.clear()


def _reject(summary: ImportSummary, error: RowError, on_reject: Callable[[RowError], None]) -> None:
    summary.rejected.append(error)
    on_reject(error)


@dataclass(frozen=True, slots=True)
class _Mark:
    """Where a batch ends: what its checkpoint records once the batch is acknowledged."""

    line: int
    offset: int
    prefix_sha256: str
    rejected: int

    @classmethod
    def of(cls, cursor: Cursor, summary: ImportSummary) -> _Mark:
        return cls(cursor.line, cursor.offset, cursor.digest.hexdigest(), len(summary.rejected))


def _save(
    checkpoint_path: Path, path: Path, import_id: str, mark: _Mark, summary: ImportSummary
) -> None:
    """Record ``mark``; every row before it is acknowledged (``summary.published``)."""
    checkpoint.save(
        checkpoint_path,
        {
            "file": path.name,
            "import_id": import_id,
            "line": mark.line,
            "offset": mark.offset,
            "prefix_sha256": mark.prefix_sha256,
            "published": summary.published_earlier + summary.published,
            "rejected": summary.rejected_earlier + mark.rejected,
        },
    )
