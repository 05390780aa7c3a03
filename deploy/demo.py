"""The main job: a real relay on a real broker, fed the privacy policy's own cases.

``make demo`` runs this. It starts (or reuses) the local Kafka broker and schema
registry, registers the contract, starts the stream worker and the sinks as separate
processes, publishes demo consent events modelled on the policy (an unsubscribe link,
an objection to direct marketing, a cookie banner, a GPC signal, a guardian's erasure
request, ...), then prints what every destination did with each withdrawal and how long
it took, from event time to the receipt and to fully propagated. The processes keep
serving ``/metrics`` until Ctrl-C.

Where it runs is a :class:`DemoSettings` like every process's settings: ``DEMO_*``
variables or the flag of the same name (``--stream-port 7066``, a flag wins), the
broker and registry of an existing stack from ``--bootstrap``/``--registry-url`` (or
``KAFKA_BOOTSTRAP``/``SCHEMA_REGISTRY_URL``), else a local stack started on
``--kafka-port``/``--controller-port``/``--registry-port``.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from types import ModuleType
from typing import Any

from confluent_kafka import Consumer
from pydantic import Field
from pydantic_settings import SettingsConfigDict

from consumers.partners.identities import IdentityMap
from producers import propagation
from producers.client import ConsentClient
from schemas.codec import EventDecoder
from schemas.errors import ConfigError, ValidationError
from schemas.events import FullyPropagated, PropagationReceipt, receipts_in
from schemas.registry import register_all
from schemas.runtime.admin import ensure_topics
from schemas.runtime.kafka import KafkaSettings
from schemas.runtime.settings import Port, Secret, Settings, load
from schemas.taxonomy import PARTNER_DESTINATIONS, Source

ROOT = Path(__file__).resolve().parent.parent
VAR = ROOT / "var" / "demo"
PARTNER_SECRET = "demo-partner-secret"
API_TOKEN = "demo-api-token-not-a-secret"
"""Bearer token of the worker's /propagation and the marketing sink's /v1/may-contact."""


class DemoSettings(Settings):
    """Where the demo's stack and relay listen, from ``DEMO_*`` variables or flags."""

    model_config = SettingsConfigDict(env_prefix="DEMO_")

    bootstrap: str = Field(
        "",
        description="Brokers of an existing stack (host:port,...); empty means "
        "`KAFKA_BOOTSTRAP` if it and `SCHEMA_REGISTRY_URL` are set, else a local stack.",
    )
    registry_url: str = Field(
        "",
        description="Schema registry of an existing stack; empty means `SCHEMA_REGISTRY_URL` "
        "(with `KAFKA_BOOTSTRAP`), else the local stack's.",
    )
    state_dir: Path = Field(
        Path("var/local"),
        description="State directory of the local stack the demo starts or reuses "
        "(relative to the repository).",
    )
    kafka_port: Port | None = Field(
        None,
        description="Kafka port of the local stack; unset means the one recorded in the "
        "state directory, else 19092.",
    )
    controller_port: Port | None = Field(
        None,
        description="KRaft controller port of the local stack; unset means the recorded "
        "one, else 19093.",
    )
    registry_port: Port | None = Field(
        None,
        description="Schema registry port of the local stack; unset means the recorded one, "
        "else 18081.",
    )
    topic_prefix: str = Field("demo.", description="Prefix of the demo's topics and groups.")
    stream_port: Port = Field(6066, description="The stream worker's web port.")
    marketing_port: Port = Field(8091, description="The marketing sink's HTTP port.")
    analytics_port: Port = Field(8092, description="The analytics sink's HTTP port.")
    partner_port: Port = Field(8093, description="The partner sink's HTTP port.")

    @property
    def ports(self) -> tuple[int, ...]:
        """The relay's /metrics ports."""
        return (self.stream_port, self.marketing_port, self.analytics_port, self.partner_port)


