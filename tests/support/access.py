"""Reaching the relay's guarded endpoints from a test: the test API token, a GET that
sends it (or not), and which addresses a port is listening on."""

from __future__ import annotations

import ipaddress
import json
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

API_TOKEN = "relay-test-api-token-0123456789"
"""What tests configure as every process's ``*_API_TOKEN``."""

_LISTEN = "0A"
"""TCP state LISTEN in /proc/net/tcp."""


@dataclass(frozen=True)
class Answer:
    """Status, headers and body of one GET."""

    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def get(url: str, token: str | None = API_TOKEN, *, authorization: str | None = None) -> Answer:
    """GET ``url`` with ``Authorization: Bearer <token>`` (none if ``token`` is None, or
    ``authorization`` verbatim); an error status is an answer, not an exception."""
    headers = {"Accept": "application/json"}
    if authorization is not None:
        headers["Authorization"] = authorization
    elif token is not None:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(url, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return Answer(response.status, dict(response.headers), response.read())
    except urllib.error.HTTPError as exc:
        return Answer(exc.code, dict(exc.headers), exc.read())


def get_json(url: str, token: str | None = API_TOKEN) -> Any:
    """The JSON body of a GET that must answer 200."""
    answer = get(url, token)
    assert answer.status == 200, f"{url}: HTTP {answer.status} {answer.body!r}"
    return answer.json()


def listening_addresses(port: int) -> set[str]:
    """The local addresses TCP sockets listen on at ``port`` (Linux, this network
    namespace): what a process bound, not what a client happens to reach."""
    found: set[str] = set()
    for table in (Path("/proc/net/tcp"), Path("/proc/net/tcp6")):
        if not table.exists():
            continue
        for line in table.read_text().splitlines()[1:]:
            fields = line.split()
            address, _, hex_port = fields[1].partition(":")
            if fields[3] != _LISTEN or int(hex_port, 16) != port:
                continue
            raw = bytes.fromhex(address)
            # The kernel prints each 32-bit word of the address in host (little) order.
            words = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))
            found.add(str(ipaddress.ip_address(words)))
    if not found:
        raise AssertionError(f"nothing listens on port {port}")
    return found
