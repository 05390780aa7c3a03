"""The partners file: each partner's webhook endpoint, secret and limits, validated at start.

``PARTNER_SINK_CONFIG`` names a TOML (``.toml``) or JSON (``.json``) file::

    pseudonym_key = "env:PARTNER_PSEUDONYM_KEY"   # master key for per-partner pseudonyms
    identity_map = "partner-identities.sqlite"    # which subjects each partner knows

    [partners.criteo]
    url = "https://hooks.criteo.example/consent"
    secret = "env:CRITEO_WEBHOOK_SECRET"          # "env:NAME" reads the variable NAME
    timeout_seconds = 5.0                         # optional, default 5
    known_subjects = "mapped"                     # "mapped" (identity map) or "all"
    failure_threshold = 5                         # breaker: failures before it opens
    reset_seconds = 5.0                           # breaker: seconds before a probe
    pseudonym_key = "env:CRITEO_PSEUDONYM_KEY"    # optional, overrides the derived key
    batch_size = 500                              # optional, default 1: instructions per POST

``batch_size`` 1 sends today's one-instruction body; more sends up to that many
instructions in one signed ``{"instructions": [...]}`` body (see
``consumers/partners/WEBHOOK.md``), for partners whose API takes batches.
Relative paths are relative to the file. Any mistake raises a
:class:`~schemas.errors.ConfigError` whose key names the entry, e.g.
``partners.criteo.url``; secrets never appear in messages or reprs.
"""

from __future__ import annotations

import json
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from consumers.partners.pseudonym import partner_key
from schemas.errors import ConfigError
from schemas.taxonomy import PARTNER_DESTINATIONS

MIN_SECRET_LENGTH = 16
MAX_BATCH_SIZE = 1000
"""Most instructions in one POST: a 1000-instruction body is ~400 KB, still a modest request."""
_ENV_REF = "env:"
_TOP_KEYS = {"pseudonym_key", "identity_map", "partners"}
_PARTNER_KEYS = {
    "url",
    "secret",
    "timeout_seconds",
    "known_subjects",
    "failure_threshold",
    "reset_seconds",
    "pseudonym_key",
    "batch_size",
}


class KnownSubjects(StrEnum):
    """Which subjects a partner has an identifier for."""

    MAPPED = "mapped"
    """Only subjects listed for the partner in the identity map."""
    ALL = "all"
    """Every subject (the partner was sent every pseudonym)."""


@dataclass(frozen=True, slots=True)
class PartnerConfig:
    """One partner's webhook: where, how it is signed, how long to wait."""

    name: str
    url: str
    secret: bytes = field(repr=False)
    pseudonym_key: bytes = field(repr=False)
    timeout_seconds: float = 5.0
    known_subjects: KnownSubjects = KnownSubjects.MAPPED
    failure_threshold: int = 5
    reset_seconds: float = 5.0
    batch_size: int = 1
    """Most instructions per POST; 1 keeps the one-instruction body."""


@dataclass(frozen=True, slots=True)
class PartnersConfig:
    """Every configured partner, and where the identity map lives."""

    partners: tuple[PartnerConfig, ...]
    identity_map: Path | None = None

    def partner(self, name: str) -> PartnerConfig:
        """The partner called ``name``; KeyError if it is not configured."""
        for partner in self.partners:
            if partner.name == name:
                return partner
        raise KeyError(name)


