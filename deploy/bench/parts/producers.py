"""How fast the ways in go: prints events per second and latencies; asserts nothing.

``python -m deploy.bench.parts.producers`` (needs ``KAFKA_BOOTSTRAP`` and ``SCHEMA_REGISTRY_URL``)
creates fresh topics, then measures against the real broker: the blocking client one
acknowledged call at a time, the blocking client's futures in a batch, the asyncio
client gathering, and the HTTP gateway (run in this process on a free port) under
concurrent requests. It deletes its topics afterwards. Figures are indicative: on a
small machine the broker, the load and the code under test share the cores.
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import statistics
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp
from aiohttp import web
from confluent_kafka.admin import AdminClient
from prometheus_client import CollectorRegistry

from producers import builders
from producers.aio import AsyncConsentClient
from producers.client import ConsentClient
from producers.gateway.app import create_app
from producers.gateway.settings import GatewaySettings
from producers.gateway.tokens import TokenBook
from schemas.registry import register_all
from schemas.runtime.admin import ensure_topics
from schemas.runtime.kafka import KafkaSettings
from schemas.taxonomy import Purpose

_TOKEN = "bench-" + uuid.uuid4().hex


def line(name: str, count: int, seconds: float, latencies: list[float] | None = None) -> None:
    """Print one result line."""
    text = f"{name:<34} {count:>7} events {seconds:7.2f} s {count / seconds:>9,.0f} /s"
    if latencies:
        ordered = sorted(latencies)
        p50 = statistics.median(ordered) * 1000
        p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000
        text += f"   p50 {p50:6.1f} ms  p99 {p99:6.1f} ms"
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def bench_sync(settings: KafkaSettings, one_by_one: int, batch: int) -> None:
    """The blocking client: acknowledged calls in a row, then a batch of futures."""
    with ConsentClient(settings) as client:
        client.withdraw("warm-up", [Purpose.MARKETING_EMAIL])
        latencies = []
        began = time.perf_counter()
        for i in range(one_by_one):
            started = time.perf_counter()
            client.withdraw(f"sync-{i % 500}", [Purpose.MARKETING_EMAIL])
            latencies.append(time.perf_counter() - started)
        line("client: publish, one at a time", one_by_one, time.perf_counter() - began, latencies)
        began = time.perf_counter()
        futures = [
            client.send(builders.withdraw(f"batch-{i % 500}", [Purpose.MARKETING_EMAIL]))
            for i in range(batch)
        ]
        for future in futures:
            future.result()
        line("client: send() batch, then acks", batch, time.perf_counter() - began)


def bench_async(settings: KafkaSettings, count: int) -> None:
    """The asyncio client gathering ``count`` withdrawals."""

    async def run() -> float:
        async with AsyncConsentClient(settings) as client:
            await client.withdraw("warm-up", [Purpose.MARKETING_EMAIL])
            began = time.perf_counter()
            await asyncio.gather(
                *(
                    client.withdraw(f"aio-{i % 500}", [Purpose.MARKETING_EMAIL])
                    for i in range(count)
                )
            )
            return time.perf_counter() - began

    line("asyncio client: gather", count, asyncio.run(run()))


def bench_gateway(settings: KafkaSettings, count: int, concurrency: int) -> None:
    """The gateway in this process, ``concurrency`` HTTP clients posting withdrawals."""

    async def run() -> tuple[float, list[float]]:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = int(sock.getsockname()[1])
        gateway = GatewaySettings(
            tokens_file=Path("unused.json"), unsubscribe_key="b" * 32, port=port
        )
        tokens = TokenBook.parse({"tokens": {_TOKEN: {"service": "bench", "actions": ["*"]}}})
        app = create_app(gateway, settings, tokens=tokens, registry=CollectorRegistry())
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        latencies: list[float] = []
        url = f"http://127.0.0.1:{port}/v1/consents"
        headers = {"Authorization": f"Bearer {_TOKEN}"}
        try:
            async with aiohttp.ClientSession(headers=headers) as http:

                async def post(i: int) -> None:
                    body = {
                        "subject": {"id": f"http-{i % 500}", "kind": "ACCOUNT"},
                        "choice": "WITHDRAWN",
                        "purposes": ["MARKETING_EMAIL"],
                    }
                    started = time.perf_counter()
                    async with http.post(url, json=body) as response:
                        if response.status != 202:
                            raise RuntimeError(f"gateway answered {response.status}")
                    latencies.append(time.perf_counter() - started)

                await post(-1)
                latencies.clear()
                began = time.perf_counter()
                await _run_bounded(count, concurrency, post)
                return time.perf_counter() - began, latencies
        finally:
            await runner.cleanup()

    seconds, latencies = asyncio.run(run())
    line(f"gateway: HTTP, {concurrency} concurrent", count, seconds, latencies)


async def _run_bounded(count: int, limit: int, job: Callable[[int], Awaitable[None]]) -> None:
    """Run ``job(0..count-1)`` with at most ``limit`` in flight."""
    indexes = iter(range(count))

    async def worker() -> None:
        for i in indexes:  # shared: each index is taken by exactly one worker
            await job(i)

    await asyncio.gather(*(worker() for _ in range(limit)))


def main(argv: list[str] | None = None) -> int:
    """Run the benchmarks on fresh topics; returns the exit status."""
    parser = argparse.ArgumentParser(
        prog="python -m deploy.bench.parts.producers", description=__doc__
    )
    parser.add_argument("--one-by-one", type=int, default=300)
    parser.add_argument("--batch", type=int, default=20_000)
    parser.add_argument("--http", type=int, default=2_000)
    parser.add_argument("--concurrency", type=int, default=32)
    args = parser.parse_args(argv)
    base = KafkaSettings.from_env()
    settings = base.model_copy(
        update={"topic_prefix": f"bench-producers-{uuid.uuid4().hex[:6]}.", "partitions": 3}
    )
    with settings.registry_client() as registry:
        register_all(registry)
    ensure_topics(settings)
    try:
        bench_sync(settings, args.one_by_one, args.batch)
        bench_async(settings, args.batch)
        bench_gateway(settings, args.http, args.concurrency)
    finally:
        admin = AdminClient(settings.admin_config())
        for future in admin.delete_topics([s.name for s in settings.topics.all()]).values():
            future.result(30)
    return 0


if __name__ == "__main__":
    sys.exit(main())
