"""HTTP views on the worker's Faust web server.

- ``GET /propagation/{event_id}``: the propagation of one event (404 if unknown). The
  worker answers from its own partitions and otherwise asks its peers.
- ``GET /propagation?subject=<id>``: every propagation of a subject, routed to the
  worker that owns the subject's partition.
- ``GET /metrics``: Prometheus (registered with Faust's Prometheus sensor in
  :mod:`streams.app`), open to scrapers.

The propagation views say what happened to a person's choices, so they answer only a
request with ``Authorization: Bearer <STREAMS_API_TOKEN>`` (401 otherwise; every
request when no token is configured), and every worker of a deployment shares the
token: a worker passes the caller's header on when it routes a request to a peer.
Faust's own ``/router/`` and ``/table/`` views (cluster layout, table contents) cannot
be given a token through Faust's API, so they are switched off (:data:`FAUST_VIEWS`).
"""

from __future__ import annotations

import logging
from typing import Any, Final

import faust
from faust import web
from faust.exceptions import SameNode

from schemas.runtime import http_client
from schemas.runtime.bearer import BearerGuard, authorization
from schemas.runtime.http_client import UnreachableError
from schemas.runtime.settings import Secret
from streams.proof import query

log = logging.getLogger("streams")

FAUST_VIEWS: Final[dict[str, Any]] = {
    "web_router_enabled": False,
    "web_tables_enabled": False,
    "web_stats_enabled": False,
    "web_graph_enabled": False,
}
"""Faust settings turning its built-in views off; the worker routes by table key with
``app.router`` itself, which needs none of them."""


def register(app: faust.App, pending: Any, done: Any, token: Secret | None) -> None:
    """Add the propagation views to ``app``, guarded by ``token``."""
    guard = BearerGuard(token)
    if token is None:
        log.warning("STREAMS_API_TOKEN is not set: /propagation refuses every request")

    def refused(view: web.View, request: web.Request) -> web.Response | None:
        denial = guard.check(request.headers.get("Authorization"))
        if denial is None:
            return None
        headers = {"WWW-Authenticate": denial.challenge}
        return view.json(denial.body(), status=denial.status, headers=headers)

    @app.page("/propagation/{event_id}")
    async def by_event(self: web.View, request: web.Request, event_id: str) -> web.Response:
        if (refusal := refused(self, request)) is not None:
            return refusal
        answer = query.for_event(pending, done, event_id)
        if answer is None and "local" not in request.query and token is not None:
            answer = await _ask_peers(app, event_id, token)
        if answer is None:
            return self.json({"event_id": event_id, "found": False}, status=404)
        return self.json(answer)

    @app.page("/propagation")
    async def by_subject(self: web.View, request: web.Request) -> web.Response:
        if (refusal := refused(self, request)) is not None:
            return refusal
        subject = request.query.get("subject", "")
        if not subject:
            return self.json({"error": "give ?subject=<id>"}, status=400)
        try:
            # Faust forwards the request's headers, the bearer token with them.
            routed: web.Response = await app.router.route_req(
                pending.name, subject.encode(), self.web, request
            )
        except SameNode:
            return self.json({"propagations": query.for_subject(pending, done, subject)})
        return routed


async def _ask_peers(app: faust.App, event_id: str, token: Secret) -> dict[str, Any] | None:
    own = str(app.conf.canonical_url).rstrip("/")
    peers = {str(url).rstrip("/") for url in app.router.tables_metadata()} - {own}
    async with http_client.async_client("stream-worker", 5, authorization(token)) as client:
        for peer in sorted(peers):
            try:
                with http_client.reaching(f"peer {peer}"):
                    response = await client.get(f"{peer}/propagation/{event_id}?local=1")
            except UnreachableError as exc:
                log.warning("propagation query: %s", exc)
                continue
            if response.status_code == 200:
                answer: dict[str, Any] = response.json()
                return answer
            if response.status_code == 401:
                log.warning("propagation query: peer %s refused this worker's token", peer)
    return None
