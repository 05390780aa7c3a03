"""Settings of the partner-sharing sink process, from ``PARTNER_SINK_*`` variables.

Besides the runner's knobs (:class:`~consumers.settings.RunnerSettings`, shared by every
partner pipeline): ``PARTNER_SINK_CONFIG`` (required), the partners file described in
:mod:`consumers.partners.config`; ``PARTNER_SINK_DATABASE``, a SQLite file where the sink
remembers what each partner was told (:mod:`consumers.partners.answers`).
``PARTNER_SINK_GROUP_ID`` is the sink's one consumer group (``<base>.<partner>`` were the
per-partner groups of earlier versions: :mod:`consumers.partners.upgrade`);
``PARTNER_SINK_LANE_RECORDS`` bounds each partner's buffer (:mod:`consumers.partners.lanes`).
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from consumers.settings import RunnerSettings

PREFIX = "PARTNER_SINK_"


class PartnerSinkSettings(RunnerSettings):
    """Where the partners file and the sink's own state are."""

    model_config = SettingsConfigDict(env_prefix=PREFIX)

    config: Path = Field(
        description="The partners file, TOML or JSON (required; consumers.partners.config)."
    )
    database: Path | None = Field(
        None,
        description="SQLite file of the instructions each partner was told, so a duplicate "
        "is not sent again even after a restart; unset, each pipeline remembers its recent "
        "ones in memory.",
    )
    lane_records: int = Field(
        5000,
        ge=1,
        description="Most records buffered for one partner's pipeline (a few megabytes): a "
        "partner that falls this far behind the others reads on by itself.",
    )
