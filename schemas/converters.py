"""Pure converters between event records and the plain dicts Avro (and JSON) carry.

``to_dict(event)`` gives what fastavro writes; ``from_dict(Type, data)`` builds and so
validates a record, turning every mismatch into a
:class:`~schemas.errors.ValidationError` naming the dotted field. The Avro schema of a
record (:func:`avro_schema`) is derived from the same field plan, so the `.avsc` files,
the records and the converters cannot drift apart.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, TypeVar

from schemas.errors import ValidationError
from schemas.events import NAMESPACE

T = TypeVar("T")

UNKNOWN_SYMBOL = "UNKNOWN"
"""Enum default every reader falls back to for a symbol added after it was built."""

_Decode = Callable[[str, Any], Any]
_Encode = Callable[[Any], Any]


@dataclasses.dataclass(frozen=True, slots=True)
class _FieldPlan:
    name: str
    encode: _Encode
    decode: _Decode
    required: bool


def to_dict(event: Any) -> dict[str, Any]:
    """The Avro-ready dict of a record (nested records become dicts, tuples lists)."""
    return {f.name: f.encode(getattr(event, f.name)) for f in _plan(type(event))}


def from_dict(cls: type[T], data: Mapping[str, Any], *, prefix: str = "") -> T:
    """Build (and validate) a record of ``cls`` from an Avro or JSON dict."""
    if not isinstance(data, Mapping):
        raise ValidationError(prefix.rstrip(".") or cls.__name__, "must be an object")
    plans = _plan(cls)
    kwargs: dict[str, Any] = {}
    for f in plans:
        # One lookup per field (the stream decodes every message it reads through here).
        value = data.get(f.name, _ABSENT)
        if value is _ABSENT or (value is None and f.required):
            if f.required:
                raise ValidationError(prefix + f.name, "is required")
            continue
        kwargs[f.name] = f.decode(prefix + f.name, value)
    if not _NAMES[cls].issuperset(data):
        unknown = {str(k) for k in data} - _NAMES[cls]
        if unknown:
            raise ValidationError(prefix + sorted(unknown)[0], "is not a field of " + cls.__name__)
    try:
        return cls(**kwargs)
    except ValidationError as exc:
        if prefix and exc.field_name and not exc.field_name.startswith(prefix):
            raise ValidationError(prefix + exc.field_name, exc.reason) from exc
        raise


def avro_schema(cls: type[Any]) -> dict[str, Any]:
    """The Avro record schema of a top-level record, every field documented."""
    return _record_schema(cls, set())


_PLANS: dict[type[Any], tuple[_FieldPlan, ...]] = {}
_NAMES: dict[type[Any], frozenset[str]] = {}
"""Each planned record type's field names."""

_ABSENT: Any = object()


def _plan(cls: type[Any]) -> tuple[_FieldPlan, ...]:
    plans = _PLANS.get(cls)
    if plans is None:
        plans = _PLANS[cls] = _build_plan(cls)
        _NAMES[cls] = frozenset(f.name for f in plans)
    return plans


def _build_plan(cls: type[Any]) -> tuple[_FieldPlan, ...]:
    hints = typing.get_type_hints(cls)
    plans = []
    for f in dataclasses.fields(cls):
        encode, decode = _codec_for(hints[f.name])
        has_default = (
            f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING
        )
        plans.append(_FieldPlan(f.name, encode, decode, required=not has_default))
    return tuple(plans)


