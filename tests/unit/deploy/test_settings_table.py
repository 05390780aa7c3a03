"""docs/settings.md is the table the settings models generate: stale, this test says the
command that writes it again."""

from __future__ import annotations

from pathlib import Path

import pytest

from deploy import settings_table
from streams.config import StreamSettings


def test_the_committed_table_is_current() -> None:
    committed = settings_table.TARGET.read_text(encoding="utf-8")
    assert committed == settings_table.render(), (
        f"docs/settings.md is stale: run `{settings_table.COMMAND}` and commit it"
    )


def test_every_variable_appears_once_with_its_meaning() -> None:
    rows = settings_table.rows()
    variables = [variable for _, variable, _, _ in rows]
    assert len(variables) == len(set(variables))
    assert all(meaning for *_, meaning in rows), [v for _, v, _, m in rows if not m]
    for needed in (
        "MARKETING_SINK_HTTP_PORT",
        "MARKETING_SINK_HASH_KEY",
        "ANALYTICS_SINK_DATABASE",
        "PARTNER_SINK_CONFIG",
        "KAFKA_BOOTSTRAP",
        "GATE_HTTP_PORT",
        "DEMO_STREAM_PORT",
    ):
        assert f"`{needed}`" in variables
    assert len(rows) > len(StreamSettings.model_fields)


def test_secrets_show_no_default() -> None:
    shown = {variable: default for _, variable, default, _ in settings_table.rows()}
    assert shown["`MARKETING_SINK_HASH_KEY`"] == "required"
    assert shown["`STREAMS_API_TOKEN`"] == "unset"
    assert shown["`KAFKA_SASL_PASSWORD`"] == "unset"


def test_check_mode_names_the_command(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert settings_table.main(["--check"]) == 0
    stale = tmp_path / "docs" / "settings.md"
    monkeypatch.setattr(settings_table, "ROOT", tmp_path)
    monkeypatch.setattr(settings_table, "TARGET", stale)
    assert settings_table.main(["--check"]) == 1
    assert "run `python -m deploy.settings_table`" in capsys.readouterr().err
    assert settings_table.main([]) == 0
    assert settings_table.main(["--check"]) == 0
