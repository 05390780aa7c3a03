"""A real Prometheus scrapes a running relay and answers the operators' questions.

The stream worker (``python -m streams``) and the marketing sink (``python -m
consumers.marketing``) run as real processes against the real broker and registry;
Prometheus (Debian's ``prometheus``, started here on a free port, scraping every second)
loads the project's alert rules. Withdrawals published with the producers' client go
all the way to the suppression list, and the propagation p99 is read back through
Prometheus's HTTP API with the dashboard's query. The figures are printed, not
asserted: speed targets belong to the benchmarks.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from producers.client import ConsentClient
from schemas.kafka import KafkaSettings
from schemas.taxonomy import Purpose

REPO = Path(__file__).resolve().parents[3]
ALERTS = REPO / "deploy" / "prometheus" / "alerts.yml"
DASHBOARD = REPO / "deploy" / "grafana" / "dashboards" / "consent-relay.json"
WITHDRAWALS = 40
P99 = (
    "histogram_quantile({q}, sum by (le) (rate(consent_relay_propagation_seconds_bucket"
    '{{sink_family="MARKETING",destination="suppression_list"}}[2m])))'
)
E2E = (
    "histogram_quantile({q}, sum by (le) (rate(consent_relay_fully_propagated_seconds_bucket[2m])))"
)
APPLIED = (
    'sum(consent_relay_sink_instructions_total{destination="suppression_list",outcome="APPLIED"})'
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


CHILDREN: dict[str, tuple[subprocess.Popen[bytes], Path]] = {}
"""The processes this test started, by name, with their logs."""


def until(check: Callable[[], Any], timeout: float, what: str) -> Any:
    """Poll ``check`` until it returns something truthy; fail naming ``what``, or at once
    (with its log) if one of the processes has died."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        for name, (proc, log) in CHILDREN.items():
            if proc.poll() is not None:
                tail = "\n".join(log.read_text(errors="replace").splitlines()[-30:])
                raise AssertionError(
                    f"{name} exited ({proc.returncode}) while waiting for {what}; "
                    f"last lines of {log}:\n{tail}"
                )
        assert time.monotonic() < deadline, f"gave up after {timeout:.0f} s waiting for {what}"
        time.sleep(0.5)


@contextlib.contextmanager
def running(argv: list[str], env: dict[str, str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """A child process with its output in ``log``; SIGTERM (then SIGKILL) at the end."""
    with log.open("wb") as out:
        proc = subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT, cwd=REPO)
    CHILDREN[log.stem] = (proc, log)
    try:
        yield proc
    finally:
        del CHILDREN[log.stem]
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)


class Prometheus:
    """The HTTP API of a Prometheus server."""

    def __init__(self, port: int) -> None:
        self.base = f"http://127.0.0.1:{port}"

    def get(self, path: str, **params: str) -> Any:
        url = f"{self.base}{path}?{urllib.parse.urlencode(params)}"
        try:
            with urllib.request.urlopen(url, timeout=10) as response:
                return json.loads(response.read())
        except urllib.error.HTTPError as exc:
            return json.loads(exc.read())
        except (urllib.error.URLError, ConnectionError):
            return None

    def ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.base}/-/ready", timeout=2) as response:
                return bool(response.status == 200)
        except (urllib.error.URLError, ConnectionError):
            return False

    def query(self, expr: str) -> list[dict[str, Any]]:
        answer = self.get("/api/v1/query", query=expr)
        assert answer is not None, f"Prometheus did not answer {expr!r}"
        assert answer["status"] == "success", f"{expr!r}: {answer}"
        result: list[dict[str, Any]] = answer["data"]["result"]
        return result

    def scalar(self, expr: str) -> float | None:
        result = self.query(expr)
        return float(result[0]["value"][1]) if result else None


def prometheus_config(targets: dict[str, int]) -> dict[str, Any]:
    """The deploy config's jobs and rules, scraping this test's processes every second."""
    return {
        "global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(ALERTS)],
        "scrape_configs": [
            {
                "job_name": job,
                "metrics_path": "/metrics",
                "static_configs": [{"targets": [f"127.0.0.1:{port}"]}],
            }
            for job, port in targets.items()
        ],
    }


def publish_withdrawals(settings: KafkaSettings, subjects: list[str]) -> None:
    with ConsentClient(settings) as client:
        for subject in subjects:
            client.withdraw(subject, [Purpose.MARKETING_EMAIL])


