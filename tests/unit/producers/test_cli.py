"""The CLI's pure parts: argument parsing, drafts from flags, process command lines."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from producers import cli


def parse(*argv: str) -> object:
    return cli.build_parser().parse_args(list(argv))


def test_publish_flags_become_a_draft() -> None:
    args = parse(
        "publish",
        "ConsentChanged",
        "--subject",
        "u-1",
        "--choice",
        "WITHDRAWN",
        "--purposes",
        "MARKETING_EMAIL, MARKETING_SMS",
    )
    assert cli.publish_draft(args) == {  # type: ignore[arg-type]
        "type": "ConsentChanged",
        "subject": {"id": "u-1", "kind": "ACCOUNT"},
        "choice": "WITHDRAWN",
        "purposes": ["MARKETING_EMAIL", "MARKETING_SMS"],
    }


def test_publish_json_file_with_flag_overrides(tmp_path: Path) -> None:
    source = tmp_path / "event.json"
    source.write_text(json.dumps({"type": "RightsRequested", "right": "ACCESS", "x": 1}))
    args = parse("publish", "--json", f"@{source}", "--right", "ERASURE")
    draft = cli.publish_draft(args)  # type: ignore[arg-type]
    assert draft == {"type": "RightsRequested", "right": "ERASURE", "x": 1}


def test_cookie_preferences_default_to_the_device_subject() -> None:
    args = parse("publish", "CookiePreferencesSet", "--device-id", "d-1", "--granted", "STATISTICS")
    draft = cli.publish_draft(args)  # type: ignore[arg-type]
    assert draft["subject"] == {"id": "d-1", "kind": "DEVICE"}


def test_run_maps_each_process_to_its_module() -> None:
    assert cli.process_argv("stream", []) == [sys.executable, "-m", "streams"]
    assert cli.process_argv("partner-sink", ["--x"]) == [
        sys.executable,
        "-m",
        "consumers.partners",
        "--x",
    ]
    assert cli.process_argv("gate", []) == [sys.executable, "-m", "streams.gate"]
    assert set(cli.PROCESSES) == {
        "stream",
        "gate",
        "marketing-sink",
        "analytics-sink",
        "partner-sink",
        "gateway",
    }


def test_invalid_event_exits_2_naming_the_field(capsys: pytest.CaptureFixture[str]) -> None:
    status = cli.main(
        ["publish", "ConsentChanged", "--subject", "u", "--choice", "GRANTED", "--purposes", "X"]
    )
    assert status == cli.EXIT_INVALID
    assert "purposes: unknown Purpose 'X'" in capsys.readouterr().err


def test_an_id_with_a_control_character_exits_2_naming_the_field(
    capsys: pytest.CaptureFixture[str],
) -> None:
    status = cli.main(["publish", "RightsRequested", "--subject", "u\x1b[2J", "--right", "ERASURE"])
    assert status == cli.EXIT_INVALID
    assert "subject.id: contains a control character (U+001B) at position 1" in (
        capsys.readouterr().err
    )


def test_no_unsubscribe_link_for_an_id_with_a_control_character(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("GATEWAY_UNSUBSCRIBE_KEY", "k" * 32)
    assert cli.main(["unsubscribe-link", "u\x01"]) == cli.EXIT_INVALID
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "subject.id: contains a control character (U+0001)" in captured.err


def test_missing_kafka_settings_exit_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("KAFKA_BOOTSTRAP", raising=False)
    status = cli.main(["publish", "RightsRequested", "--subject", "u", "--right", "ERASURE"])
    assert status == cli.EXIT_INVALID
    assert "KAFKA_BOOTSTRAP" in capsys.readouterr().err


def test_token_hash_reads_stdin(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(sys, "stdin", __import__("io").StringIO("s3cret\n"))
    assert cli.main(["token-hash"]) == 0
    assert capsys.readouterr().out.startswith("sha256:")
