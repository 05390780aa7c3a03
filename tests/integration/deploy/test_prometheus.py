"""A real Prometheus scrapes a running relay and answers the operators' questions.

Every process of the relay runs for real against the real broker and registry: the
stream worker (``python -m streams``), the marketing, analytics and partner sinks
(``python -m consumers.<sink>``, the partner one posting to a webhook served by this
test) and the gateway (``python -m producers.gateway``). Prometheus (Debian's
``prometheus``, started here on a free port, scraping every second) loads the
project's alert rules. Withdrawals posted to the gateway reach one destination of each
sink family; the propagation p50/p99 per destination and end to end are read back
through Prometheus's HTTP API with the dashboard's queries. The figures are printed,
not asserted: speed targets belong to the benchmarks.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from schemas.runtime.kafka import KafkaSettings
from tests.support.processes import free_port

REPO = Path(__file__).resolve().parents[3]
ALERTS = REPO / "deploy" / "prometheus" / "alerts.yml"
DASHBOARD = REPO / "deploy" / "grafana" / "dashboards" / "consent-relay.json"
WITHDRAWALS = 40
TOKEN = "integration-test-token"
# One destination of each sink family hears these (streams/intake/routing.toml).
PURPOSES = ["MARKETING_EMAIL", "RESEARCH_AND_STATISTICS", "SHARE_WITH_BUSINESS_PARTNERS"]
DESTINATIONS = ("suppression_list", "analytics_store", "business_partners")
# Settings prefixes of the relay's processes: a developer's own must not leak in.
PREFIXES = ("STREAMS_", "MARKETING_SINK_", "ANALYTICS_SINK_", "PARTNER_SINK_", "GATEWAY_", "GATE_")
PER_DESTINATION = (
    "histogram_quantile({q}, sum by (sink_family, destination, le) "
    "(rate(consent_relay_propagation_seconds_bucket[2m])))"
)
END_TO_END = (
    "histogram_quantile({q}, sum by (le) (rate(consent_relay_fully_propagated_seconds_bucket[2m])))"
)
APPLIED = 'sum by (destination) (consent_relay_sink_instructions_total{outcome="APPLIED"})'

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
        CHILDREN.pop(log.stem, None)
        stop(proc)


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


@contextlib.contextmanager
def partner_webhook() -> Iterator[tuple[int, list[bytes]]]:
    """A partner's endpoint that accepts every signed webhook: its port and the bodies."""
    received: list[bytes] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            received.append(self.rfile.read(int(self.headers.get("Content-Length", 0))))
            self.send_response(204)
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield int(server.server_address[1]), received
    finally:
        server.shutdown()
        thread.join()
        server.server_close()


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

    def by(self, label: str, expr: str) -> dict[str, float]:
        return {r["metric"].get(label, ""): float(r["value"][1]) for r in self.query(expr)}

    def alerts(self) -> set[tuple[str, str]]:
        """(alert name, job or destination) of every pending or firing alert."""
        answer = self.get("/api/v1/alerts")
        found = answer["data"]["alerts"] if answer else []
        return {
            (a["labels"]["alertname"], a["labels"].get("job", a["labels"].get("destination", "")))
            for a in found
        }


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