def demo_settings(flags: dict[str, Any], env: dict[str, str]) -> DemoSettings:
    """The demo's settings: a flag given wins over its ``DEMO_*`` variable."""
    given = {DemoSettings.variable(k): str(v) for k, v in flags.items() if v is not None}
    return load(DemoSettings, env={**env, **given})


@dataclass(frozen=True, slots=True)
class Process:
    """One relay process the demo starts."""

    name: str
    module: str
    port: int
    env: dict[str, str] = field(default_factory=dict)


def _load_local() -> ModuleType:
    spec = importlib.util.spec_from_file_location("local_stack", ROOT / "deploy" / "local.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["local_stack"] = module
    spec.loader.exec_module(module)
    return module


def stack_endpoints(demo: DemoSettings) -> tuple[str, str]:
    """The broker and registry to use: an existing stack's (settings, else the
    environment), or a local stack started now."""
    if demo.bootstrap and demo.registry_url:
        return demo.bootstrap, demo.registry_url
    if os.environ.get("KAFKA_BOOTSTRAP") and os.environ.get("SCHEMA_REGISTRY_URL"):
        return os.environ["KAFKA_BOOTSTRAP"], os.environ["SCHEMA_REGISTRY_URL"]
    if demo.bootstrap or demo.registry_url:
        raise ConfigError(
            "DEMO_BOOTSTRAP", "an existing stack needs both --bootstrap and --registry-url"
        )
    local = _load_local()
    say("starting the local Kafka broker and schema registry (deploy/local.py up)")
    endpoints = local.start(
        state_dir=ROOT / demo.state_dir,
        kafka_port=demo.kafka_port,
        controller_port=demo.controller_port,
        registry_port=demo.registry_port,
    )
    return endpoints.bootstrap, endpoints.registry_url


@dataclass
class PartnerReceiver:
    """Every partner's webhook endpoint: the bench's receiver, run as its own process.

    It is the one the bench measures with (``python -m deploy.bench.receiver``): it
    checks each request's signature, keeps the partner sink's connections open
    (HTTP/1.1) and accepts sixteen partner pipelines connecting at once (a deep listen
    backlog). A receiver with the default backlog of 5 and one connection per request
    made the demo's partners wait out the kernel's 1 s SYN retry, so the demo printed
    about a second for what takes a tenth of it.
    """

    port: int
    stats_file: Path

    def instructions(self) -> int:
        """Signed instructions the receiver accepted (written when it stopped)."""
        counts: dict[str, int] = json.loads(self.stats_file.read_text())
        return sum(n for path, n in counts.items() if path.startswith("/hooks/"))


@contextmanager
def partner_receiver(state_dir: Path = VAR, bound: float = 30) -> Iterator[PartnerReceiver]:
    """Start the receiver, yield its port, stop it with SIGTERM (it then writes its counts)."""
    port_file, stats_file = state_dir / "receiver.port", state_dir / "receiver.json"
    port_file.unlink(missing_ok=True)
    stats_file.unlink(missing_ok=True)
    log = (state_dir / "partner-receiver.log").open("wb")
    args = ["--secret", PARTNER_SECRET, "--port-file", str(port_file)]
    child = subprocess.Popen(
        [sys.executable, "-m", "deploy.bench.receiver", *args, "--stats-file", str(stats_file)],
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=ROOT,
    )
    try:
        deadline = time.monotonic() + bound
        while not (port_file.exists() and port_file.read_text().strip()):
            if child.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"the partner receiver did not start: see {state_dir}")
            time.sleep(0.05)
        yield PartnerReceiver(int(port_file.read_text()), stats_file)
    finally:
        child.send_signal(signal.SIGTERM)
        try:
            child.wait(30)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
        log.close()


