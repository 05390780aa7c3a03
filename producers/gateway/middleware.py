"""Cross-cutting request handling: metrics per route template, errors as problems.

The route label is the route's template (``/v1/consents``), never the raw path or query,
so an unsubscribe link's subject id never reaches a label or a log line. The access
log likewise writes method, template, status and duration only.
"""

from __future__ import annotations

import logging
import time

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger
from aiohttp.typedefs import Handler, Middleware
from aiohttp.web_request import BaseRequest
from aiohttp.web_response import StreamResponse

from producers.gateway.problems import ProblemError
from producers.metrics import ProducerMetrics

log = logging.getLogger(__name__)

UNMATCHED = "unmatched"


def route_of(request: BaseRequest) -> str:
    """The matched route's template, or ``unmatched``."""
    if not isinstance(request, web.Request):
        return UNMATCHED
    info = request.match_info
    route = getattr(info, "route", None)
    resource = getattr(route, "resource", None)
    if resource is None or isinstance(info, web.HTTPException):
        return UNMATCHED
    return str(resource.canonical)


def instrument(metrics: ProducerMetrics) -> Middleware:
    """A middleware counting and timing every request by route template and status."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> StreamResponse:
        started = time.perf_counter()
        status = 500
        try:
            response = await handler(request)
            status = response.status
            return response
        except ProblemError as problem:
            status = problem.status
            return problem.response()
        except web.HTTPException as exc:
            status = exc.status
            return ProblemError(exc.status, exc.reason, headers=_allow(exc)).response()
        finally:
            route = route_of(request)
            metrics.gateway_requests.labels(route, str(status)).inc()
            metrics.gateway_request_seconds.labels(route).observe(time.perf_counter() - started)

    return middleware


def _allow(exc: web.HTTPException) -> dict[str, str]:
    allow = exc.headers.get("Allow")
    return {"Allow": allow} if allow else {}


class AccessLogger(AbstractAccessLogger):
    """Method, route template, status and duration; no path, query or header values."""

    def log(self, request: BaseRequest, response: StreamResponse, time: float) -> None:
        self.logger.info(
            "%s %s %d %.1fms", request.method, route_of(request), response.status, time * 1000
        )
