"""The shipped `.avsc` files: one per event, namespaced, every field and type documented,
personal data tagged, enums able to grow; and generated, so never stale."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import avro.schema
import fastavro
import pytest

from schemas import generate
from schemas.codec import SHIPPED, subject_name
from schemas.converters import UNKNOWN_SYMBOL, avro_schema
from schemas.events import EVENT_TYPES, NAMESPACE

AVRO_DIR = Path(generate.ROOT) / "avro"

PII_FIELDS = {
    ("ConsentChanged", "subject.id"),
    ("ConsentChanged", "evidence_ref"),
    ("RightsRequested", "subject.id"),
    ("RightsRequested", "evidence_ref"),
    ("CookiePreferencesSet", "subject.id"),
    ("CookiePreferencesSet", "evidence_ref"),
    ("CookiePreferencesSet", "device_id"),
    ("InstructionIssued", "subject.id"),
    ("PropagationReceipt", "subject.id"),
    ("InstructionsAnswered", "receipts.subject.id"),
    ("InstructionsIssued", "subject.id"),
    ("FullyPropagated", "subject.id"),
    ("ConsentStateRecorded", "subject.id"),
    ("DataEventCaptured", "subject.id"),
    ("DataEventCaptured", "payload"),
    ("DeadLettered", "original_key"),
    ("DeadLettered", "original_value"),
}
"""Every field that holds a person's identifier or data, and nothing else."""

KANTARA_FIELDS = {
    "event_id": "consentReceiptID",
    "subject.id": "piiPrincipalId",
    "occurred_at": "consentTimestamp",
    "source": "collectionMethod",
    "regime": "jurisdiction",
    "policy_version": "policyUrl",
    "purposes": "purposes",
    "recipients": "thirdPartyName",
    "expires_at": "termination",
}
"""Consent-event fields that exist in the Kantara consent receipt, and its name for them."""


def walk(schema: Any, path: str = "") -> list[tuple[str, dict[str, Any]]]:
    """(dotted path, field) for every field of a record schema, nested ones included."""
    found = []
    for field in schema["fields"]:
        dotted = path + field["name"]
        found.append((dotted, field))
        inner = field["type"]
        inner = inner[1] if isinstance(inner, list) else inner
        inner = inner["items"] if isinstance(inner, dict) and inner["type"] == "array" else inner
        if isinstance(inner, dict) and inner["type"] == "record":
            found += walk(inner, dotted + ".")
    return found


def named_types(schema: Any) -> list[dict[str, Any]]:
    """Every record and enum defined inside a schema."""
    if isinstance(schema, list):
        return [t for branch in schema for t in named_types(branch)]
    if not isinstance(schema, dict):
        return []
    found = [schema] if schema.get("type") in {"record", "enum"} else []
    if schema.get("type") == "record":
        found += [t for f in schema["fields"] for t in named_types(f["type"])]
    if schema.get("type") == "array":
        found += named_types(schema["items"])
    return found


SCHEMAS = {
    t.__name__: json.loads((AVRO_DIR / f"{t.__name__}.avsc").read_text()) for t in EVENT_TYPES
}


def test_one_avsc_per_event_and_nothing_else() -> None:
    assert {p.stem for p in AVRO_DIR.glob("*.avsc")} == {t.__name__ for t in EVENT_TYPES}


@pytest.mark.parametrize("name", sorted(SCHEMAS))
def test_schema_is_a_namespaced_documented_record(name: str) -> None:
    schema = SCHEMAS[name]
    assert (schema["type"], schema["name"], schema["namespace"]) == ("record", name, NAMESPACE)
    assert schema["doc"].strip()
    avro.schema.parse(json.dumps(schema))
    fastavro.parse_schema(schema)


@pytest.mark.parametrize("name", sorted(SCHEMAS))
def test_every_field_and_type_is_documented(name: str) -> None:
    for path, field in walk(SCHEMAS[name]):
        assert len(field.get("doc", "").strip()) > 5, f"{name}.{path} has no doc"
    for named in named_types(SCHEMAS[name]):
        assert named.get("doc", "").strip(), f"{name}: type {named['name']} has no doc"


