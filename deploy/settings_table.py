"""Writes ``docs/settings.md``: every setting of every process, from the settings models.

``python -m deploy.settings_table`` regenerates the file; ``--check`` exits 1 when the
committed one is stale (``tests/unit/deploy/test_settings_table.py`` does the same). One
table: the process, the environment variable, its default and its meaning, the meaning
being the field's ``description``. A secret's default is never shown. The Kafka
coordinates every process shares (``KAFKA_BOOTSTRAP``, ``SCHEMA_REGISTRY_URL``, …) come
first, from :class:`schemas.runtime.kafka.KafkaSettings` and the client authentication
it holds.
"""

from __future__ import annotations

import argparse
import sys
from enum import Enum
from pathlib import Path
from typing import Final

from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from consumers.analytics.settings import AnalyticsSinkSettings
from consumers.marketing.settings import MarketingSettings
from consumers.partners.settings import PartnerSinkSettings
from deploy.demo import DemoSettings
from producers.gateway.settings import GatewaySettings
from producers.propagation import StreamWorkerSettings
from schemas.runtime.kafka import KafkaSettings
from schemas.runtime.settings import Settings, SharedSettings, holds_secret, variable_of
from streams.config import StreamSettings
from streams.gate.settings import GateSettings

ROOT: Final = Path(__file__).resolve().parent.parent
TARGET: Final = ROOT / "docs" / "settings.md"
COMMAND: Final = "python -m deploy.settings_table"

PROCESSES: Final[tuple[tuple[str, type[Settings]], ...]] = (
    ("stream worker (`python -m streams`)", StreamSettings),
    ("consent gate (`python -m streams.gate`)", GateSettings),
    ("marketing sink (`python -m consumers.marketing`)", MarketingSettings),
    ("analytics sink (`python -m consumers.analytics`)", AnalyticsSinkSettings),
    ("partner sink (`python -m consumers.partners`)", PartnerSinkSettings),
    ("HTTP gateway (`python -m producers.gateway`)", GatewaySettings),
    ("CLI (`consent-relay propagation`)", StreamWorkerSettings),
    ("demo (`deploy/demo.py`, flag `--<name>` too)", DemoSettings),
)

HEADER: Final = f"""# Settings

Every process reads its settings from environment variables, validated at start: an
invalid value, a missing required one or an unknown variable under the process's prefix
stops it with a message naming the variable (and, for a misspelling, the one meant).
Generated from the settings models by `{COMMAND}`; do not edit by hand.

| process | variable | default | meaning |
|---|---|---|---|
"""


def default_text(cls: type[BaseModel], name: str, field: FieldInfo) -> str:
    """How the table shows a field's default."""
    if field.default is PydanticUndefined:
        return "required"
    if name in getattr(cls, "secret_fields", ()) or holds_secret(field):
        return "unset" if field.default is None else "(secret)"
    value = field.default
    if value is None:
        return "unset"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, Enum):
        value = value.value
    return f"`{value}`" if str(value) else "empty"


def cell(text: str) -> str:
    """Table-safe text on one line."""
    return " ".join(text.split()).replace("|", "\\|")


def shared_rows(cls: type[SharedSettings] = KafkaSettings) -> list[tuple[str, str, str, str]]:
    """The Kafka coordinates every process reads, a nested group of them (the client's
    authentication) in its place."""
    table = []
    for name, field in cls.model_fields.items():
        group = field.annotation
        if isinstance(group, type) and issubclass(group, SharedSettings):
            table.extend(shared_rows(group))
            continue
        meaning = cell(field.description or "")
        variable = variable_of(cls, name)
        table.append(("every process", f"`{variable}`", default_text(cls, name, field), meaning))
    return table


def rows() -> list[tuple[str, str, str, str]]:
    """(process, variable, default, meaning) of every setting."""
    table = shared_rows()
    for process, cls in PROCESSES:
        for name, field in cls.model_fields.items():
            default = default_text(cls, name, field)
            meaning = cell(field.description or "")
            table.append((process, f"`{cls.variable(name)}`", default, meaning))
    return table


def render() -> str:
    """The whole file."""
    return HEADER + "".join(f"| {' | '.join(row)} |\n" for row in rows())


def main(argv: list[str] | None = None) -> int:
    """Write the table, or with ``--check`` say whether the committed one is current."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true", help="exit 1 if the file is stale")
    args = parser.parse_args(argv)
    text = render()
    if args.check:
        current = TARGET.read_text(encoding="utf-8") if TARGET.exists() else ""
        if current != text:
            sys.stderr.write(f"{TARGET.relative_to(ROOT)} is stale: run `{COMMAND}`\n")
            return 1
        return 0
    TARGET.parent.mkdir(parents=True, exist_ok=True)
    TARGET.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
