"""The fault harness's own logic, without a broker: the rule it reconciles against, how a
destination's cell is judged, how a partner's deliveries are applied, the workload's
shape, and that every malformed kind is something the relay's decoder must refuse."""

from __future__ import annotations

import itertools
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka.schema_registry import Schema
from confluent_kafka.schema_registry.error import SchemaRegistryError

from schemas.codec import SHIPPED, EventDecoder, subject_name
from schemas.errors import ConsentRelayError
from schemas.events import CONSENT_EVENT_TYPES, EVENT_TYPES
from schemas.runtime.kafka import KafkaSettings
from schemas.taxonomy import Purpose

# deploy/ is not an installed package: its tools run from the repository root.
ROOT = str(Path(__file__).resolve().parents[3])
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from deploy.faults import burst as burst_module  # noqa: E402
from deploy.faults import malformed  # noqa: E402
from deploy.faults.reconcile import (  # noqa: E402
    Verdict,
    compare,
    deciders,
    judge,
    newest,
    partner_state,
)
from deploy.faults.stores import Cell, Delivery  # noqa: E402
from deploy.faults.workload import PURPOSES, Decision, plan  # noqa: E402

EMAIL = Purpose.MARKETING_EMAIL


def decision(subject: str, withdrawn: bool, at: int, *purposes: Purpose) -> Decision:
    return Decision(
        f"e-{subject}-{at}-{withdrawn}", subject, purposes or (EMAIL,), withdrawn, at, "fresh"
    )


def test_newest_decision_wins_a_tie_is_a_withdrawal_and_a_late_grant_never_regrants() -> None:
    events = [
        decision("a", False, 100),
        decision("a", True, 100),  # tie with the grant: withdrawn
        decision("b", True, 200),
        decision("b", False, 150),  # older grant arriving late
        decision("c", True, 100),
        decision("c", False, 300),  # newer grant
    ]
    got = newest(events)
    assert got[("a", EMAIL)] == Cell(True, 100)
    assert got[("b", EMAIL)] == Cell(True, 200)
    assert got[("c", EMAIL)] == Cell(False, 300)
    assert newest(reversed(events)) == got  # arrival order does not matter


@pytest.mark.parametrize(
    ("actual", "verdict"),
    [
        (Cell(True, 100), Verdict.OK),
        (Cell(True, 99), Verdict.OK),  # a store's own millisecond rounding
        (None, Verdict.LOST),
        (Cell(False, 50), Verdict.LOST),  # an older grant stands: the withdrawal never came
        (Cell(False, 100), Verdict.MISAPPLIED),  # the tie went to the grant
        (Cell(True, 500), Verdict.MISAPPLIED),  # newer than any valid event
    ],
)
def test_a_cell_is_ok_lost_or_misapplied(actual: Cell | None, verdict: Verdict) -> None:
    assert judge(Cell(True, 100), actual) is verdict


def test_a_tie_lost_on_the_way_is_lost_not_misapplied() -> None:
    # The grant at 100 arrived, the withdrawal at 100 never did: nothing was misapplied.
    assert judge(Cell(True, 100), Cell(False, 100), arrived=False) is Verdict.LOST
    assert judge(Cell(True, 100), Cell(False, 100), arrived=True) is Verdict.MISAPPLIED


def test_deciders_are_the_events_whose_decision_is_in_force() -> None:
    events = [decision("a", False, 100), decision("a", True, 100), decision("a", True, 50)]
    winners = deciders(events, newest(events))
    assert winners == {("a", EMAIL): [events[1].event_id]}


def test_compare_counts_lost_withdrawals_lost_grants_wrong_cells_and_strays() -> None:
    expected = {
        ("a", EMAIL): Cell(True, 10),
        ("b", EMAIL): Cell(False, 10),
        ("c", EMAIL): Cell(True, 10),
        ("d", EMAIL): Cell(True, 10),
        ("z", Purpose.RESEARCH_AND_STATISTICS): Cell(True, 10),  # another destination's
    }
    actual = {
        ("a", EMAIL): Cell(True, 10),
        ("c", EMAIL): Cell(False, 10),
        ("d", EMAIL): Cell(False, 5),
        ("x", EMAIL): Cell(True, 10),
    }
    tally = compare("MARKETING/suppression_list", expected, actual, [EMAIL])
    assert (tally.cells, tally.ok) == (4, 1)
    assert (tally.lost_withdrawals, tally.lost_grants) == (1, 1)
    assert (tally.wrong, tally.strays, tally.lost, tally.misapplied) == (1, 1, 2, 2)


