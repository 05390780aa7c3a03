"""The stream worker's static group membership and session settings."""

from __future__ import annotations

import socket

import pytest

from schemas.errors import ConfigError
from streams.config import StreamSettings


def test_a_static_worker_rejoins_under_its_host_and_port() -> None:
    settings = StreamSettings.from_env(
        {"STREAMS_WEB_PORT": "6070", "STREAMS_STATIC_MEMBERSHIP": "true"}
    )
    assert settings.member_name == f"{socket.gethostname()}:6070"
    assert settings.session_timeout_seconds == 6.0


def test_a_configured_member_name_wins() -> None:
    settings = StreamSettings.from_env(
        {"STREAMS_GROUP_INSTANCE_ID": "streams-0", "STREAMS_STATIC_MEMBERSHIP": "true"}
    )
    assert settings.member_name == "streams-0"


def test_static_membership_is_off_by_default() -> None:
    settings = StreamSettings.from_env({})
    assert settings.member_name is None


@pytest.mark.parametrize(
    ("key", "value"),
    [("STREAMS_SESSION_TIMEOUT_SECONDS", "5"), ("STREAMS_GROUP_INSTANCE_ID", " x")],
)
def test_bad_membership_settings_are_named(key: str, value: str) -> None:
    with pytest.raises(ConfigError) as caught:
        StreamSettings.from_env({key: value})
    assert caught.value.key == key