def test_prometheus_reads_the_propagation_p99_of_a_running_relay(
    tmp_path: Path, relay_settings: KafkaSettings, relay_env: dict[str, str], unique_group: str
) -> None:
    prometheus_exe = shutil.which("prometheus")
    assert prometheus_exe, "prometheus is not installed: apt-get install prometheus"
    streams_port, marketing_port, prometheus_port = free_port(), free_port(), free_port()
    base_env = {**os.environ, **relay_env}
    streams_env = {
        **base_env,
        "STREAMS_WEB_PORT": str(streams_port),
        "STREAMS_WEB_BIND": "127.0.0.1",
        "STREAMS_WEB_HOST": "127.0.0.1",
        "STREAMS_DATA_DIR": str(tmp_path / "streams"),
        "STREAMS_METRICS_INTERVAL_SECONDS": "1",
    }
    marketing_env = {
        **base_env,
        "MARKETING_SINK_HTTP_PORT": str(marketing_port),
        "MARKETING_SINK_HTTP_HOST": "127.0.0.1",
        "MARKETING_SINK_DATABASE_URL": f"sqlite:///{tmp_path / 'marketing.sqlite'}",
        "MARKETING_SINK_HASH_KEY": "integration-test-hash-key",
        "MARKETING_SINK_GROUP_ID": unique_group,
    }
    config = tmp_path / "prometheus.yml"
    config.write_text(
        json.dumps(
            prometheus_config(
                {"consent-relay-streams": streams_port, "consent-relay-marketing": marketing_port}
            )
        )
    )
    prometheus_argv = [
        prometheus_exe,
        f"--config.file={config}",
        f"--storage.tsdb.path={tmp_path / 'tsdb'}",
        f"--web.listen-address=127.0.0.1:{prometheus_port}",
    ]
    prom = Prometheus(prometheus_port)
    with contextlib.ExitStack() as stack:
        stack.enter_context(
            running([sys.executable, "-m", "streams"], streams_env, tmp_path / "streams.log")
        )
        stack.enter_context(
            running(
                [sys.executable, "-m", "consumers.marketing"],
                marketing_env,
                tmp_path / "marketing.log",
            )
        )
        stack.enter_context(running(prometheus_argv, base_env, tmp_path / "prometheus.log"))
        until(prom.ready, 60, "Prometheus to be ready")
        started = time.monotonic()
        until(
            lambda: prom.scalar('count(up{job=~"consent-relay-.+"} == 1)') == 2,
            180,
            f"Prometheus to scrape the stream worker and the marketing sink (logs in {tmp_path})",
        )
        print(f"\nrelay scraped by Prometheus {time.monotonic() - started:.1f} s after start")

        # One withdrawal first, so the sink's histogram series exists before the batch
        # and rate() over the window sees every one of the batch.
        publish_withdrawals(relay_settings, ["prom-warmup"])
        until(lambda: prom.scalar(APPLIED) == 1, 180, f"the first withdrawal (logs {tmp_path})")
        subjects = [f"prom-subject-{n}" for n in range(WITHDRAWALS)]
        published = time.monotonic()
        publish_withdrawals(relay_settings, subjects)
        until(
            lambda: prom.scalar(APPLIED) == WITHDRAWALS + 1,
            180,
            f"Prometheus to see {WITHDRAWALS} more withdrawals applied (logs {tmp_path})",
        )
        seen = time.monotonic() - published
        p50, p99 = (prom.scalar(P99.format(q=q)) for q in (0.5, 0.99))
        assert p99 is not None
        assert math.isfinite(p99)
        assert p99 > 0
        print(
            f"{WITHDRAWALS} withdrawals applied to the suppression list and seen by Prometheus "
            f"in {seen:.1f} s; propagation p50 {p50:.3f} s, p99 {p99:.3f} s "
            "(histogram_quantile over consent_relay_propagation_seconds_bucket)"
        )

        # The stream worker's end-to-end view: every destination (here only the
        # suppression list) confirmed, so each withdrawal is fully propagated.
        until(
            lambda: (
                prom.scalar("sum(consent_relay_fully_propagated_seconds_count)") == WITHDRAWALS + 1
                and prom.scalar("sum(consent_relay_pending_withdrawals)") == 0
            ),
            120,
            "every withdrawal to be FullyPropagated and none left pending",
        )
        e2e = prom.scalar(E2E.format(q=0.99))
        print(f"withdrawal to FullyPropagated p99 {e2e:.3f} s; none pending")

        check_rules_and_dashboard(prom)


def check_rules_and_dashboard(prom: Prometheus) -> None:
    """Every alert rule evaluates cleanly on live data; every dashboard query runs."""

    def rules() -> list[dict[str, Any]] | None:
        answer = prom.get("/api/v1/rules")
        found = [r for g in answer["data"]["groups"] for r in g["rules"]] if answer else []
        evaluated = found and all(r.get("lastEvaluation", "").startswith("2") for r in found)
        return found if evaluated and all(r["health"] == "ok" for r in found) else None

    loaded = until(rules, 30, "every alert rule to evaluate with health ok")
    assert len(loaded) == ALERTS.read_text().count("- alert:")

    # Only the stream worker and the marketing sink run: the other three components
    # are missing, and the alert says so (pending for its 2 minutes, then firing).
    def missing() -> set[str] | None:
        answer = prom.get("/api/v1/alerts")
        alerts = answer["data"]["alerts"] if answer else []
        jobs = {a["labels"]["job"] for a in alerts if a["labels"]["alertname"].endswith("Missing")}
        return jobs or None

    assert until(missing, 30, "ConsentRelayComponentMissing") == {
        "consent-relay-analytics",
        "consent-relay-partners",
        "consent-relay-gateway",
    }
    queries = [
        t["expr"].replace("$__rate_interval", "1m")
        for p in json.loads(DASHBOARD.read_text())["panels"]
        for t in p.get("targets", [])
    ]
    for expr in queries:
        prom.query(expr)
    print(f"{len(loaded)} alert rules healthy, {len(queries)} dashboard queries answered")
