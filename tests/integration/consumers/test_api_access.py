"""A sink process on its defaults listens on this machine only, and its per-person API
(the marketing sink's ``/v1/may-contact``) answers only the configured bearer token:
401 with a ``WWW-Authenticate: Bearer`` challenge without one, with a wrong one, and to
everyone when no token is configured; ``/metrics`` and ``/healthz`` stay open."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from tests.support.access import API_TOKEN, get, listening_addresses
from tests.support.processes import free_port, relay_process

MAY_CONTACT = "/v1/may-contact?subject=subj-1&channel=EMAIL&purpose=MARKETING_EMAIL"


def marketing_env(relay_env: Mapping[str, str], tmp_path: Path, **extra: str) -> dict[str, str]:
    """A marketing sink on its default bind (nothing inherited from the caller's env)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MARKETING_SINK_")}
    return {
        **env,
        **relay_env,
        "MARKETING_SINK_DATABASE_URL": f"sqlite:///{tmp_path / 'marketing.sqlite'}",
        "MARKETING_SINK_HASH_KEY": "access-test-hash-key-0123",
        "MARKETING_SINK_GROUP_ID": f"access-{tmp_path.name}",
        **extra,
    }


def test_marketing_sink_binds_loopback_and_wants_the_token(
    relay_env: dict[str, str], tmp_path: Path
) -> None:
    port = free_port()
    env = marketing_env(
        relay_env,
        tmp_path,
        MARKETING_SINK_HTTP_PORT=str(port),
        MARKETING_SINK_API_TOKEN=API_TOKEN,
    )
    base = f"http://127.0.0.1:{port}"
    with relay_process(
        "consumers.marketing", env, tmp_path / "marketing.log", ready_url=f"{base}/healthz"
    ):
        assert listening_addresses(port) == {"127.0.0.1"}

        for open_path in ("/metrics", "/healthz"):
            assert get(base + open_path, token=None).status == 200

        missing = get(base + MAY_CONTACT, token=None)
        assert missing.status == 401
        assert missing.headers["WWW-Authenticate"].startswith("Bearer ")
        assert "error=" not in missing.headers["WWW-Authenticate"]
        assert b"allowed" not in missing.body

        wrong = get(base + MAY_CONTACT, token=API_TOKEN + "x")
        assert wrong.status == 401
        assert wrong.headers["WWW-Authenticate"].startswith("Bearer ")
        assert 'error="invalid_token"' in wrong.headers["WWW-Authenticate"]
        for other_scheme in (f"Basic {API_TOKEN}", API_TOKEN):
            assert get(base + MAY_CONTACT, authorization=other_scheme).status == 401

        granted = get(base + MAY_CONTACT, token=API_TOKEN)
        assert granted.status == 200
        assert set(granted.json()) == {"allowed", "reason"}
        # A token does not open what does not exist.
        assert get(base + "/v1/nothing", token=API_TOKEN).status == 404

    log = (tmp_path / "marketing.log").read_text()
    assert API_TOKEN not in log
    assert "subj-1" not in log


def test_marketing_sink_without_a_token_refuses_everyone(
    relay_env: dict[str, str], tmp_path: Path
) -> None:
    port = free_port()
    env = marketing_env(relay_env, tmp_path, MARKETING_SINK_HTTP_PORT=str(port))
    base = f"http://127.0.0.1:{port}"
    with relay_process(
        "consumers.marketing", env, tmp_path / "marketing.log", ready_url=f"{base}/healthz"
    ):
        assert listening_addresses(port) == {"127.0.0.1"}
        assert get(base + "/metrics", token=None).status == 200
        for token in (None, API_TOKEN, ""):
            refused = get(base + MAY_CONTACT, token=token)
            assert refused.status == 401
            assert refused.headers["WWW-Authenticate"].startswith("Bearer ")
    assert "no API token is configured" in (tmp_path / "marketing.log").read_text()
