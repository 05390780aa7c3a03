"""Asking the stream worker how far an event has propagated (``consent-relay propagation``).

The worker serves ``GET /propagation/<event_id>`` and ``GET /propagation?subject=<id>``
as JSON on its web port (``STREAM_WORKER_URL``, default ``http://127.0.0.1:6066``) to a
caller presenting its API token (``STREAM_WORKER_TOKEN``, the worker's
``STREAMS_API_TOKEN``), which is read from the environment, never from the command line.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Final
from urllib.parse import quote, urlencode

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from schemas.errors import ConsentRelayError
from schemas.runtime import http_client
from schemas.runtime.bearer import authorization
from schemas.runtime.http_client import UnreachableError
from schemas.runtime.settings import Secret, Settings, load

DEFAULT_STREAM_WORKER_URL: Final = "http://127.0.0.1:6066"
PREFIX: Final = "STREAM_WORKER_"


class StreamWorkerSettings(Settings):
    """Where the worker's views are and the token they want, from ``STREAM_WORKER_*``."""

    model_config = SettingsConfigDict(env_prefix=PREFIX)

    url: str = Field(
        DEFAULT_STREAM_WORKER_URL,
        description="Base URL of a stream worker's web port, asked by `consent-relay propagation`.",
    )
    token: Secret | None = Field(
        None, description="The worker's `STREAMS_API_TOKEN`, sent as a bearer token."
    )

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> StreamWorkerSettings:
        """Read and validate; an unknown ``STREAM_WORKER_*`` key raises ConfigError."""
        return load(cls, PREFIX, env)


class StreamsUnavailableError(ConsentRelayError):
    """The stream worker's web view did not answer."""


def event_url(base_url: str, event_id: str) -> str:
    """The view of one event's propagation."""
    return f"{base_url.rstrip('/')}/propagation/{quote(event_id, safe='')}"


def subject_url(base_url: str, subject_id: str) -> str:
    """The view of a subject's events' propagation."""
    return f"{base_url.rstrip('/')}/propagation?{urlencode({'subject': subject_id})}"


def fetch(url: str, timeout: float = 10.0, token: Secret | None = None) -> tuple[int, Any]:
    """(HTTP status, decoded JSON body or text) of a GET on the stream worker, sending
    ``token`` as a bearer token (the worker answers 401 without it)."""
    if not url.startswith(("http://", "https://")):
        raise StreamsUnavailableError(f"STREAM_WORKER_URL must be http(s), got {url!r}")
    headers = {"Accept": "application/json"}
    if token is not None:
        headers.update(authorization(token))
    try:
        with (
            http_client.client("cli", timeout, headers) as client,
            http_client.reaching(f"the stream worker at {url}"),
        ):
            response = client.get(url)
    except UnreachableError as exc:
        raise StreamsUnavailableError(str(exc)) from exc
    return response.status_code, _body(response.content)


def _body(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except ValueError:
        return raw.decode(errors="replace")
