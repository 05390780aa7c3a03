"""The gateway as a real process under hostile clients, over real sockets.

Bodies built to break the parser, ids no store can keep, bodies and headers that never
finish, tokens that are unknown or not allowed: each gets a clear answer (or a closed
connection) within the read deadline, never a 500, a hang or a 202.
"""

from __future__ import annotations

import socket
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlencode, urlsplit

import httpx

from producers.gateway import unsubscribe
from schemas.runtime.kafka import KafkaSettings

from .conftest import UNSUBSCRIBE_KEY, Gateway, read_back, start_gateway

CRM = {"Authorization": "Bearer crm-token"}  # may withdraw, refuse_marketing, erasure
WEB = {"Authorization": "Bearer web-token"}  # may do anything
READ_TIMEOUT_S = 1.0
JSON = {"Content-Type": "application/json"}
WITHDRAWAL = (
    '{"subject": {"id": "h-1", "kind": "ACCOUNT"}, "choice": "WITHDRAWN",'
    ' "purposes": ["MARKETING_EMAIL"]'
)


def port_of(gateway: Gateway) -> int:
    port = urlsplit(gateway.url).port
    assert port is not None
    return port


@dataclass(frozen=True)
class Exchange:
    """What came back on a raw connection, and when."""

    received: bytes
    answered_s: float  # seconds until the first byte came back (inf: none did)
    closed_s: float  # seconds until the gateway closed the connection (inf: it did not)


def exchange(gateway: Gateway, data: bytes, wait: float) -> Exchange:
    """Send ``data`` on a fresh connection and read until the gateway closes it or ``wait``
    seconds pass."""
    with socket.create_connection(("127.0.0.1", port_of(gateway)), timeout=wait) as sock:
        sock.sendall(data)
        started = time.monotonic()
        received = b""
        answered = closed = float("inf")
        while (left := started + wait - time.monotonic()) > 0:
            sock.settimeout(left)
            try:
                chunk = sock.recv(65536)
            except TimeoutError:
                break
            except ConnectionResetError:
                chunk = b""
            if not chunk:
                closed = time.monotonic() - started
                break
            answered = min(answered, time.monotonic() - started)
            received += chunk
        return Exchange(received, answered, closed)


def request_head(length: int, token: str = "web-token") -> bytes:
    return (
        f"POST /v1/consents HTTP/1.1\r\nHost: gateway\r\nAuthorization: Bearer {token}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {length}\r\n\r\n"
    ).encode()


def test_bodies_that_break_parsers_get_a_clear_4xx(
    relay_settings: KafkaSettings, relay_env: dict[str, str], tmp_path: Path
) -> None:
    # A link for a NUL id, signed as if issued (link() itself refuses to make one).
    nul_link = f"{unsubscribe.PATH}?" + urlencode(
        {"s": "mail\x00-1", "sig": unsubscribe.sign(UNSUBSCRIBE_KEY, "mail\x00-1")}
    )
    with start_gateway(relay_env, tmp_path) as gw, httpx.Client(base_url=gw.url) as http:
        nested = http.post("/v1/consents", headers={**WEB, **JSON}, content=b"[" * 2048)
        nested_object = http.post(
            "/v1/consents", headers={**WEB, **JSON}, content=b'{"a":' * 1000 + b"1"
        )
        huge_number = http.post(
            "/v1/consents", headers={**WEB, **JSON}, content=b'{"x": ' + b"9" * 5000 + b"}"
        )
        twice = http.post(
            "/v1/consents",
            headers={**WEB, **JSON},
            content=(WITHDRAWAL + ', "choice": "GRANTED"}').encode(),
        )
        not_a_number = http.post(
            "/v1/consents", headers={**WEB, **JSON}, content=(WITHDRAWAL + ', "x": NaN}').encode()
        )
        nul_id = http.post(
            "/v1/consents",
            headers=WEB,
            json={
                "subject": {"id": "h\x00-1", "kind": "ACCOUNT"},
                "choice": "WITHDRAWN",
                "purposes": ["MARKETING_EMAIL"],
            },
        )
        escape_device = http.post(
            "/v1/cookie-preferences",
            headers=WEB,
            json={
                "subject": {"id": "dev-1", "kind": "DEVICE"},
                "device_id": "dev-1\x1b[2J",
                "granted": ["STATISTICS"],
            },
        )
        nul_unsubscribe = http.post(nul_link, data={"List-Unsubscribe": "One-Click"})
        declared_too_big = exchange(gw, request_head(10_000_000), wait=15)
        accepted = http.post("/v1/consents", headers=WEB, content=(WITHDRAWAL + "}").encode())
        log = gw.log()

    for response, words in [
        (nested, "nested"),
        (nested_object, "nested"),
        (huge_number, "not valid JSON"),
        (twice, "'choice' appears twice"),
        (not_a_number, "NaN"),
    ]:
        assert response.status_code == 400, response.text
        assert response.headers["Content-Type"].startswith("application/problem+json")
        assert words in response.json()["detail"]
    for response, field in [
        (nul_id, "subject.id"),
        (escape_device, "device_id"),
        (nul_unsubscribe, "subject.id"),
    ]:
        assert response.status_code == 422, response.text
        assert response.json()["field"] == field
        assert "control character" in response.json()["detail"]
    assert declared_too_big.received.startswith(b"HTTP/1.1 413"), declared_too_big
    assert b"8192" in declared_too_big.received  # names the limit
    assert declared_too_big.answered_s < 1  # at once, without waiting for the body
    assert declared_too_big.closed_s < 5 + 2  # the default read deadline, then closed
    assert accepted.status_code == 202, accepted.text
    assert "Traceback" not in log

    # Only the accepted request reached the topic.
    (only,) = read_back(relay_settings, relay_settings.topics.consent, 1)
    assert only.record.event_id == accepted.json()["event_id"]


