"""The may-contact route and the marketing settings, called directly (no sockets)."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest

from consumers.marketing.api import routes
from consumers.marketing.database import Database
from consumers.marketing.hashing import AddressHasher
from consumers.marketing.settings import PREFIX, MarketingSettings
from consumers.marketing.sink import MarketingSink
from consumers.marketing.store import MarketingStore
from schemas.errors import ConfigError
from schemas.events import InstructionIssued, Subject
from schemas.runtime.http_server import BadRequestError
from schemas.runtime.settings import load
from schemas.taxonomy import Action, Purpose, Regime, SinkFamily, SubjectKind

KEY = "api-test-key-0123456789"


def test_may_contact_route_answers_from_the_store(tmp_path: Path) -> None:
    store = MarketingStore(Database(f"sqlite://{tmp_path}/m.db"), AddressHasher(KEY.encode()))
    sink = MarketingSink(store)
    now = datetime.now(UTC)
    sink.apply(
        InstructionIssued(
            instruction_id=str(uuid.uuid4()),
            event_id=str(uuid.uuid4()),
            event_type="ConsentChanged",
            subject=Subject(id="s-1", kind=SubjectKind.ACCOUNT),
            sink_family=SinkFamily.MARKETING,
            destination="suppression_list",
            action=Action.SUPPRESS,
            purposes=(Purpose.MARKETING_SMS,),
            right=None,
            regime=Regime.GDPR,
            occurred_at=now,
            issued_at=now,
        )
    )
    may_contact = routes(store)["/v1/may-contact"]
    no = may_contact({"subject": "s-1", "channel": "SMS", "purpose": "MARKETING_SMS"})
    assert (no.status, json.loads(no.body)) == (200, {"allowed": False, "reason": "suppressed"})
    yes = may_contact({"subject": "s-1", "channel": "sms", "purpose": "marketing_email"})
    assert json.loads(yes.body)["allowed"] is True
    for bad in (
        {"subject": "s-1", "channel": "FAX", "purpose": "MARKETING_SMS"},
        {"channel": "SMS"},
    ):
        with pytest.raises(BadRequestError):
            may_contact(bad)
    assert set(sink.http_routes()) == {"/v1/may-contact"}
    store.close()


def test_sink_handles_only_the_suppression_list() -> None:
    now = datetime.now(UTC)
    base = {
        "instruction_id": "i",
        "event_id": "e",
        "event_type": "ConsentChanged",
        "subject": Subject(id="s", kind=SubjectKind.ACCOUNT),
        "action": Action.SUPPRESS,
        "purposes": (),
        "right": None,
        "regime": Regime.GDPR,
        "occurred_at": now,
        "issued_at": now,
    }
    sink = MarketingSink.__new__(MarketingSink)
    mine = InstructionIssued(
        sink_family=SinkFamily.MARKETING, destination="suppression_list", **base
    )
    other = InstructionIssued(sink_family=SinkFamily.MARKETING, destination="email", **base)
    assert sink.handles(mine)
    assert not sink.handles(other)


def test_settings_require_the_hash_key_and_name_unknown_keys() -> None:
    with pytest.raises(ConfigError) as missing:
        load(MarketingSettings, PREFIX, {})
    assert missing.value.key == "MARKETING_SINK_HASH_KEY"
    with pytest.raises(ConfigError) as unknown:
        load(MarketingSettings, PREFIX, {"MARKETING_SINK_HASH_KEY": KEY, "MARKETING_SINK_DB": "x"})
    assert unknown.value.key == "MARKETING_SINK_DB"
    with pytest.raises(ConfigError, match="MARKETING_SINK_HASH_KEY"):
        load(MarketingSettings, PREFIX, {"MARKETING_SINK_HASH_KEY": "short"})
    with pytest.raises(ConfigError, match="MARKETING_SINK_DATABASE_URL"):
        load(
            MarketingSettings,
            PREFIX,
            {"MARKETING_SINK_HASH_KEY": KEY, "MARKETING_SINK_DATABASE_URL": "mysql://x"},
        )
    loaded = load(
        MarketingSettings,
        PREFIX,
        {"MARKETING_SINK_HASH_KEY": KEY, "MARKETING_SINK_HTTP_PORT": "9191"},
    )
    assert loaded.http_port == 9191
    assert KEY not in repr(loaded)
