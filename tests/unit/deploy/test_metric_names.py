"""Every metric and label the alerts and the dashboard query is one the code exports.

The exported names come from the code itself: every prometheus_client ``Counter``,
``Gauge``, ``Histogram`` or ``Summary`` constructed in ``streams/``, ``consumers/``
or ``producers/`` with a literal name, read from the source (no process runs), plus
the collectors of Faust's Prometheus sensor under the prefix the stream worker gives
it in its ``setup_prometheus_sensors(..., name_prefix=...)`` call (or
``install_faust_metrics``, the stream worker's cheaper monitor with the same collectors).
"""

from __future__ import annotations

import ast
import importlib
import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from faust.sensors.prometheus import FaustMetrics
from prometheus_client import CollectorRegistry

REPO = Path(__file__).resolve().parents[3]
PACKAGES = ("streams", "consumers", "producers")
KINDS = {"Counter", "Gauge", "Histogram", "Summary"}
SUFFIXES = {
    "Counter": ("_total",),
    "Gauge": ("",),
    "Histogram": ("_bucket", "_sum", "_count"),
    "Summary": ("", "_sum", "_count"),
}
# The team's metric conventions: series name → labels.
AGREED = {
    "consent_relay_stream_events_total": frozenset({"event_type", "status"}),
    "consent_relay_instructions_total": frozenset({"sink_family", "destination", "action"}),
    "consent_relay_dead_letters_total": frozenset({"stage", "reason"}),
    "consent_relay_pending_withdrawals": frozenset(),
    "consent_relay_oldest_pending_withdrawal_age_seconds": frozenset(),
    "consent_relay_fully_propagated_seconds_bucket": frozenset(),
    "consent_relay_gate_events_total": frozenset({"decision", "purpose"}),
    "consent_relay_gate_delay_seconds_bucket": frozenset(),
    "consent_relay_sink_instructions_total": frozenset({"sink_family", "destination", "outcome"}),
    "consent_relay_propagation_seconds_bucket": frozenset({"sink_family", "destination"}),
    "consent_relay_sink_retries_total": frozenset({"sink_family", "destination"}),
    "consent_relay_sink_duplicates_total": frozenset({"sink_family", "destination"}),
    "consent_relay_circuit_breaker_open": frozenset({"destination"}),
    "consent_relay_consumer_lag": frozenset({"group", "topic"}),
    "consent_relay_events_published_total": frozenset({"event_type", "source"}),
    "consent_relay_gateway_requests_total": frozenset({"route", "status"}),
    "consent_relay_gateway_request_seconds_bucket": frozenset({"route"}),
}
# Series a single process exports: name prefix → where in the repository it is defined.
# The gate is its own process (python -m streams.gate, Prometheus job consent-relay-gate);
# a worker exporting empty gate series beside it would only blur what the panels read.
OWNERS = {"consent_relay_gate_": "streams/gate/"}
# Labels every scraped series has, or that a histogram adds.
SCRAPE_LABELS = {"job", "instance", "le", "quantile"}
METRIC = re.compile(r"\bconsent_relay_[a-z0-9_]+")
SELECTOR = re.compile(r"\b(consent_relay_[a-z0-9_]+)\{([^}]*)\}")
GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)")
# {{label}} in a legend, {{ $labels.label }} in an alert's annotations.
LEGEND = re.compile(r"\{\{\s*(?:\$labels\.)?([a-zA-Z_][a-zA-Z0-9_]*)\s*\}\}")


@dataclass(frozen=True)
class Definition:
    """One metric constructed in the code."""

    name: str
    kind: str
    labels: frozenset[str]
    where: str


def definitions() -> list[Definition]:
    """Every collector with a literal name constructed in our packages, and Faust's."""
    found = []
    for package in PACKAGES:
        for path in sorted((REPO / package).rglob("*.py")):
            tree = ast.parse(path.read_text(), filename=str(path))
            module = ".".join(path.relative_to(REPO).with_suffix("").parts)
            for node in ast.walk(tree):
                where = f"{path.relative_to(REPO)}:{getattr(node, 'lineno', 0)}"
                definition = _definition(node, where)
                if definition is not None:
                    found.append(definition)
                found += _faust_sensor(node, module, where)
    return found


def _faust_sensor(node: ast.AST, module: str, where: str) -> list[Definition]:
    """The collectors ``setup_prometheus_sensors(app, name_prefix=X)`` registers."""
    if not (
        isinstance(node, ast.Call)
        and getattr(node.func, "id", "") in {"setup_prometheus_sensors", "install_faust_metrics"}
    ):
        return []
    prefix_node = next(k.value for k in node.keywords if k.arg == "name_prefix")
    if isinstance(prefix_node, ast.Constant):
        prefix = str(prefix_node.value)
    else:
        assert isinstance(prefix_node, ast.Name), ast.dump(prefix_node)
        prefix = getattr(importlib.import_module(module), prefix_node.id)
    metrics = FaustMetrics.create(CollectorRegistry(), prefix.replace("-", "_").replace(".", "_"))
    return [
        Definition(c._name, type(c).__name__, frozenset(c._labelnames), f"{where} (Faust)")
        for c in metrics
    ]


