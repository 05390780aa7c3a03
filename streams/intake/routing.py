"""The routing policy: which purposes and rights each sink family and destination hears.

The policy is a declarative, versioned TOML file (``streams/intake/routing.toml`` by default),
read and validated once when the worker starts; any bad entry raises
:class:`RoutingError` naming it (``destinations[3] (PARTNER_SHARING/foo): ...``). Besides
shape, the loader enforces the privacy policy's rules: nothing resting on contract or
law is ever withdrawn, an objection to direct marketing covers every direct-marketing
purpose absolutely, an opt-out of sale/sharing covers every sale/sharing purpose, and
every refusable purpose reaches some destination or is listed under ``[unrouted]``
with the reason (so a purpose added to the taxonomy stops the worker until someone
decides where it goes).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Final

from pydantic import AfterValidator, Field, StrictBool, StrictInt, StrictStr, model_validator

from schemas.errors import ConfigError
from schemas.runtime.config_files import (
    FileModel,
    Loc,
    dotted,
    read_document,
    refusal,
    validated,
    worded,
)
from schemas.taxonomy import (
    DIRECT_MARKETING_PURPOSES,
    PARTNER_DESTINATIONS,
    PURPOSE_SPECS,
    REFUSABLE_PURPOSES,
    RIGHT_SPECS,
    SALE_OR_SHARING_PURPOSES,
    Purpose,
    Recipient,
    Right,
    SinkFamily,
)

_NAME: Final = re.compile(r"^[a-z][a-z0-9_]*$")


class RoutingError(ConfigError):
    """The routing file is malformed or breaks a rule of the privacy policy."""

    def __init__(self, entry: str, reason: str) -> None:
        super().__init__(f"routing {entry}", reason)
        self.entry = entry


class RightEffect(StrEnum):
    """What exercising a right does to the subject's consent state."""

    WITHDRAW = "withdraw"
    ERASE = "erase"
    RESTRICT = "restrict"
    LIFT_RESTRICTION = "lift_restriction"


@dataclass(frozen=True, slots=True)
class RightScope:
    """What one propagated right reaches."""

    right: Right
    effect: RightEffect
    purposes: frozenset[Purpose] = frozenset()
    absolute: bool = False
    """The request's own purposes and channels do not narrow the scope."""


@dataclass(frozen=True, slots=True)
class Destination:
    """One downstream system of a sink family."""

    family: SinkFamily
    name: str
    purposes: frozenset[Purpose]
    holds_personal_data: bool
    recipient: Recipient | None = None
    """For partner destinations, the recipient they are (choices can name recipients)."""

    @property
    def label(self) -> str:
        """``FAMILY/name``, as receipts and propagation records spell it."""
        return f"{self.family.value}/{self.name}"


@dataclass(frozen=True, slots=True)
class RoutingPolicy:
    """A validated routing policy."""

    version: str
    rights: dict[Right, RightScope]
    destinations: tuple[Destination, ...]
    unrouted: dict[Purpose, str] = field(default_factory=dict)
    """Refusable purposes deliberately heard by no sink, with the reason (the consent
    state and the gate still enforce them)."""
    _hearing: dict[Purpose, tuple[Destination, ...]] = field(init=False, repr=False)
    holders: tuple[Destination, ...] = field(init=False, repr=False)
    """Destinations holding personal data: erasure and restriction reach them all."""

    def __post_init__(self) -> None:
        hearing = {p: tuple(d for d in self.destinations if p in d.purposes) for p in Purpose}
        object.__setattr__(self, "_hearing", hearing)
        object.__setattr__(
            self, "holders", tuple(d for d in self.destinations if d.holds_personal_data)
        )

    def hearing(self, purpose: Purpose) -> tuple[Destination, ...]:
        """Destinations that hear ``purpose``, in file order."""
        return self._hearing[purpose]

    def destination(self, family: SinkFamily, name: str) -> Destination | None:
        """The destination called ``name`` in ``family``, if routed."""
        for dest in self.destinations:
            if dest.family is family and dest.name == name:
                return dest
        return None


DEFAULT_FILE: Final = "routing.toml"


def load_policy(path: Path | None = None) -> RoutingPolicy:
    """Read and validate the routing file (the packaged one when ``path`` is None)."""
    path = path or Path(__file__).with_name(DEFAULT_FILE)
    raw = read_document(path, lambda reason: RoutingError("file", reason), toml=True)
    return parse_policy(raw)


def parse_policy(raw: dict[str, Any]) -> RoutingPolicy:
    """Validate a parsed routing document."""

    def where(loc: Loc) -> str:
        # A destination is named with its label, as receipts spell it (unless the
        # mistake is in the label's own parts).
        entry = dotted(loc)
        if loc[:1] != ("destinations",) or len(loc) < 2 or loc[2:3] in {("family",), ("name",)}:
            return entry
        try:
            body = raw["destinations"][loc[1]]
            label = f" ({body['family']}/{body['name']})"
        except (KeyError, IndexError, TypeError):
            return entry
        head = dotted(loc[:2])
        return head + label + entry[len(head) :]

    model = validated(PolicyFile, raw, RoutingError, where=where)
    return RoutingPolicy(
        str(model.version),
        {
            right: RightScope(right, scope.effect, frozenset(scope.purposes), scope.absolute)
            for right, scope in model.rights.items()
        },
        tuple(
            Destination(
                d.family,
                d.name,
                frozenset(d.purposes),
                d.holds_personal_data,
                Recipient(d.name.upper()) if d.family is SinkFamily.PARTNER_SHARING else None,
            )
            for d in model.destinations
        ),
        dict(model.unrouted),
    )


