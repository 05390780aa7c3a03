"""One-click unsubscribe links: only links signed with the key verify."""

from __future__ import annotations

import hashlib
import hmac
from urllib.parse import parse_qs, urlparse

import pytest

from producers.gateway import unsubscribe
from schemas.errors import ValidationError

KEY = "k" * 32


def test_signature_is_hmac_sha256_hex_of_the_subject() -> None:
    expected = hmac.new(KEY.encode(), b"u-42", hashlib.sha256).hexdigest()
    assert unsubscribe.sign(KEY, "u-42") == expected
    assert unsubscribe.verify(KEY, "u-42", expected)
    assert unsubscribe.verify(KEY, "u-42", expected.upper())


def test_forgeries_do_not_verify() -> None:
    good = unsubscribe.sign(KEY, "u-42")
    assert not unsubscribe.verify(KEY, "u-43", good)
    assert not unsubscribe.verify("x" * 32, "u-42", good)
    assert not unsubscribe.verify(KEY, "u-42", good[:-1])
    assert not unsubscribe.verify(KEY, "u-42", "é" * 64)


def test_link_carries_subject_and_signature() -> None:
    url = urlparse(unsubscribe.link("https://relay.example/", KEY, "a b&c"))
    assert url.path == "/v1/unsubscribe"
    query = parse_qs(url.query)
    assert query["s"] == ["a b&c"]
    assert unsubscribe.verify(KEY, "a b&c", query["sig"][0])


def test_no_link_for_an_id_the_contract_refuses() -> None:
    for subject_id in ("", "u\x00-42", "u-42\r\n"):
        with pytest.raises(ValidationError) as caught:
            unsubscribe.link("https://relay.example", KEY, subject_id)
        assert caught.value.field_name == "subject.id"
