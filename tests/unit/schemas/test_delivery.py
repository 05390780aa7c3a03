"""What a delivery report proves: an error-free report without an offset does not prove
the record stored (librdkafka's implicit ack), one with an offset does."""

from __future__ import annotations

from typing import Any, cast

import pytest

from schemas.runtime import delivery


class _Message:
    def __init__(self, offset: int | None) -> None:
        self._offset = offset

    def offset(self) -> int | None:
        return self._offset


def report(offset: int | None) -> Any:
    return cast(Any, _Message(offset))


@pytest.mark.parametrize("offset", [0, 41])
def test_a_report_with_an_offset_proves_the_record_stored(offset: int) -> None:
    assert delivery.stored_offset(report(offset)) == offset
    assert delivery.failure(None, report(offset)) is None


@pytest.mark.parametrize("offset", [None, -1001])
def test_a_report_without_an_offset_is_a_failure(offset: int | None) -> None:
    assert delivery.stored_offset(report(offset)) is None
    assert delivery.failure(None, report(offset)) == delivery.NOT_STORED


def test_an_error_is_a_failure_whatever_the_offset() -> None:
    assert delivery.failure(cast(Any, "Broker: Not leader for partition"), report(None)) == (
        "Broker: Not leader for partition"
    )
