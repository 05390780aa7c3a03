"""The marketing sink's settings, from ``MARKETING_SINK_*`` environment variables.

Besides the runner's knobs (:class:`~consumers.settings.RunnerSettings`):
``MARKETING_SINK_DATABASE_URL`` (``sqlite:///abs/path.db`` by default
``sqlite://marketing.db`` in the working directory, or ``postgresql://...``),
``MARKETING_SINK_HASH_KEY`` (required, at least 16 bytes: the HMAC key of erased
addresses) and ``MARKETING_SINK_BUSY_TIMEOUT_SECONDS`` (how long a locked database is
waited for before the runner's retry takes over).
"""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field, field_validator
from pydantic_settings import SettingsConfigDict

from consumers.marketing.hashing import MIN_KEY_BYTES
from consumers.settings import RunnerSettings

PREFIX = "MARKETING_SINK_"


class MarketingSettings(RunnerSettings):
    """Runner knobs plus the database and the erasure hash key."""

    model_config = SettingsConfigDict(env_prefix=PREFIX)
    secret_fields: ClassVar[frozenset[str]] = frozenset({"hash_key"})

    database_url: str = Field(
        "sqlite://marketing.db",
        description="The store: `sqlite:///abs/path.db`, `sqlite://relative.db` (in the "
        "working directory) or `postgresql://...`.",
    )
    hash_key: str = Field(
        repr=False,
        description=f"HMAC key (at least {MIN_KEY_BYTES} bytes, required) of the hashes "
        "erased addresses are remembered by; keep it across restarts.",
    )
    busy_timeout_seconds: float = Field(
        5.0,
        gt=0,
        description="How long a locked database is waited for before the runner's retry "
        "takes over.",
    )

    @field_validator("database_url")
    @classmethod
    def _known_database(cls, url: str) -> str:
        if not url.startswith(("sqlite://", "postgresql://", "postgres://")):
            raise ValueError("must be sqlite://... or postgresql://...")
        return url

    @field_validator("hash_key")
    @classmethod
    def _long_key(cls, key: str) -> str:
        if len(key.encode()) < MIN_KEY_BYTES:
            raise ValueError(f"must be at least {MIN_KEY_BYTES} bytes")
        return key
