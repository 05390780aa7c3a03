"""``python -m consumers.partners``: run every configured partner's pipeline until SIGTERM.

Reads :class:`~schemas.runtime.kafka.KafkaSettings`, ``PARTNER_SINK_*``
(:mod:`consumers.partners.settings`) and the partners file named by
``PARTNER_SINK_CONFIG`` (:mod:`consumers.partners.config`); serves /metrics on
``PARTNER_SINK_HTTP_PORT`` (default 8093). Exits 2 naming the bad setting or entry,
1 while a partner's legacy topic holds unread instructions (:mod:`consumers.partners.legacy`).
Started before its broker, it waits for it; repeated log lines are limited
(:func:`~schemas.runtime.observability.configure_logging`).
"""

from __future__ import annotations

import logging
import os
import signal
import sys
from collections.abc import Mapping
from types import FrameType

from consumers.partners.config import load_config
from consumers.partners.legacy import LegacyBacklogError
from consumers.partners.process import PartnerSinkProcess
from consumers.partners.settings import PREFIX, PartnerSinkSettings
from schemas.errors import ConfigError
from schemas.runtime.kafka import KafkaSettings
from schemas.runtime.observability import configure_logging
from schemas.runtime.settings import load

log = logging.getLogger("consumers.partners")


def main(env: Mapping[str, str] | None = None) -> int:
    """Run the partner-sharing sink; the process exit status."""
    env = os.environ if env is None else env
    try:
        kafka = KafkaSettings.from_env(env)
        settings = load(PartnerSinkSettings, PREFIX, env)
        config = load_config(settings.config, env)
    except ConfigError as exc:
        configure_logging()
        log.error("invalid setting %s: %s", exc.key, exc.reason)
        return 2
    configure_logging(settings.log_level)
    process = PartnerSinkProcess(kafka, settings, config)

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        log.info("signal %d: stopping every partner after its instruction in flight", signum)
        process.stop()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    log.info("partners: %s", ", ".join(process.runners))
    try:
        process.run()
    except LegacyBacklogError as exc:
        log.error("not starting: %s", exc)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
