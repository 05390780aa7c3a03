"""The stream processor's one entrypoint.

``python -m streams`` or ``python -m streams worker`` runs a worker: settings are read
from the environment (``KAFKA_BOOTSTRAP``, ``SCHEMA_REGISTRY_URL``,
``CONSENT_RELAY_TOPIC_PREFIX``, ``CONSENT_RELAY_PARTITIONS`` and ``STREAMS_*``) and
validated before anything starts; SIGTERM finishes the batch in flight, commits and
stops. ``python -m streams propagation --event-id ID | --subject ID`` prints what the
propagation changelogs say, without a worker. ``python -m streams upgrade-state`` copies
the states of a deployment's old state changelog to the state topic, once, between
stopping the old workers and starting new ones (:mod:`streams.intake.upgrade_state`).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence

from schemas.errors import ConsentRelayError
from schemas.runtime.kafka import KafkaSettings
from schemas.runtime.observability import configure_logging, limit_repeats
from streams.config import StreamSettings


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command in ``argv`` (default: a worker); the process exit code."""
    parser = argparse.ArgumentParser(prog="python -m streams")
    commands = parser.add_subparsers(dest="command")
    commands.add_parser("worker", help="run a stream worker (the default)")
    ask = commands.add_parser("propagation", help="show propagation from the changelogs")
    which = ask.add_mutually_exclusive_group(required=True)
    which.add_argument("--event-id")
    which.add_argument("--subject")
    commands.add_parser(
        "upgrade-state", help="copy the old state changelog to the state topic (once)"
    )
    args = parser.parse_args(argv)
    try:
        kafka = KafkaSettings.from_env()
        settings = StreamSettings.from_env()
        if args.command == "propagation":
            return _propagation(kafka, settings, args.event_id, args.subject)
        if args.command == "upgrade-state":
            return _upgrade_state(kafka, settings)
        return _worker(kafka, settings)
    except ConsentRelayError as exc:
        sys.stderr.write(f"streams: {exc}\n")
        return 2


def _worker(kafka: KafkaSettings, settings: StreamSettings) -> int:
    import faust  # noqa: PLC0415 - keeps `propagation` free of Faust's start-up

    from streams.app import build  # noqa: PLC0415

    class Worker(faust.Worker):
        def on_setup_root_logger(self, logger: logging.Logger, level: int) -> None:
            super().on_setup_root_logger(logger, level)
            # While the broker is away aiokafka logs the same errors thousands of
            # times a second: a few of each kind per period, and a count, are enough.
            limit_repeats(logger)

    # Until Faust sets up logging: build() may wait for the broker, saying so.
    configure_logging(settings.log_level)
    stream_app = build(kafka, settings)
    worker = Worker(stream_app.app, loglevel=settings.log_level.lower(), quiet=True)
    worker.execute_from_commandline()
    return 0  # pragma: no cover - execute_from_commandline exits


def _propagation(
    kafka: KafkaSettings, settings: StreamSettings, event_id: str | None, subject: str | None
) -> int:
    from streams.proof import query  # noqa: PLC0415

    pending, done = query.read_changelogs(kafka, settings.faust_app_id(kafka.topic_prefix))
    answers = list(query.find(pending, done, event_id=event_id, subject=subject))
    sys.stdout.write(json.dumps(answers, indent=2) + "\n")
    return 0 if answers else 1


def _upgrade_state(kafka: KafkaSettings, settings: StreamSettings) -> int:
    from streams.intake.upgrade_state import upgrade  # noqa: PLC0415

    configure_logging(settings.log_level)
    done = upgrade(kafka, settings.faust_app_id(kafka.topic_prefix))
    sys.stdout.write(f"{done.subjects} subject(s) copied from {done.source} to the state topic\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
