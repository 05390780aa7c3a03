"""Reconciliation: per-family latency is the family's last receipt."""

from __future__ import annotations

from deploy.bench.analysis import FULLY, reconcile
from deploy.bench.collect import Collected, Completion, Instruction, Receipt
from deploy.bench.loadgen import SentWithdrawal


def _got(receipted: dict[str, int]) -> Collected:
    labels = ["MARKETING/suppression_list", "PARTNER_SHARING/google", "PARTNER_SHARING/bing"]
    got = Collected()
    got.instructions["e1"] = [
        Instruction(f"i{n}", "e1", label, "SUPPRESS") for n, label in enumerate(labels)
    ]
    for n, label in enumerate(labels):
        if label in receipted:
            got.receipts[f"i{n}"] = Receipt(label, "APPLIED", 1000, 1000 + receipted[label])
    got.completions["e1"] = Completion(1000, 1200, frozenset(labels))
    return got


def test_a_family_takes_as_long_as_its_slowest_destination() -> None:
    sent = {"e1": SentWithdrawal("withdraw", 1000, measured=True)}
    got = _got(
        {"MARKETING/suppression_list": 20, "PARTNER_SHARING/google": 30, "PARTNER_SHARING/bing": 90}
    )
    summary = reconcile(sent, got).summary()
    assert summary["lost"] == 0
    assert summary["family_latency_ms"]["MARKETING"]["p50"] == 20
    assert summary["family_latency_ms"]["PARTNER_SHARING"]["p50"] == 90
    assert summary["families_reached"] == {"2": 1}
    assert summary["latency_ms"][FULLY]["p50"] == 200


def test_a_family_with_a_missing_receipt_is_unfinished_not_fast() -> None:
    sent = {"e1": SentWithdrawal("withdraw", 1000, measured=True)}
    got = _got({"MARKETING/suppression_list": 20, "PARTNER_SHARING/google": 30})
    summary = reconcile(sent, got, caught_up=False).summary()
    partners = summary["family_latency_ms"]["PARTNER_SHARING"]
    assert partners["count"] == 0
    assert partners["unfinished"] == 1
    assert partners["p50"] is None
    assert summary["lost"] is None
