"""Schema evolution: the shipped schemas must stay compatible with the last release.

Released schemas are kept in ``schemas/avro/released/<n>/``. :func:`check` reads the
shipped ones against the newest release in both directions with the ``avro`` package's
checker (backward: new reader, old data; forward: old reader, new data) and lists every
break, naming the event and the checker's message.
"""

from __future__ import annotations

from importlib import resources
from importlib.resources.abc import Traversable

import avro.schema
from avro.compatibility import ReaderWriterCompatibilityChecker, SchemaCompatibilityType


def releases() -> list[Traversable]:
    """Released schema folders, oldest first."""
    root = resources.files("schemas").joinpath("avro/released")
    return sorted((p for p in root.iterdir() if p.is_dir()), key=lambda p: int(p.name))


def check(shipped: dict[str, str] | None = None) -> list[str]:
    """Compatibility problems of the shipped schemas against the last release."""
    latest = releases()[-1]
    if shipped is None:
        root = resources.files("schemas").joinpath("avro")
        shipped = {p.name: p.read_text() for p in root.iterdir() if p.name.endswith(".avsc")}
    checker = ReaderWriterCompatibilityChecker()  # type: ignore[no-untyped-call]
    problems = []
    for released in latest.iterdir():
        if not released.name.endswith(".avsc"):
            continue
        name = released.name.removesuffix(".avsc")
        if released.name not in shipped:
            problems.append(f"{name}: released in {latest.name} but no longer shipped")
            continue
        old = avro.schema.parse(released.read_text())
        new = avro.schema.parse(shipped[released.name])
        for direction, reader, writer in (("backward", new, old), ("forward", old, new)):
            result = checker.get_compatibility(reader, writer)
            if result.compatibility is not SchemaCompatibilityType.compatible:
                problems.append(
                    f"{name}: not {direction}-compatible with release {latest.name}: "
                    + "; ".join(result.messages)
                )
    return problems
