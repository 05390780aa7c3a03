"""How a Kafka client proves who it is: the security protocol and SASL credentials.

Read from ``KAFKA_SECURITY_PROTOCOL`` (``PLAINTEXT``, the default, ``SASL_PLAINTEXT`` or
``SASL_SSL``), ``KAFKA_SASL_MECHANISM`` (``SCRAM-SHA-512``), ``KAFKA_SASL_USERNAME`` and
``KAFKA_SASL_PASSWORD``. The password is a :class:`~schemas.runtime.settings.Secret`, so settings
that are printed or logged show ``***``; it is revealed only in the client config handed
to librdkafka (:meth:`ClientAuth.librdkafka`) or to Faust. Only Kafka clients
authenticate: the schema registry keeps its own access rules.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Final, TypeVar

from schemas.errors import ConfigError
from schemas.runtime.settings import Secret, documented

PROTOCOL_KEY: Final = "KAFKA_SECURITY_PROTOCOL"
MECHANISM_KEY: Final = "KAFKA_SASL_MECHANISM"
USERNAME_KEY: Final = "KAFKA_SASL_USERNAME"
PASSWORD_KEY: Final = "KAFKA_SASL_PASSWORD"  # noqa: S105 - the setting's name, not a password
KEYS: Final = (PROTOCOL_KEY, MECHANISM_KEY, USERNAME_KEY, PASSWORD_KEY)

E = TypeVar("E", bound=StrEnum)


class SecurityProtocol(StrEnum):
    """The listener protocols a client may use (librdkafka's spelling)."""

    PLAINTEXT = "PLAINTEXT"
    SASL_PLAINTEXT = "SASL_PLAINTEXT"
    SASL_SSL = "SASL_SSL"


class SaslMechanism(StrEnum):
    """The SASL mechanisms the relay's clients speak. SCRAM only: PLAIN would send the
    password itself to the broker, and over SASL_PLAINTEXT to anyone listening."""

    SCRAM_SHA_512 = "SCRAM-SHA-512"


@dataclass(frozen=True, slots=True)
class ClientAuth:
    """A client's security protocol and, under SASL, its principal's credentials."""

    protocol: SecurityProtocol = documented(
        PROTOCOL_KEY,
        "How clients reach the brokers: `PLAINTEXT`, `SASL_PLAINTEXT` or `SASL_SSL`.",
        default=SecurityProtocol.PLAINTEXT,
    )
    mechanism: SaslMechanism = documented(
        MECHANISM_KEY, "The SASL mechanism (SCRAM only).", default=SaslMechanism.SCRAM_SHA_512
    )
    username: str | None = documented(
        USERNAME_KEY, "The client's SASL principal (required under SASL).", default=None
    )
    password: Secret | None = documented(
        PASSWORD_KEY, "The principal's password (required under SASL).", default=None
    )

    def __post_init__(self) -> None:
        given = self.username is not None or self.password is not None
        if not self.sasl:
            # Credentials that would silently go unused are a misconfiguration.
            if given:
                raise ConfigError(
                    PROTOCOL_KEY,
                    f"is {self.protocol}, yet {USERNAME_KEY}/{PASSWORD_KEY} are set: "
                    "use SASL_PLAINTEXT or SASL_SSL, or unset them",
                )
            return
        if not self.username:
            raise ConfigError(USERNAME_KEY, f"is required with {PROTOCOL_KEY}={self.protocol}")
        if self.password is None or not self.password.reveal():
            raise ConfigError(PASSWORD_KEY, f"is required with {PROTOCOL_KEY}={self.protocol}")

    @property
    def sasl(self) -> bool:
        """Whether the client authenticates (SASL_PLAINTEXT or SASL_SSL)."""
        return self.protocol is not SecurityProtocol.PLAINTEXT

    @property
    def tls(self) -> bool:
        """Whether the connection is encrypted (SASL_SSL)."""
        return self.protocol is SecurityProtocol.SASL_SSL

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> ClientAuth:
        """Read the four settings; an invalid one raises ConfigError naming it."""
        protocol = _choice(env, PROTOCOL_KEY, SecurityProtocol, SecurityProtocol.PLAINTEXT)
        mechanism = _choice(env, MECHANISM_KEY, SaslMechanism, SaslMechanism.SCRAM_SHA_512)
        username = env.get(USERNAME_KEY) or None
        password = env.get(PASSWORD_KEY)
        return cls(protocol, mechanism, username, Secret(password) if password else None)

    def librdkafka(self) -> dict[str, Any]:
        """The librdkafka keys of this authentication (none for PLAINTEXT)."""
        if not self.sasl:
            return {}
        assert self.password is not None  # __post_init__
        return {
            "security.protocol": self.protocol.value,
            "sasl.mechanism": self.mechanism.value,
            "sasl.username": self.username,
            "sasl.password": self.password.reveal(),
        }


def _choice(env: Mapping[str, str], key: str, kind: type[E], default: E) -> E:
    raw = env.get(key, "").strip()
    if not raw:
        return default
    try:
        return kind(raw.upper())
    except ValueError as exc:
        raise ConfigError(key, f"{raw!r} is not one of {', '.join(kind)}") from exc