def withdraw(gateway_port: int, subject: str) -> int:
    """POST a withdrawal to the gateway; its HTTP status."""
    body = {"subject": {"id": subject, "kind": "ACCOUNT"}, "choice": "WITHDRAWN"}
    request = urllib.request.Request(
        f"http://127.0.0.1:{gateway_port}/v1/consents",
        data=json.dumps({**body, "purposes": PURPOSES}).encode(),
        headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return int(response.status)


def relay(
    tmp_path: Path, relay_env: dict[str, str], group: str, webhook_port: int
) -> dict[str, tuple[list[str], dict[str, str], int]]:
    """Every process: job name → (argv, environment, port of /metrics)."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(PREFIXES)}
    base.update(relay_env)
    tokens = tmp_path / "tokens.toml"
    digest = hashlib.sha256(TOKEN.encode()).hexdigest()
    tokens.write_text(f'[tokens."sha256:{digest}"]\nservice = "test"\nactions = ["*"]\n')
    partners = tmp_path / "partners.toml"
    partners.write_text(
        'pseudonym_key = "env:PARTNER_PSEUDONYM_KEY"\n\n[partners.business_partners]\n'
        f'url = "http://127.0.0.1:{webhook_port}/consent"\nsecret = "env:PARTNER_SECRET"\n'
        'known_subjects = "all"\n'
    )
    ports = {
        name: free_port() for name in ("streams", "gate", "marketing", "analytics", "partners")
    }
    ports["gateway"] = free_port()
    python = [sys.executable, "-m"]
    return {
        "consent-relay-streams": (
            [*python, "streams"],
            {
                **base,
                "STREAMS_WEB_PORT": str(ports["streams"]),
                "STREAMS_WEB_BIND": "127.0.0.1",
                "STREAMS_WEB_HOST": "127.0.0.1",
                "STREAMS_DATA_DIR": str(tmp_path / "streams"),
                "STREAMS_METRICS_INTERVAL_SECONDS": "1",
            },
            ports["streams"],
        ),
        "consent-relay-gate": (
            [*python, "streams.gate"],
            {**base, "GATE_HTTP_PORT": str(ports["gate"]), "GATE_HTTP_HOST": "127.0.0.1"},
            ports["gate"],
        ),
        "consent-relay-marketing": (
            [*python, "consumers.marketing"],
            {
                **base,
                "MARKETING_SINK_HTTP_PORT": str(ports["marketing"]),
                "MARKETING_SINK_HTTP_HOST": "127.0.0.1",
                "MARKETING_SINK_DATABASE_URL": f"sqlite:///{tmp_path / 'marketing.sqlite'}",
                "MARKETING_SINK_HASH_KEY": "integration-test-hash-key",
                "MARKETING_SINK_GROUP_ID": f"{group}.marketing",
            },
            ports["marketing"],
        ),
        "consent-relay-analytics": (
            [*python, "consumers.analytics"],
            {
                **base,
                "ANALYTICS_SINK_HTTP_PORT": str(ports["analytics"]),
                "ANALYTICS_SINK_HTTP_HOST": "127.0.0.1",
                "ANALYTICS_SINK_DATABASE": str(tmp_path / "analytics.sqlite"),
                "ANALYTICS_SINK_GROUP_ID": f"{group}.analytics",
            },
            ports["analytics"],
        ),
        "consent-relay-partners": (
            [*python, "consumers.partners"],
            {
                **base,
                "PARTNER_SINK_HTTP_PORT": str(ports["partners"]),
                "PARTNER_SINK_HTTP_HOST": "127.0.0.1",
                "PARTNER_SINK_CONFIG": str(partners),
                "PARTNER_SINK_GROUP_ID": f"{group}.partners",
                "PARTNER_PSEUDONYM_KEY": "integration-test-pseudonym-key",
                "PARTNER_SECRET": "integration-test-partner-secret",
            },
            ports["partners"],
        ),
        "consent-relay-gateway": (
            [*python, "producers.gateway"],
            {
                **base,
                "GATEWAY_PORT": str(ports["gateway"]),
                "GATEWAY_TOKENS_FILE": str(tokens),
                "GATEWAY_UNSUBSCRIBE_KEY": "integration-test-unsubscribe-key-0123456789",
            },
            ports["gateway"],
        ),
    }


def test_prometheus_reads_the_propagation_p99_of_a_running_relay(
    tmp_path: Path, relay_settings: KafkaSettings, relay_env: dict[str, str], unique_group: str
) -> None:
    prometheus_exe = shutil.which("prometheus")
    assert prometheus_exe, "prometheus is not installed: apt-get install prometheus"
    prometheus_port = free_port()
    prom = Prometheus(prometheus_port)
    with contextlib.ExitStack() as stack:
        webhook_port, webhooks = stack.enter_context(partner_webhook())
        processes = relay(tmp_path, relay_env, unique_group, webhook_port)
        children = {
            job: stack.enter_context(running(argv, env, tmp_path / f"{job}.log"))
            for job, (argv, env, _) in processes.items()
        }
        config = tmp_path / "prometheus.yml"
        config.write_text(json.dumps(prometheus_config({j: p[2] for j, p in processes.items()})))
        argv = [
            prometheus_exe,
            f"--config.file={config}",
            f"--storage.tsdb.path={tmp_path / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{prometheus_port}",
        ]
        stack.enter_context(running(argv, dict(os.environ), tmp_path / "prometheus.log"))
        until(prom.ready, 60, "Prometheus to be ready")
        started = time.monotonic()
        until(
            lambda: prom.scalar('count(up{job=~"consent-relay-.+"} == 1)') == len(processes),
            180,
            f"Prometheus to scrape all {len(processes)} relay processes (logs in {tmp_path})",
        )
        print(f"\nrelay scraped by Prometheus {time.monotonic() - started:.1f} s after start")

        # One withdrawal first, so each sink's histogram series exists before the batch
        # and rate() over the window sees every one of the batch.
        assert withdraw(processes["consent-relay-gateway"][2], "prom-warmup") == 202
        until(
            lambda: prom.by("destination", APPLIED) == dict.fromkeys(DESTINATIONS, 1.0),
            180,
            f"the first withdrawal at {DESTINATIONS} (logs in {tmp_path})",
        )
        published = time.monotonic()
        for n in range(WITHDRAWALS):
            assert withdraw(processes["consent-relay-gateway"][2], f"prom-subject-{n}") == 202
        until(
            lambda: (
                prom.by("destination", APPLIED) == dict.fromkeys(DESTINATIONS, WITHDRAWALS + 1.0)
            ),
            180,
            f"Prometheus to see {WITHDRAWALS} more withdrawals applied everywhere",
        )
        print(
            f"{WITHDRAWALS} withdrawals posted to the gateway, applied at {len(DESTINATIONS)} "
            f"destinations and seen by Prometheus in {time.monotonic() - published:.1f} s"
        )
        p50 = prom.by("destination", PER_DESTINATION.format(q=0.5))
        p99 = prom.by("destination", PER_DESTINATION.format(q=0.99))
        assert set(p99) == set(DESTINATIONS)
        for destination in DESTINATIONS:
            assert math.isfinite(p99[destination])
            assert p99[destination] > 0
            print(
                f"  {destination:<18} propagation p50 {p50[destination]:.3f} s, "
                f"p99 {p99[destination]:.3f} s"
            )
        assert len(webhooks) == WITHDRAWALS + 1

        until(
            lambda: (
                prom.scalar("sum(consent_relay_fully_propagated_seconds_count)") == WITHDRAWALS + 1
                and prom.scalar("sum(consent_relay_pending_withdrawals)") == 0
            ),
            120,
            "every withdrawal to be FullyPropagated and none left pending",
        )
        e2e = {q: prom.scalar(END_TO_END.format(q=q)) for q in (0.5, 0.99)}
        print(f"  withdrawal to FullyPropagated p50 {e2e[0.5]:.3f} s, p99 {e2e[0.99]:.3f} s")
        accepted = prom.scalar('sum(consent_relay_gateway_requests_total{status="202"})')
        assert accepted == WITHDRAWALS + 1

        check_rules_and_dashboard(prom)

        # A healthy relay raises no alert; a stopped sink does (pending for its minute).
        assert until(lambda: not prom.alerts(), 30, "no alert on a healthy relay")
        stop(children["consent-relay-analytics"])
        del CHILDREN["consent-relay-analytics"]
        until(
            lambda: ("ConsentRelayProcessDown", "consent-relay-analytics") in prom.alerts(),
            30,
            "ConsentRelayProcessDown for the stopped analytics sink",
        )


def check_rules_and_dashboard(prom: Prometheus) -> None:
    """Every alert rule evaluates cleanly on live data; every dashboard query runs."""

    def rules() -> list[dict[str, Any]] | None:
        answer = prom.get("/api/v1/rules")
        found = [r for g in answer["data"]["groups"] for r in g["rules"]] if answer else []
        evaluated = found and all(r.get("lastEvaluation", "").startswith("2") for r in found)
        return found if evaluated and all(r["health"] == "ok" for r in found) else None

    loaded = until(rules, 30, "every alert rule to evaluate with health ok")
    assert len(loaded) == ALERTS.read_text().count("- alert:")
    queries = [
        t["expr"].replace("$__rate_interval", "1m")
        for p in json.loads(DASHBOARD.read_text())["panels"]
        for t in p.get("targets", [])
    ]
    empty = [q for q in queries if not prom.query(q)]
    print(
        f"  {len(loaded)} alert rules healthy; {len(queries)} dashboard queries answered, "
        f"{len(queries) - len(empty)} with data"
    )
