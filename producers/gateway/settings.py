"""The gateway's settings, read from ``GATEWAY_*`` variables and validated at start.

``GATEWAY_TOKENS_FILE`` (required) maps bearer tokens to services and their allowed
actions; ``GATEWAY_UNSUBSCRIBE_KEY`` (required, at least 32 characters) signs one-click
unsubscribe links. ``GATEWAY_READ_TIMEOUT_S`` bounds how long a client may take to send a
request's headers, and then its body (and how long an idle connection stays open). Kafka
itself is configured by :class:`schemas.runtime.kafka.KafkaSettings`. (The gateway's two
timeouts end in ``_S`` where every other process's end in ``_SECONDS``: the names
deployments already set are kept.)
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar, Final

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from schemas.runtime.settings import LogLevel, Port, Settings

PREFIX: Final = "GATEWAY_"
MIN_KEY_LENGTH: Final = 32
MAX_READ_TIMEOUT_S: Final = 120.0
"""A longer read deadline would let slow clients hold connections for minutes again."""


class GatewaySettings(Settings):
    """Where the gateway listens, who may call it, and its bounds."""

    model_config = SettingsConfigDict(env_prefix=PREFIX)
    secret_fields: ClassVar[frozenset[str]] = frozenset({"unsubscribe_key"})

    tokens_file: Path = Field(
        description="The tokens file (required): bearer tokens mapped to services and the "
        "actions each may take."
    )
    unsubscribe_key: str = Field(
        repr=False,
        min_length=MIN_KEY_LENGTH,
        description=f"Key (at least {MIN_KEY_LENGTH} characters, required) that signs "
        "one-click unsubscribe links.",
    )
    port: Port = Field(8080, description="Port the HTTP API listens on.")
    host: str = Field(
        "127.0.0.1",
        description="Address the HTTP API listens on; `0.0.0.0` for every interface.",
    )
    max_body_bytes: int = Field(
        64 * 1024, ge=1024, description="Largest request body accepted (at least 1024)."
    )
    delivery_timeout_s: float = Field(
        10.0,
        gt=0,
        description="How long a request waits for Kafka to acknowledge its event before it "
        "is answered 503.",
    )
    read_timeout_s: float = Field(
        5.0,
        gt=0,
        le=MAX_READ_TIMEOUT_S,
        description=f"How long (at most {MAX_READ_TIMEOUT_S:g} s) a client may take to send a "
        "request's headers, and then its body; also how long an idle connection stays open.",
    )
    log_level: LogLevel = Field("INFO", description="Logging level.")
