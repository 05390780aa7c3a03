"""One /metrics page for every partner pipeline of the process.

Each partner runs its own :class:`~consumers.runner.SinkRunner`, and each runner keeps
its collectors in its own registry. :class:`MergedCollector` serves them as one set of
metric families (the team's agreed names), adding up series that carry the same labels
(e.g. ``consent_relay_dead_letters_total{stage,reason}``), so Prometheus never sees a
family twice.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from prometheus_client import CollectorRegistry
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector
from prometheus_client.samples import Sample


class MergedCollector(Collector):
    """The sum of several registries' metric families, family by family."""

    def __init__(self, registries: Sequence[CollectorRegistry]) -> None:
        self._registries = tuple(registries)

    def collect(self) -> Iterable[Metric]:
        """Every family once, with same-labelled samples added up."""
        families: dict[str, Metric] = {}
        samples: dict[str, dict[tuple[str, tuple[tuple[str, str], ...]], Sample]] = {}
        for registry in self._registries:
            for family in registry.collect():
                if family.name not in families:
                    families[family.name] = Metric(
                        family.name, family.documentation, family.type, family.unit
                    )
                    samples[family.name] = {}
                merged = samples[family.name]
                for sample in family.samples:
                    key = (sample.name, tuple(sorted(sample.labels.items())))
                    earlier = merged.get(key)
                    merged[key] = sample if earlier is None else _combine(earlier, sample)
        for name, family in families.items():
            family.samples = list(samples[name].values())
            yield family


def _combine(earlier: Sample, later: Sample) -> Sample:
    if earlier.name.endswith("_created"):
        return earlier._replace(value=min(earlier.value, later.value))
    return earlier._replace(value=earlier.value + later.value)


def merged_registry(registries: Sequence[CollectorRegistry]) -> CollectorRegistry:
    """A registry that serves ``registries`` merged."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(MergedCollector(registries))
    return registry
