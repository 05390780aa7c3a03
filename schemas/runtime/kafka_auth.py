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
from enum import StrEnum
from typing import Annotated, Any, Final, Self

from pydantic import BeforeValidator, Field, model_validator
from pydantic_core import PydanticUseDefault

from schemas.runtime.settings import Secret, SharedSettings

PROTOCOL_KEY: Final = "KAFKA_SECURITY_PROTOCOL"
MECHANISM_KEY: Final = "KAFKA_SASL_MECHANISM"
USERNAME_KEY: Final = "KAFKA_SASL_USERNAME"
PASSWORD_KEY: Final = "KAFKA_SASL_PASSWORD"  # noqa: S105 - the setting's name, not a password
KEYS: Final = (PROTOCOL_KEY, MECHANISM_KEY, USERNAME_KEY, PASSWORD_KEY)


class SecurityProtocol(StrEnum):
    """The listener protocols a client may use (librdkafka's spelling)."""

    PLAINTEXT = "PLAINTEXT"
    SASL_PLAINTEXT = "SASL_PLAINTEXT"
    SASL_SSL = "SASL_SSL"


class SaslMechanism(StrEnum):
    """The SASL mechanisms the relay's clients speak. SCRAM only: PLAIN would send the
    password itself to the broker, and over SASL_PLAINTEXT to anyone listening."""

    SCRAM_SHA_512 = "SCRAM-SHA-512"


def _any_case(kind: type[StrEnum]) -> BeforeValidator:
    """A member of ``kind`` spelt in any case; blanks mean the field's default."""

    def choose(value: Any) -> Any:
        if not isinstance(value, str):
            return value
        if not value.strip():
            raise PydanticUseDefault
        try:
            return kind(value.strip().upper())
        except ValueError as exc:
            raise ValueError(f"{value.strip()!r} is not one of {', '.join(kind)}") from exc

    return BeforeValidator(choose)


class ClientAuth(SharedSettings):
    """A client's security protocol and, under SASL, its principal's credentials."""

    protocol: Annotated[SecurityProtocol, _any_case(SecurityProtocol)] = Field(
        SecurityProtocol.PLAINTEXT,
        validation_alias=PROTOCOL_KEY,
        description="How clients reach the brokers: `PLAINTEXT`, `SASL_PLAINTEXT` or `SASL_SSL`.",
    )
    mechanism: Annotated[SaslMechanism, _any_case(SaslMechanism)] = Field(
        SaslMechanism.SCRAM_SHA_512,
        validation_alias=MECHANISM_KEY,
        description="The SASL mechanism (SCRAM only).",
    )
    username: str | None = Field(
        None,
        validation_alias=USERNAME_KEY,
        description="The client's SASL principal (required under SASL).",
    )
    password: Secret | None = Field(
        None,
        validation_alias=PASSWORD_KEY,
        description="The principal's password (required under SASL).",
    )

    @model_validator(mode="after")
    def _credentials_fit_the_protocol(self) -> Self:
        given = self.username is not None or self.password is not None
        if not self.sasl:
            # Credentials that would silently go unused are a misconfiguration.
            if given:
                raise ValueError(
                    f"{PROTOCOL_KEY} is {self.protocol}, yet {USERNAME_KEY}/{PASSWORD_KEY} "
                    "are set: use SASL_PLAINTEXT or SASL_SSL, or unset them"
                )
            return self
        if not self.username:
            raise ValueError(f"{USERNAME_KEY} is required with {PROTOCOL_KEY}={self.protocol}")
        if self.password is None or not self.password.reveal():
            raise ValueError(f"{PASSWORD_KEY} is required with {PROTOCOL_KEY}={self.protocol}")
        return self

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
        """Read the four settings (an empty one is unset); an invalid one raises
        ConfigError naming it."""
        return cls.model_validate({key: env[key] for key in KEYS if env.get(key)})

    def librdkafka(self) -> dict[str, Any]:
        """The librdkafka keys of this authentication (none for PLAINTEXT)."""
        if not self.sasl:
            return {}
        assert self.password is not None  # _credentials_fit_the_protocol
        return {
            "security.protocol": self.protocol.value,
            "sasl.mechanism": self.mechanism.value,
            "sasl.username": self.username,
            "sasl.password": self.password.reveal(),
        }
