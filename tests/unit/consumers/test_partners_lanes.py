"""The partner sink's lanes without a broker: what is committed (the lowest position over
every partner, each partner's own in the metadata), and that a partner that stops taking
its records is detached so the others go on, then attached again once its own reader has
caught up."""

from __future__ import annotations

from confluent_kafka import Message

from consumers.partners.lanes import (
    FULL_SECONDS,
    METADATA_LIMIT,
    STALL_SECONDS,
    Committed,
    Lanes,
    decode_positions,
    encode_positions,
)
from schemas.topics import DESTINATION_HEADER

TOPIC = "consent.instructions.partner_sharing"
P0 = (TOPIC, 0)
P1 = (TOPIC, 1)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def record(offset: int, *names: str, partition: int = 0) -> Message:
    headers = [(DESTINATION_HEADER, ",".join(names).encode())] if names else None
    return Message(topic=TOPIC, partition=partition, offset=offset, headers=headers, value=b"")


def offsets(messages: list[Message]) -> list[int]:
    return [m.offset() or 0 for m in messages]


def lanes_at(start: int, *names: str, bound: int = 100, clock: Clock | None = None) -> Lanes:
    lanes = Lanes(names, bound=bound, clock=clock or Clock())
    assert lanes.assign({P0: Committed(start)}) == {P0: start}
    return lanes


def test_each_lane_gets_only_the_records_naming_it_and_all_without_a_header() -> None:
    lanes = lanes_at(0, "criteo", "bing")
    lanes.dispatch([record(0, "criteo"), record(1, "bing"), record(2), record(3, "other")])
    assert offsets(lanes.take("criteo", 10, 0)) == [0, 2]
    assert offsets(lanes.take("bing", 10, 0)) == [1, 2]


def test_the_commit_is_the_lowest_unfinished_offset_and_keeps_the_others_positions() -> None:
    lanes = lanes_at(10, "criteo", "bing", "yahoo")
    lanes.dispatch([record(10, "criteo", "bing"), record(11, "bing"), record(12, "criteo")])
    assert lanes.commits() == {P0: (10, '{"yahoo":13}')}

    lanes.finished("criteo", {P0: 11})  # criteo made 10 durable, 12 still pending
    assert lanes.commits() == {P0: (10, '{"criteo":12,"yahoo":13}')}
    lanes.finished("bing", {P0: 12})
    assert lanes.commits() == {P0: (12, '{"bing":13,"yahoo":13}')}
    lanes.finished("criteo", {P0: 13})
    assert lanes.commits() == {P0: (13, "")}


def test_each_lane_starts_from_its_own_position_and_skips_what_it_finished() -> None:
    lanes = Lanes(["criteo", "bing"], bound=100, clock=Clock())
    starts = lanes.assign({P0: Committed(10, {"criteo": 12}), P1: None})
    assert starts == {P0: 10, P1: None}
    lanes.dispatch([record(n, "criteo", "bing") for n in (10, 11, 12)])
    assert offsets(lanes.take("criteo", 10, 0)) == [12]
    assert offsets(lanes.take("bing", 10, 0)) == [10, 11, 12]
    # Nothing fetched yet from a partition without a commit: nothing to commit there.
    assert P1 not in lanes.commits()


def test_a_stalled_full_lane_is_detached_and_the_others_go_on() -> None:
    clock = Clock()
    lanes = lanes_at(0, "criteo", "facebook", bound=3, clock=clock)
    lanes.dispatch([record(n, "criteo", "facebook") for n in range(3)])
    assert lanes.blocked()  # both full: fetch nothing more
    assert lanes.detach_full() == []
    lanes.take("criteo", 10, 0)  # criteo keeps up; facebook's partner is down
    clock.now += STALL_SECONDS
    assert lanes.blocked()  # facebook is still full, until detached
    assert lanes.detach_full() == ["facebook"]
    assert not lanes.blocked()
    assert not lanes.attached("facebook")

    lanes.dispatch([record(n, "criteo", "facebook") for n in range(3, 6)])
    assert offsets(lanes.take("criteo", 10, 0)) == [3, 4, 5]
    lanes.finished("criteo", {P0: 6})
    # facebook holds the commit at its oldest unfinished record; criteo's position is kept.
    assert lanes.commits() == {P0: (0, '{"criteo":6}')}

    # facebook first finishes its buffer, then its reader reads on from 3.
    assert lanes.reader_start("facebook") is None
    assert offsets(lanes.take("facebook", 10, 0)) == [0, 1, 2]
    lanes.finished("facebook", {P0: 3})
    start = lanes.reader_start("facebook")
    assert start is not None
    epoch, positions = start
    assert positions == {P0: 3}
    assert lanes.commits() == {P0: (3, '{"criteo":6}')}
    read = lanes.read("facebook", epoch, [record(3, "facebook"), record(4, "criteo")])
    assert offsets(read) == [3]
    assert not lanes.try_attach("facebook", epoch)  # the dispatcher is at 6, it at 5
    read = lanes.read("facebook", epoch, [record(5, "facebook")])
    assert lanes.try_attach("facebook", epoch)
    lanes.finished("facebook", {P0: 6})
    assert lanes.commits() == {P0: (6, "")}

    # Attached again: the dispatcher hands it what comes next, and only that.
    lanes.dispatch([record(6, "facebook")])
    assert offsets(lanes.take("facebook", 10, 0)) == [6]


