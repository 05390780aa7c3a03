"""A small JSON checkpoint file, replaced atomically so a crash never leaves half of one.

Long jobs (bulk import) record how far they got after each acknowledged batch and start
from there next time.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from schemas.errors import ConsentRelayError


class CheckpointError(ConsentRelayError):
    """A checkpoint file exists but cannot be used."""


def load(path: Path) -> dict[str, Any] | None:
    """The checkpoint at ``path``, or None when there is none yet."""
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"cannot read checkpoint {path}: {exc}") from exc
    if not isinstance(data, dict):
        raise CheckpointError(f"checkpoint {path} is not a JSON object")
    return data


def save(path: Path, data: dict[str, Any]) -> None:
    """Write ``data`` to ``path`` durably: temp file, fsync, rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    with tmp.open("w") as out:
        json.dump(data, out, indent=2, sort_keys=True)
        out.write("\n")
        out.flush()
        os.fsync(out.fileno())
    os.replace(tmp, path)
