"""Per-partner pseudonymous ids: stable, keyed per partner, never the internal id."""

from __future__ import annotations

import hashlib
import hmac

from hypothesis import given
from hypothesis import strategies as st

from consumers.partners.pseudonym import Pseudonyms, partner_key, pseudonymous_id

MASTER = b"master-key-for-tests-0123456789"


def test_pseudonym_is_hmac_sha256_hex_of_subject_id() -> None:
    key = b"k" * 32
    expected = hmac.new(key, b"acct-42", hashlib.sha256).hexdigest()
    assert pseudonymous_id(key, "acct-42") == expected
    assert len(expected) == 64


def test_each_partner_gets_its_own_key_and_so_its_own_pseudonym() -> None:
    criteo, google = partner_key(MASTER, "criteo"), partner_key(MASTER, "google")
    assert criteo != google
    assert pseudonymous_id(criteo, "acct-42") != pseudonymous_id(google, "acct-42")
    assert partner_key(MASTER, "criteo") == criteo


@given(st.text(min_size=1, max_size=64))
def test_pseudonym_is_stable_and_never_contains_the_subject_id(subject_id: str) -> None:
    key = partner_key(MASTER, "facebook")
    first = pseudonymous_id(key, subject_id)
    assert first == pseudonymous_id(key, subject_id)
    if len(subject_id) >= 4:
        assert subject_id not in first


@given(st.text(max_size=64))
def test_a_partners_keyed_pseudonyms_are_its_pseudonymous_ids(subject_id: str) -> None:
    key = partner_key(MASTER, "criteo")
    pseudonyms = Pseudonyms(key)
    assert pseudonyms(subject_id) == pseudonymous_id(key, subject_id)
    assert pseudonyms(subject_id) == pseudonyms(subject_id)