def _definition(node: ast.AST, where: str) -> Definition | None:
    if not isinstance(node, ast.Call):
        return None
    func = node.func
    kind = func.id if isinstance(func, ast.Name) else getattr(func, "attr", None)
    if kind not in KINDS:
        return None
    args = {i: arg for i, arg in enumerate(node.args)}
    keywords = {k.arg: k.value for k in node.keywords}
    name_node = keywords.get("name", args.get(0))
    if not (isinstance(name_node, ast.Constant) and isinstance(name_node.value, str)):
        return None
    labels_node = keywords.get("labelnames", args.get(2))
    labels: set[str] = set()
    if isinstance(labels_node, ast.List | ast.Tuple):
        labels = {str(e.value) for e in labels_node.elts if isinstance(e, ast.Constant)}
    return Definition(name_node.value, kind, frozenset(labels), where)


def exported() -> dict[str, frozenset[str]]:
    """Series name as scraped (``_total``, ``_bucket``, ...) → its label names."""
    series: dict[str, frozenset[str]] = {}
    for d in definitions():
        base = d.name.removesuffix("_total") if d.kind == "Counter" else d.name
        for suffix in SUFFIXES[d.kind]:
            series[base + suffix] = d.labels
    return series


def alert_expressions(read_yaml: Callable[[Path], Any]) -> Iterator[tuple[str, str, str]]:
    """(where, PromQL, annotation text) of every alert rule."""
    rules = read_yaml(REPO / "deploy" / "prometheus" / "alerts.yml")
    for group in rules["groups"]:
        for rule in group["rules"]:
            text = " ".join(str(v) for v in rule.get("annotations", {}).values())
            yield f"alert {rule['alert']}", rule["expr"], text


def dashboard_expressions() -> Iterator[tuple[str, str, str]]:
    """(where, PromQL, legend) of every dashboard panel query."""
    path = REPO / "deploy" / "grafana" / "dashboards" / "consent-relay.json"
    for panel in json.loads(path.read_text())["panels"]:
        for target in panel.get("targets", []):
            yield f"panel {panel['title']!r}", target["expr"], target.get("legendFormat", "")


@pytest.fixture(scope="module")
def queries(read_yaml: Callable[[Path], Any]) -> list[tuple[str, str, str]]:
    return [*alert_expressions(read_yaml), *dashboard_expressions()]


def test_the_code_defines_every_agreed_metric() -> None:
    series = exported()
    missing = {name for name, labels in AGREED.items() if series.get(name) != labels}
    assert not missing, {name: series.get(name) for name in sorted(missing)}


def test_a_metric_defined_twice_has_the_same_kind_and_labels() -> None:
    by_name: dict[str, set[tuple[str, frozenset[str]]]] = {}
    where: dict[str, list[str]] = {}
    for d in definitions():
        by_name.setdefault(d.name.removesuffix("_total"), set()).add((d.kind, d.labels))
        where.setdefault(d.name.removesuffix("_total"), []).append(d.where)
    clashes = {name: where[name] for name, shapes in by_name.items() if len(shapes) > 1}
    assert not clashes


def test_each_process_exports_only_its_own_series() -> None:
    stray = [
        f"{d.where}: {d.name}"
        for d in definitions()
        for prefix, owner in OWNERS.items()
        if d.name.startswith(prefix) and not d.where.startswith(owner)
    ]
    assert not stray, f"defined outside the process that owns them: {stray}"
    for prefix, owner in OWNERS.items():
        assert any(d.name.startswith(prefix) for d in definitions()), f"{owner} has no {prefix}*"


def test_every_metric_queried_is_exported(queries: list[tuple[str, str, str]]) -> None:
    series = exported()
    missing = {
        f"{where}: {name}"
        for where, expr, _ in queries
        for name in METRIC.findall(expr)
        if name not in series
    }
    assert not missing, f"not exported by streams/, consumers/ or producers/: {sorted(missing)}"


def test_every_label_queried_is_exported(queries: list[tuple[str, str, str]]) -> None:
    series = exported()
    wrong = []
    for where, expr, text in queries:
        names = [n for n in METRIC.findall(expr) if n in series]
        if not names:
            continue  # not exported at all: test_every_metric_queried_is_exported says so
        known = set(SCRAPE_LABELS).union(*(series[n] for n in names))
        for name, matchers in SELECTOR.findall(expr):
            for label in re.findall(r"([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)", matchers):
                if name in series and label not in series[name] | SCRAPE_LABELS:
                    wrong.append(f"{where}: {name} has no label {label!r}")
        for group in GROUPING.findall(expr):
            for label in filter(None, (s.strip() for s in group.split(","))):
                if label not in known:
                    wrong.append(f"{where}: groups by {label!r}, which {names} do not have")
        for label in LEGEND.findall(text):
            if label not in known and names:
                wrong.append(f"{where}: shows {{{{{label}}}}}, which {names} do not have")
    assert not wrong


def test_no_label_can_carry_a_personal_identifier() -> None:
    personal = {"subject", "email", "device", "user", "account", "phone", "token", "ip", "id"}
    wrong = [
        f"{d.where}: {d.name}{{{label}}}"
        for d in definitions()
        for label in d.labels
        if personal & set(label.lower().split("_"))
    ]
    assert not wrong
