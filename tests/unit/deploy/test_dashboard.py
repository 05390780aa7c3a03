"""The Grafana dashboard is well formed, shows what operators need, and its queries
are valid PromQL (checked by promtool, which must be installed)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

GRAFANA = Path(__file__).resolve().parents[3] / "deploy" / "grafana"
DASHBOARD = GRAFANA / "dashboards" / "consent-relay.json"
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}

# What the operators asked to see, as the query that shows it.
PER_SINK = (
    r"sum by \(sink_family, destination, le\) \(rate\(consent_relay_propagation_seconds_bucket"
)
REQUIRED = {
    "propagation p50 per sink": r"histogram_quantile\(0\.5, " + PER_SINK,
    "propagation p99 per sink": r"histogram_quantile\(0\.99, " + PER_SINK,
    "end-to-end p99": r"histogram_quantile\(0\.99, .*consent_relay_fully_propagated_seconds_bucket",
    "throughput in": r"rate\(consent_relay_events_published_total",
    "throughput through the stream": r"rate\(consent_relay_stream_events_total",
    "throughput out": r"rate\(consent_relay_sink_instructions_total",
    "duplicates dropped": r"sum by \(sink_family, destination\) "
    r"\(rate\(consent_relay_sink_duplicates_total",
    "pending withdrawals": r"consent_relay_pending_withdrawals\b",
    "oldest pending withdrawal": r"consent_relay_oldest_pending_withdrawal_age_seconds",
    "dead letters": r"consent_relay_dead_letters_total",
    "lag": r"consent_relay_consumer_lag",
    "breaker states": r"consent_relay_circuit_breaker_open",
    "gateway requests": r"rate\(consent_relay_gateway_requests_total",
}


@pytest.fixture(scope="module")
def dashboard() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return loaded


def queries(dashboard: dict[str, Any]) -> list[str]:
    return [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]


def test_dashboard_is_well_formed(dashboard: dict[str, Any]) -> None:
    assert dashboard["uid"] == "consent-relay"
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    for panel in dashboard["panels"]:
        pos = panel["gridPos"]
        assert pos["x"] >= 0, panel["title"]
        assert pos["x"] + pos["w"] <= 24, panel["title"]
        if panel["type"] == "row":
            continue
        assert panel["datasource"] == DATASOURCE, panel["title"]
        assert panel["targets"], panel["title"]
        assert panel["description"], panel["title"]
        for target in panel["targets"]:
            assert target["expr"].strip()
            assert target["datasource"] == DATASOURCE


def test_panels_do_not_overlap(dashboard: dict[str, Any]) -> None:
    cells: dict[tuple[int, int], str] = {}
    for panel in dashboard["panels"]:
        pos = panel["gridPos"]
        for x in range(pos["x"], pos["x"] + pos["w"]):
            for y in range(pos["y"], pos["y"] + pos["h"]):
                assert (x, y) not in cells, f"{panel['title']} overlaps {cells[(x, y)]}"
                cells[(x, y)] = panel["title"]


@pytest.mark.parametrize("need", sorted(REQUIRED))
def test_dashboard_shows(need: str, dashboard: dict[str, Any]) -> None:
    assert any(re.search(REQUIRED[need], q) for q in queries(dashboard)), need


def test_dashboard_queries_are_valid_promql(dashboard: dict[str, Any], tmp_path: Path) -> None:
    exe = shutil.which("promtool")
    assert exe, "promtool is not installed: apt-get install prometheus (make system-deps)"
    # Each query as a recording rule; JSON is YAML, so promtool reads it as a rule file.
    rules = [
        {"record": f"dashboard:query_{n}", "expr": q.replace("$__rate_interval", "1m")}
        for n, q in enumerate(queries(dashboard))
    ]
    path = tmp_path / "dashboard_rules.yml"
    path.write_text(json.dumps({"groups": [{"name": "dashboard", "rules": rules}]}))
    result = subprocess.run(
        [exe, "check", "rules", str(path)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_provisioning_points_at_the_dashboard_and_prometheus(
    read_yaml: Callable[[Path], Any],
) -> None:
    sources = read_yaml(GRAFANA / "provisioning" / "datasources" / "prometheus.yaml")
    (source,) = sources["datasources"]
    assert (source["type"], source["uid"], source["url"]) == (
        "prometheus",
        "prometheus",
        "http://prometheus:9090",
    )
    providers = read_yaml(GRAFANA / "provisioning" / "dashboards" / "consent-relay.yaml")
    (provider,) = providers["providers"]
    assert provider["type"] == "file"
    assert provider["options"]["path"] == "/var/lib/grafana/dashboards"


def test_alert_links_lead_to_the_dashboard(
    read_yaml: Callable[[Path], Any], dashboard: dict[str, Any]
) -> None:
    alerts = read_yaml(GRAFANA.parent / "prometheus" / "alerts.yml")
    links = [
        r["annotations"]["dashboard"]
        for g in alerts["groups"]
        for r in g["rules"]
        if "dashboard" in r["annotations"]
    ]
    assert links
    assert all(link.startswith(f"/d/{dashboard['uid']}/") for link in links)
