"""The project's exception hierarchy: one root, and types that say what went wrong.

Every package raises these (wrapping library errors with ``raise ... from``), so a
caller can catch :class:`ConsentRelayError` and a stream can turn any
:class:`InvalidEventError` into a dead letter without guessing.
"""

from __future__ import annotations


class ConsentRelayError(Exception):
    """Root of every error Consent Relay raises on purpose."""


class ConfigError(ConsentRelayError):
    """A setting is missing or invalid; the process must not start."""

    def __init__(self, key: str, reason: str) -> None:
        super().__init__(f"{key}: {reason}")
        self.key = key
        self.reason = reason


class InvalidEventError(ConsentRelayError):
    """An event cannot be processed; it belongs in the dead-letter topic."""

    field_name: str | None = None
    reason: str = ""


class ValidationError(InvalidEventError, ValueError):
    """An event breaks a rule of the contract; names the field and the reason."""

    def __init__(self, field_name: str, reason: str) -> None:
        super().__init__(f"{field_name}: {reason}")
        self.field_name = field_name
        self.reason = reason


class DecodeError(InvalidEventError):
    """Bytes that are not a decodable event."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class BadMagicByteError(DecodeError):
    """The first byte(s) are not a known Avro framing."""


class TruncatedMessageError(DecodeError):
    """The bytes end before the framing or the record does."""


class IndexOutOfRangeError(DecodeError):
    """An enum symbol or union branch index the writer's schema does not have.

    The bytes are corrupt or come from a producer that is not ours; the error names the
    field and the index (``field_name``, ``reason``) so the dead letter says where.
    """

    def __init__(self, field_name: str, reason: str) -> None:
        super().__init__(f"{field_name}: {reason}")
        self.field_name = field_name
        self.reason = reason


class UnknownSchemaError(DecodeError):
    """The schema id or fingerprint is not known to the registry or the contract."""


class RegistryUnavailableError(ConsentRelayError):
    """The schema registry could not be reached; retry later."""


class IncompatibleSchemaError(ConsentRelayError):
    """The registry refused a schema: invalid, or incompatible with the subject's versions."""
