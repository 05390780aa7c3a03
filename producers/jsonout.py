"""Records as JSON text for people and scripts (CLI output): ISO times, base64 bytes."""

from __future__ import annotations

import base64
import json
from datetime import datetime
from typing import Any

from schemas.converters import to_dict


def jsonable(value: Any) -> Any:
    """``json.dumps`` fallback for the types records hold."""
    if isinstance(value, datetime):
        return value.isoformat().replace("+00:00", "Z")
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def dumps(value: Any, *, pretty: bool = False) -> str:
    """JSON text of plain data that may contain times and bytes."""
    return json.dumps(value, default=jsonable, indent=2 if pretty else None, sort_keys=pretty)


def record_json(record: Any, *, pretty: bool = False) -> str:
    """A record as JSON text with its type name."""
    return dumps({"type": type(record).__name__, **to_dict(record)}, pretty=pretty)
