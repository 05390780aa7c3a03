"""The relay's config files (routing policy, partners, gateway tokens): read once, validated
by pydantic models, every mistake a :class:`~schemas.errors.ConfigError` naming the entry.

A file's shape is a :class:`FileModel` (unknown keys refused, frozen, inputs never echoed
by pydantic itself, so a secret in a file stays out of tracebacks); its rules are the
models' validators. :func:`validated` turns pydantic's first error into the relay's error,
keyed by the entry's path in the file (``partners.criteo.url``, ``destinations[3]``) with
the reason in the relay's words: a field whose type error would read badly says its own
(:func:`worded`), and a rule that names another entry than the one it checks says which
(:func:`refusal`).
"""

from __future__ import annotations

import json
import tomllib
import types
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Annotated, Any, Final, TypeVar, Union, get_args, get_origin

from pydantic import BaseModel, ConfigDict, ValidationError, WrapValidator
from pydantic_core import ErrorDetails, PydanticCustomError

from schemas.errors import ConfigError

Model = TypeVar("Model", bound=BaseModel)
Loc = tuple[str | int, ...]

_KIND: Final = "config"
"""The pydantic error type of the relay's own reasons."""
_TYPE_REASONS: Final = {
    "missing": "is required",
    "model_type": "must be a table",
    "model_attributes_type": "must be a table",
    "dict_type": "must be a table",
    "list_type": "must be an array",
    "tuple_type": "must be an array",
    "string_type": "must be a non-empty string",
    "string_too_short": "must be a non-empty string",
    "bool_type": "must be true or false",
}


class FileModel(BaseModel):
    """The shape of a config file or of one of its tables."""

    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)


def refusal(reason: str, *at: str | int) -> PydanticCustomError:
    """An error a validator raises: ``reason`` as given, about the entry at ``at`` below
    the one being validated (a model's rule about one of its fields or table entries)."""
    return PydanticCustomError(_KIND, "{reason}", {"reason": reason, "at": at})


def worded(reason: str) -> WrapValidator:
    """Annotated metadata: any error of the type it follows reads ``reason`` (``{input}``
    is the value's repr; leave it out for a secret)."""

    def wrap(value: Any, handler: Callable[[Any], Any]) -> Any:
        try:
            return handler(value)
        except ValidationError:
            raise refusal(reason.replace("{input}", repr(value))) from None

    return WrapValidator(wrap)


def dotted(loc: Loc) -> str:
    """``partners.criteo.url``, ``destinations[3].name``: where an entry is in the file."""
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        elif part != "[key]":  # a table's key that failed: the table entry is named already
            text += f".{part}" if text else part
    return text or "<top level>"


def validated(
    model: type[Model],
    raw: Any,
    fail: Callable[[str, str], Exception] = ConfigError,
    *,
    where: Callable[[Loc], str] = dotted,
    context: dict[str, Any] | None = None,
) -> Model:
    """``raw`` (a parsed document) as ``model``; else ``fail(where(loc), reason)`` for the
    first mistake, raised from pydantic's error."""
    try:
        return model.model_validate(raw, context=context)
    except ValidationError as exc:
        error = exc.errors(include_url=False)[0]
        loc: Loc = (*error["loc"], *error.get("ctx", {}).get("at", ()))
        raise fail(where(loc), _reason(model, error)) from exc


def _reason(model: type[BaseModel], error: ErrorDetails) -> str:
    kind = error["type"]
    if kind == _KIND:
        return str(error["ctx"]["reason"])
    if kind == "value_error":
        return str(error["ctx"]["error"])
    if kind == "extra_forbidden":
        known = _fields_at(model, error["loc"][:-1])
        return f"unknown key (known: {', '.join(known)})" if known else "unknown key"
    return _TYPE_REASONS.get(kind, error["msg"])


def _fields_at(model: type[BaseModel], loc: Sequence[str | int]) -> list[str]:
    """The keys the table at ``loc`` may have (the model's fields), for an unknown key."""
    kind: Any = model
    for part in loc:
        kind = _unwrap(kind)
        if isinstance(kind, type) and issubclass(kind, BaseModel):
            if part not in kind.model_fields:
                return []
            kind = kind.model_fields[str(part)].annotation
        else:
            args = get_args(kind)
            kind = args[-1] if get_origin(kind) is dict else args[0] if args else None
    kind = _unwrap(kind)
    if isinstance(kind, type) and issubclass(kind, BaseModel):
        return sorted(kind.model_fields)
    return []


def _unwrap(kind: Any) -> Any:
    """``kind`` without ``Annotated`` metadata, and the model of an optional model."""
    while get_origin(kind) is Annotated:
        kind = get_args(kind)[0]
    if get_origin(kind) in (Union, types.UnionType):
        models = [a for a in get_args(kind) if isinstance(a, type) and issubclass(a, BaseModel)]
        return models[0] if models else kind
    return kind


def read_document(path: Path, fail: Callable[[str], Exception], *, toml: bool = False) -> Any:
    """The parsed TOML (``toml``, or a ``.toml`` name) or JSON document at ``path``; else
    ``fail(reason)``."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise fail(f"cannot read {path}: {exc.strerror}") from exc
    as_toml = toml or path.suffix == ".toml"
    try:
        return tomllib.loads(text) if as_toml else json.loads(text)
    except (tomllib.TOMLDecodeError, json.JSONDecodeError) as exc:
        raise fail(f"{path} is not valid {'TOML' if as_toml else 'JSON'}: {exc}") from exc
