"""Per-service bearer tokens: who is calling, and which actions it may take.

``GATEWAY_TOKENS_FILE`` is JSON or TOML with one table, ``tokens``, mapping either a
token's SHA-256 (``"sha256:<hex>"``, preferred: the file then holds no secret) or the
token itself to ``{"service": "...", "actions": [...]}``. Actions are ``grant``,
``withdraw``, ``cookies``, a right in lower case (``erasure``, ``refuse_marketing``, ...)
or ``*``. Tokens are only ever held hashed in memory and never logged.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Final

from pydantic import AfterValidator, Field, StrictStr, model_validator

from schemas.errors import ConfigError
from schemas.events import ConsentChanged, ConsentEvent, CookiePreferencesSet, RightsRequested
from schemas.runtime.config_files import (
    FileModel,
    Loc,
    dotted,
    read_document,
    refusal,
    validated,
    worded,
)
from schemas.taxonomy import Choice, Right

SETTING: Final = "GATEWAY_TOKENS_FILE"
ANY_ACTION: Final = "*"
ACTIONS: Final = frozenset({"grant", "withdraw", "cookies", *(r.value.lower() for r in Right)})
_HASH_PREFIX: Final = "sha256:"


@dataclass(frozen=True, slots=True)
class Caller:
    """An authenticated service."""

    service: str
    actions: frozenset[str]

    def may(self, action: str) -> bool:
        """Whether this service may take ``action``."""
        return ANY_ACTION in self.actions or action in self.actions

    def may_any(self, actions: frozenset[str]) -> bool:
        """Whether this service may take at least one of ``actions``."""
        return ANY_ACTION in self.actions or not self.actions.isdisjoint(actions)


def token_hash(token: str) -> str:
    """The ``sha256:<hex>`` form a tokens file may store instead of the token."""
    return _HASH_PREFIX + hashlib.sha256(token.encode()).hexdigest()


ROUTE_ACTIONS: Final[Mapping[type[ConsentEvent], frozenset[str]]] = {
    ConsentChanged: frozenset({"grant", "withdraw"}),
    RightsRequested: frozenset(r.value.lower() for r in Right),
    CookiePreferencesSet: frozenset({"cookies"}),
}
"""The actions an event type can need: a caller allowed none of them may not use its route."""

_DRAFT_FIELD: Final[Mapping[type[ConsentEvent], str]] = {
    ConsentChanged: "choice",
    RightsRequested: "right",
}


def action_of_draft(kind: type[ConsentEvent], draft: object) -> str | None:
    """The action a JSON draft of ``kind`` asks for, read before the draft is validated.

    None when the draft does not name one yet (no or an unknown ``choice``/``right``):
    validation then says what is wrong, and :func:`action_of` the built event decides.
    """
    if kind is CookiePreferencesSet:
        return "cookies"
    field = _DRAFT_FIELD.get(kind)
    value = draft.get(field) if field is not None and isinstance(draft, dict) else None
    if not isinstance(value, str):
        return None
    if kind is ConsentChanged:
        return _CHOICE_ACTIONS.get(value)
    return value.lower() if value in _RIGHT_NAMES else None


_CHOICE_ACTIONS: Final = {Choice.GRANTED.value: "grant", Choice.WITHDRAWN.value: "withdraw"}
_RIGHT_NAMES: Final = frozenset(r.value for r in Right)


def action_of(event: ConsentEvent) -> str:
    """The action name an event needs permission for."""
    if isinstance(event, ConsentChanged):
        return "grant" if event.choice is Choice.GRANTED else "withdraw"
    if isinstance(event, RightsRequested):
        return event.right.value.lower()
    if isinstance(event, CookiePreferencesSet):
        return "cookies"
    raise TypeError(f"not a consent event: {type(event).__name__}")


class TokenBook:
    """Token → caller, looked up by the token's hash."""

    def __init__(self, callers: Mapping[str, Caller]) -> None:
        self._by_hash = dict(callers)

    def __len__(self) -> int:
        return len(self._by_hash)

    def caller(self, token: str) -> Caller | None:
        """The service a presented token belongs to, or None."""
        return self._by_hash.get(token_hash(token))

    @classmethod
    def load(cls, path: Path) -> TokenBook:
        """Read a tokens file; anything malformed raises ConfigError naming the setting."""
        return cls.parse(read_document(path, lambda reason: ConfigError(SETTING, reason)))

    @classmethod
    def parse(cls, document: Any) -> TokenBook:
        """Build from a parsed tokens document."""
        tokens = document.get("tokens") if isinstance(document, dict) else None
        if not isinstance(tokens, dict) or not tokens:
            raise ConfigError(SETTING, 'needs a non-empty "tokens" table')
        # Validated as a list: an entry is named by its number, never by its key (a token).
        entries = [{"token": key, "entry": entry} for key, entry in tokens.items()]
        model = validated(
            TokensFile,
            {"tokens": entries},
            lambda where, reason: ConfigError(SETTING, f"{where}: {reason}"),
            where=_numbered,
        )
        return cls({t.hashed: Caller(t.entry.service, t.entry.actions) for t in model.tokens})


def _numbered(loc: Loc) -> str:
    """``tokens entry #2.service``: where a mistake is, without the token."""
    if len(loc) < 2 or not isinstance(loc[1], int):
        return dotted(loc)
    inner = loc[3:] if loc[2:3] == ("entry",) else ()  # the token: named by its number
    return f"tokens entry #{loc[1] + 1}" + (f".{dotted(inner)}" if inner else "")


def _known(actions: frozenset[str]) -> frozenset[str]:
    unknown = sorted(actions - ACTIONS - {ANY_ACTION})
    if unknown:
        raise ValueError(f"unknown action {unknown[0]!r}")
    return actions


class TokenEntry(FileModel):
    """What one token's service may do."""

    service: StrictStr
    actions: Annotated[
        frozenset[StrictStr], worded("must be a list of action names"), AfterValidator(_known)
    ]


class TokenFile(FileModel):
    """A token (or its ``sha256:`` hash) and its entry."""

    token: Annotated[StrictStr, Field(min_length=1, repr=False), worded("empty token")]
    entry: TokenEntry

    @property
    def hashed(self) -> str:
        """The ``sha256:<hex>`` the book holds the token by."""
        token = self.token
        return token.lower() if token.startswith(_HASH_PREFIX) else token_hash(token)


class TokensFile(FileModel):
    """The tokens file: each token listed once."""

    tokens: tuple[TokenFile, ...]

    @model_validator(mode="after")
    def _once(self) -> TokensFile:
        seen: set[str] = set()
        for number, token in enumerate(self.tokens):
            if token.hashed in seen:
                raise refusal("the same token is listed twice", "tokens", number)
            seen.add(token.hashed)
        return self