def _codec_for(tp: Any) -> tuple[_Encode, _Decode]:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        inner_encode, inner_decode = _codec_for(next(a for a in args if a is not type(None)))
        return (
            lambda v: None if v is None else inner_encode(v),
            lambda n, v: None if v is None else inner_decode(n, v),
        )
    if origin is tuple:
        item_encode, item_decode = _codec_for(args[0])

        def decode_items(name: str, value: Any) -> tuple[Any, ...]:
            if not isinstance(value, list | tuple):
                raise ValidationError(name, "must be a list")
            return tuple(item_decode(name, v) for v in value)

        return (lambda v: [item_encode(i) for i in v]), decode_items
    if isinstance(tp, type) and issubclass(tp, StrEnum):
        return _identity, _enum_decoder(tp)
    if dataclasses.is_dataclass(tp):
        record = typing.cast(type[Any], tp)
        return to_dict, lambda n, v: from_dict(record, v, prefix=n + ".")
    if tp is datetime:
        return _identity, _decode_time
    if tp in (str, bytes, bool, int):
        return _identity, _primitive_decoder(tp)
    raise TypeError(f"no Avro mapping for {tp!r}")


def _identity(value: Any) -> Any:
    return value


def _enum_decoder(enum: type[StrEnum]) -> _Decode:
    members = {m.value: m for m in enum}

    def decode(name: str, value: Any) -> StrEnum:
        try:
            return members[value]
        except (KeyError, TypeError):
            raise ValidationError(name, f"unknown {enum.__name__} {value!r}") from None

    return decode


def _primitive_decoder(tp: type[Any]) -> _Decode:
    def decode(name: str, value: Any) -> Any:
        if type(value) is not tp:
            raise ValidationError(name, f"must be {tp.__name__}, got {type(value).__name__}")
        return value

    return decode


def _decode_time(name: str, value: Any) -> datetime:
    if isinstance(value, datetime):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        try:
            return datetime.fromtimestamp(value / 1000, UTC)
        except (OverflowError, OSError, ValueError) as exc:
            raise ValidationError(name, f"{value} ms is outside the supported time range") from exc
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError as exc:
            raise ValidationError(name, f"{value!r} is not an ISO-8601 time") from exc
        if parsed.tzinfo is None:
            raise ValidationError(name, "must carry a timezone (UTC)")
        return parsed.astimezone(UTC)
    raise ValidationError(name, "must be a time (ISO-8601 text or epoch milliseconds)")


def _record_schema(cls: type[Any], defined: set[str]) -> dict[str, Any]:
    defined.add(cls.__name__)
    hints = typing.get_type_hints(cls)
    fields = []
    for f in dataclasses.fields(cls):
        entry: dict[str, Any] = {
            "name": f.name,
            "type": _avro_type(hints[f.name], defined),
            "doc": f.metadata["doc"],
        }
        if f.default is not dataclasses.MISSING:
            entry["default"] = f.default
        elif f.default_factory is not dataclasses.MISSING:
            entry["default"] = list(f.default_factory())
        if f.metadata["pii"]:
            entry["confluent:tags"] = ["PII"]
        fields.append(entry)
    return {
        "type": "record",
        "name": cls.__name__,
        "namespace": NAMESPACE,
        "doc": (cls.__doc__ or "").strip(),
        "fields": fields,
    }


def _avro_type(tp: Any, defined: set[str]) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        return ["null", _avro_type(next(a for a in args if a is not type(None)), defined)]
    if origin is tuple:
        return {"type": "array", "items": _avro_type(args[0], defined)}
    if isinstance(tp, type) and issubclass(tp, StrEnum):
        if tp.__name__ in defined:
            return f"{NAMESPACE}.{tp.__name__}"
        defined.add(tp.__name__)
        return {
            "type": "enum",
            "name": tp.__name__,
            "doc": (tp.__doc__ or "").strip(),
            "symbols": [m.value for m in tp] + [UNKNOWN_SYMBOL],
            "default": UNKNOWN_SYMBOL,
        }
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        if tp.__name__ in defined:
            return f"{NAMESPACE}.{tp.__name__}"
        return _record_schema(tp, defined)
    if tp is datetime:
        return {"type": "long", "logicalType": "timestamp-millis"}
    return {str: "string", bytes: "bytes", bool: "boolean", int: "long"}[tp]
