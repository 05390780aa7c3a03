"""The marketing sink's settings, from ``MARKETING_SINK_*`` environment variables.

Besides the runner's knobs (:class:`~consumers.settings.RunnerSettings`):
``MARKETING_SINK_DATABASE_URL`` (``sqlite:///abs/path.db`` by default
``sqlite://marketing.db`` in the working directory, or ``postgresql://...``),
``MARKETING_SINK_HASH_KEY`` (required, at least 16 bytes: the HMAC key of erased
addresses) and ``MARKETING_SINK_BUSY_TIMEOUT_SECONDS`` (how long a locked database is
waited for before the runner's retry takes over).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from consumers.marketing.hashing import MIN_KEY_BYTES
from consumers.settings import RunnerSettings

PREFIX = "MARKETING_SINK_"


@dataclass(frozen=True, slots=True, kw_only=True)
class MarketingSettings(RunnerSettings):
    """Runner knobs plus the database and the erasure hash key."""

    database_url: str = "sqlite://marketing.db"
    hash_key: str = field(repr=False)
    busy_timeout_seconds: float = 5.0

    def __post_init__(self) -> None:
        super(MarketingSettings, self).__post_init__()
        if not self.database_url.startswith(("sqlite://", "postgresql://", "postgres://")):
            raise ValueError("database_url must be sqlite://... or postgresql://...")
        if len(self.hash_key.encode()) < MIN_KEY_BYTES:
            raise ValueError(f"hash_key must be at least {MIN_KEY_BYTES} bytes")
        if self.busy_timeout_seconds <= 0:
            raise ValueError("busy_timeout_seconds must be positive")
