"""From what was sent and what was read back: latency distributions and the reconciliation.

Expected = the tracked instructions (SUPPRESS, ERASE, RESTRICT, LIFT_RESTRICTION) the
stream issued for the withdrawals and rights requests the load generator had
acknowledged; receipted = those answered by an APPLIED or SKIPPED receipt; lost =
expected - receipted. A withdrawal with no tracked instruction at all is *unrouted* and
reported by kind (it may be legitimate: nothing held the purpose) — it is not hidden.
FullyPropagated is cross-checked against the instructions: a completion naming other
destinations than the instructions did is a *mismatch*.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from deploy.bench.collect import HONOURING, Collected
from deploy.bench.loadgen import SentWithdrawal

FULLY = "fully propagated"


def percentiles(values: Sequence[float]) -> dict[str, float | int]:
    """count, p50, p90, p99, max and mean (nearest-rank), in the values' unit."""
    if not values:
        return {"count": 0}
    ordered = sorted(values)

    def rank(q: float) -> float:
        return ordered[max(0, math.ceil(q * len(ordered)) - 1)]

    return {
        "count": len(ordered),
        "p50": rank(0.50),
        "p90": rank(0.90),
        "p99": rank(0.99),
        "max": ordered[-1],
        "mean": round(sum(ordered) / len(ordered), 1),
    }


@dataclass(slots=True)
class PhaseResult:
    """Reconciliation and latencies of the withdrawals of one phase."""

    withdrawals: int = 0
    measured: int = 0
    routed: int = 0
    unrouted: dict[str, int] = field(default_factory=dict)
    expected: int = 0
    receipted: int = 0
    failed: int = 0
    lost: int = 0
    lost_instruction_ids: list[str] = field(default_factory=list)
    fully_propagated: int = 0
    not_fully_propagated: int = 0
    mismatched: int = 0
    latency_ms: dict[str, list[int]] = field(default_factory=dict)
    """destination label (or ``fully propagated``) → measured latencies in ms."""

    def summary(self) -> dict[str, Any]:
        """The JSON-ready result, latencies as percentiles."""
        return {
            "withdrawals_sent": self.withdrawals,
            "withdrawals_measured": self.measured,
            "withdrawals_routed": self.routed,
            "unrouted_by_kind": self.unrouted,
            "expected_receipts": self.expected,
            "receipted": self.receipted,
            "failed_receipts": self.failed,
            "lost": self.lost,
            "lost_instruction_ids": self.lost_instruction_ids[:20],
            "fully_propagated": self.fully_propagated,
            "not_fully_propagated": self.not_fully_propagated,
            "fully_propagated_mismatched": self.mismatched,
            "latency_ms": {k: percentiles(v) for k, v in sorted(self.latency_ms.items())},
        }


def reconcile(sent: Mapping[str, SentWithdrawal], got: Collected) -> PhaseResult:
    """Reconcile one phase's acknowledged withdrawals against what was read back."""
    result = PhaseResult(withdrawals=len(sent))
    for event_id, withdrawal in sent.items():
        result.measured += withdrawal.measured
        instructions = got.instructions.get(event_id, [])
        if not instructions:
            result.unrouted[withdrawal.kind] = result.unrouted.get(withdrawal.kind, 0) + 1
            continue
        result.routed += 1
        labels = set()
        for instruction in instructions:
            labels.add(instruction.label)
            result.expected += 1
            receipt = got.receipts.get(instruction.instruction_id)
            if receipt is None or receipt.outcome not in HONOURING:
                result.lost += 1
                result.failed += receipt is not None
                result.lost_instruction_ids.append(instruction.instruction_id)
                continue
            result.receipted += 1
            if withdrawal.measured:
                result.latency_ms.setdefault(receipt.label, []).append(
                    receipt.applied_ms - receipt.occurred_ms
                )
        done = got.completions.get(event_id)
        if done is None:
            result.not_fully_propagated += 1
            continue
        result.fully_propagated += 1
        result.mismatched += done.labels != labels
        if withdrawal.measured:
            result.latency_ms.setdefault(FULLY, []).append(done.completed_ms - done.occurred_ms)
    return result


def all_latencies(results: Iterable[PhaseResult]) -> list[int]:
    """Every fully-propagated latency of ``results``."""
    return [ms for r in results for ms in r.latency_ms.get(FULLY, [])]
