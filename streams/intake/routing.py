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
import tomllib
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any, Final

from schemas.errors import ConfigError
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
    try:
        text = path.read_text()
    except OSError as exc:
        raise RoutingError(str(path), f"cannot be read: {exc}") from exc
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise RoutingError(str(path), f"is not TOML: {exc}") from exc
    return parse_policy(raw)


def parse_policy(raw: dict[str, Any]) -> RoutingPolicy:
    """Validate a parsed routing document."""
    unknown = set(raw) - {"version", "rights", "destinations", "unrouted"}
    if unknown:
        raise RoutingError(sorted(unknown)[0], "is not a routing key")
    version = raw.get("version")
    if not isinstance(version, int | str) or isinstance(version, bool) or version == "":
        raise RoutingError("version", "is required (an integer or a string)")
    rights = _parse_rights(raw.get("rights", {}))
    destinations = _parse_destinations(raw.get("destinations", []))
    routed = set().union(*(d.purposes for d in destinations))
    unrouted = _parse_unrouted(raw.get("unrouted", {}), routed)
    for purpose in sorted(REFUSABLE_PURPOSES):
        if purpose not in routed and purpose not in unrouted:
            raise RoutingError(
                "destinations",
                f"no destination hears {purpose}; route it, or list it under [unrouted] "
                "with the reason no sink needs it",
            )
    return RoutingPolicy(str(version), rights, destinations, unrouted)


def _parse_unrouted(raw: Any, routed: set[Purpose]) -> dict[Purpose, str]:
    if not isinstance(raw, dict):
        raise RoutingError("unrouted", "must be a table of purpose = reason")
    unrouted = {}
    for name, reason in raw.items():
        entry = f"unrouted.{name}"
        if name not in Purpose.__members__:
            raise RoutingError(entry, "is not a Purpose")
        if not isinstance(reason, str) or not reason.strip():
            raise RoutingError(entry, "needs the reason no sink hears it")
        if Purpose(name) in routed:
            raise RoutingError(entry, "is routed to a destination; remove it here")
        unrouted[Purpose(name)] = reason
    return unrouted


def _parse_rights(raw: Any) -> dict[Right, RightScope]:
    if not isinstance(raw, dict):
        raise RoutingError("rights", "must be a table of rights")
    scopes: dict[Right, RightScope] = {}
    for name, body in raw.items():
        entry = f"rights.{name}"
        if name not in Right.__members__:
            raise RoutingError(entry, "is not a Right")
        right = Right(name)
        if not RIGHT_SPECS[right].propagated:
            raise RoutingError(entry, f"{right} is not propagated to sinks; remove it")
        scopes[right] = _parse_right(entry, right, body)
    for right, spec in RIGHT_SPECS.items():
        if spec.propagated and right not in scopes:
            raise RoutingError(f"rights.{right}", "is missing; every propagated right is routed")
    return scopes


def _parse_right(entry: str, right: Right, body: Any) -> RightScope:
    if not isinstance(body, dict):
        raise RoutingError(entry, "must be a table")
    unknown = set(body) - {"effect", "purposes", "absolute"}
    if unknown:
        raise RoutingError(entry, f"unknown key {sorted(unknown)[0]!r}")
    try:
        effect = RightEffect(str(body.get("effect")))
    except ValueError as exc:
        raise RoutingError(
            entry, f"effect must be one of {', '.join(e.value for e in RightEffect)}"
        ) from exc
    absolute = body.get("absolute", False)
    if not isinstance(absolute, bool):
        raise RoutingError(entry, "absolute must be true or false")
    purposes = _purposes(entry, body.get("purposes", []))
    if effect is RightEffect.WITHDRAW and not purposes:
        raise RoutingError(entry, "a withdrawing right needs purposes")
    if effect is not RightEffect.WITHDRAW and (purposes or absolute):
        raise RoutingError(entry, f"{effect} reaches every holder; it takes no purposes")
    required = {
        Right.OBJECT_TO_DIRECT_MARKETING: DIRECT_MARKETING_PURPOSES,
        Right.OPT_OUT_OF_SALE_OR_SHARING: SALE_OR_SHARING_PURPOSES,
    }.get(right)
    if required is not None:
        missing = sorted(required - purposes)
        if missing:
            raise RoutingError(entry, f"must cover {missing[0]} (and every purpose it implies)")
        if not absolute:
            raise RoutingError(entry, "must be absolute: the request cannot narrow it")
    return RightScope(right, effect, purposes, absolute)


def _parse_destinations(raw: Any) -> tuple[Destination, ...]:
    if not isinstance(raw, list) or not raw:
        raise RoutingError("destinations", "must be a non-empty array of tables")
    seen: set[tuple[SinkFamily, str]] = set()
    destinations = []
    for index, body in enumerate(raw):
        dest = _parse_destination(index, body)
        if (dest.family, dest.name) in seen:
            raise RoutingError(f"destinations[{index}] ({dest.label})", "is listed twice")
        seen.add((dest.family, dest.name))
        destinations.append(dest)
    for family in SinkFamily:
        if not any(d.family is family for d in destinations):
            raise RoutingError("destinations", f"no destination for family {family}")
    return tuple(destinations)


def _parse_destination(index: int, body: Any) -> Destination:
    entry = f"destinations[{index}]"
    if not isinstance(body, dict):
        raise RoutingError(entry, "must be a table")
    unknown = set(body) - {"family", "name", "purposes", "holds_personal_data"}
    if unknown:
        raise RoutingError(entry, f"unknown key {sorted(unknown)[0]!r}")
    family_name, name = body.get("family"), body.get("name")
    if family_name not in SinkFamily.__members__:
        raise RoutingError(entry, f"family {family_name!r} is not a SinkFamily")
    family = SinkFamily(str(family_name))
    if not isinstance(name, str) or not _NAME.match(name):
        raise RoutingError(entry, f"name {name!r} must be lowercase letters, digits and _")
    entry = f"{entry} ({family}/{name})"
    holds = body.get("holds_personal_data")
    if not isinstance(holds, bool):
        raise RoutingError(entry, "holds_personal_data must be true or false")
    recipient = None
    if family is SinkFamily.PARTNER_SHARING:
        if name not in PARTNER_DESTINATIONS:
            raise RoutingError(
                entry, f"a partner destination is one of {', '.join(PARTNER_DESTINATIONS)}"
            )
        recipient = Recipient(name.upper())
    return Destination(family, name, _purposes(entry, body.get("purposes")), holds, recipient)


def _purposes(entry: str, raw: Any) -> frozenset[Purpose]:
    if not isinstance(raw, list):
        raise RoutingError(entry, "purposes must be an array of Purpose names")
    purposes = set()
    for name in raw:
        if name not in Purpose.__members__:
            raise RoutingError(entry, f"{name!r} is not a Purpose")
        purpose = Purpose(name)
        spec = PURPOSE_SPECS[purpose]
        if not spec.refusable:
            raise RoutingError(
                entry, f"{purpose} rests on {spec.basis}; a withdrawal never touches it"
            )
        if purpose in purposes:
            raise RoutingError(entry, f"{purpose} is listed twice")
        purposes.add(purpose)
    return frozenset(purposes)
