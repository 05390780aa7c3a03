"""PARTNER_SINK_* settings: the partners file path is required and named when missing."""

from __future__ import annotations

from pathlib import Path

import pytest

from consumers.partners.settings import PREFIX, PartnerSinkSettings
from schemas.errors import ConfigError
from schemas.runtime.settings import load


def test_config_path_and_runner_knobs() -> None:
    settings = load(
        PartnerSinkSettings,
        PREFIX,
        {"PARTNER_SINK_CONFIG": "/etc/partners.toml", "PARTNER_SINK_GROUP_ID": "g"},
    )
    assert settings.config == Path("/etc/partners.toml")
    assert settings.group_id == "g"


def test_missing_config_is_named() -> None:
    with pytest.raises(ConfigError) as caught:
        load(PartnerSinkSettings, PREFIX, {})
    assert caught.value.key == "PARTNER_SINK_CONFIG"
