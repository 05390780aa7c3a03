"""Settings of the analytics sink process, from ``ANALYTICS_SINK_*`` variables.

Besides the runner's knobs (:class:`~consumers.settings.RunnerSettings`):
``ANALYTICS_SINK_DATABASE`` (required, the SQLite file), ``ANALYTICS_SINK_ERASURE_MODE``
(``delete``, the default, or ``anonymise``) and ``ANALYTICS_SINK_BUSY_TIMEOUT_SECONDS``
(how long a write waits for a locked database before the runner retries it).
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from consumers.analytics.store import ErasureMode
from consumers.settings import RunnerSettings

PREFIX = "ANALYTICS_SINK_"


class AnalyticsSinkSettings(RunnerSettings):
    """Where the analytics store is and how erasure treats its records."""

    model_config = SettingsConfigDict(env_prefix=PREFIX)

    database: Path = Field(description="The SQLite file of the analytics store (required).")
    erasure_mode: ErasureMode = Field(
        ErasureMode.DELETE,
        description="What erasure does to a person's records: `delete` them or `anonymise` them.",
    )
    busy_timeout_seconds: float = Field(
        5.0,
        gt=0,
        description="How long a write waits for a locked database before the runner retries it.",
    )