@pytest.mark.parametrize("name", sorted(SCHEMAS))
def test_personal_data_is_tagged_pii(name: str) -> None:
    tagged = {(name, path) for path, field in walk(SCHEMAS[name]) if field.get("confluent:tags")}
    assert tagged == {(n, p) for n, p in PII_FIELDS if n == name}
    for path, field in walk(SCHEMAS[name]):
        if field.get("confluent:tags"):
            assert field["confluent:tags"] == ["PII"], path


@pytest.mark.parametrize("name", ["ConsentChanged", "RightsRequested", "CookiePreferencesSet"])
def test_kantara_meanings_are_in_the_field_docs(name: str) -> None:
    docs = dict(walk(SCHEMAS[name]))
    for path, kantara in KANTARA_FIELDS.items():
        if path in docs:
            assert kantara in docs[path]["doc"], f"{name}.{path} should cite Kantara {kantara}"
            assert "ISO/IEC TS 27560" in docs[path]["doc"], f"{name}.{path} should cite 27560"


@pytest.mark.parametrize("name", sorted(SCHEMAS))
def test_enums_can_grow(name: str) -> None:
    for named in named_types(SCHEMAS[name]):
        if named["type"] == "enum":
            assert named["symbols"][-1] == UNKNOWN_SYMBOL
            assert named["default"] == UNKNOWN_SYMBOL


@pytest.mark.parametrize("name", sorted(SCHEMAS))
def test_optional_and_defaulted_fields_have_avro_defaults(name: str) -> None:
    for path, field in walk(SCHEMAS[name]):
        if isinstance(field["type"], list):
            assert field["type"][0] == "null", path
            assert "default" in field, path
            assert field["default"] is None, path


@pytest.mark.parametrize("event_type", EVENT_TYPES, ids=lambda t: t.__name__)
def test_shipped_schema_is_what_the_record_generates(event_type: type[Any]) -> None:
    assert SCHEMAS[event_type.__name__] == avro_schema(event_type)
    assert SHIPPED[event_type].text == (AVRO_DIR / f"{event_type.__name__}.avsc").read_text()
    assert subject_name(event_type) == f"{NAMESPACE}.{event_type.__name__}"


def test_generated_files_are_current() -> None:
    assert generate.main(["--check"]) == 0, "run .venv/bin/python -m schemas.generate"


def test_check_fails_and_names_a_stale_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    stale = tmp_path / "REFERENCE.md"
    stale.write_text("old\n")
    missing = tmp_path / "avro" / "New.avsc"
    monkeypatch.setattr(generate, "rendered", lambda: {stale: "new\n", missing: "{}\n"})
    assert generate.main(["--check"]) == 1
    err = capsys.readouterr().err
    assert f"stale: {stale}" in err
    assert f"stale: {missing}" in err
    assert stale.read_text() == "old\n", "--check must not write"


def test_generate_rewrites_only_stale_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    stale = tmp_path / "REFERENCE.md"
    stale.write_text("old\n")
    fresh = tmp_path / "Fresh.avsc"
    fresh.write_text("same\n")
    missing = tmp_path / "avro" / "New.avsc"
    monkeypatch.setattr(
        generate, "rendered", lambda: {stale: "new\n", fresh: "same\n", missing: "{}\n"}
    )
    assert generate.main([]) == 0
    assert (stale.read_text(), fresh.read_text(), missing.read_text()) == (
        "new\n",
        "same\n",
        "{}\n",
    )
    assert generate.main(["--check"]) == 0


def test_reference_lists_every_event_field_and_symbol() -> None:
    reference = (Path(generate.ROOT) / "REFERENCE.md").read_text()
    for name, schema in SCHEMAS.items():
        assert f"### {name}" in reference
        for path, _ in walk(schema):
            assert f"| `{path}` |" in reference, f"{name}.{path} missing from REFERENCE.md"
    for enum in generate._enums():
        for member in enum:
            assert f"| `{member.value}` |" in reference
