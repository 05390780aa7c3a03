"""Settings from the environment, validated at start, with pydantic-settings.

A process declares its settings as a subclass of :class:`Settings` (a frozen
pydantic-settings model whose ``env_prefix`` is the process's, e.g. ``GATE_``) and
calls :func:`load`; every field is read from ``<PREFIX><FIELD_NAME_UPPER>`` and
validated by pydantic (ranges as ``Field(ge=…)``, checks as validators). An invalid
value, a missing required one, or an unknown variable under the prefix (refused by
``extra="forbid"``, with a misspelling hint) stops the process with a
:class:`~schemas.errors.ConfigError` that names the variable. A field typed
:class:`Secret` (an API token, a key) is held so that printing or logging the settings
never shows it. Every field carries a ``description``: ``deploy/settings_table.py``
writes the documented table (``docs/settings.md``) from them.

The settings every process shares (the Kafka coordinates, whose variable families
``KAFKA_*`` and ``CONSENT_RELAY_*`` are shared with other tools) subclass
:class:`SharedSettings` instead: each field names its own variable (its
``validation_alias``), and an invalid construction raises the same ConfigError.
"""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
import hmac
import os
import re
import typing
from collections.abc import Mapping
from types import UnionType
from typing import Annotated, Any, ClassVar, TypeVar

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    GetCoreSchemaHandler,
    ValidationError,
    model_validator,
)
from pydantic.fields import FieldInfo
from pydantic_core import core_schema
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from schemas.errors import ConfigError

T = TypeVar("T", bound="Settings")

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
_MISSPELLING_CUTOFF = 0.75


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

    @classmethod
    def __get_pydantic_core_schema__(
        cls, _source: Any, _handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        """A Secret field takes a Secret or the text of one."""
        from_text = core_schema.no_info_after_validator_function(cls, core_schema.str_schema())
        return core_schema.union_schema([core_schema.is_instance_schema(cls), from_text])


def _digest(text: str) -> bytes:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).digest()


def _log_level(value: str) -> str:
    level = value.strip().upper()
    if level not in LOG_LEVELS:
        raise ValueError(f"{value!r} is not one of {', '.join(LOG_LEVELS)}")
    return level


LogLevel = Annotated[str, AfterValidator(_log_level)]
"""A logging level name, any case (stored upper-case): DEBUG, INFO, WARNING, ERROR, CRITICAL."""

Port = Annotated[int, Field(gt=0, lt=65536)]
"""A TCP port to listen on."""

SessionTimeout = Annotated[float, Field(ge=6, le=300)]
"""A consumer group's session timeout in seconds: 6 s is the broker's default floor
(``group.min.session.timeout.ms``), 300 s its ceiling."""


