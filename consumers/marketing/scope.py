"""Which (channel, purpose) cells of the suppression list an instruction covers.

An instruction names purposes and, optionally, channels. A purpose bound to one
channel (MARKETING_EMAIL → EMAIL) covers only that channel; a purpose that is not
(PERSONALISED_MARKETING) covers every channel named, or every channel when none is.
No purposes means every direct-marketing purpose.
"""

from __future__ import annotations

from collections.abc import Iterable

from schemas.taxonomy import DIRECT_MARKETING_PURPOSES, PURPOSE_SPECS, Channel, Purpose

Cell = tuple[Channel, Purpose]


def cells(purposes: Iterable[Purpose], channels: Iterable[Channel]) -> frozenset[Cell]:
    """The suppression-list cells covered by ``purposes`` by ``channels``."""
    named = frozenset(channels)
    wanted = frozenset(purposes) or DIRECT_MARKETING_PURPOSES
    covered: set[Cell] = set()
    for purpose in wanted:
        spec = PURPOSE_SPECS.get(purpose)
        own = spec.channel if spec is not None else None
        if own is not None:
            if not named or own in named:
                covered.add((own, purpose))
        else:
            covered.update((channel, purpose) for channel in (named or Channel))
    return frozenset(covered)
