"""Settings of the analytics sink process, from ``ANALYTICS_SINK_*`` variables.

Besides the runner's knobs (:class:`~consumers.settings.RunnerSettings`):
``ANALYTICS_SINK_DATABASE`` (required, the SQLite file), ``ANALYTICS_SINK_ERASURE_MODE``
(``delete``, the default, or ``anonymise``) and ``ANALYTICS_SINK_BUSY_TIMEOUT_SECONDS``
(how long a write waits for a locked database before the runner retries it).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from consumers.analytics.store import ErasureMode
from consumers.settings import RunnerSettings
from schemas.errors import ConfigError

PREFIX = "ANALYTICS_SINK_"


@dataclass(frozen=True, slots=True, kw_only=True)
class AnalyticsSinkSettings(RunnerSettings):
    """Where the analytics store is and how erasure treats its records."""

    database: Path
    erasure_mode: str = ErasureMode.DELETE.value
    busy_timeout_seconds: float = 5.0

    def __post_init__(self) -> None:
        RunnerSettings.__post_init__(self)
        if self.erasure_mode not in {m.value for m in ErasureMode}:
            raise ConfigError(
                PREFIX + "ERASURE_MODE", f"{self.erasure_mode!r} is not 'delete' or 'anonymise'"
            )
        if self.busy_timeout_seconds <= 0:
            raise ConfigError(PREFIX + "BUSY_TIMEOUT_SECONDS", "must be positive")
