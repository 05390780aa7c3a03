"""Settings of the partner-sharing sink process, from ``PARTNER_SINK_*`` variables.

Besides the runner's knobs (:class:`~consumers.settings.RunnerSettings`, shared by every
partner pipeline): ``PARTNER_SINK_CONFIG`` (required), the partners file described in
:mod:`consumers.partners.config`; ``PARTNER_SINK_DATABASE``, a SQLite file where the sink
remembers what each partner was told (:mod:`consumers.partners.answers`).
``PARTNER_SINK_GROUP_ID`` is the base of the per-partner consumer groups
(``<base>.<partner>``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from consumers.settings import RunnerSettings

PREFIX = "PARTNER_SINK_"


@dataclass(frozen=True, slots=True, kw_only=True)
class PartnerSinkSettings(RunnerSettings):
    """Where the partners file and the sink's own state are."""

    config: Path
    database: Path | None = None
    """SQLite file of the instructions each partner was told, so a duplicate is not sent
    again even after a restart; unset, each pipeline remembers its recent ones in memory."""