def _refusable(purpose: Purpose) -> Purpose:
    spec = PURPOSE_SPECS[purpose]
    if not spec.refusable:
        raise ValueError(f"{purpose} rests on {spec.basis}; a withdrawal never touches it")
    return purpose


def _once(purposes: tuple[Purpose, ...]) -> tuple[Purpose, ...]:
    twice = [p for n, p in enumerate(purposes) if p in purposes[:n]]
    if twice:
        raise ValueError(f"{twice[0]} is listed twice")
    return purposes


def _some(destinations: tuple[DestinationFile, ...]) -> tuple[DestinationFile, ...]:
    if not destinations:
        raise ValueError("must be a non-empty array of tables")
    return destinations


Purposes = Annotated[
    tuple[Annotated[Purpose, worded("{input} is not a Purpose"), AfterValidator(_refusable)], ...],
    AfterValidator(_once),
]
"""Refusable purposes, each named once (nothing resting on contract or law is withdrawn)."""
_REQUIRED_SCOPE: Final = {
    Right.OBJECT_TO_DIRECT_MARKETING: DIRECT_MARKETING_PURPOSES,
    Right.OPT_OUT_OF_SALE_OR_SHARING: SALE_OR_SHARING_PURPOSES,
}
"""Rights that must be absolute and cover every purpose of their kind."""


class RightFile(FileModel):
    """``[rights.NAME]``: what a propagated right does, and to which purposes."""

    effect: Annotated[
        RightEffect, worded(f"must be one of {', '.join(e.value for e in RightEffect)}")
    ]
    purposes: Purposes = ()
    absolute: StrictBool = False

    @model_validator(mode="after")
    def _scope(self) -> RightFile:
        if self.effect is RightEffect.WITHDRAW and not self.purposes:
            raise refusal("a withdrawing right needs purposes")
        if self.effect is not RightEffect.WITHDRAW and (self.purposes or self.absolute):
            raise refusal(f"{self.effect} reaches every holder; it takes no purposes")
        return self


class DestinationFile(FileModel):
    """``[[destinations]]``: one downstream system of a sink family."""

    family: Annotated[SinkFamily, worded("{input} is not a SinkFamily")]
    name: Annotated[
        StrictStr,
        Field(pattern=_NAME.pattern),
        worded("{input} must be lowercase letters, digits and _"),
    ]
    purposes: Purposes
    holds_personal_data: StrictBool

    @model_validator(mode="after")
    def _partner(self) -> DestinationFile:
        # Partner destinations are named after a partner recipient the contract lists.
        if self.family is SinkFamily.PARTNER_SHARING and self.name not in PARTNER_DESTINATIONS:
            raise refusal(f"a partner destination is one of {', '.join(PARTNER_DESTINATIONS)}")
        return self


class PolicyFile(FileModel):
    """The routing file, with the privacy policy's rules across its tables."""

    version: Annotated[
        StrictInt | Annotated[StrictStr, Field(min_length=1)],
        worded("is required (an integer or a string)"),
    ]
    rights: dict[Annotated[Right, worded("is not a Right")], RightFile] = {}
    destinations: Annotated[tuple[DestinationFile, ...], AfterValidator(_some)]
    unrouted: dict[
        Annotated[Purpose, worded("is not a Purpose")],
        Annotated[StrictStr, Field(pattern=r"\S"), worded("needs the reason no sink hears it")],
    ] = {}

    @model_validator(mode="after")
    def _rights(self) -> PolicyFile:
        for right, scope in self.rights.items():
            entry = f"rights.{right}"
            if not RIGHT_SPECS[right].propagated:
                raise refusal(f"{right} is not propagated to sinks; remove it", entry)
            required = _REQUIRED_SCOPE.get(right)
            if required is not None:
                missing = sorted(required - set(scope.purposes))
                if missing:
                    reason = f"must cover {missing[0]} (and every purpose it implies)"
                    raise refusal(reason, entry)
                if not scope.absolute:
                    raise refusal("must be absolute: the request cannot narrow it", entry)
        for right, spec in RIGHT_SPECS.items():
            if spec.propagated and right not in self.rights:
                raise refusal("is missing; every propagated right is routed", f"rights.{right}")
        return self

    @model_validator(mode="after")
    def _destinations(self) -> PolicyFile:
        seen: set[tuple[SinkFamily, str]] = set()
        for index, dest in enumerate(self.destinations):
            if (dest.family, dest.name) in seen:
                raise refusal("is listed twice", "destinations", index)
            seen.add((dest.family, dest.name))
        for family in SinkFamily:
            if not any(d.family is family for d in self.destinations):
                raise refusal(f"no destination for family {family}", "destinations")
        routed = {p for d in self.destinations for p in d.purposes}
        for purpose in self.unrouted:
            if purpose in routed:
                raise refusal("is routed to a destination; remove it here", f"unrouted.{purpose}")
        for purpose in sorted(REFUSABLE_PURPOSES):
            if purpose not in routed and purpose not in self.unrouted:
                raise refusal(
                    f"no destination hears {purpose}; route it, or list it under [unrouted] "
                    "with the reason no sink needs it",
                    "destinations",
                )
        return self
