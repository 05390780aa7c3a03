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

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlparse

from pydantic import (
    AfterValidator,
    Field,
    StrictStr,
    ValidationInfo,
    field_validator,
    model_validator,
)

from consumers.partners.pseudonym import partner_key
from schemas.errors import ConfigError
from schemas.runtime.config_files import FileModel, read_document, refusal, validated, worded
from schemas.taxonomy import PARTNER_DESTINATIONS

MIN_SECRET_LENGTH = 16
MAX_BATCH_SIZE = 1000
"""Most instructions in one POST: a 1000-instruction body is ~400 KB, still a modest request."""
_ENV_REF = "env:"


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

    def fail(reason: str) -> ConfigError:
        return ConfigError("PARTNER_SINK_CONFIG", reason)

    if path.suffix not in {".toml", ".json"}:
        raise fail(f"{path} must end in .toml or .json")
    return parse_config(read_document(path, fail), env, base=path.parent)


def parse_config(raw: Any, env: Mapping[str, str], base: Path) -> PartnersConfig:
    """Validate an already parsed partners document."""
    model = validated(PartnersFile, raw, context={"env": env})
    master = model.pseudonym_key
    return PartnersConfig(
        tuple(
            PartnerConfig(
                name=name,
                url=entry.url,
                secret=entry.secret.encode("utf-8"),
                pseudonym_key=(
                    entry.pseudonym_key.encode("utf-8")
                    if entry.pseudonym_key is not None
                    else partner_key(str(master).encode("utf-8"), name)
                ),
                timeout_seconds=entry.timeout_seconds,
                known_subjects=entry.known_subjects,
                failure_threshold=entry.failure_threshold,
                reset_seconds=entry.reset_seconds,
                batch_size=entry.batch_size,
            )
            for name, entry in model.partners.items()
        ),
        None if model.identity_map is None else base / model.identity_map,
    )


def _resolved(text: str, info: ValidationInfo) -> str:
    """A secret: the text, or the variable an ``env:NAME`` text names; never echoed."""
    if text.startswith(_ENV_REF):
        name = text[len(_ENV_REF) :]
        env = info.context["env"] if info.context else {}
        if not env.get(name):
            raise ValueError(f"refers to environment variable {name}, which is not set")
        text = env[name]
    if len(text) < MIN_SECRET_LENGTH:
        raise ValueError(f"must be at least {MIN_SECRET_LENGTH} characters")
    return text


def _http(url: str) -> str:
    parsed = urlparse(url)
    if parsed.scheme not in {"http", "https"} or not parsed.hostname:
        raise ValueError(f"{url!r} is not an http(s) URL")
    return url


def _partner(name: str) -> str:
    if name not in PARTNER_DESTINATIONS:
        raise ValueError(f"is not a partner destination (known: {', '.join(PARTNER_DESTINATIONS)})")
    return name


Text = Annotated[StrictStr, Field(min_length=1)]
SecretText = Annotated[Text, AfterValidator(_resolved)]
"""A secret's text (kept out of reprs by the fields that hold one)."""
Positive = Annotated[
    float, Field(gt=0, strict=True), worded("must be a positive number, got {input}")
]
PositiveWhole = Annotated[
    int, Field(gt=0, strict=True), worded("must be a positive integer, got {input}")
]


class PartnerFile(FileModel):
    """``[partners.NAME]``: one partner's webhook."""

    url: Annotated[Text, AfterValidator(_http)]
    secret: SecretText = Field(repr=False)
    timeout_seconds: Positive = 5.0
    known_subjects: Annotated[KnownSubjects, worded("{input} is not 'mapped' or 'all'")] = (
        KnownSubjects.MAPPED
    )
    failure_threshold: PositiveWhole = 5
    reset_seconds: Positive = 5.0
    pseudonym_key: SecretText | None = Field(None, repr=False)
    batch_size: Annotated[
        int,
        Field(ge=1, le=MAX_BATCH_SIZE, strict=True),
        worded(f"must be an integer from 1 to {MAX_BATCH_SIZE}, got {{input}}"),
    ] = 1


class PartnersFile(FileModel):
    """The partners file: partners on the contract's list, each with a pseudonym key."""

    pseudonym_key: SecretText | None = Field(None, repr=False)
    identity_map: Text | None = None
    partners: dict[Annotated[str, AfterValidator(_partner)], PartnerFile]

    @field_validator("partners", mode="before")
    @classmethod
    def _by_name(cls, raw: Any) -> Any:
        return dict(sorted(raw.items())) if isinstance(raw, dict) else raw

    @model_validator(mode="after")
    def _rules(self) -> PartnersFile:
        if not self.partners:
            raise refusal("at least one partner must be configured", "partners")
        for name, entry in self.partners.items():
            if entry.pseudonym_key is None and self.pseudonym_key is None:
                reason = "is required when no top-level pseudonym_key is set"
                raise refusal(reason, "partners", name, "pseudonym_key")
        mapped = [n for n, e in self.partners.items() if e.known_subjects is KnownSubjects.MAPPED]
        if mapped and self.identity_map is None:
            reason = "is 'mapped' but no identity_map is configured"
            raise refusal(reason, "partners", mapped[0], "known_subjects")
        return self
