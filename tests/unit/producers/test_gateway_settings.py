"""Gateway settings from the environment: defaults, and errors that name the key."""

from __future__ import annotations

import pytest

from producers.gateway.settings import PREFIX, GatewaySettings
from schemas.errors import ConfigError
from schemas.runtime.settings import load

KEY = "0123456789abcdef0123456789abcdef"


def test_defaults() -> None:
    settings = load(
        GatewaySettings, PREFIX, {"GATEWAY_TOKENS_FILE": "t.json", "GATEWAY_UNSUBSCRIBE_KEY": KEY}
    )
    assert settings.port == 8080
    assert settings.max_body_bytes == 65536
    assert settings.read_timeout_s == 5.0
    assert KEY not in repr(settings)


@pytest.mark.parametrize(
    ("extra", "key"),
    [
        ({"GATEWAY_PORT": "eighty"}, "GATEWAY_PORT"),
        ({"GATEWAY_PORT": "70000"}, "GATEWAY_PORT"),
        ({"GATEWAY_UNSUBSCRIBE_KEY": "short"}, "GATEWAY_UNSUBSCRIBE_KEY"),
        ({"GATEWAY_TOKEN_FILE": "typo.json"}, "GATEWAY_TOKEN_FILE"),
        ({"GATEWAY_LOG_LEVEL": "LOUD"}, "GATEWAY_LOG_LEVEL"),
        ({"GATEWAY_DELIVERY_TIMEOUT_S": "0"}, "GATEWAY_DELIVERY_TIMEOUT_S"),
        ({"GATEWAY_READ_TIMEOUT_S": "0"}, "GATEWAY_READ_TIMEOUT_S"),
        ({"GATEWAY_READ_TIMEOUT_S": "600"}, "GATEWAY_READ_TIMEOUT_S"),
        ({"GATEWAY_READ_TIMEOUT_S": "soon"}, "GATEWAY_READ_TIMEOUT_S"),
    ],
)
def test_invalid_settings_name_the_key(extra: dict[str, str], key: str) -> None:
    env = {"GATEWAY_TOKENS_FILE": "t.json", "GATEWAY_UNSUBSCRIBE_KEY": KEY, **extra}
    with pytest.raises(ConfigError) as caught:
        load(GatewaySettings, PREFIX, env)
    assert caught.value.key == key


def test_tokens_file_is_required() -> None:
    with pytest.raises(ConfigError) as caught:
        load(GatewaySettings, PREFIX, {"GATEWAY_UNSUBSCRIBE_KEY": KEY})
    assert caught.value.key == "GATEWAY_TOKENS_FILE"
