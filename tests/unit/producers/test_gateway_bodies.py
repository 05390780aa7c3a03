"""The gateway's JSON reading without a network: every body that breaks or fools a parser
is a 400 naming the problem, never an exception that becomes a 500."""

from __future__ import annotations

from typing import Any

import pytest

from producers.gateway.bodies import parse_json
from producers.gateway.problems import ProblemError


@pytest.mark.parametrize(
    ("raw", "words"),
    [
        (b"", "the body is empty"),
        (b'{"subject": ', "Expecting value at line 1 column 13"),
        (b"[" * 2048, "nested too deeply"),
        (b'{"a":' * 100_000 + b"1", "nested too deeply"),
        (b'{"x": ' + b"9" * 5000 + b"}", "a number has too many digits"),
        (b'{"choice": "GRANTED", "choice": "WITHDRAWN"}', "member 'choice' appears twice"),
        (b'{"s": {"id": "a", "id": "b"}}', "member 'id' appears twice"),
        (b'{"x": NaN}', "NaN is not a JSON number"),
        (b'{"x": -Infinity}', "-Infinity is not a JSON number"),
        (b'{"id": "a\x00b"}', "Invalid control character"),
        (b'{"id": "\xff"}', "not UTF-8 text"),
    ],
)
def test_bodies_that_are_not_plain_json_are_400(raw: bytes, words: str) -> None:
    with pytest.raises(ProblemError) as caught:
        parse_json(raw)
    assert caught.value.status == 400
    assert words in caught.value.detail


@pytest.mark.parametrize(
    ("raw", "value"),
    [
        (
            b'{"subject": {"id": "u-1", "kind": "ACCOUNT"}}',
            {"subject": {"id": "u-1", "kind": "ACCOUNT"}},
        ),
        (b'["ERASURE"]', ["ERASURE"]),
        # An escaped control character is valid JSON; the contract's id rule refuses it.
        (b'{"id": "a\\u0000b"}', {"id": "a\x00b"}),
        (b'{"n": 1.5e3}', {"n": 1500.0}),
    ],
)
def test_plain_json_is_parsed(raw: bytes, value: Any) -> None:
    assert parse_json(raw) == value


def test_a_long_member_name_is_cut_in_the_error() -> None:
    name = "n" * 1000
    with pytest.raises(ProblemError) as caught:
        parse_json(f'{{"{name}": 1, "{name}": 2}}'.encode())
    assert len(caught.value.detail) < 200
