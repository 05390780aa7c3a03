"""Schema evolution: the shipped schemas must stay compatible with the last release.

Released schemas are kept in ``schemas/avro/released/<n>/`` (never edited). :func:`check`
reads the shipped ones against the newest release in both directions with the ``avro``
package's checker (backward: new reader, released data; forward: released reader, new
data) and lists every break, naming the event, the direction and the checker's finding.

Two rules go beyond Avro's: an enum may not drop a released symbol, and may not drop its
``UNKNOWN`` default. Avro accepts both because a reader's enum default absorbs unknown
symbols, but here data carrying a dropped symbol would decode as ``UNKNOWN`` and be
rejected (a withdrawal lost), and an enum without a default could never grow again.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from importlib import resources
from importlib.resources.abc import Traversable
from typing import Any

import avro.errors
import avro.schema
from avro.compatibility import ReaderWriterCompatibilityChecker, SchemaCompatibilityType

_MEANING = {
    "backward": "the new schema cannot read data written with release {release}",
    "forward": "readers of release {release} cannot read data written with the new schema",
}


def releases() -> list[Traversable]:
    """Released schema folders, oldest first."""
    root = resources.files("schemas").joinpath("avro/released")
    return sorted((p for p in root.iterdir() if p.is_dir()), key=lambda p: int(p.name))


def shipped_schemas() -> dict[str, str]:
    """File name → text of every `.avsc` shipped in ``schemas/avro``."""
    root = resources.files("schemas").joinpath("avro")
    return {p.name: p.read_text() for p in root.iterdir() if p.name.endswith(".avsc")}


def check(shipped: Mapping[str, str] | None = None) -> list[str]:
    """Compatibility problems of ``shipped`` (default: the shipped files) against the last
    release; each names the event (``<Event>: ...``) and what breaks. Empty means fine."""
    latest = releases()[-1]
    shipped = shipped_schemas() if shipped is None else shipped
    problems: list[str] = []
    for released in sorted(latest.iterdir(), key=lambda p: p.name):
        if not released.name.endswith(".avsc"):
            continue
        name = released.name.removesuffix(".avsc")
        if released.name not in shipped:
            problems.append(f"{name}: released in {latest.name} but no longer shipped")
            continue
        problems += _compare(name, latest.name, released.read_text(), shipped[released.name])
    return problems


def _compare(name: str, release: str, old_text: str, new_text: str) -> list[str]:
    try:
        new = avro.schema.parse(new_text)
    except (avro.errors.SchemaParseException, json.JSONDecodeError) as exc:
        return [f"{name}: the shipped schema does not parse: {exc}"]
    old = avro.schema.parse(old_text)
    checker = ReaderWriterCompatibilityChecker()  # type: ignore[no-untyped-call]
    problems = []
    for direction, reader, writer in (("backward", new, old), ("forward", old, new)):
        result = checker.get_compatibility(reader, writer)
        if result.compatibility is SchemaCompatibilityType.compatible:
            continue
        kinds = ", ".join(sorted({i.value for i in result.incompatibilities}))
        where = ", ".join(sorted(result.locations - {"/"})) or "/"
        detail = "; ".join(sorted(result.messages))
        meaning = _MEANING[direction].format(release=release)
        problems.append(
            f"{name}: not {direction}-compatible with release {release} ({meaning}): "
            f"{kinds} at {where}: {detail}"
        )
    problems += _enum_problems(name, release, json.loads(old_text), json.loads(new_text))
    return problems


def _enum_problems(name: str, release: str, old: Any, new: Any) -> list[str]:
    new_enums = dict(_enums(new))
    problems = []
    for full_name, old_enum in _enums(old):
        new_enum = new_enums.get(full_name)
        if new_enum is None:
            continue  # a removed field or changed type is the checker's finding
        dropped = [s for s in old_enum["symbols"] if s not in new_enum["symbols"]]
        if dropped:
            problems.append(
                f"{name}: enum {full_name} dropped symbol(s) {', '.join(dropped)} "
                f"released in {release}; released data would decode as UNKNOWN"
            )
        if "default" in old_enum and new_enum.get("default") != old_enum["default"]:
            problems.append(
                f"{name}: enum {full_name} changed its default {old_enum['default']!r} "
                f"released in {release} to {new_enum.get('default')!r}; "
                "older readers could no longer take new symbols"
            )
    return problems


def _enums(schema: Any, namespace: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    """Every named enum in a schema's JSON, with its full name."""
    if isinstance(schema, list):
        for branch in schema:
            yield from _enums(branch, namespace)
        return
    if not isinstance(schema, dict):
        return
    namespace = schema.get("namespace", namespace)
    kind = schema.get("type")
    if kind == "enum":
        full = schema["name"] if "." in schema["name"] else f"{namespace}.{schema['name']}"
        yield full, schema
    elif kind == "record":
        for field in schema.get("fields", []):
            yield from _enums(field["type"], namespace)
    elif kind == "array":
        yield from _enums(schema["items"], namespace)
    elif kind == "map":
        yield from _enums(schema["values"], namespace)
