"""``consent-relay``: publish, inspect and operate Consent Relay from a shell.

Subcommands: ``publish`` (any consent event, from flags or JSON), ``import`` (bulk CSV /
JSON Lines, resumable), ``redrive`` (dead letters back to their topics), ``state`` (a
subject's current consent), ``propagation`` (how far an event got), ``tail`` (a topic,
decoded), ``schemas register``, ``topics create``, ``unsubscribe-link``, ``token-hash``
and ``run <process>`` (exec one of the relay's processes).

Kafka comes from ``KAFKA_BOOTSTRAP``, ``SCHEMA_REGISTRY_URL``, ``CONSENT_RELAY_TOPIC_PREFIX``.
Results go to stdout (JSON), diagnostics and progress to stderr. Exit status: 0 done,
1 failed, 2 bad input or configuration, 3 import finished with rejected rows.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Final

from producers import drafts, propagation
from producers.bulk import RowError, run_import
from producers.client import ConsentClient
from producers.envelope import EnvelopeDefaults
from producers.gateway import unsubscribe
from producers.gateway.tokens import token_hash
from producers.jsonout import dumps, record_json
from producers.progress import Progress
from producers.publisher import Publisher
from producers.redrive import DEFAULT_GROUP, redrive
from producers.state_view import current_state
from producers.tail import tail
from schemas.errors import ConfigError, ConsentRelayError, ValidationError
from schemas.events import DeadLettered
from schemas.registry import register_all
from schemas.runtime.admin import ensure_topics
from schemas.runtime.kafka import KafkaSettings
from schemas.runtime.observability import configure_logging
from schemas.taxonomy import Source

log = logging.getLogger("consent-relay")

EXIT_OK: Final = 0
EXIT_FAILED: Final = 1
EXIT_INVALID: Final = 2
EXIT_REJECTED_ROWS: Final = 3

PROCESSES: Final = {
    "stream": "streams",
    "gate": "streams.gate",
    "marketing-sink": "consumers.marketing",
    "analytics-sink": "consumers.analytics",
    "partner-sink": "consumers.partners",
    "gateway": "producers.gateway",
}
"""``consent-relay run <name>`` → the module ``python -m`` runs."""

LIST_FIELDS: Final = ("purposes", "recipients", "channels", "granted", "refused")
TEXT_FIELDS: Final = (
    "event_id",
    "occurred_at",
    "recorded_at",
    "source",
    "regime",
    "policy_version",
    "evidence_ref",
    "choice",
    "expires_at",
    "right",
    "requested_by",
    "device_id",
)


def out(text: str) -> None:
    """One line of results on stdout."""
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def err(text: str) -> None:
    """One line of diagnostics on stderr."""
    sys.stderr.write(text + "\n")
    sys.stderr.flush()


# ----------------------------------------------------------------------------- publish


def publish_draft(args: argparse.Namespace) -> dict[str, Any]:
    """The JSON draft ``publish`` was given: ``--json`` first, then flags on top."""
    draft: dict[str, Any] = {}
    if args.json is not None:
        text = args.json
        if text == "-":
            text = sys.stdin.read()
        elif text.startswith("@"):
            text = Path(text[1:]).read_text()
        try:
            loaded = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValidationError("--json", f"not valid JSON: {exc}") from exc
        if not isinstance(loaded, dict):
            raise ValidationError("--json", "must be a JSON object")
        draft.update(loaded)
    if args.type is not None:
        draft["type"] = args.type
    for name in TEXT_FIELDS:
        value = getattr(args, name)
        if value is not None:
            draft[name] = value
    for name in LIST_FIELDS:
        value = getattr(args, name)
        if value is not None:
            draft[name] = [v.strip() for v in value.split(",") if v.strip()]
    if args.subject is not None:
        draft["subject"] = {"id": args.subject, "kind": args.subject_kind}
    elif "subject" not in draft and draft.get("type") == "CookiePreferencesSet":
        device = draft.get("device_id")
        if isinstance(device, str):
            draft["subject"] = {"id": device, "kind": "DEVICE"}
    return draft


def cmd_publish(args: argparse.Namespace) -> int:

    defaults = EnvelopeDefaults(source=Source(args.default_source))
    event = drafts.build_typed(publish_draft(args), defaults)
    with ConsentClient(KafkaSettings.from_env(), delivery_timeout_s=args.timeout) as client:
        published = client.publish(event)
    out(
        dumps(
            {
                "event_id": published.event_id,
                "type": published.event_type,
                "topic": published.topic,
                "partition": published.partition,
                "offset": published.offset,
            }
        )
    )
    return EXIT_OK


# ----------------------------------------------------------------------------- bulk import


def cmd_import(args: argparse.Namespace) -> int:
    path: Path = args.file
    checkpoint = args.checkpoint or path.with_name(path.name + ".checkpoint.json")
    errors_out = args.errors.open("a") if args.errors else None

    def on_reject(error: RowError) -> None:
        err(f"rejected {error}")
        if errors_out is not None:
            errors_out.write(
                json.dumps({"line": error.line, "field": error.field, "reason": error.reason})
                + "\n"
            )

    progress = None if args.quiet else Progress("import", unit="B")
    try:
        with ConsentClient(KafkaSettings.from_env(), delivery_timeout_s=args.timeout) as client:
            summary = run_import(
                path,
                client,
                checkpoint_path=checkpoint,
                fmt=args.format,
                import_id=args.import_id,
                batch_size=args.batch_size,
                on_reject=on_reject,
                progress=progress,
            )
    finally:
        if errors_out is not None:
            errors_out.close()
    out(
        dumps(
            {
                "published": summary.published,
                "rejected": len(summary.rejected),
                "resumed_after_line": summary.resumed_after_line,
                "last_line": summary.last_line,
                "checkpoint": str(checkpoint),
            }
        )
    )
    return EXIT_REJECTED_ROWS if summary.rejected else EXIT_OK


# ----------------------------------------------------------------------------- re-drive


def cmd_redrive(args: argparse.Namespace) -> int:

    settings = KafkaSettings.from_env()
    publisher = Publisher(settings, delivery_timeout_s=args.timeout)

    def on_item(dead: DeadLettered | None, what: str) -> None:
        if args.verbose:
            ident = dead.dead_letter_id if dead is not None else "?"
            err(f"dead letter {ident}: {what}")

    try:
        summary = redrive(
            settings,
            publisher,
            group=args.group,
            stage=args.stage,
            dry_run=args.dry_run,
            batch_size=args.batch_size,
            progress=None if args.quiet else Progress("redrive", unit="msg"),
            on_item=on_item,
        )
    finally:
        publisher.close()
    out(dumps({"redriven": summary.redriven, "skipped": summary.skipped, "dry_run": args.dry_run}))
    return EXIT_OK


# ----------------------------------------------------------------------------- inspect


def cmd_state(args: argparse.Namespace) -> int:

    state = current_state(KafkaSettings.from_env(), args.subject, timeout=args.timeout)
    if state is None:
        err("no consent state is recorded for this subject")
        return EXIT_FAILED
    out(record_json(state, pretty=True))
    return EXIT_OK


def cmd_propagation(args: argparse.Namespace) -> int:

    if (args.event_id is None) == (args.subject is None):
        raise ValidationError("event_id", "give an event id or --subject, not both or neither")
    worker = propagation.StreamWorkerSettings.from_env()
    base = args.streams_url or worker.url
    url = (
        propagation.event_url(base, args.event_id)
        if args.event_id is not None
        else propagation.subject_url(base, args.subject)
    )
    status, body = propagation.fetch(url, timeout=args.timeout, token=worker.token)
    out(dumps(body, pretty=True) if not isinstance(body, str) else body)
    if status == 200:
        return EXIT_OK
    err(f"the stream worker answered HTTP {status}")
    if status == 401:
        err("set STREAM_WORKER_TOKEN to the worker's STREAMS_API_TOKEN")
    return EXIT_FAILED


def cmd_tail(args: argparse.Namespace) -> int:

    tail(
        KafkaSettings.from_env(),
        args.topic,
        out,
        from_beginning=args.from_beginning,
        max_messages=args.max,
        idle_timeout=args.idle_timeout,
    )
    return EXIT_OK


# ----------------------------------------------------------------------------- operate


def cmd_schemas_register(_args: argparse.Namespace) -> int:

    with KafkaSettings.from_env().registry_client() as registry:
        out(dumps(register_all(registry), pretty=True))
    return EXIT_OK


def cmd_topics_create(_args: argparse.Namespace) -> int:

    settings = KafkaSettings.from_env()
    created = ensure_topics(settings)
    out(dumps({"created": created, "all": [s.name for s in settings.topics.all()]}, pretty=True))
    return EXIT_OK


def cmd_unsubscribe_link(args: argparse.Namespace) -> int:

    key = os.environ.get("GATEWAY_UNSUBSCRIBE_KEY", "")
    if not key:
        raise ConfigError("GATEWAY_UNSUBSCRIBE_KEY", "is required to sign links")
    out(unsubscribe.link(args.base_url, key, args.subject))
    return EXIT_OK


def cmd_token_hash(_args: argparse.Namespace) -> int:

    token = sys.stdin.readline().strip()
    if not token:
        raise ValidationError("token", "give the token on standard input")
    out(token_hash(token))
    return EXIT_OK


def process_argv(name: str, extra: Sequence[str]) -> list[str]:
    """The command line ``consent-relay run <name>`` executes."""
    return [sys.executable, "-m", PROCESSES[name], *extra]


def cmd_run(args: argparse.Namespace) -> int:
    argv = process_argv(args.process, [a for a in args.args if a != "--"])
    os.execv(argv[0], argv)  # noqa: S606 - replaces this process; fixed interpreter and module
    return EXIT_FAILED  # pragma: no cover - execv does not return


# ----------------------------------------------------------------------------- parser


def _add_publish(commands: Any) -> None:
    publish = commands.add_parser(
        "publish",
        help="publish one consent event (flags or --json); waits for the broker's ack",
        description="Fields not given get defaults: a new event_id, now, source API, "
        "regime GDPR, policy V2019_07_15. List fields take comma-separated values.",
    )
    publish.add_argument("type", nargs="?", choices=sorted(drafts.EVENT_TYPES))
    publish.add_argument("--json", help="the event as JSON text, @file, or - for stdin")
    publish.add_argument("--subject", help="subject id")
    publish.add_argument("--subject-kind", default="ACCOUNT", choices=["ACCOUNT", "DEVICE"])
    for name in TEXT_FIELDS:
        publish.add_argument("--" + name.replace("_", "-"), dest=name)
    for name in LIST_FIELDS:
        publish.add_argument("--" + name, dest=name, metavar="A,B")
    publish.add_argument(
        "--default-source", default=Source.API.value, choices=[s.value for s in Source]
    )
    publish.add_argument("--timeout", type=float, default=30.0, help="delivery bound (s)")
    publish.set_defaults(handler=cmd_publish)


def _add_import(commands: Any) -> None:
    bulk = commands.add_parser(
        "import", help="publish a CSV/JSONL file of historical consents, resumably"
    )
    bulk.add_argument("file", type=Path)
    bulk.add_argument("--format", choices=["csv", "jsonl"])
    bulk.add_argument("--checkpoint", type=Path, help="default: <file>.checkpoint.json")
    bulk.add_argument("--errors", type=Path, help="append rejected rows here as JSON lines")
    bulk.add_argument("--import-id", help="namespace of derived event ids (default: file name)")
    bulk.add_argument("--batch-size", type=int, default=500)
    bulk.add_argument("--timeout", type=float, default=30.0, help="delivery bound (s)")
    bulk.add_argument("--quiet", action="store_true", help="no progress bar")
    bulk.set_defaults(handler=cmd_import)


def _add_redrive(commands: Any) -> None:

    again = commands.add_parser(
        "redrive", help="re-publish dead letters to their source topics after a fix"
    )
    again.add_argument("--stage", help="only dead letters of this stage (e.g. stream.intake)")
    again.add_argument("--group", default=DEFAULT_GROUP, help="checkpoint consumer group")
    again.add_argument("--dry-run", action="store_true", help="list, publish nothing")
    again.add_argument("--batch-size", type=int, default=200)
    again.add_argument("--timeout", type=float, default=30.0, help="delivery bound (s)")
    again.add_argument("--quiet", action="store_true", help="no progress bar")
    again.set_defaults(handler=cmd_redrive)


def build_parser() -> argparse.ArgumentParser:
    """The ``consent-relay`` argument parser."""
    parser = argparse.ArgumentParser(
        prog="consent-relay", description="Publish, inspect and operate Consent Relay."
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log more to stderr")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_publish(commands)
    _add_import(commands)
    _add_redrive(commands)

    state_cmd = commands.add_parser("state", help="a subject's current consent (compacted topic)")
    state_cmd.add_argument("subject", help="subject id")
    state_cmd.add_argument("--timeout", type=float, default=60.0)
    state_cmd.set_defaults(handler=cmd_state)

    prop = commands.add_parser("propagation", help="an event's propagation status")
    prop.add_argument("event_id", nargs="?")
    prop.add_argument("--subject", help="every event of this subject instead")
    prop.add_argument("--streams-url", help="default: $STREAM_WORKER_URL or :6066")
    prop.add_argument("--timeout", type=float, default=10.0)
    prop.set_defaults(handler=cmd_propagation)

    tail_cmd = commands.add_parser("tail", help="print a topic's messages, decoded, as JSON lines")
    tail_cmd.add_argument("topic", help="consent, receipts, propagated, state, dead-letters, ...")
    tail_cmd.add_argument("--from-beginning", action="store_true")
    tail_cmd.add_argument("--max", type=int, help="stop after this many messages")
    tail_cmd.add_argument("--idle-timeout", type=float, help="stop after this long without one")
    tail_cmd.set_defaults(handler=cmd_tail)

    schemas = commands.add_parser("schemas", help="the contract in the schema registry")
    schema_commands = schemas.add_subparsers(dest="schemas_command", required=True)
    schema_commands.add_parser("register", help="register every shipped schema").set_defaults(
        handler=cmd_schemas_register
    )

    topics = commands.add_parser("topics", help="the relay's Kafka topics")
    topic_commands = topics.add_subparsers(dest="topics_command", required=True)
    topic_commands.add_parser("create", help="create missing topics").set_defaults(
        handler=cmd_topics_create
    )

    link = commands.add_parser(
        "unsubscribe-link", help="a signed one-click unsubscribe link (GATEWAY_UNSUBSCRIBE_KEY)"
    )
    link.add_argument("subject", help="subject id")
    link.add_argument("--base-url", default="http://127.0.0.1:8080")
    link.set_defaults(handler=cmd_unsubscribe_link)

    commands.add_parser(
        "token-hash", help="the sha256: form of a gateway token read from stdin"
    ).set_defaults(handler=cmd_token_hash)

    run = commands.add_parser("run", help="run one of the relay's processes")
    run.add_argument("process", choices=sorted(PROCESSES))
    run.add_argument("args", nargs=argparse.REMAINDER, help="passed to the process")
    run.set_defaults(handler=cmd_run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; returns the exit status."""
    args = build_parser().parse_args(argv)
    configure_logging(
        logging.INFO if args.verbose else logging.WARNING, line="consent-relay: %(message)s"
    )
    logging.getLogger("httpx2").setLevel(logging.WARNING)
    handler: Callable[[argparse.Namespace], int] = args.handler
    try:
        return handler(args)
    except ConfigError as exc:
        err(f"consent-relay: configuration: {exc}")
        return EXIT_INVALID
    except ValidationError as exc:
        err(f"consent-relay: invalid: {exc.field_name}: {exc.reason}")
        return EXIT_INVALID
    except ConsentRelayError as exc:
        err(f"consent-relay: failed: {exc}")
        return EXIT_FAILED
    except OSError as exc:
        err(f"consent-relay: failed: {exc}")
        return EXIT_FAILED
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
