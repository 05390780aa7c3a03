"""The HTTP gateway: consent events over JSON for services that don't speak Kafka.

``python -m producers.gateway`` serves ``POST /v1/consents``, ``/v1/rights``,
``/v1/cookie-preferences`` (bearer token per service), the RFC 8058 one-click
``POST /v1/unsubscribe`` (signed link), ``/openapi.json``, ``/metrics``, ``/healthz`` and
``/readyz``. A request is answered 202 only after the broker acknowledged the event.
"""
