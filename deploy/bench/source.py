"""Which code the relay under test runs, and a snapshot of a committed revision.

By default the relay runs from the working tree, and the report records the commit and
which relay files differ from it. With ``--revision REV`` the tree at ``REV`` is
extracted (``git archive``) into the run's state directory and the relay's processes
import from there, so figures can be tied to one commit while others keep editing.
``--source DIR`` runs the relay from any directory, e.g. a scratch copy holding an
experiment, to measure a change before proposing it.
"""

from __future__ import annotations

import io
import subprocess
import tarfile
from pathlib import Path
from typing import Any

from deploy.bench.config import ROOT

RELAY_PATHS = ("schemas", "streams", "consumers", "producers")


def _git(*args: str) -> str:
    done = subprocess.run(
        ["git", "-C", str(ROOT), *args], capture_output=True, text=True, check=False
    )
    return done.stdout.rstrip("\n") if done.returncode == 0 else ""


def describe(revision: str | None, directory: Path | None = None) -> dict[str, Any]:
    """Commit under test, and the relay files that differ from it in the working tree."""
    if revision is not None:
        return {"revision": _git("rev-parse", revision).strip(), "from": "snapshot"}
    if directory is not None:
        return {"revision": _git("rev-parse", "HEAD").strip(), "from": f"directory {directory}"}
    changed = _git("status", "--porcelain", "--", *RELAY_PATHS).splitlines()
    return {
        "revision": _git("rev-parse", "HEAD").strip(),
        "from": "working tree",
        "uncommitted": sorted(line[3:] for line in changed),
    }


def snapshot(revision: str, into: Path) -> Path:
    """Extract the repository at ``revision`` into ``into``; returns it."""
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", "--format=tar", revision],
        capture_output=True,
        check=True,
    ).stdout
    into.mkdir(parents=True, exist_ok=True)
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(into, filter="data")
    return into
