"""The gateway's settings, read from ``GATEWAY_*`` variables and validated at start.

``GATEWAY_TOKENS_FILE`` (required) maps bearer tokens to services and their allowed
actions; ``GATEWAY_UNSUBSCRIBE_KEY`` (required, at least 32 characters) signs one-click
unsubscribe links. ``GATEWAY_READ_TIMEOUT_S`` bounds how long a client may take to send a
request's headers, and then its body (and how long an idle connection stays open). Kafka
itself is configured by :class:`schemas.runtime.kafka.KafkaSettings`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from schemas.errors import ConfigError

PREFIX: Final = "GATEWAY_"
MIN_KEY_LENGTH: Final = 32
MAX_READ_TIMEOUT_S: Final = 120.0
"""A longer read deadline would let slow clients hold connections for minutes again."""


@dataclass(frozen=True, slots=True, kw_only=True)
class GatewaySettings:
    """Where the gateway listens, who may call it, and its bounds."""

    tokens_file: Path
    unsubscribe_key: str = field(repr=False)
    port: int = 8080
    host: str = "127.0.0.1"
    max_body_bytes: int = 64 * 1024
    delivery_timeout_s: float = 10.0
    read_timeout_s: float = 5.0
    log_level: str = "INFO"

    def __post_init__(self) -> None:
        if not 0 < self.port < 65536:
            raise ConfigError(PREFIX + "PORT", f"{self.port} is not a TCP port")
        if len(self.unsubscribe_key) < MIN_KEY_LENGTH:
            raise ConfigError(
                PREFIX + "UNSUBSCRIBE_KEY", f"must be at least {MIN_KEY_LENGTH} characters"
            )
        if self.max_body_bytes < 1024:
            raise ConfigError(PREFIX + "MAX_BODY_BYTES", "must be at least 1024")
        if self.delivery_timeout_s <= 0:
            raise ConfigError(PREFIX + "DELIVERY_TIMEOUT_S", "must be positive")
        if not 0 < self.read_timeout_s <= MAX_READ_TIMEOUT_S:
            raise ConfigError(
                PREFIX + "READ_TIMEOUT_S", f"must be above 0 and at most {MAX_READ_TIMEOUT_S:g}"
            )
        if not isinstance(logging.getLevelName(self.log_level.upper()), int):
            raise ConfigError(PREFIX + "LOG_LEVEL", f"{self.log_level!r} is not a log level")