def partner_config(port: int) -> Path:
    """A partner-sink config sending every partner's webhooks to the local receiver.

    Sellers only know the buyers who shared their viewed products (the identity map),
    so the others are skipped for sellers with a reason, as the policy implies.
    """
    identity_map = VAR / "partner-identities.sqlite"
    IdentityMap(identity_map).record("sellers", ["buyer-ana", "buyer-carla"])
    partners = {
        name: {
            "url": f"http://127.0.0.1:{port}/hooks/{name}",
            "secret": PARTNER_SECRET,
            "known_subjects": "mapped" if name == "sellers" else "all",
        }
        for name in PARTNER_DESTINATIONS
    }
    config = {
        "pseudonym_key": "demo-pseudonym-master-key",
        "identity_map": str(identity_map),
        "partners": partners,
    }
    path = VAR / "partners.json"
    path.write_text(json.dumps(config, indent=2))
    return path


def processes(receiver_port: int, demo: DemoSettings | None = None) -> list[Process]:
    """The relay: one stream worker and the three sink families."""
    demo = demo or DemoSettings()
    return [
        Process(
            "stream worker",
            "streams",
            demo.stream_port,
            {
                "STREAMS_WEB_PORT": str(demo.stream_port),
                "STREAMS_DATA_DIR": str(VAR / "streams"),
                "STREAMS_APP_ID": "consent-relay-demo",
                "STREAMS_API_TOKEN": API_TOKEN,
            },
        ),
        Process(
            "marketing sink",
            "consumers.marketing",
            demo.marketing_port,
            {
                "MARKETING_SINK_HTTP_PORT": str(demo.marketing_port),
                "MARKETING_SINK_DATABASE_URL": f"sqlite:///{VAR / 'marketing.sqlite'}",
                "MARKETING_SINK_HASH_KEY": "demo-marketing-hash-key",
                "MARKETING_SINK_API_TOKEN": API_TOKEN,
            },
        ),
        Process(
            "analytics sink",
            "consumers.analytics",
            demo.analytics_port,
            {
                "ANALYTICS_SINK_HTTP_PORT": str(demo.analytics_port),
                "ANALYTICS_SINK_DATABASE": str(VAR / "analytics.sqlite"),
            },
        ),
        Process(
            "partner sink",
            "consumers.partners",
            demo.partner_port,
            {
                "PARTNER_SINK_HTTP_PORT": str(demo.partner_port),
                "PARTNER_SINK_CONFIG": str(partner_config(receiver_port)),
                # What each partner was told: a duplicate is not sent again after a restart.
                "PARTNER_SINK_DATABASE": str(VAR / "partner-answers.sqlite"),
            },
        ),
    ]


@contextmanager
def running(proc: Process, base_env: dict[str, str]) -> Iterator[subprocess.Popen[bytes]]:
    """Start a relay process, wait for its /metrics, stop it with SIGTERM at the end."""
    log = (VAR / f"{proc.module}.log").open("wb")
    child = subprocess.Popen(
        [sys.executable, "-m", proc.module],
        env={**base_env, **proc.env},
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=ROOT,
    )
    try:
        wait_http(f"http://127.0.0.1:{proc.port}/metrics", proc, child)
        say(f"  {proc.name:<15} up: http://127.0.0.1:{proc.port}/metrics (pid {child.pid})")
        yield child
    finally:
        child.send_signal(signal.SIGTERM)
        try:
            child.wait(30)
        except subprocess.TimeoutExpired:
            child.kill()
        log.close()


def wait_http(url: str, proc: Process, child: subprocess.Popen[bytes], bound: float = 90) -> None:
    """Wait until ``url`` answers; fail with the process's log tail if it dies or stalls."""
    deadline = time.monotonic() + bound
    while time.monotonic() < deadline:
        if child.poll() is not None:
            break
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            time.sleep(0.5)
    tail = (VAR / f"{proc.module}.log").read_text(errors="replace").splitlines()[-30:]
    raise SystemExit(f"{proc.name} did not come up:\n" + "\n".join(tail))


