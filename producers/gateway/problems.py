"""Error responses as RFC 9457 problem details, and the exception that carries one."""

from __future__ import annotations

from http import HTTPStatus
from typing import NotRequired

from aiohttp import web
from pydantic import ConfigDict, with_config
from typing_extensions import TypedDict

from schemas.errors import ConsentRelayError

PROBLEM_JSON = "application/problem+json"


@with_config(ConfigDict(use_attribute_docstrings=True))
class Problem(TypedDict):
    """RFC 9457 problem details; a 422 names the offending field."""

    title: str
    """The status's reason phrase."""
    status: int
    """The HTTP status."""
    detail: str
    """What was wrong, and what to do about it."""
    field: NotRequired[str]
    """The body's field (or form field) at fault, when one is."""


class ProblemError(ConsentRelayError):
    """Stop handling a request and answer with this problem."""

    def __init__(
        self,
        status: int,
        detail: str,
        *,
        field: str | None = None,
        headers: dict[str, str] | None = None,
        close: bool = False,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.field = field
        self.headers = headers or {}
        # Close after answering: the body was not (wholly) read, so the connection
        # cannot carry another request.
        self.close = close

    def response(self) -> web.Response:
        """The problem as an HTTP response."""
        body: Problem = {
            "title": HTTPStatus(self.status).phrase,
            "status": self.status,
            "detail": self.detail,
        }
        if self.field is not None:
            body["field"] = self.field
        response = web.json_response(
            body, status=self.status, content_type=PROBLEM_JSON, headers=self.headers
        )
        if self.close:
            response.force_close()
        return response
