"""``python -m consumers.partners``: run every configured partner's pipeline until SIGTERM.

Reads :class:`~schemas.kafka.KafkaSettings`, ``PARTNER_SINK_*``
(:mod:`consumers.partners.settings`) and the partners file named by
``PARTNER_SINK_CONFIG`` (:mod:`consumers.partners.config`); serves /metrics on
``PARTNER_SINK_HTTP_PORT`` (default 8093). Exits 2 naming the bad setting or entry.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
from collections.abc import Mapping
from types import FrameType

from consumers.partners.config import load_config
from consumers.partners.process import PartnerSinkProcess
from consumers.partners.settings import PREFIX, PartnerSinkSettings
from schemas.errors import ConfigError
from schemas.kafka import KafkaSettings
from schemas.settings import load

log = logging.getLogger("consumers.partners")


def main(env: Mapping[str, str] | None = None) -> int:
    """Run the partner-sharing sink; the process exit status."""
    env = os.environ if env is None else env
    try:
        kafka = KafkaSettings.from_env(env)
        settings = load(PartnerSinkSettings, PREFIX, env)
        config = load_config(settings.config, env)
    except ConfigError as exc:
        logging.basicConfig(level=logging.INFO)
        log.error("invalid setting %s: %s", exc.key, exc.reason)
        return 2
    logging.basicConfig(
        level=settings.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
    )
    process = PartnerSinkProcess(kafka, settings, config)

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        log.info("signal %d: stopping every partner after its instruction in flight", signum)
        process.stop()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    log.info("partners: %s", ", ".join(process.runners))
    process.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