def publish_cases(client: ConsentClient) -> dict[str, str]:
    """The policy's own cases; event id → what it is."""
    cases: dict[str, str] = {}

    def note(label: str, published: Any) -> None:
        cases[published.event_id] = label
        say(f"  published {label}")

    note(
        "buyer grants email marketing and product sharing (privacy settings)",
        client.grant(
            "buyer-ana",
            ["MARKETING_EMAIL", "SHARE_VIEWED_PRODUCTS_WITH_SELLERS"],
            source=Source.PRIVACY_SETTINGS,
        ),
    )
    note(
        "buyer clicks the unsubscribe link in a marketing email",
        client.withdraw("buyer-ana", ["MARKETING_EMAIL"], source=Source.UNSUBSCRIBE_LINK),
    )
    note(
        "buyer switches off sharing viewed products with sellers",
        client.withdraw(
            "buyer-ana", ["SHARE_VIEWED_PRODUCTS_WITH_SELLERS"], source=Source.PRIVACY_SETTINGS
        ),
    )
    note(
        "seller objects to direct marketing (absolute: every channel, targeted ads)",
        client.object_to_direct_marketing("seller-ben", source=Source.CUSTOMER_SERVICE),
    )
    note(
        "visitor's browser refuses marketing cookies, allows statistics (cookie tool)",
        client.set_cookie_preferences(
            "device-7f3a",
            granted=["STATISTICS"],
            refused=["MARKETING", "PERSONALISATION"],
            source=Source.COOKIE_TOOL,
        ),
    )
    note("Californian browser sends a GPC signal", client.record_gpc_signal("buyer-carla"))
    note(
        "buyer refuses telephone and postal marketing",
        client.refuse_marketing("buyer-dan", channels=["TELEPHONE", "POSTAL_MAIL"]),
    )
    note(
        "guardian asks for a minor's data to be erased",
        client.request_erasure_of_minor("minor-eve"),
    )
    note("buyer asks for restriction of processing", client.restrict_processing("buyer-finn"))
    try:
        client.withdraw("buyer-ana", ["COOKIES_ESSENTIAL"])
    except ValidationError as exc:
        say(f"  rejected before sending, as it should be: {exc}")
    return cases


def collect(
    settings: KafkaSettings, cases: dict[str, str], bound: float
) -> tuple[dict[str, list[PropagationReceipt]], dict[str, FullyPropagated]]:
    """Read receipts and FullyPropagated events for ``cases`` until all are complete."""
    decoder = EventDecoder(settings.registry_client())
    consumer = Consumer(settings.consumer_config(f"demo-report-{time.time_ns()}"))
    consumer.subscribe([settings.topics.receipts, settings.topics.propagated])
    receipts: dict[str, list[PropagationReceipt]] = {}
    done: dict[str, FullyPropagated] = {}
    withdrawals = set(cases) - {next(iter(cases))}  # the first case is a grant
    deadline = time.monotonic() + bound
    try:
        while time.monotonic() < deadline and not withdrawals <= set(done):
            msg = consumer.poll(0.5)
            if msg is None or msg.error():
                continue
            event = decoder.decode(msg.value())
            for receipt in receipts_in(event):
                if receipt.event_id in cases:
                    receipts.setdefault(receipt.event_id, []).append(receipt)
            if isinstance(event, FullyPropagated) and event.event_id in cases:
                done[event.event_id] = event
    finally:
        consumer.close()
    return receipts, done


def ask_the_worker(done: dict[str, FullyPropagated], port: int = 6066) -> None:
    """The proof as an operator asks the stream worker for it: with its API token, and
    without (refused: the answer is about a person)."""
    if not done:
        return
    url = propagation.event_url(f"http://127.0.0.1:{port}", next(iter(done)))
    status, body = propagation.fetch(url, token=Secret(API_TOKEN))
    refused, _ = propagation.fetch(url)
    answer = body if isinstance(body, dict) else {}
    say(
        f"\nthe stream worker's view (GET :{port}/propagation/<event-id>, "
        f"Authorization: Bearer {API_TOKEN}): HTTP {status}, "
        f"{len(answer.get('honoured', []))} destinations honoured; "
        f"without the token: HTTP {refused}"
    )


