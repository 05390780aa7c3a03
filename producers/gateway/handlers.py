"""The gateway's routes: authenticate, authorize, parse, validate, publish, answer.

Each publishing route checks the calling service first (RFC 6750: 401 without a known
token, 403 when it may not take the action the body asks for), so a caller learns
nothing about a body it may not send; then it turns the JSON body into one record type
(validation errors are 422 naming the field) and answers 202 with the event id only once
the broker acknowledged it; 503 (with ``Retry-After``) when it did not within the
delivery bound. A ``Sec-GPC: 1`` header also records an opt-out of sale/sharing for the
request's subject, published first.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime
from typing import Annotated, Any, Final, NotRequired

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from pydantic import ConfigDict, Field, with_config
from typing_extensions import TypedDict

from producers import builders, drafts
from producers.aio import AsyncConsentClient
from producers.envelope import EnvelopeDefaults
from producers.errors import PublishError
from producers.gateway import unsubscribe
from producers.gateway.bodies import read_json, reading
from producers.gateway.problems import ProblemError
from producers.gateway.settings import GatewaySettings
from producers.gateway.tokens import ROUTE_ACTIONS, Caller, TokenBook, action_of, action_of_draft
from producers.publisher import Published
from schemas.errors import RegistryUnavailableError, UnknownSchemaError, ValidationError
from schemas.events import ConsentEvent, utc_now
from schemas.taxonomy import Purpose, Source

log = logging.getLogger(__name__)

CLIENT: Final = web.AppKey("client", AsyncConsentClient)
TOKENS: Final = web.AppKey("tokens", TokenBook)
SETTINGS: Final = web.AppKey("settings", GatewaySettings)
METRICS_REGISTRY: Final = web.AppKey("metrics_registry", CollectorRegistry)
DEFAULTS: Final = EnvelopeDefaults()
RETRY_AFTER_S: Final = "5"
_ACK_GRACE_S: Final = 5.0


EventId = Annotated[str, Field(json_schema_extra={"format": "uuid"})]


@with_config(ConfigDict(use_attribute_docstrings=True))
class Accepted(TypedDict):
    """The answer to a published event: the broker acknowledged it."""

    event_id: EventId
    """The event's id (the one sent, or the one the gateway gave it)."""
    gpc_event_id: NotRequired[EventId]
    """Set when a Sec-GPC: 1 header was recorded as an opt-out."""


def publishing(kind: type[ConsentEvent]) -> Any:
    """The handler of a route that publishes one record type."""

    async def handler(request: web.Request) -> web.Response:
        arrived = utc_now()
        caller = authenticate(request)
        authorize_route(caller, kind)
        body = await read_json(request, request.app[SETTINGS])
        asked = action_of_draft(kind, body)
        if asked is not None:
            authorize(caller, asked)
        try:
            event = drafts.build(kind, body, DEFAULTS)
        except ValidationError as exc:
            raise ProblemError(422, exc.reason, field=exc.field_name) from exc
        authorize(caller, action_of(event))
        return await accept(request, event, arrived)

    return handler


async def one_click_unsubscribe(request: web.Request) -> web.Response:
    """RFC 8058: a signed link withdraws email marketing for its subject."""
    arrived = utc_now()
    subject = request.query.get("s", "")
    signature = request.query.get("sig", "")
    key = request.app[SETTINGS].unsubscribe_key
    if not subject or not signature or not unsubscribe.verify(key, subject, signature):
        raise ProblemError(403, "this unsubscribe link is not valid")
    async with reading(request, request.app[SETTINGS]):
        form = await request.post()
    if form.get(unsubscribe.ONE_CLICK_FIELD) != unsubscribe.ONE_CLICK_VALUE:
        raise ProblemError(
            400,
            f"the body must be {unsubscribe.ONE_CLICK_FIELD}={unsubscribe.ONE_CLICK_VALUE}",
            field=unsubscribe.ONE_CLICK_FIELD,
        )
    try:
        event = builders.withdraw(
            subject, [Purpose.MARKETING_EMAIL], source=Source.UNSUBSCRIBE_LINK, defaults=DEFAULTS
        )
    except ValidationError as exc:
        raise ProblemError(422, exc.reason, field=exc.field_name) from exc
    return await accept(request, event, arrived)


def authenticate(request: web.Request) -> Caller:
    """The calling service; 401 without a bearer token or with an unknown one (RFC 6750)."""
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise ProblemError(
            401, "a bearer token is required", headers={"WWW-Authenticate": "Bearer"}
        )
    caller = request.app[TOKENS].caller(token.strip())
    if caller is None:
        raise ProblemError(
            401,
            "this token is not known",
            headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
        )
    return caller


def authorize_route(caller: Caller, kind: type[ConsentEvent]) -> None:
    """403 unless ``caller`` may take at least one of the actions a ``kind`` can need."""
    if not caller.may_any(ROUTE_ACTIONS[kind]):
        raise ProblemError(
            403,
            f"service {caller.service!r} may not send {kind.__name__}",
            headers={"WWW-Authenticate": 'Bearer error="insufficient_scope"'},
        )


def authorize(caller: Caller, action: str) -> None:
    """403 unless ``caller`` may take ``action``."""
    if not caller.may(action):
        raise ProblemError(
            403,
            f"service {caller.service!r} may not {action!r}",
            headers={"WWW-Authenticate": f'Bearer error="insufficient_scope", scope="{action}"'},
        )


async def accept(request: web.Request, event: ConsentEvent, arrived: datetime) -> web.Response:
    """Publish ``event`` (after a GPC opt-out if signalled); 202 once acknowledged.

    The GPC signal is dated when the request arrived: it was observed then, before the
    change the request carries, and is published before it on the subject's partition.
    """
    events = [event]
    gpc: ConsentEvent | None = None
    if request.headers.get("Sec-GPC", "").strip() == "1":
        gpc = builders.record_gpc_signal(event.subject, defaults=DEFAULTS, occurred_at=arrived)
        events.insert(0, gpc)
    client = request.app[CLIENT]
    bound = request.app[SETTINGS].delivery_timeout_s + _ACK_GRACE_S
    try:
        acks: list[Published] = await asyncio.wait_for(
            asyncio.gather(*(client.send(e) for e in events)), bound
        )
    except (PublishError, RegistryUnavailableError, TimeoutError) as exc:
        log.warning("not acknowledged, answering 503: %s", exc or type(exc).__name__)
        raise ProblemError(
            503,
            "the event was not stored (broker unavailable); retry with the same event_id",
            headers={"Retry-After": RETRY_AFTER_S},
        ) from exc
    except UnknownSchemaError as exc:
        log.error("schema not registered: %s", exc)
        raise ProblemError(
            500, "the event schema is not registered; run `consent-relay schemas register`"
        ) from exc
    body: Accepted = {"event_id": acks[-1].event_id}
    if gpc is not None:
        body["gpc_event_id"] = gpc.event_id
    return web.json_response(body, status=202)


async def metrics(request: web.Request) -> web.Response:
    """Prometheus text exposition."""
    payload = generate_latest(request.app[METRICS_REGISTRY])
    return web.Response(body=payload, headers={"Content-Type": CONTENT_TYPE_LATEST})


async def healthz(_request: web.Request) -> web.Response:
    """Liveness: the process answers."""
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    """Readiness: 200 when the broker answers a metadata request for the consent topic,
    else 503."""
    publisher = request.app[CLIENT].publisher
    if await asyncio.to_thread(publisher.broker_reachable):
        return web.json_response({"status": "ready"})
    raise ProblemError(503, "the broker does not answer", headers={"Retry-After": RETRY_AFTER_S})
