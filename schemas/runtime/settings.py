"""Settings from the environment, validated at start.

A process declares a frozen dataclass of its settings and calls :func:`load`; every
field is read from ``<PREFIX><FIELD_NAME_UPPER>`` and converted to the field's type.
An invalid value, a missing required one, or an unknown variable under the prefix
stops the process with a :class:`~schemas.errors.ConfigError` that names it. A field
typed :class:`Secret` (an API token, a key) is held so that printing or logging the
settings never shows it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import os
import re
import typing
from collections.abc import Mapping
from enum import StrEnum
from pathlib import Path
from typing import Any, TypeVar

from schemas.errors import ConfigError

T = TypeVar("T")

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


@dataclasses.dataclass(frozen=True, slots=True, repr=False)
class Secret:
    """A secret setting: redacted in ``repr``/``str`` (so in logs and tracebacks of the
    settings that hold it), and compared with :meth:`matches` in constant time."""

    _value: str

    def __repr__(self) -> str:
        return "Secret('***')"

    def __str__(self) -> str:
        return "***"

    def reveal(self) -> str:
        """The secret itself, for the one place that has to send it (a client)."""
        return self._value

    def matches(self, presented: str) -> bool:
        """Whether ``presented`` is this secret; its time depends on neither value."""
        # Digests first: compare_digest is constant-time only for equal lengths, and
        # would otherwise let a caller time its way to the secret's length.
        return hmac.compare_digest(_digest(self._value), _digest(presented))


def _digest(text: str) -> bytes:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).digest()


def load(cls: type[T], prefix: str, env: Mapping[str, str] | None = None) -> T:
    """Build ``cls`` from variables named ``prefix + FIELD``; fail naming the bad key."""
    env = os.environ if env is None else env
    hints = typing.get_type_hints(cls)
    names = {f.name: prefix + f.name.upper() for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(k for k in env if k.startswith(prefix) and k not in names.values())
    if unknown:
        raise ConfigError(
            unknown[0], f"unknown setting (known: {', '.join(sorted(names.values()))})"
        )
    kwargs: dict[str, Any] = {}
    for f in dataclasses.fields(cls):  # type: ignore[arg-type]
        key = names[f.name]
        if key in env:
            kwargs[f.name] = _convert(key, env[key], hints[f.name])
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise ConfigError(key, "is required")
    try:
        return cls(**kwargs)
    except ValueError as exc:
        raise ConfigError(_blamed(str(exc), names, prefix), str(exc)) from exc


def _blamed(message: str, names: Mapping[str, str], prefix: str) -> str:
    """The key a cross-field check's message is about: its variable or field name, if named."""
    for key in sorted(names.values(), key=len, reverse=True):
        if key in message:
            return key
    for name in sorted(names, key=len, reverse=True):
        if re.search(rf"\b{re.escape(name)}\b", message):
            return names[name]
    return prefix.rstrip("_")


def _convert(key: str, raw: str, tp: Any) -> Any:
    args = [a for a in typing.get_args(tp) if a is not type(None)]
    if args and type(None) in typing.get_args(tp):
        return None if raw == "" else _convert(key, raw, args[0])
    if tp is bool:
        if raw.lower() in _TRUE:
            return True
        if raw.lower() in _FALSE:
            return False
        raise ConfigError(key, f"{raw!r} is not a boolean")
    if tp in (int, float):
        try:
            return tp(raw)
        except ValueError as exc:
            raise ConfigError(key, f"{raw!r} is not a {tp.__name__}") from exc
    if tp is Path:
        return Path(raw)
    if isinstance(tp, type) and issubclass(tp, StrEnum):
        try:
            return tp(raw)
        except ValueError as exc:
            raise ConfigError(key, f"{raw!r} is not one of {', '.join(tp)}") from exc
    if tp is str:
        return raw
    if tp is Secret:
        return Secret(raw)
    raise ConfigError(key, f"unsupported setting type {tp!r}")