def report(
    cases: dict[str, str],
    receipts: dict[str, list[PropagationReceipt]],
    done: dict[str, FullyPropagated],
) -> None:
    """Print what each destination did with each event, and how long it took."""
    say("\nWhat every sink did, and how long each withdrawal took (event time → applied):")
    for event_id, label in cases.items():
        say(f"\n• {label}\n  event {event_id}")
        seen: set[str] = set()
        for r in sorted(receipts.get(event_id, []), key=lambda r: r.applied_at):
            key = f"{r.sink_family}/{r.destination}"
            if key in seen:
                continue
            seen.add(key)
            reason = f" ({r.reason})" if r.reason else ""
            say(f"    {key:<36} {r.outcome:<8} after {_ms(r.occurred_at, r.applied_at):>7}{reason}")
        full = done.get(event_id)
        if full is not None:
            say(
                f"    fully propagated to {len(full.destinations)} destinations after "
                f"{_ms(full.occurred_at, full.completed_at)}"
            )
        elif event_id == next(iter(cases)):
            say("    a grant: proof of propagation is kept for withdrawals and rights requests")
        elif not seen:
            say("    no destination had to act")
        else:
            say("    NOT fully propagated yet")


def _ms(start: datetime, end: datetime) -> str:
    return f"{(end - start).total_seconds() * 1000:.0f} ms"


def say(text: str) -> None:
    """The demo's output."""
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def main(argv: list[str] | None = None) -> int:
    """Run the demo; ``--once`` exits after the report instead of serving /metrics."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--once", action="store_true", help="stop after the report")
    parser.add_argument("--bound", type=float, default=120.0, help="seconds to wait for receipts")
    for name, info in DemoSettings.model_fields.items():
        parser.add_argument(
            "--" + name.replace("_", "-"),
            dest=name,
            metavar=DemoSettings.variable(name),
            help=f"{info.description} (default: {info.default or 'unset'})",
        )
    args = parser.parse_args(argv)
    flags = {name: getattr(args, name) for name in DemoSettings.model_fields}
    try:
        demo = demo_settings(flags, dict(os.environ))
    except ConfigError as exc:
        parser.error(str(exc))
    VAR.mkdir(parents=True, exist_ok=True)
    bootstrap, registry_url = stack_endpoints(demo)
    settings = KafkaSettings(
        bootstrap=bootstrap, registry_url=registry_url, topic_prefix=demo.topic_prefix
    )
    register_all(settings.registry_client())
    ensure_topics(settings)
    base_env = {
        **os.environ,
        "KAFKA_BOOTSTRAP": bootstrap,
        "SCHEMA_REGISTRY_URL": registry_url,
        "CONSENT_RELAY_TOPIC_PREFIX": settings.topic_prefix,
    }
    say(f"broker {bootstrap}, registry {registry_url}; starting the relay:")
    with ExitStack() as stack:
        receiver = stack.enter_context(partner_receiver())
        for proc in processes(receiver.port, demo):
            stack.enter_context(running(proc, base_env))
        say("\npublishing the policy's cases through the Python client:")
        with ConsentClient(settings) as client:
            cases = publish_cases(client)
        receipts, done = collect(settings, cases, args.bound)
        report(cases, receipts, done)
        ask_the_worker(done, demo.stream_port)
        if not args.once:
            ports = ", ".join(str(p) for p in demo.ports)
            say(f"\n/metrics stays up on ports {ports}; Ctrl-C to stop.")
            try:
                signal.pause()
            except KeyboardInterrupt:
                say("stopping")
    # The receiver writes its counts once stopped, after the relay.
    say(
        f"\npartner receiver got {receiver.instructions()} signed instructions "
        "(pseudonymous ids only)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
