"""Request bodies under a deadline and a size limit, and JSON read strictly.

A client that declares more than ``GATEWAY_MAX_BODY_BYTES`` is answered 413 before a
byte of its body is read; one whose body does not arrive within
``GATEWAY_READ_TIMEOUT_S`` is answered 408 and its connection closed, so slow or stalled
clients cannot hold the gateway's connections. JSON that Python's parser would take but
that means two things (a member given twice, ``NaN``), or that breaks the parser
(nesting past its recursion limit, a number of thousands of digits), is a 400 naming the
problem, never a 500.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, Final

from aiohttp import web

from producers.gateway.problems import ProblemError
from producers.gateway.settings import GatewaySettings

_SHOWN: Final = 64
"""Longest member name quoted back in an error."""


@asynccontextmanager
async def reading(request: web.Request, settings: GatewaySettings) -> AsyncIterator[None]:
    """Read the body inside this block: 413 past the size limit, 408 past the deadline."""
    limit = settings.max_body_bytes
    declared = request.content_length
    if declared is not None and declared > limit:
        raise ProblemError(
            413, f"the body is {declared} bytes; the limit is {limit} bytes", close=True
        )
    try:
        async with asyncio.timeout(settings.read_timeout_s):
            yield
    except TimeoutError as exc:
        raise ProblemError(
            408,
            f"the body did not arrive within {settings.read_timeout_s:g} s; send it at once",
            close=True,
        ) from exc
    except web.HTTPRequestEntityTooLarge as exc:
        raise ProblemError(
            413, f"the body is larger than the limit of {limit} bytes", close=True
        ) from exc


async def read_json(request: web.Request, settings: GatewaySettings) -> Any:
    """The request body as JSON (see :func:`reading` and :func:`parse_json`)."""
    async with reading(request, settings):
        raw = await request.read()
    return parse_json(raw)


def parse_json(raw: bytes) -> Any:
    """``raw`` as one JSON value; 400 naming the problem when it is not exactly that."""
    if not raw:
        raise ProblemError(400, "the body is empty; send a JSON object")
    try:
        return json.loads(raw, object_pairs_hook=_object, parse_constant=_constant)
    except json.JSONDecodeError as exc:
        raise _invalid(f"{exc.msg} at line {exc.lineno} column {exc.colno}") from exc
    except UnicodeDecodeError as exc:
        raise _invalid("it is not UTF-8 text") from exc
    except RecursionError as exc:
        raise _invalid("it is nested too deeply") from exc
    except ValueError as exc:
        # The one other ValueError json.loads raises: an integer past Python's digit limit.
        raise _invalid("a number has too many digits") from exc


def _invalid(problem: str) -> ProblemError:
    return ProblemError(400, f"the body is not valid JSON: {problem}")


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # Parsers disagree on which of two equal names wins; the gateway takes neither.
    members: dict[str, Any] = {}
    for name, value in pairs:
        if name in members:
            raise _invalid(f"member {name[:_SHOWN]!r} appears twice")
        members[name] = value
    return members


def _constant(name: str) -> Any:
    raise _invalid(f"{name} is not a JSON number")