def load_config(path: Path, env: Mapping[str, str] | None = None) -> PartnersConfig:
    """Read and validate the partners file at ``path``."""
    env = os.environ if env is None else env
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError("PARTNER_SINK_CONFIG", f"cannot read {path}: {exc.strerror}") from exc
    try:
        if path.suffix == ".toml":
            raw: Any = tomllib.loads(text)
        elif path.suffix == ".json":
            raw = json.loads(text)
        else:
            raise ConfigError("PARTNER_SINK_CONFIG", f"{path} must end in .toml or .json")
    except (tomllib.TOMLDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError("PARTNER_SINK_CONFIG", f"{path} is not valid: {exc}") from exc
    return parse_config(raw, env, base=path.parent)


def parse_config(raw: Any, env: Mapping[str, str], base: Path) -> PartnersConfig:
    """Validate an already parsed partners document."""
    table = _table(raw, "<top level>")
    _no_unknown(table, _TOP_KEYS, "")
    master = (
        _secret(table["pseudonym_key"], env, "pseudonym_key") if "pseudonym_key" in table else None
    )
    partners_table = _table(table.get("partners"), "partners")
    if not partners_table:
        raise ConfigError("partners", "at least one partner must be configured")
    partners = tuple(
        _partner(name, entry, env, master) for name, entry in sorted(partners_table.items())
    )
    identity_map = None
    if "identity_map" in table:
        identity_map = base / _string(table["identity_map"], "identity_map")
    mapped = [p.name for p in partners if p.known_subjects is KnownSubjects.MAPPED]
    if mapped and identity_map is None:
        raise ConfigError(
            f"partners.{mapped[0]}.known_subjects",
            "is 'mapped' but no identity_map is configured",
        )
    return PartnersConfig(partners, identity_map)


def _partner(name: str, raw: Any, env: Mapping[str, str], master: bytes | None) -> PartnerConfig:
    where = f"partners.{name}"
    if name not in PARTNER_DESTINATIONS:
        raise ConfigError(
            where, f"is not a partner destination (known: {', '.join(PARTNER_DESTINATIONS)})"
        )
    entry = _table(raw, where)
    _no_unknown(entry, _PARTNER_KEYS, where + ".")
    for required in ("url", "secret"):
        if required not in entry:
            raise ConfigError(f"{where}.{required}", "is required")
    url = _string(entry["url"], f"{where}.url")
    parsed = urlparse(url)
    if parsed.scheme not in {"http", "https"} or not parsed.hostname:
        raise ConfigError(f"{where}.url", f"{url!r} is not an http(s) URL")
    if "pseudonym_key" in entry:
        key = _secret(entry["pseudonym_key"], env, f"{where}.pseudonym_key")
    elif master is not None:
        key = partner_key(master, name)
    else:
        raise ConfigError(
            f"{where}.pseudonym_key", "is required when no top-level pseudonym_key is set"
        )
    known = _string(entry.get("known_subjects", KnownSubjects.MAPPED), f"{where}.known_subjects")
    if known not in {k.value for k in KnownSubjects}:
        raise ConfigError(f"{where}.known_subjects", f"{known!r} is not 'mapped' or 'all'")
    return PartnerConfig(
        name=name,
        url=url,
        secret=_secret(entry["secret"], env, f"{where}.secret"),
        pseudonym_key=key,
        timeout_seconds=_positive(entry.get("timeout_seconds", 5.0), f"{where}.timeout_seconds"),
        known_subjects=KnownSubjects(known),
        failure_threshold=int(
            _positive(entry.get("failure_threshold", 5), f"{where}.failure_threshold", whole=True)
        ),
        reset_seconds=_positive(entry.get("reset_seconds", 5.0), f"{where}.reset_seconds"),
        batch_size=_whole_between(
            entry.get("batch_size", 1), f"{where}.batch_size", 1, MAX_BATCH_SIZE
        ),
    )


def _table(raw: Any, where: str) -> dict[str, Any]:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ConfigError(where, "must be a table/object")
    return raw


def _no_unknown(table: Mapping[str, Any], known: set[str], prefix: str) -> None:
    unknown = sorted(set(table) - known)
    if unknown:
        raise ConfigError(prefix + unknown[0], f"unknown key (known: {', '.join(sorted(known))})")


def _string(raw: Any, where: str) -> str:
    if not isinstance(raw, str) or not raw:
        raise ConfigError(where, "must be a non-empty string")
    return raw


def _positive(raw: Any, where: str, *, whole: bool = False) -> float:
    number = isinstance(raw, int) if whole else isinstance(raw, int | float)
    if isinstance(raw, bool) or not number or raw <= 0:
        kind = "positive integer" if whole else "positive number"
        raise ConfigError(where, f"must be a {kind}, got {raw!r}")
    return float(raw)


def _whole_between(raw: Any, where: str, low: int, high: int) -> int:
    if isinstance(raw, bool) or not isinstance(raw, int) or not low <= raw <= high:
        raise ConfigError(where, f"must be an integer from {low} to {high}, got {raw!r}")
    return raw


def _secret(raw: Any, env: Mapping[str, str], where: str) -> bytes:
    text = _string(raw, where)
    if text.startswith(_ENV_REF):
        name = text[len(_ENV_REF) :]
        if name not in env or not env[name]:
            raise ConfigError(where, f"refers to environment variable {name}, which is not set")
        text = env[name]
    if len(text) < MIN_SECRET_LENGTH:
        # Never echo the secret itself.
        raise ConfigError(where, f"must be at least {MIN_SECRET_LENGTH} characters")
    return text.encode("utf-8")