def test_slow_clients_are_answered_or_cut_off_within_the_read_deadline(
    relay_env: dict[str, str], tmp_path: Path
) -> None:
    env = {**relay_env, "GATEWAY_READ_TIMEOUT_S": str(READ_TIMEOUT_S)}
    with start_gateway(env, tmp_path) as gw:
        # A body shorter than its Content-Length: 408 once the deadline passes, then closed.
        short = exchange(gw, request_head(200) + WITHDRAWAL.encode()[:20], wait=15)
        # Headers that never end: the connection is closed.
        headers = exchange(gw, b"POST /v1/consents HTTP/1.1\r\nHost: gateway\r\n", wait=15)
        # Headers trickling in, a byte at a time, get no longer than headers sent at once.
        trickle_s = trickle(gw, b"POST /v1/consents HTTP/1.1\r\nX-Slow: " + b"y" * 200, wait=15)
        # A well-behaved client is still served.
        ok = httpx.get(gw.url + "/healthz", timeout=5)
        log = gw.log()

    assert short.received.startswith(b"HTTP/1.1 408"), short
    assert b"application/problem+json" in short.received
    assert READ_TIMEOUT_S - 0.2 <= short.answered_s < READ_TIMEOUT_S + 2
    assert short.closed_s < 2 * READ_TIMEOUT_S + 2  # the deadline, then lingering for the rest
    assert headers.closed_s < READ_TIMEOUT_S + 2
    assert trickle_s < READ_TIMEOUT_S + 2
    assert ok.status_code == 200
    assert "Traceback" not in log


def trickle(gateway: Gateway, data: bytes, wait: float) -> float:
    """Seconds until the gateway closes a connection fed one byte of ``data`` every 50 ms."""
    with socket.create_connection(("127.0.0.1", port_of(gateway)), timeout=wait) as sock:
        started = time.monotonic()
        sock.settimeout(0.05)
        for byte in data:
            if time.monotonic() - started > wait:
                break
            try:
                sock.sendall(bytes([byte]))
                if sock.recv(4096) == b"":
                    return time.monotonic() - started
            except TimeoutError:
                continue
            except (BrokenPipeError, ConnectionResetError):
                return time.monotonic() - started
        return float("inf")


def test_tokens_are_checked_before_bodies(relay_env: dict[str, str], tmp_path: Path) -> None:
    garbage = {"subject": {"id": "", "kind": "ACCOUNT"}, "purposes": ["MIND_READING"]}
    with start_gateway(relay_env, tmp_path) as gw, httpx.Client(base_url=gw.url) as http:
        unknown = http.post("/v1/consents", json=garbage, headers={"Authorization": "Bearer x"})
        grant_by_crm = http.post("/v1/consents", headers=CRM, json={**garbage, "choice": "GRANTED"})
        cookies_by_crm = http.post("/v1/cookie-preferences", headers=CRM, json=garbage)
        access_by_crm = http.post("/v1/rights", headers=CRM, json={**garbage, "right": "ACCESS"})
        unparsable_by_crm = http.post(
            "/v1/cookie-preferences", headers={**CRM, **JSON}, content=b"{"
        )
        withdrawal_by_crm = http.post(
            "/v1/consents", headers=CRM, json={**garbage, "choice": "WITHDRAWN"}
        )
        no_choice_by_crm = http.post(
            "/v1/consents",
            headers=CRM,
            json={"subject": {"id": "h-2", "kind": "ACCOUNT"}, "purposes": ["MARKETING_EMAIL"]},
        )

    # RFC 6750 3.1: an unknown token is 401 invalid_token, with the challenge.
    assert unknown.status_code == 401, unknown.text
    assert unknown.headers["WWW-Authenticate"].startswith("Bearer ")
    assert 'error="invalid_token"' in unknown.headers["WWW-Authenticate"]
    # Not allowed: 403 whatever the body holds; the body is not examined for it.
    for response in (grant_by_crm, cookies_by_crm, access_by_crm, unparsable_by_crm):
        assert response.status_code == 403, response.text
        assert 'error="insufficient_scope"' in response.headers["WWW-Authenticate"]
        assert "field" not in response.json()
    assert "'grant'" in grant_by_crm.json()["detail"]
    assert "'access'" in access_by_crm.json()["detail"]
    # Allowed: then the body is validated, naming the field.
    assert withdrawal_by_crm.status_code == 422, withdrawal_by_crm.text
    assert withdrawal_by_crm.json()["field"] == "subject.id"
    assert no_choice_by_crm.status_code == 422, no_choice_by_crm.text
    assert no_choice_by_crm.json()["field"] == "choice"
