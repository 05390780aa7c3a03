"""``python -m consumers.marketing``: run the marketing sink until SIGTERM.

``python -m consumers.marketing export --out suppressions.csv`` writes the
suppression export instead (``--out -`` for stdout). Settings: ``KAFKA_BOOTSTRAP``,
``SCHEMA_REGISTRY_URL``, ``CONSENT_RELAY_TOPIC_PREFIX`` and ``MARKETING_SINK_*``.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from consumers.marketing.export import write_csv
from consumers.marketing.settings import PREFIX, MarketingSettings
from consumers.marketing.sink import MarketingSink, open_store
from consumers.runner import run_sink
from schemas.errors import ConfigError
from schemas.runtime.settings import load
from schemas.taxonomy import SinkFamily

log = logging.getLogger("consumers.marketing")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the sink, or the export subcommand; returns the exit status."""
    parser = argparse.ArgumentParser(prog="python -m consumers.marketing")
    commands = parser.add_subparsers(dest="command")
    export = commands.add_parser("export", help="write the suppression CSV export")
    export.add_argument("--out", required=True, help="file to write, or - for stdout")
    args = parser.parse_args(argv)
    if args.command == "export":
        return _export(args.out)
    return run_sink(
        MarketingSink.from_settings, MarketingSettings, prefix=PREFIX, family=SinkFamily.MARKETING
    )


def _export(out: str) -> int:
    logging.basicConfig(level=logging.INFO)
    try:
        settings = load(MarketingSettings, PREFIX)
    except ConfigError as exc:
        log.error("invalid setting %s: %s", exc.key, exc.reason)
        return 2
    store = open_store(settings)
    try:
        if out == "-":
            count = write_csv(store, sys.stdout)
        else:
            with open(out, "w", newline="", encoding="utf-8") as handle:
                count = write_csv(store, handle)
    finally:
        store.close()
    log.info("exported %d suppression row(s)", count)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