def _not_blank(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be empty")
    return value


def _unpadded(value: str) -> str:
    if value != value.strip():
        raise ValueError("must not start or end with blanks")
    return value


NonBlank = Annotated[str, AfterValidator(_not_blank)]
"""Text that is not empty or blanks only (an app id)."""

MemberName = Annotated[str, AfterValidator(_unpadded)]
"""A static group member name: empty (derived) or without surrounding blanks."""


class Settings(BaseSettings):
    """Base of every process's settings: frozen, read from ``<env_prefix><FIELD>``, an
    unknown variable under the prefix refused. Built with keyword arguments (tests,
    benches), it reads nothing from the environment."""

    model_config = SettingsConfigDict(frozen=True, extra="forbid", case_sensitive=True)

    secret_fields: ClassVar[frozenset[str]] = frozenset()
    """Plain-text fields whose values an error message must not show (besides Secrets)."""

    @model_validator(mode="before")
    @classmethod
    def _empty_means_none(cls, data: Any) -> Any:
        """An empty variable means None for an optional field (``STREAMS_ROUTING_FILE=``)."""
        if not isinstance(data, dict):
            return data
        return {
            name: None if value == "" and _optional(cls.model_fields.get(name)) else value
            for name, value in data.items()
        }

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Keyword arguments only: the environment is read by :func:`load`, from the
        mapping it is given."""
        return (init_settings,)

    @classmethod
    def prefix(cls) -> str:
        """The process's variable prefix, e.g. ``GATE_``."""
        return cls.model_config.get("env_prefix", "")

    @classmethod
    def variable(cls, name: str, prefix: str | None = None) -> str:
        """The environment variable of field ``name``."""
        return variable_of(cls, name, cls.prefix() if prefix is None else prefix)


class SharedSettings(BaseModel):
    """Base of the settings every process shares: frozen, each field read from the
    variable its ``validation_alias`` names (built by field name too), an unknown field
    refused. Building one, from the environment or from keyword arguments, raises a
    :class:`~schemas.errors.ConfigError` naming the variable when a value is invalid."""

    model_config = ConfigDict(
        frozen=True, extra="forbid", validate_by_name=True, validate_by_alias=True
    )

    required_hint: ClassVar[str] = ""
    """Said after "is required" when a required variable is missing."""

    @classmethod
    def __get_pydantic_core_schema__(
        cls, source: Any, handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        """The model's validation, its checks across fields included, wrapped so that
        its errors come out as a ConfigError."""

        def as_config_error(data: Any, validate: core_schema.ValidatorFunctionWrapHandler) -> Any:
            try:
                return validate(data)
            except ValidationError as exc:
                raise _config_error(cls, "", exc) from exc

        return core_schema.no_info_wrap_validator_function(as_config_error, handler(source))

    @classmethod
    def variables(cls) -> tuple[str, ...]:
        """The variables of this model's own fields, in field order."""
        return tuple(
            variable_of(cls, name)
            for name, field in cls.model_fields.items()
            if isinstance(field.validation_alias, str)
        )


def variable_of(cls: type[BaseModel], name: str, prefix: str = "") -> str:
    """The environment variable of field ``name``: the one its ``validation_alias``
    names, else ``prefix`` and the name upper-case."""
    field = cls.model_fields.get(name)
    alias = field.validation_alias if field is not None else None
    return alias if isinstance(alias, str) else prefix + name.upper()


class _Environment(PydanticBaseSettingsSource):
    """Every variable of a mapping under a prefix, by field name: an unknown one too, so
    the model's ``extra="forbid"`` refuses it."""

    def __init__(self, settings_cls: type[BaseSettings], prefix: str, env: Mapping[str, str]):
        super().__init__(settings_cls)
        # Variables are upper-case: GATE_http_port is no spelling of GATE_HTTP_PORT, so
        # it stays under its own name (unknown).
        self.values = {
            _name(key[len(prefix) :], key): value
            for key, value in env.items()
            if key.startswith(prefix)
        }

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return self.values.get(field_name), field_name, False

    def __call__(self) -> dict[str, Any]:
        return dict(self.values)


def _name(suffix: str, key: str) -> str:
    return suffix.lower() if suffix == suffix.upper() else key


def load(cls: type[T], prefix: str | None = None, env: Mapping[str, str] | None = None) -> T:
    """Build ``cls`` from variables named ``prefix + FIELD`` (``prefix`` defaults to the
    class's ``env_prefix``, ``env`` to the process environment); ConfigError naming the
    bad variable otherwise."""
    prefix = cls.prefix() if prefix is None else prefix
    source = _Environment(cls, prefix, os.environ if env is None else env)
    try:
        return cls(_build_sources=((source,), {}))
    except ValidationError as exc:
        raise _config_error(cls, prefix, exc) from exc


def _config_error(cls: type[BaseModel], prefix: str, exc: ValidationError) -> ConfigError:
    """The first of pydantic's errors, as the variable it is about and the reason."""
    error = exc.errors()[0]
    fields = cls.model_fields
    variables = {variable_of(cls, f, prefix): f for f in fields}
    if error["loc"]:
        name = str(error["loc"][0])
    else:  # a check across fields: blame the first field or variable its message names
        names = [*fields, *variables]
        message = error["msg"]
        named = [(m.start(), n) for n in names if (m := re.search(rf"\b{n}\b", message))]
        name = min(named)[1] if named else ""
    if name.startswith(prefix) and name not in fields:  # a variable, or an unknown one
        key = name
    else:
        key = variable_of(cls, name, prefix) if name else prefix.rstrip("_")
    return ConfigError(key, _reason(cls, variables, key, error))


def _reason(cls: type[BaseModel], variables: dict[str, str], key: str, error: Any) -> str:
    kind, value, message = error["type"], error.get("input"), str(error["msg"])
    if kind == "extra_forbidden":
        return unknown_reason(key, sorted(variables))
    if kind == "missing":
        hint = getattr(cls, "required_hint", "")
        return f"is required ({hint})" if hint else "is required"
    name = variables.get(key, "")
    field = cls.model_fields.get(name)
    hidden = name in getattr(cls, "secret_fields", ()) or (
        field is not None and holds_secret(field)
    )
    shown = "the value" if hidden else repr(value)
    simple = {
        "bool_parsing": "a boolean",
        "int_parsing": "an integer",
        "int_from_float": "an integer",
        "float_parsing": "a number",
    }
    if kind in simple:
        return f"{shown} is not {simple[kind]}"
    if kind == "enum":
        return f"{shown} is not one of {error['ctx']['expected']}"
    if kind == "value_error":
        # A check across fields names the variable it blames first: said once.
        return message.removeprefix("Value error, ").removeprefix(f"{key} ")
    return f"{shown}: {message.replace('Input should be', 'must be')}"


def closest(key: str, known: typing.Sequence[str]) -> str | None:
    """The known variable an unknown one is evidently a misspelling of, if any."""
    close = difflib.get_close_matches(key.upper(), known, 1, _MISSPELLING_CUTOFF)
    return close[0] if close else None


def unknown_reason(key: str, known: typing.Sequence[str]) -> str:
    """Why an unknown variable is refused: the known one it is closest to, if any."""
    meant = closest(key, known)
    if meant:
        return f"unknown setting; did you mean {meant}?"
    return f"unknown setting (known: {', '.join(known)})"


def _optional(field: FieldInfo | None) -> bool:
    return field is not None and type(None) in typing.get_args(field.annotation)


def holds_secret(field: FieldInfo) -> bool:
    """Whether a field is typed :class:`Secret` (or an optional one)."""
    annotation = field.annotation
    if isinstance(annotation, UnionType) or typing.get_origin(annotation) is typing.Union:
        return Secret in typing.get_args(annotation)
    return annotation is Secret
