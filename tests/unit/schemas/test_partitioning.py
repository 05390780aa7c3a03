"""Kafka's murmur2: the same hash (and so partition) as the Java client and librdkafka."""

from __future__ import annotations

import pytest

from schemas.partitioning import murmur2, partition_for


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("21", -973932308),
        ("foobar", -790332482),
        ("a-little-bit-long-string", -985981536),
        ("a-little-bit-longer-string", -1486304829),
        ("lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8", -58897971),
        ("abc", 479470107),
    ],
)
def test_known_vectors(text: str, expected: int) -> None:
    # The Java client's values are signed; the same 32 bits place a record the same way.
    assert murmur2(text.encode()) & 0xFFFFFFFF == expected & 0xFFFFFFFF
    for partitions in (1, 3, 6, 7):
        assert partition_for(text.encode(), partitions) == (expected & 0x7FFFFFFF) % partitions


def test_partition_is_in_range_and_stable() -> None:
    for i in range(200):
        key = f"subject-{i}".encode()
        assert 0 <= partition_for(key, 6) < 6
        assert partition_for(key, 6) == partition_for(key, 6)
