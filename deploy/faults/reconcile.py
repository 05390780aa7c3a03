"""The rule, and each destination's final state judged against it.

The rule: per (subject, purpose), the decision with the newest event time is in force;
on a tie the withdrawal wins; an older event, however late it arrives, never replaces a
newer one (so a late grant never re-grants). :func:`newest` applies it to every valid
event that reached the consent topic; :func:`compare` then sorts each cell a destination
must hold into

* **ok**: the decision in force, with its event time;
* **lost**: the destination never got the decision in force (it holds nothing, or an
  older decision): a lost withdrawal is a person still contacted, shared or analysed;
* **misapplied**: it holds the right time with the wrong choice although the decision in
  force reached it (a tie resolved as a grant; had it never arrived, the cell is lost),
  or a decision newer than any valid event, or a cell no valid event asked for (a
  malformed record took effect), or, at a partner, a grant delivered after a newer
  withdrawal of the same cell (a partner applying instructions in order re-granted).

Partners are judged as the webhook contract asks them to behave: an instruction they
were told twice counts once (and as a duplicated effect), and the newest decision per
cell stands.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from deploy.faults.stores import Cell, CellKey, Delivery
from deploy.faults.workload import Decision
from schemas.taxonomy import Action, Purpose

TOLERANCE_MS = 1
"""Stores convert event times to milliseconds their own way (truncating or rounding a
float); workload times are at least 5 ms apart, so 1 ms of difference is the same time."""


class Verdict(StrEnum):
    """How a destination's cell compares with the rule."""

    OK = "ok"
    LOST = "lost"
    MISAPPLIED = "misapplied"


def _rank(cell: Cell) -> tuple[int, bool]:
    return (cell.at_ms, cell.withdrawn)


def newest(decisions: Iterable[Decision]) -> dict[CellKey, Cell]:
    """The decision in force per (subject, purpose) under the rule."""
    out: dict[CellKey, Cell] = {}
    for decision in decisions:
        cell = Cell(decision.withdrawn, decision.at_ms)
        for purpose in decision.purposes:
            have = out.get((decision.subject, purpose))
            if have is None or _rank(cell) > _rank(have):
                out[(decision.subject, purpose)] = cell
    return out


def deciders(
    decisions: Iterable[Decision], expected: Mapping[CellKey, Cell]
) -> dict[CellKey, list[str]]:
    """Per cell, the events whose decision is the one in force (several on a tie)."""
    out: dict[CellKey, list[str]] = {}
    for decision in decisions:
        cell = Cell(decision.withdrawn, decision.at_ms)
        for purpose in decision.purposes:
            key = (decision.subject, purpose)
            if expected.get(key) == cell:
                out.setdefault(key, []).append(decision.event_id)
    return out


def judge(expected: Cell, actual: Cell | None, *, arrived: bool = True) -> Verdict:
    """One cell: ok, lost, or misapplied; ``arrived``: the decision in force reached the
    destination (its instruction was applied or delivered)."""
    if actual is None or actual.at_ms < expected.at_ms - TOLERANCE_MS:
        return Verdict.LOST
    same_time = abs(actual.at_ms - expected.at_ms) <= TOLERANCE_MS
    if same_time and actual.withdrawn == expected.withdrawn:
        return Verdict.OK
    if same_time and not arrived:
        return Verdict.LOST  # only the other side of a tie got there
    return Verdict.MISAPPLIED


@dataclass(slots=True)
class Tally:
    """One destination's reconciliation."""

    label: str
    cells: int = 0
    ok: int = 0
    lost_withdrawals: int = 0
    lost_grants: int = 0
    wrong: int = 0
    """Cells at the right time with the wrong choice, or newer than any valid event."""
    strays: int = 0
    """Cells held that no valid event asked for."""
    stale_regrants: int = 0
    """Partners only: grants delivered after a newer withdrawal of the same cell."""
    duplicated: int = 0
    """Partners only: instructions a partner was told again."""

    @property
    def lost(self) -> int:
        """Cells whose decision in force never arrived."""
        return self.lost_withdrawals + self.lost_grants

    @property
    def misapplied(self) -> int:
        """Every way the destination holds or was told something the rule forbids."""
        return self.wrong + self.strays + self.stale_regrants

    def summary(self) -> dict[str, Any]:
        """For the JSON."""
        return {
            "cells": self.cells,
            "ok": self.ok,
            "lost": self.lost,
            "lost_withdrawals": self.lost_withdrawals,
            "lost_grants": self.lost_grants,
            "misapplied": self.misapplied,
            "wrong_choice_or_time": self.wrong,
            "strays": self.strays,
            "stale_regrants": self.stale_regrants,
            "duplicated_effects": self.duplicated,
        }


def compare(
    label: str,
    expected: Mapping[CellKey, Cell],
    actual: Mapping[CellKey, Cell],
    purposes: Iterable[Purpose],
    arrived: Callable[[CellKey], bool] = lambda _key: True,
) -> Tally:
    """Judge every cell of ``purposes`` that the destination must (or must not) hold;
    ``arrived`` says whether a cell's decision in force reached the destination."""
    wanted = frozenset(purposes)
    tally = Tally(label)
    for key, cell in expected.items():
        if key[1] not in wanted:
            continue
        tally.cells += 1
        verdict = judge(cell, actual.get(key), arrived=arrived(key))
        if verdict is Verdict.OK:
            tally.ok += 1
        elif verdict is Verdict.MISAPPLIED:
            tally.wrong += 1
        elif cell.withdrawn:
            tally.lost_withdrawals += 1
        else:
            tally.lost_grants += 1
    tally.strays = sum(1 for key in actual if key[1] in wanted and key not in expected)
    return tally


@dataclass(frozen=True, slots=True)
class PartnerState:
    """What one partner holds after applying what it was told, as the contract asks."""

    cells: dict[CellKey, Cell]
    duplicated: int
    stale_regrants: int
    strays: int
    """Instructions about nobody the run knows, or of an action the workload never asks."""


def partner_state(
    deliveries: Iterable[Delivery], partner: str, purposes: Iterable[Purpose]
) -> PartnerState:
    """Apply one partner's deliveries in arrival order, each effect once, newest wins."""
    wanted = {p.value: p for p in purposes}
    cells: dict[CellKey, Cell] = {}
    seen: set[tuple[Any, ...]] = set()
    duplicated = stale = strays = 0
    for d in deliveries:
        if d.partner != partner:
            continue
        effect = (d.subject, d.action, d.purposes, d.at_ms)
        if effect in seen:
            duplicated += 1
            continue
        seen.add(effect)
        if d.subject is None or d.action not in (Action.SUPPRESS.value, Action.ALLOW.value):
            strays += 1
            continue
        cell = Cell(d.action == Action.SUPPRESS.value, d.at_ms)
        for name in d.purposes:
            purpose = wanted.get(name)
            if purpose is None:
                continue
            key = (d.subject, purpose)
            have = cells.get(key)
            if (
                have is not None
                and have.withdrawn
                and not cell.withdrawn
                and have.at_ms >= cell.at_ms
            ):
                stale += 1
            if have is None or _rank(cell) > _rank(have):
                cells[key] = cell
    return PartnerState(cells, duplicated, stale, strays)
