"""The partners file: valid files load, every mistake names the entry, secrets stay hidden."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from consumers.partners.config import KnownSubjects, load_config, parse_config
from consumers.partners.pseudonym import partner_key
from schemas.errors import ConfigError

ENV = {
    "MASTER_KEY": "master-key-0123456789abcdef",
    "CRITEO_SECRET": "criteo-secret-0123456789",
}

TOML = """
pseudonym_key = "env:MASTER_KEY"
identity_map = "ids.sqlite"

[partners.criteo]
url = "https://hooks.criteo.example/consent"
secret = "env:CRITEO_SECRET"
timeout_seconds = 2.5
failure_threshold = 4
reset_seconds = 12

[partners.google]
url = "http://127.0.0.1:9000/hook?x=1"
secret = "a-literal-secret-of-enough-length"
known_subjects = "all"
pseudonym_key = "google-own-key-0123456789"
"""


def valid() -> dict[str, Any]:
    return {
        "pseudonym_key": "env:MASTER_KEY",
        "identity_map": "ids.sqlite",
        "partners": {
            "criteo": {"url": "https://hooks.criteo.example/", "secret": "env:CRITEO_SECRET"}
        },
    }


def parse(raw: Any) -> Any:
    return parse_config(raw, ENV, base=Path("/etc/relay"))


def test_toml_file_loads_with_defaults_and_resolved_secrets(tmp_path: Path) -> None:
    path = tmp_path / "partners.toml"
    path.write_text(TOML)
    config = load_config(path, ENV)
    assert config.identity_map == tmp_path / "ids.sqlite"
    criteo = config.partner("criteo")
    assert criteo.url == "https://hooks.criteo.example/consent"
    assert criteo.secret == b"criteo-secret-0123456789"
    assert criteo.pseudonym_key == partner_key(b"master-key-0123456789abcdef", "criteo")
    assert (criteo.timeout_seconds, criteo.failure_threshold, criteo.reset_seconds) == (2.5, 4, 12)
    assert criteo.known_subjects is KnownSubjects.MAPPED
    google = config.partner("google")
    assert google.known_subjects is KnownSubjects.ALL
    assert google.pseudonym_key == b"google-own-key-0123456789"
    assert google.timeout_seconds == 5.0


def test_json_file_loads(tmp_path: Path) -> None:
    path = tmp_path / "partners.json"
    path.write_text(json.dumps(valid()))
    assert [p.name for p in load_config(path, ENV).partners] == ["criteo"]


def test_secrets_never_appear_in_reprs() -> None:
    text = repr(parse(valid()))
    assert "criteo-secret" not in text
    assert "master-key" not in text


def mutate(path: str, value: Any) -> dict[str, Any]:
    raw = valid()
    *parents, last = path.split(".")
    table = raw
    for part in parents:
        table = table[part]
    if value is DELETE:
        del table[last]
    else:
        table[last] = value
    return raw


DELETE = object()


@pytest.mark.parametrize(
    ("path", "value", "key", "reason"),
    [
        ("partners.criteo.url", DELETE, "partners.criteo.url", "required"),
        ("partners.criteo.url", "ftp://x/", "partners.criteo.url", "http"),
        ("partners.criteo.url", 42, "partners.criteo.url", "string"),
        ("partners.criteo.secret", DELETE, "partners.criteo.secret", "required"),
        ("partners.criteo.secret", "env:NOPE", "partners.criteo.secret", "NOPE"),
        ("partners.criteo.secret", "short", "partners.criteo.secret", "at least"),
        ("partners.criteo.timeout_seconds", 0, "partners.criteo.timeout_seconds", "positive"),
        ("partners.criteo.timeout_seconds", "5", "partners.criteo.timeout_seconds", "positive"),
        ("partners.criteo.failure_threshold", 2.5, "partners.criteo.failure_threshold", "integer"),
        ("partners.criteo.reset_seconds", -1, "partners.criteo.reset_seconds", "positive"),
        ("partners.criteo.known_subjects", "some", "partners.criteo.known_subjects", "mapped"),
        ("partners.criteo.colour", "red", "partners.criteo.colour", "unknown key"),
        ("partners.acme", {"url": "https://a/", "secret": "x" * 20}, "partners.acme", "known"),
        ("partners.criteo", "https://x/", "partners.criteo", "table"),
        ("identity_map", DELETE, "partners.criteo.known_subjects", "identity_map"),
        ("pseudonym_key", DELETE, "partners.criteo.pseudonym_key", "required"),
        ("pseudonym_key", "env:UNSET", "pseudonym_key", "UNSET"),
        ("partners", {}, "partners", "at least one"),
        ("extra", 1, "extra", "unknown key"),
    ],
)
def test_each_mistake_names_its_entry(path: str, value: Any, key: str, reason: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse(mutate(path, value))
    assert caught.value.key == key
    assert reason in caught.value.reason


def test_short_secret_is_not_echoed() -> None:
    with pytest.raises(ConfigError) as caught:
        parse(mutate("partners.criteo.secret", "sekrit"))
    assert "sekrit" not in str(caught.value)


def test_unreadable_or_malformed_files_name_the_setting(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as missing:
        load_config(tmp_path / "absent.toml", ENV)
    assert missing.value.key == "PARTNER_SINK_CONFIG"
    bad = tmp_path / "bad.toml"
    bad.write_text("[partners.criteo\n")
    with pytest.raises(ConfigError, match="not valid") as malformed:
        load_config(bad, ENV)
    assert malformed.value.key == "PARTNER_SINK_CONFIG"
    yaml = tmp_path / "partners.yaml"
    yaml.write_text("partners: {}")
    with pytest.raises(ConfigError, match=r"\.toml or \.json"):
        load_config(yaml, ENV)


def test_batch_size_defaults_to_one_and_loads_up_to_the_bound() -> None:
    assert parse(valid()).partner("criteo").batch_size == 1
    assert parse(mutate("partners.criteo.batch_size", 500)).partner("criteo").batch_size == 500
    assert parse(mutate("partners.criteo.batch_size", 1000)).partner("criteo").batch_size == 1000


@pytest.mark.parametrize("value", [0, -3, 1001, 2.5, "500", True, None])
def test_bad_batch_size_names_partner_and_field(value: Any) -> None:
    with pytest.raises(ConfigError) as caught:
        parse(mutate("partners.criteo.batch_size", value))
    assert caught.value.key == "partners.criteo.batch_size"
    assert "from 1 to 1000" in caught.value.reason
