"""The one way a confluent-kafka process (a sink, the gate) serves HTTP: /metrics,
/healthz and small JSON APIs, from a background thread.

Routes map a path to a function of the query parameters returning a
:class:`Response`; the standard library's threading server is enough for health
checks, Prometheus scrapes and a lookup endpoint, and keeps these processes free of an
event loop (the gateway's aiohttp server and the stream worker's Faust web server serve
theirs). Handlers must not log request parameters: they may hold personal identifiers.

Every route but the open ones (``/metrics``, ``/healthz``) answers only a request that
carries the configured bearer token (:class:`~schemas.runtime.bearer.BearerGuard`): a route
added later is protected without anyone remembering to, and with no token configured
those routes refuse everyone.

Hostile input: only GET is served (other methods get 501), no request body is read, the
standard library bounds the request line and the headers (414 and 431 past 64 KiB a
line or 100 headers), and a connection that sends nothing for
:data:`REQUEST_TIMEOUT_S` is closed, so a stalled client does not keep a thread.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Final
from urllib.parse import parse_qs, urlsplit

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from schemas.errors import ConsentRelayError
from schemas.runtime.bearer import BearerGuard
from schemas.runtime.settings import Secret
from schemas.validation import identifier_problem

log = logging.getLogger(__name__)

OPEN_PATHS: Final = frozenset({"/metrics", "/healthz"})
"""Routes served without a token: they say nothing about anyone."""

REQUEST_TIMEOUT_S: Final = 10.0
"""Longest a connection may be silent while its request is read or its answer sent."""


@dataclass(frozen=True, slots=True)
class Response:
    """What a route answers."""

    status: int
    body: bytes
    content_type: str = "application/json"
    headers: tuple[tuple[str, str], ...] = ()

    @classmethod
    def json(cls, status: int, payload: Any, *headers: tuple[str, str]) -> Response:
        """A JSON response (with extra ``(name, value)`` headers)."""
        return cls(status, json.dumps(payload).encode(), headers=headers)


Route = Callable[[Mapping[str, str]], Response]
"""A GET handler: single-valued query parameters in, a response out."""


class BadRequestError(ConsentRelayError):
    """A route's parameters are missing or invalid; answered with 400 and the reason."""


def identifier_param(query: Mapping[str, str], name: str) -> str:
    """The subject id in query parameter ``name``, exactly as given, if the contract's id
    rule (:func:`schemas.validation.identifier_problem`) accepts it; else 400 naming the
    parameter, so an id no store holds (a NUL, which PostgreSQL refuses) never reaches one.
    The reason names a position, never the id."""
    value = query.get(name, "")
    if not value:
        raise BadRequestError(f"query parameter {name!r} is required")
    problem = identifier_problem(value)
    if problem is not None:
        raise BadRequestError(f"query parameter {name!r} {problem}")
    return value


def metrics_route(registry: CollectorRegistry) -> Route:
    """A route serving ``registry`` in the Prometheus text format."""

    def handle(_query: Mapping[str, str]) -> Response:
        return Response(200, generate_latest(registry), CONTENT_TYPE_LATEST)

    return handle


def health_route(_query: Mapping[str, str]) -> Response:
    """Liveness: the process is up and serving."""
    return Response.json(200, {"status": "ok"})


def open_routes(registry: CollectorRegistry) -> dict[str, Route]:
    """``/metrics`` for ``registry`` and ``/healthz``: what every process serves."""
    return {"/metrics": metrics_route(registry), "/healthz": health_route}


class HttpServer:
    """Serves GET routes on ``host:port`` from a daemon thread until :meth:`stop`; all
    but :data:`OPEN_PATHS` only to a caller presenting ``token``."""

    def __init__(
        self, host: str, port: int, routes: Mapping[str, Route], *, token: Secret | None = None
    ) -> None:
        self._routes = dict(routes)
        guarded = sorted(set(self._routes) - OPEN_PATHS)
        if guarded and token is None:
            log.warning("no API token is configured: %s refuse every request", guarded)
        handler = _handler_class(self._routes, BearerGuard(token))
        self._server = ThreadingHTTPServer((host, port), handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, name=f"http-{port}", daemon=True
        )

    @property
    def port(self) -> int:
        """The bound port (useful when started on port 0)."""
        return int(self._server.server_address[1])

    def start(self) -> HttpServer:
        """Start serving in the background; returns self."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and release the port."""
        if self._thread.is_alive():
            self._server.shutdown()
            self._thread.join()
        self._server.server_close()


def _handler_class(routes: Mapping[str, Route], guard: BearerGuard) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        timeout = REQUEST_TIMEOUT_S

        def do_GET(self) -> None:
            url = urlsplit(self.path)
            route = routes.get(url.path)
            if route is None:
                self._send(Response.json(404, {"error": "not found"}))
                return
            if url.path not in OPEN_PATHS:
                denial = guard.check(self.headers.get("Authorization"))
                if denial is not None:
                    challenge = ("WWW-Authenticate", denial.challenge)
                    self._send(Response.json(denial.status, denial.body(), challenge))
                    return
            query = {k: v[-1] for k, v in parse_qs(url.query).items()}
            try:
                response = route(query)
            except BadRequestError as exc:
                response = Response.json(400, {"error": str(exc)})
            except ConsentRelayError as exc:
                log.warning("route %s failed: %s", url.path, type(exc).__name__)
                response = Response.json(503, {"error": type(exc).__name__})
            self._send(response)

        def _send(self, response: Response) -> None:
            self.send_response(response.status)
            self.send_header("Content-Type", response.content_type)
            self.send_header("Content-Length", str(len(response.body)))
            for name, value in response.headers:
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(response.body)

        def log_message(self, format: str, *args: Any) -> None:
            # The default writes every request line, query string (personal ids) included.
            return

    return Handler
