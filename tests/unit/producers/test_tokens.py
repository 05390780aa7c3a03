"""Gateway tokens: hashed or plain entries, actions, and files that must not load."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from producers import builders
from producers.gateway.tokens import (
    ACTIONS,
    ROUTE_ACTIONS,
    Caller,
    TokenBook,
    action_of,
    action_of_draft,
    token_hash,
)
from schemas.errors import ConfigError
from schemas.events import ConsentChanged, CookiePreferencesSet, RightsRequested


def test_hashed_and_plain_tokens_resolve_to_their_service(tmp_path: Path) -> None:
    path = tmp_path / "tokens.json"
    path.write_text(
        json.dumps(
            {
                "tokens": {
                    token_hash("crm-secret"): {"service": "crm", "actions": ["withdraw"]},
                    "admin-secret": {"service": "admin", "actions": ["*"]},
                }
            }
        )
    )
    book = TokenBook.load(path)
    crm = book.caller("crm-secret")
    assert crm is not None
    assert crm.service == "crm"
    assert crm.may("withdraw")
    assert not crm.may("grant")
    admin = book.caller("admin-secret")
    assert admin is not None
    assert admin.may("erasure")
    assert book.caller("guess") is None
    assert book.caller(token_hash("crm-secret")) is None  # the hash is not a token


def test_toml_tokens_file(tmp_path: Path) -> None:
    path = tmp_path / "tokens.toml"
    path.write_text(
        f'[tokens."{token_hash("web")}"]\nservice = "web"\nactions = ["grant", "cookies"]\n'
    )
    caller = TokenBook.load(path).caller("web")
    assert caller is not None
    assert caller.may("cookies")


@pytest.mark.parametrize(
    "document",
    [
        {},
        {"tokens": {}},
        {"tokens": {"t": {"actions": ["grant"]}}},
        {"tokens": {"t": {"service": "x", "actions": "grant"}}},
        {"tokens": {"t": {"service": "x", "actions": ["launch_missiles"]}}},
        {
            "tokens": {
                "t": {"service": "x", "actions": ["grant"]},
                token_hash("t"): {"service": "y", "actions": ["grant"]},
            }
        },
    ],
)
def test_bad_documents_name_the_setting_without_the_token(document: dict[str, Any]) -> None:
    with pytest.raises(ConfigError) as caught:
        TokenBook.parse(document)
    assert caught.value.key == "GATEWAY_TOKENS_FILE"
    assert "'t'" not in str(caught.value)


def test_unreadable_or_invalid_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError):
        TokenBook.load(tmp_path / "missing.json")
    broken = tmp_path / "broken.json"
    broken.write_text("{")
    with pytest.raises(ConfigError):
        TokenBook.load(broken)


def test_actions_of_events() -> None:
    assert action_of(builders.grant("u", ["MARKETING_EMAIL"])) == "grant"
    assert action_of(builders.withdraw("u", ["MARKETING_EMAIL"])) == "withdraw"
    assert action_of(builders.request_erasure("u")) == "erasure"
    assert action_of(builders.set_cookie_preferences("d", granted=["STATISTICS"])) == "cookies"


@pytest.mark.parametrize(
    ("kind", "draft", "action"),
    [
        (ConsentChanged, {"choice": "GRANTED", "purposes": "garbage"}, "grant"),
        (ConsentChanged, {"choice": "WITHDRAWN"}, "withdraw"),
        (ConsentChanged, {"choice": "MAYBE"}, None),
        (ConsentChanged, {"choice": ["GRANTED"]}, None),
        (ConsentChanged, {}, None),
        (ConsentChanged, ["GRANTED"], None),
        (RightsRequested, {"right": "ERASURE", "subject": 7}, "erasure"),
        (RightsRequested, {"right": "erasure"}, None),
        (RightsRequested, {"right": {"x": 1}}, None),
        (CookiePreferencesSet, "anything at all", "cookies"),
    ],
)
def test_the_action_a_draft_asks_for_before_it_is_validated(
    kind: Any, draft: Any, action: str | None
) -> None:
    assert action_of_draft(kind, draft) == action


def test_a_caller_may_use_a_route_when_it_may_take_one_of_its_actions() -> None:
    crm = Caller("crm", frozenset({"withdraw", "erasure"}))
    assert crm.may_any(ROUTE_ACTIONS[ConsentChanged])
    assert crm.may_any(ROUTE_ACTIONS[RightsRequested])
    assert not crm.may_any(ROUTE_ACTIONS[CookiePreferencesSet])
    assert Caller("web", frozenset({"*"})).may_any(ROUTE_ACTIONS[CookiePreferencesSet])
    # Every action a route can need is one a tokens file can grant.
    assert set().union(*ROUTE_ACTIONS.values()) == ACTIONS
