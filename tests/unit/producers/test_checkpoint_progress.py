"""Checkpoint files and the stderr progress bar."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from producers import checkpoint
from producers.progress import Progress


def test_checkpoint_round_trip_and_absence(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "cp.json"
    assert checkpoint.load(path) is None
    checkpoint.save(path, {"line": 7})
    checkpoint.save(path, {"line": 9})
    assert checkpoint.load(path) == {"line": 9}
    assert [p.name for p in path.parent.iterdir()] == ["cp.json"]


def test_corrupt_checkpoint_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "cp.json"
    path.write_text("[1, 2")
    with pytest.raises(checkpoint.CheckpointError):
        checkpoint.load(path)


def test_progress_lines_when_not_a_terminal() -> None:
    stream = io.StringIO()
    bar = Progress("import", total=200, unit="B", stream=stream, interval_s=0)
    bar.update(50)
    bar.advance(150, note="3 published")
    bar.finish()
    lines = stream.getvalue().splitlines()
    assert lines[0].startswith("import [#######")
    assert " 25% 50/200 B" in lines[0]
    assert "100% 200/200 B" in lines[-1]
    assert lines[-1].endswith("3 published")


def test_progress_without_total() -> None:
    stream = io.StringIO()
    bar = Progress("redrive", stream=stream, interval_s=3600)
    bar.advance()
    bar.advance()
    bar.finish()
    assert stream.getvalue().startswith("redrive 2 ")
