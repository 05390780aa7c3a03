"""The per-hop breakdown of kept phases, without Kafka: trails in, hops out."""

from __future__ import annotations

from deploy.bench.hops import Trail, hops

FULL = "= event → completed_at (the bench's figure)"


def trail(at: int) -> Trail:
    t = Trail(occurred=at, published=at + 1)
    t.issued = {"MARKETING": (at + 10, at + 12), "PARTNER_SHARING": (at + 10, at + 13)}
    t.receipts = {
        "MARKETING": [(at + 20, at + 22)],
        "PARTNER_SHARING": [(at + 25, at + 31), (at + 30, at + 30)],
    }
    t.completed = (at + 40, at + 41)
    return t


def test_hops_add_up_to_the_bench_figure_along_the_last_family() -> None:
    unfinished = Trail(occurred=5, published=6)
    measured = hops({"a": trail(0), "b": trail(1000), "c": unfinished}, skip=1)
    assert measured[FULL] == [40]  # the warm-up's first left out, the unfinished too
    assert measured["1 event → consent record"] == [1]
    assert measured["2 → intake batch begins"] == [9]
    assert measured["3 → last instruction record"] == [3]
    assert measured["4 PARTNER_SHARING: instruction → last applied"] == [17]
    assert measured["5 PARTNER_SHARING: applied → last receipt record"] == [1]
    assert measured["4 MARKETING: instruction → last applied"] == [8]
    assert measured["6 last receipt record → completed_at"] == [9]
    assert measured["7 completed_at → FullyPropagated record"] == [1]
