"""API tokens: a Secret setting never shows its value, and the one bearer rule answers
401 (RFC 6750) to a missing, malformed or wrong token and to every request when no
token is configured."""

from __future__ import annotations

import logging

import pytest

from schemas.errors import ConfigError
from schemas.runtime.bearer import MIN_TOKEN_CHARS, ApiToken, BearerGuard, authorization
from schemas.runtime.settings import Secret, Settings, load

TOKEN = "s3cret-token-0123456789"


class WithToken(Settings):
    api_token: ApiToken = None


def test_a_secret_setting_is_loaded_but_never_shown(caplog: pytest.LogCaptureFixture) -> None:
    settings = load(WithToken, "EX_", {"EX_API_TOKEN": TOKEN})
    assert settings.api_token is not None
    assert settings.api_token.reveal() == TOKEN
    caplog.set_level(logging.INFO)
    logging.getLogger("test").info("settings: %s %r", settings, settings)
    shown = repr(settings) + str(settings) + str(settings.api_token) + caplog.text
    assert TOKEN not in shown
    assert "***" in repr(settings)


def test_an_empty_secret_means_none_and_a_short_one_is_refused_without_showing_it() -> None:
    assert load(WithToken, "EX_", {"EX_API_TOKEN": ""}).api_token is None
    assert load(WithToken, "EX_", {}).api_token is None
    short = "x" * (MIN_TOKEN_CHARS - 1)
    with pytest.raises(ConfigError) as caught:
        load(WithToken, "EX_", {"EX_API_TOKEN": short})
    assert caught.value.key == "EX_API_TOKEN"
    assert short not in str(caught.value)


def test_matches_only_the_same_secret() -> None:
    secret = Secret(TOKEN)
    assert secret.matches(TOKEN)
    for other in ("", TOKEN[:-1], TOKEN + "x", TOKEN.upper(), "é" * 20):
        assert not secret.matches(other)


@pytest.mark.parametrize(
    "header", [None, "", "Bearer", "Bearer   ", "Basic dXNlcjpwYXNz", TOKEN, f"Token {TOKEN}"]
)
def test_no_bearer_token_is_401_with_a_bare_challenge(header: str | None) -> None:
    denial = BearerGuard(Secret(TOKEN)).check(header)
    assert denial is not None
    assert denial.status == 401
    assert denial.challenge == 'Bearer realm="consent-relay"'


@pytest.mark.parametrize("presented", [TOKEN[:-1], TOKEN + "0", "wrong-token-0123456789"])
def test_a_wrong_token_is_401_invalid_token(presented: str) -> None:
    denial = BearerGuard(Secret(TOKEN)).check(f"Bearer {presented}")
    assert denial is not None
    assert denial.status == 401
    assert denial.challenge.startswith("Bearer ")
    assert 'error="invalid_token"' in denial.challenge
    assert presented not in str(denial.body())


@pytest.mark.parametrize("scheme", ["Bearer", "bearer", "BEARER"])
def test_the_right_token_passes_whatever_the_scheme_case(scheme: str) -> None:
    assert BearerGuard(Secret(TOKEN)).check(f"{scheme} {TOKEN}") is None
    assert BearerGuard(Secret(TOKEN)).check(f"  {scheme}  {TOKEN}  ") is None


def test_no_configured_token_refuses_everyone() -> None:
    guard = BearerGuard(None)
    for header in (None, f"Bearer {TOKEN}", "Bearer anything-at-all-0123"):
        denial = guard.check(header)
        assert denial is not None
        assert denial.status == 401
        assert denial.challenge.startswith("Bearer ")


def test_a_client_sends_the_token_as_a_bearer_header() -> None:
    assert authorization(Secret(TOKEN)) == {"Authorization": f"Bearer {TOKEN}"}
