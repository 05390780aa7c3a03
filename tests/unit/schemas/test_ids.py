"""The one deterministic-id function gives what the standard library's uuid5 gives."""

from __future__ import annotations

import uuid

from hypothesis import given
from hypothesis import strategies as st

from schemas.ids import URL, uuid5

NAMESPACES = st.sampled_from([URL, uuid.NAMESPACE_DNS, uuid.UUID(int=0), uuid.uuid4()])


@given(name=st.text(), namespace=NAMESPACES)
def test_it_is_the_standard_uuid5_as_text(name: str, namespace: uuid.UUID) -> None:
    assert uuid5(name, namespace) == str(uuid.uuid5(namespace, name))


def test_the_relays_ids_are_in_the_url_namespace() -> None:
    assert uuid5("e-1/MARKETING/suppression_list") == str(
        uuid.uuid5(uuid.NAMESPACE_URL, "e-1/MARKETING/suppression_list")
    )
