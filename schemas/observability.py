"""What every process's Prometheus metrics share, so dashboards can compare them.

Histograms of latencies use the same buckets everywhere; propagation latencies go on
to an hour, because a destination that is down for a while is exactly what an
operator must see (an alert on "slower than 60 s" needs buckets beyond 60 s).
"""

from __future__ import annotations

from typing import Final

LATENCY_BUCKETS: Final = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
"""Seconds; request and processing latencies."""

PROPAGATION_BUCKETS: Final = (*LATENCY_BUCKETS, 120, 300, 900, 3600)
"""Seconds; event time of a consent choice to its effect downstream."""
