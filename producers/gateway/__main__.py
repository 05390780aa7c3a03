"""``python -m producers.gateway``: load settings, configure logging, build, serve.

SIGTERM/SIGINT stop accepting requests, let in-flight ones finish, then flush and close
the producer. A bad setting stops the process with a message naming it (exit 2).
"""

from __future__ import annotations

import logging
import sys

from aiohttp import web

from producers.gateway.app import create_app
from producers.gateway.middleware import AccessLogger
from producers.gateway.settings import PREFIX, GatewaySettings
from producers.gateway.tokens import TokenBook
from schemas.errors import ConfigError
from schemas.runtime.kafka import KafkaSettings
from schemas.runtime.observability import configure_logging
from schemas.runtime.settings import load

log = logging.getLogger("producers.gateway")


def main() -> int:
    """Run the gateway until signalled; returns the exit status."""
    configure_logging()
    try:
        settings = load(GatewaySettings, PREFIX)
        kafka = KafkaSettings.from_env()
        tokens = TokenBook.load(settings.tokens_file)
    except ConfigError as exc:
        log.error("configuration error: %s", exc)
        return 2
    logging.getLogger().setLevel(settings.log_level.upper())
    # The registry client logs every request URL at INFO; keep the gateway's log readable.
    logging.getLogger("httpx2").setLevel(logging.WARNING)
    app = create_app(settings, kafka, tokens=tokens)
    log.info(
        "gateway on %s:%d for %d service token(s), consent topic %s",
        settings.host,
        settings.port,
        len(tokens),
        kafka.topics.consent,
    )
    web.run_app(
        app,
        host=settings.host,
        port=settings.port,
        access_log_class=AccessLogger,
        print=None,
        shutdown_timeout=settings.delivery_timeout_s + 5,
        # A connection has read_timeout_s to deliver a request's headers (aiohttp counts
        # them against the keep-alive timer, from when the connection opens or its last
        # answer went out), and after an early answer read_timeout_s to finish the body.
        keepalive_timeout=settings.read_timeout_s,
        lingering_time=settings.read_timeout_s,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
