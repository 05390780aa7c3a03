"""Schema evolution against the last release: the shipped schemas pass, and each kind of
incompatible change fails with a message naming the event and the problem."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from schemas import compatibility
from schemas.events import EVENT_TYPES

Edit = Callable[[dict[str, Any]], None]


def field(schema: dict[str, Any], name: str) -> dict[str, Any]:
    found: dict[str, Any] = next(f for f in schema["fields"] if f["name"] == name)
    return found


LATEST = compatibility.releases()[-1].name
"""The newest release, which the shipped schemas are checked against."""


def changed(event: str, edit: Edit) -> list[str]:
    """Problems found after applying ``edit`` to the shipped schema of ``event``."""
    shipped = compatibility.shipped_schemas()
    schema = json.loads(shipped[f"{event}.avsc"])
    edit(schema)
    return compatibility.check({**shipped, f"{event}.avsc": json.dumps(schema)})


def add_required_field(schema: dict[str, Any]) -> None:
    schema["fields"].append({"name": "channel", "type": "string", "doc": "A new field."})


def remove_enum_symbol(schema: dict[str, Any]) -> None:
    field(schema, "purposes")["type"]["items"]["symbols"].remove("MARKETING_SMS")


def change_type(schema: dict[str, Any]) -> None:
    field(schema, "evidence_ref")["type"] = ["null", "long"]


def remove_required_field(schema: dict[str, Any]) -> None:
    schema["fields"].remove(field(schema, "choice"))


def drop_enum_default(schema: dict[str, Any]) -> None:
    del field(schema, "purposes")["type"]["items"]["default"]


def rename_record(schema: dict[str, Any]) -> None:
    schema["name"] = "ConsentAltered"


def test_the_shipped_schemas_are_compatible_with_the_last_release() -> None:
    assert compatibility.check() == []


def test_releases_are_kept_and_cover_every_event() -> None:
    latest = compatibility.releases()[-1]
    released = {p.name.removesuffix(".avsc") for p in latest.iterdir()}
    assert released == {t.__name__ for t in EVENT_TYPES}


def test_a_new_required_field_without_default_breaks_backward_compatibility() -> None:
    problems = changed("ConsentChanged", add_required_field)
    assert problems == [
        f"ConsentChanged: not backward-compatible with release {LATEST} (the new schema "
        f"cannot read data written with release {LATEST}): reader_field_missing_default_value "
        "at /fields/12: channel"
    ]


def test_a_new_field_with_a_default_is_fine() -> None:
    def add_optional(schema: dict[str, Any]) -> None:
        schema["fields"].append(
            {"name": "channel", "type": ["null", "string"], "default": None, "doc": "New."}
        )

    assert changed("ConsentChanged", add_optional) == []


def test_a_new_enum_symbol_is_fine() -> None:
    def add_symbol(schema: dict[str, Any]) -> None:
        field(schema, "purposes")["type"]["items"]["symbols"].insert(0, "MARKETING_FAX")

    assert changed("ConsentChanged", add_symbol) == []


def test_a_removed_enum_symbol_fails() -> None:
    problems = changed("ConsentChanged", remove_enum_symbol)
    assert problems == [
        "ConsentChanged: enum io.consentrelay.events.Purpose dropped symbol(s) MARKETING_SMS "
        f"released in {LATEST}; released data would decode as UNKNOWN"
    ]


def test_a_type_change_fails_both_ways() -> None:
    problems = changed("ConsentChanged", change_type)
    assert len(problems) == 2
    assert problems[0].startswith(f"ConsentChanged: not backward-compatible with release {LATEST}")
    assert "missing_union_branch at /fields/7/type/1" in problems[0]
    assert "reader union lacking writer type: STRING" in problems[0]
    assert problems[1].startswith(f"ConsentChanged: not forward-compatible with release {LATEST}")
    assert "reader union lacking writer type: LONG" in problems[1]


def test_a_removed_required_field_breaks_old_readers() -> None:
    problems = changed("ConsentChanged", remove_required_field)
    assert len(problems) == 1
    assert problems[0].startswith(
        f"ConsentChanged: not forward-compatible with release {LATEST} (readers of release "
        f"{LATEST} cannot read data written with the new schema)"
    )


def test_a_dropped_enum_default_fails() -> None:
    problems = changed("ConsentChanged", drop_enum_default)
    assert problems == [
        "ConsentChanged: enum io.consentrelay.events.Purpose changed its default 'UNKNOWN' "
        f"released in {LATEST} to None; older readers could no longer take new symbols"
    ]


def test_a_renamed_record_fails() -> None:
    problems = changed("ConsentChanged", rename_record)
    assert problems
    assert all(p.startswith("ConsentChanged: not ") for p in problems)
    assert "name_mismatch" in problems[0]


def test_the_problem_names_the_event_that_broke() -> None:
    problems = changed("DeadLettered", lambda s: field(s, "source_offset").update(type="string"))
    assert problems
    assert all(p.startswith("DeadLettered: ") for p in problems)


def test_a_schema_no_longer_shipped_fails() -> None:
    shipped = compatibility.shipped_schemas()
    del shipped["FullyPropagated.avsc"]
    assert compatibility.check(shipped) == [
        f"FullyPropagated: released in {LATEST} but no longer shipped"
    ]


def test_a_schema_that_does_not_parse_fails() -> None:
    shipped = compatibility.shipped_schemas()
    shipped["RightsRequested.avsc"] = '{"type": "record", "name": "RightsRequested"'
    problems = compatibility.check(shipped)
    assert len(problems) == 1
    assert problems[0].startswith("RightsRequested: the shipped schema does not parse")


@pytest.mark.parametrize("event_type", EVENT_TYPES, ids=lambda t: t.__name__)
def test_every_event_type_is_checked(event_type: type[Any]) -> None:
    name = event_type.__name__
    problems = changed(name, add_required_field)
    assert len(problems) == 1
    assert problems[0].startswith(f"{name}: not backward-compatible with release {LATEST}")
    assert problems[0].endswith(
        "reader_field_missing_default_value at /fields/"
        f"{len(json.loads(compatibility.shipped_schemas()[name + '.avsc'])['fields'])}: channel"
    )
