"""Where a sink listens and which token its API wants: this machine only and no token
(the API closed) unless the deployment says otherwise."""

from __future__ import annotations

import pytest

from consumers.analytics.settings import AnalyticsSinkSettings
from consumers.marketing.settings import PREFIX, MarketingSettings
from consumers.partners.settings import PartnerSinkSettings
from consumers.settings import RunnerSettings
from schemas.errors import ConfigError
from schemas.runtime.settings import load

KEY = "marketing-hash-key-0123456789"
TOKEN = "marketing-api-token-0123456789"


@pytest.mark.parametrize(
    ("settings", "required"),
    [
        (RunnerSettings, {}),
        (MarketingSettings, {"HASH_KEY": KEY}),
        (AnalyticsSinkSettings, {"DATABASE": "/tmp/a.sqlite"}),
        (PartnerSinkSettings, {"CONFIG": "/tmp/p.toml"}),
    ],
)
def test_every_sink_listens_on_loopback_with_its_api_closed_by_default(
    settings: type[RunnerSettings], required: dict[str, str]
) -> None:
    loaded = load(settings, "X_SINK_", {f"X_SINK_{k}": v for k, v in required.items()})
    assert loaded.http_host == "127.0.0.1"
    assert loaded.api_token is None


def test_a_deployment_opts_in_to_a_wide_bind_and_a_token() -> None:
    loaded = load(
        MarketingSettings,
        PREFIX,
        {
            f"{PREFIX}HASH_KEY": KEY,
            f"{PREFIX}HTTP_HOST": "0.0.0.0",
            f"{PREFIX}API_TOKEN": TOKEN,
        },
    )
    assert loaded.http_host == "0.0.0.0"
    assert loaded.api_token is not None
    assert loaded.api_token.matches(TOKEN)
    assert TOKEN not in repr(loaded)


def test_a_short_token_is_refused_naming_the_setting_not_the_value() -> None:
    with pytest.raises(ConfigError) as caught:
        load(MarketingSettings, PREFIX, {f"{PREFIX}HASH_KEY": KEY, f"{PREFIX}API_TOKEN": "abc"})
    assert caught.value.key == f"{PREFIX}API_TOKEN"
    assert "'abc'" not in str(caught.value)


def test_a_check_across_fields_names_the_first_field_it_mentions() -> None:
    with pytest.raises(ConfigError) as caught:
        load(
            RunnerSettings,
            "X_",
            {"X_BACKOFF_INITIAL_SECONDS": "2", "X_BACKOFF_MAX_SECONDS": "1"},
        )
    assert caught.value.key == "X_BACKOFF_MAX_SECONDS"
