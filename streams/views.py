"""HTTP views on the worker's Faust web server.

- ``GET /propagation/{event_id}``: the propagation of one event (404 if unknown). The
  worker answers from its own partitions and otherwise asks its peers.
- ``GET /propagation?subject=<id>``: every propagation of a subject, routed to the
  worker that owns the subject's partition.
- ``GET /metrics``: Prometheus (registered with Faust's Prometheus sensor in
  :mod:`streams.app`).
"""

from __future__ import annotations

from typing import Any

import aiohttp
import faust
from faust import web
from faust.exceptions import SameNode

from streams import query
from streams.agents.context import log


def register(app: faust.App, pending: Any, done: Any) -> None:
    """Add the propagation views to ``app``."""

    @app.page("/propagation/{event_id}")
    async def by_event(self: web.View, request: web.Request, event_id: str) -> web.Response:
        answer = query.for_event(pending, done, event_id)
        if answer is None and "local" not in request.query:
            answer = await _ask_peers(app, event_id)
        if answer is None:
            return self.json({"event_id": event_id, "found": False}, status=404)
        return self.json(answer)

    @app.page("/propagation")
    async def by_subject(self: web.View, request: web.Request) -> web.Response:
        subject = request.query.get("subject", "")
        if not subject:
            return self.json({"error": "give ?subject=<id>"}, status=400)
        try:
            routed: web.Response = await app.router.route_req(
                pending.name, subject.encode(), self.web, request
            )
        except SameNode:
            return self.json({"propagations": query.for_subject(pending, done, subject)})
        return routed


async def _ask_peers(app: faust.App, event_id: str) -> dict[str, Any] | None:
    own = str(app.conf.canonical_url).rstrip("/")
    peers = {str(url).rstrip("/") for url in app.router.tables_metadata()} - {own}
    timeout = aiohttp.ClientTimeout(total=5)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        for peer in sorted(peers):
            try:
                async with session.get(f"{peer}/propagation/{event_id}?local=1") as response:
                    if response.status == 200:
                        answer: dict[str, Any] = await response.json()
                        return answer
            except (aiohttp.ClientError, TimeoutError) as exc:
                log.warning("propagation query: peer %s unreachable: %s", peer, exc)
    return None
