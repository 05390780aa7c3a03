"""Assembling the gateway: settings, token book, client lifecycle, routes, middleware."""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web
from prometheus_client import REGISTRY, CollectorRegistry

from producers.aio import AsyncConsentClient
from producers.gateway import handlers, openapi, unsubscribe
from producers.gateway.middleware import instrument
from producers.gateway.openapi import PUBLISH_ROUTES
from producers.gateway.settings import GatewaySettings
from producers.gateway.tokens import TokenBook
from producers.metrics import ProducerMetrics
from schemas.runtime.kafka import KafkaSettings


def create_app(
    settings: GatewaySettings,
    kafka: KafkaSettings,
    *,
    tokens: TokenBook | None = None,
    registry: CollectorRegistry = REGISTRY,
) -> web.Application:
    """The gateway application; its Kafka client opens on startup and flushes on cleanup."""
    metrics = ProducerMetrics.create(registry)
    app = web.Application(
        client_max_size=settings.max_body_bytes, middlewares=[instrument(metrics)]
    )
    app[handlers.SETTINGS] = settings
    app[handlers.TOKENS] = tokens or TokenBook.load(settings.tokens_file)
    app[handlers.METRICS_REGISTRY] = registry

    async def client_lifecycle(app: web.Application) -> AsyncIterator[None]:
        client = AsyncConsentClient(
            kafka, delivery_timeout_s=settings.delivery_timeout_s, metrics=metrics
        )
        app[handlers.CLIENT] = client
        yield
        await client.close()

    app.cleanup_ctx.append(client_lifecycle)
    for path, (kind, _summary) in PUBLISH_ROUTES.items():
        app.router.add_post(path, handlers.publishing(kind))
    app.router.add_post(unsubscribe.PATH, handlers.one_click_unsubscribe)
    app.router.add_get("/openapi.json", openapi.serve)
    app.router.add_get("/metrics", handlers.metrics)
    app.router.add_get("/healthz", handlers.healthz)
    app.router.add_get("/readyz", handlers.readyz)
    return app
