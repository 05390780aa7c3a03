"""Records decoded once for every runner of a process, within a bound."""

from __future__ import annotations

from typing import Any

import pytest

from consumers.shared_decodes import SharedDecodes
from schemas.errors import InvalidEventError


def counting(calls: list[int], value: Any) -> Any:
    def decode() -> Any:
        calls.append(1)
        return value

    return decode


def test_the_first_runner_decodes_and_the_others_take_it() -> None:
    shared, calls = SharedDecodes(), []
    decoded = (dict, {"a": 1})
    for _ in range(6):
        assert shared.get(("t", 0, 5), counting(calls, decoded)) is decoded
    assert len(calls) == 1


def test_the_oldest_records_make_room_and_are_decoded_again() -> None:
    shared, calls = SharedDecodes(size=2), []
    for offset in (1, 2, 3):
        shared.get(("t", 0, offset), counting(calls, (dict, {"o": offset})))
    assert shared.get(("t", 0, 3), counting(calls, None)) == (dict, {"o": 3})
    assert shared.get(("t", 0, 1), counting(calls, (dict, {"o": 1}))) == (dict, {"o": 1})
    assert len(calls) == 4


def test_a_failed_decode_is_not_kept() -> None:
    shared = SharedDecodes()

    def refuse() -> Any:
        raise InvalidEventError("bad")

    with pytest.raises(InvalidEventError):
        shared.get(("t", 0, 1), refuse)
    with pytest.raises(InvalidEventError):
        shared.get(("t", 0, 1), refuse)