def test_a_lane_full_for_long_is_detached_even_while_it_takes_records() -> None:
    clock = Clock()
    lanes = lanes_at(0, "slow", "fast", bound=2, clock=clock)
    lanes.dispatch([record(0, "slow"), record(1, "slow")])
    assert lanes.detach_full() == []
    clock.now += FULL_SECONDS / 2
    lanes.take("slow", 1, 0)
    lanes.dispatch([record(2, "slow")])
    assert lanes.detach_full() == []
    clock.now += FULL_SECONDS / 2
    assert lanes.detach_full() == ["slow"]


def test_a_single_lane_or_all_of_them_full_pause_instead_of_detaching() -> None:
    clock = Clock()
    lanes = lanes_at(0, "criteo", bound=2, clock=clock)
    lanes.dispatch([record(0, "criteo"), record(1, "criteo")])
    clock.now += FULL_SECONDS + STALL_SECONDS
    assert lanes.blocked()
    assert lanes.detach_full() == []
    assert lanes.attached("criteo")


def test_a_lane_far_behind_at_assignment_starts_detached() -> None:
    lanes = Lanes(["criteo", "facebook"], bound=100, clock=Clock())
    starts = lanes.assign({P0: Committed(1000, {"criteo": 5000})})
    # facebook is 4,000 behind: it reads on by itself; the consumer starts at criteo's.
    assert starts == {P0: 5000}
    assert not lanes.attached("facebook")
    start = lanes.reader_start("facebook")
    assert start is not None
    assert start[1] == {P0: 1000}
    assert lanes.commits() == {P0: (1000, '{"criteo":5000}')}


def test_a_revoked_partition_is_forgotten_and_its_records_are_not_put_back() -> None:
    lanes = Lanes(["criteo"], bound=100, clock=Clock())
    lanes.assign({P0: Committed(0), P1: Committed(0)})
    lanes.dispatch([record(0, "criteo"), record(0, "criteo", partition=1)])
    taken = lanes.take("criteo", 10, 0)
    lanes.revoke([P1])
    assert not lanes.owns(P1)
    lanes.put_back("criteo", taken)
    assert [(m.partition(), m.offset()) for m in lanes.take("criteo", 10, 0)] == [(0, 0)]
    assert set(lanes.commits()) == {P0}


def test_positions_metadata_round_trips_and_is_dropped_when_too_long() -> None:
    assert decode_positions(encode_positions({"b": 2, "a": 1})) == {"a": 1, "b": 2}
    assert decode_positions("") == {}
    assert decode_positions("not json") == {}
    assert decode_positions('{"a": "x", "b": 3}') == {"b": 3}
    many = {f"partner_{n:04d}": 10**12 for n in range(METADATA_LIMIT // 10)}
    assert encode_positions(many) == ""


def test_a_released_partition_is_handed_out_no_more_and_committed_once_settled() -> None:
    lanes = lanes_at(10, "criteo")
    lanes.dispatch([record(10, "criteo"), record(11, "criteo"), record(12, "criteo")])
    assert offsets(lanes.take("criteo", 1, 0)) == [10]  # the lane works on 10
    lanes.release([P0])
    assert not lanes.owns(P0)
    assert lanes.take("criteo", 10, 0) == []  # 11 and 12 are the next owner's
    assert not lanes.wait_settled([P0], 0.01)
    assert lanes.commits() == {P0: (10, "")}
    lanes.finished("criteo", {P0: 11})
    lanes.settle("criteo")
    assert lanes.wait_settled([P0], 0.01)
    # Past what the lane finished, not past what it was still to take.
    assert lanes.commits() == {P0: (11, "")}
    lanes.revoke([P0])
    assert lanes.commits() == {}


def test_a_detached_lanes_reader_takes_nothing_of_a_released_partition() -> None:
    clock = Clock()
    lanes = lanes_at(0, "criteo", "bing", bound=1, clock=clock)
    lanes.dispatch([record(0, "criteo")])
    clock.now += STALL_SECONDS
    assert lanes.detach_full() == ["criteo"]
    assert offsets(lanes.take("criteo", 10, 0)) == [0]
    lanes.finished("criteo", {P0: 1})
    lanes.settle("criteo")
    start = lanes.reader_start("criteo")
    assert start is not None
    lanes.release([P0])
    assert lanes.read("criteo", start[0], [record(1, "criteo")]) == []
    assert lanes.wait_settled([P0], 0.01)


def test_a_rewound_lane_reads_again_from_its_first_unfinished_record() -> None:
    lanes = lanes_at(10, "criteo", "bing")
    lanes.dispatch([record(n, "criteo", "bing") for n in range(10, 16)])
    assert len(lanes.take("bing", 10, 0)) == 6
    lanes.finished("bing", {P0: 16})
    assert offsets(lanes.take("criteo", 3, 0)) == [10, 11, 12]
    lanes.finished("criteo", {P0: 11})  # 10 is durable; 11 and 12 were not delivered
    lanes.rewind("criteo")
    assert not lanes.attached("criteo")
    assert lanes.take("criteo", 10, 0) == []  # its buffer is void too
    assert lanes.commits()[P0][0] == 11  # the commit never passes what it must do again
    start = lanes.reader_start("criteo")
    assert start is not None
    assert start[1] == {P0: 11}
    again = lanes.read("criteo", start[0], [record(n, "criteo", "bing") for n in range(11, 16)])
    assert offsets(again) == [11, 12, 13, 14, 15]
    lanes.finished("criteo", {P0: 16})
    assert lanes.try_attach("criteo", start[0])
