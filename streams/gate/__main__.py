"""The gate's one entrypoint: ``python -m streams.gate``.

Settings are read from the environment (``KAFKA_BOOTSTRAP``, ``SCHEMA_REGISTRY_URL``,
``CONSENT_RELAY_TOPIC_PREFIX``, ``CONSENT_RELAY_PARTITIONS`` and ``GATE_*``, see
:mod:`streams.gate.settings`) and validated before anything starts; /metrics and /healthz
are served on ``GATE_HTTP_HOST:GATE_HTTP_PORT`` (:mod:`schemas.runtime.http_server`).
Started before its broker, it waits for it.
A gate whose Kafka clients forgot every broker (:mod:`schemas.runtime.broker_loss`) is
followed by a new one, with new clients, in the same process.
SIGTERM or SIGINT finishes the batch in flight (or abandons it uncommitted if it is still
waiting), commits, leaves the group and flushes.
Exit status: 0 after a stop, 2 for a bad setting, 1 if the gate could not run.
"""

from __future__ import annotations

import argparse
import gc
import logging
import signal
import sys
import threading
from collections.abc import Sequence
from types import FrameType

from prometheus_client import CollectorRegistry

from schemas.errors import ConfigError, ConsentRelayError
from schemas.runtime.http_server import HttpServer, open_routes
from schemas.runtime.kafka import KafkaSettings
from schemas.runtime.observability import configure_logging
from streams.gate.loop import Gate
from streams.gate.metrics import GateMetrics
from streams.gate.settings import GateSettings

log = logging.getLogger("streams.gate")

YOUNG_GC_THRESHOLD = 20_000
"""Net new tracked objects between young collections (CPython's default is 700)."""


def main(argv: Sequence[str] | None = None) -> int:
    """Run the gate until a signal; the process exit status."""
    argparse.ArgumentParser(
        prog="python -m streams.gate",
        description="The consent gate: data.events in, data.events.allowed out.",
    ).parse_args(argv)
    try:
        kafka = KafkaSettings.from_env()
        settings = GateSettings.from_env()
    except ConfigError as exc:
        configure_logging()
        log.error("invalid setting %s: %s", exc.key, exc.reason)
        return 2
    configure_logging(settings.log_level)
    # A batch's garbage dies young instead of being promoted into full collections.
    _young, middle, old = gc.get_threshold()
    gc.set_threshold(YOUNG_GC_THRESHOLD, middle, old)
    registry = CollectorRegistry()
    metrics = GateMetrics.create(registry)
    server = HttpServer(settings.http_host, settings.http_port, open_routes(registry)).start()
    stopping = threading.Event()
    current: list[Gate] = []

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        log.info("signal %d: stopping after the batch in flight", signum)
        stopping.set()
        for gate in current:
            gate.stop()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        while not stopping.is_set():
            gate = Gate(kafka, settings, metrics)
            current[:] = [gate]
            if stopping.is_set():
                gate.stop()
            gate.run()
            if not gate.lost_broker:
                break
            # librdkafka#5301 (schemas.runtime.broker_loss): new clients find the broker again.
            log.warning("gate: starting again with new Kafka clients")
    except ConfigError as exc:
        log.error("invalid setting %s: %s", exc.key, exc.reason)
        return 2
    except ConsentRelayError as exc:
        log.error("the gate stopped: %s: %s", type(exc).__name__, exc)
        return 1
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
