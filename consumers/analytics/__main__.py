"""``python -m consumers.analytics``: run the analytics sink until SIGTERM.

Reads :class:`~schemas.runtime.kafka.KafkaSettings` and ``ANALYTICS_SINK_*``
(:mod:`consumers.analytics.settings`), creates the store's tables if missing, seeds an
empty store from the consent state, then applies instructions and serves /metrics and
/may-process on ``ANALYTICS_SINK_HTTP_PORT`` (default 8092).
"""

from __future__ import annotations

import sys

from consumers.analytics.settings import PREFIX, AnalyticsSinkSettings
from consumers.analytics.sink import AnalyticsSink
from consumers.analytics.store import AnalyticsStore, ErasureMode
from consumers.runner import run_sink
from schemas.taxonomy import SinkFamily


def build(settings: AnalyticsSinkSettings) -> AnalyticsSink:
    """The sink over the configured store, its tables created."""
    store = AnalyticsStore(
        settings.database,
        erasure_mode=ErasureMode(settings.erasure_mode),
        busy_timeout_seconds=settings.busy_timeout_seconds,
    )
    store.ensure_schema()
    return AnalyticsSink(store)


def main() -> int:
    """Run the analytics sink; the process exit status."""
    return run_sink(build, AnalyticsSinkSettings, prefix=PREFIX, family=SinkFamily.ANALYTICS)


if __name__ == "__main__":
    sys.exit(main())