def delivery(action: str, at: int, instruction: str, subject: str | None = "a") -> Delivery:
    return Delivery(
        "sellers",
        subject,
        action,
        (Purpose.SHARE_VIEWED_PRODUCTS_WITH_SELLERS.value,),
        at,
        instruction,
    )


def test_a_partner_applies_each_effect_once_and_a_stale_grant_after_a_withdrawal_counts() -> None:
    deliveries = [
        delivery("ALLOW", 10, "i1"),
        delivery("SUPPRESS", 20, "i2"),
        delivery("SUPPRESS", 20, "i2"),  # redelivered after a restart
        delivery("ALLOW", 15, "i3"),  # an older grant told after the newer withdrawal
        delivery("ALLOW", 30, "i4", subject=None),  # about nobody the run knows
    ]
    state = partner_state(deliveries, "sellers", [Purpose.SHARE_VIEWED_PRODUCTS_WITH_SELLERS])
    assert state.cells == {("a", Purpose.SHARE_VIEWED_PRODUCTS_WITH_SELLERS): Cell(True, 20)}
    assert (state.duplicated, state.stale_regrants, state.strays) == (1, 1, 1)
    assert partner_state(deliveries, "google", PURPOSES).cells == {}


def test_the_workload_is_reproducible_and_has_ties_late_events_and_duplicates() -> None:
    first = plan(2000, 50, seed=3, now_ms=1_800_000_000_000)
    assert first == plan(2000, 50, seed=3, now_ms=1_800_000_000_000)
    assert len(first.order) == 2000
    kinds = Counter(d.kind for d in first.decisions)
    assert kinds["tie"] > 50
    assert kinds["late"] > 50
    assert first.duplicates > 50
    fresh = sorted(d.at_ms for d in first.decisions if d.kind == "fresh")
    assert min(b - a for a, b in itertools.pairwise(fresh)) >= 5
    assert all(set(d.purposes) <= set(PURPOSES) for d in first.decisions)


class _Registry:
    """Answers schema ids 1..n with the shipped schemas, anything else with 404."""

    def __init__(self) -> None:
        self.by_id = {i + 1: t for i, t in enumerate(EVENT_TYPES)}

    def get_schema(self, schema_id: int) -> Schema:
        event_type = self.by_id.get(schema_id)
        if event_type is None:
            raise SchemaRegistryError(404, 40403, "schema not found")
        return Schema(SHIPPED[event_type].text, "AVRO")


def test_every_malformed_kind_is_refused_by_the_relays_decoder() -> None:
    registry = _Registry()
    ids = {subject_name(t): i for i, t in registry.by_id.items()}
    decoder = EventDecoder(registry)  # type: ignore[arg-type]
    records = malformed.burst(malformed.context(ids), 460, 2, seed=5)
    assert {kind for kind, _ in records} == set(malformed.KINDS) | set(malformed.OVERSIZED)
    for kind, (_key, value) in records:
        try:
            event = decoder.decode(value)
        except ConsentRelayError:
            continue
        assert not isinstance(event, CONSENT_EVENT_TYPES), kind
    sizes = [len(v or b"") for k, (_, v) in records if k in malformed.OVERSIZED]
    assert all(990_000 < size <= malformed.OVERSIZED_BYTES for size in sizes)


def test_a_burst_record_reported_without_an_offset_is_not_counted_as_landed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # librdkafka's implicit ack (schemas.runtime.delivery): no proof the broker stored it, so no
    # dead letter is expected for it, least of all at offset 0.
    class Report:
        def __init__(self, offset: int | None) -> None:
            self._offset = offset

        def partition(self) -> int:
            return 1

        def offset(self) -> int | None:
            return self._offset

    class FakeProducer:
        def __init__(self, _config: dict[str, object]) -> None:
            self.offsets = iter([7, None])

        def produce(self, _topic: str, *, value: bytes, key: bytes, on_delivery: Any) -> None:
            on_delivery(None, Report(next(self.offsets)))

        def poll(self, _timeout: float) -> int:
            return 0

        def flush(self, _timeout: float) -> int:
            return 0

    monkeypatch.setattr(burst_module, "Producer", FakeProducer)
    settings = KafkaSettings(bootstrap="127.0.0.1:9", registry_url="http://127.0.0.1:9")
    result = burst_module.publish(settings, "t", [("a", (b"k", b"v")), ("b", (b"k", b"v"))])
    assert [(x.kind, x.partition, x.offset) for x in result.landed] == [("a", 1, 7)]
    assert result.refused == {"b": 1}
    assert "without an offset" in result.errors["b"]
