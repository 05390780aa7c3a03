"""ANALYTICS_SINK_* settings: defaults, conversions, and errors that name the variable."""

from __future__ import annotations

from pathlib import Path

import pytest

from consumers.analytics.settings import PREFIX, AnalyticsSinkSettings
from schemas.errors import ConfigError
from schemas.runtime.settings import load


def test_defaults_and_conversions() -> None:
    settings = load(
        AnalyticsSinkSettings,
        PREFIX,
        {
            "ANALYTICS_SINK_DATABASE": "/data/analytics.sqlite",
            "ANALYTICS_SINK_ERASURE_MODE": "anonymise",
            "ANALYTICS_SINK_HTTP_PORT": "18092",
        },
    )
    assert settings.database == Path("/data/analytics.sqlite")
    assert settings.erasure_mode == "anonymise"
    assert settings.http_port == 18092
    assert settings.busy_timeout_seconds == 5.0


@pytest.mark.parametrize(
    ("env", "key"),
    [
        ({}, "ANALYTICS_SINK_DATABASE"),
        (
            {"ANALYTICS_SINK_DATABASE": "a", "ANALYTICS_SINK_ERASURE_MODE": "shred"},
            "ANALYTICS_SINK_ERASURE_MODE",
        ),
        (
            {"ANALYTICS_SINK_DATABASE": "a", "ANALYTICS_SINK_BUSY_TIMEOUT_SECONDS": "0"},
            "ANALYTICS_SINK_BUSY_TIMEOUT_SECONDS",
        ),
        (
            {"ANALYTICS_SINK_DATABASE": "a", "ANALYTICS_SINK_HTTP_PORT": "x"},
            "ANALYTICS_SINK_HTTP_PORT",
        ),
        ({"ANALYTICS_SINK_DATABASE": "a", "ANALYTICS_SINK_DATABSE": "b"}, "ANALYTICS_SINK_DATABSE"),
    ],
)
def test_errors_name_the_variable(env: dict[str, str], key: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load(AnalyticsSinkSettings, PREFIX, env)
    assert caught.value.key == key
