"""Every error the API answers is an ``ApiErrorBody``: a stable code, a sentence, and each bad field.

A client reads one shape whatever went wrong: a refused token, a bad field, a missing order, a body
too large, or a fault of ours (500, logged here with its traceback, never shown to the client).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from app.api.models import ApiErrorBody, FieldProblem

log = logging.getLogger(__name__)

# Codes by HTTP status for errors raised by the framework itself (an unknown path, a wrong method).
_STATUS_CODES: Mapping[int, str] = {
    400: "BAD_REQUEST",
    401: "UNAUTHENTICATED",
    403: "FORBIDDEN",
    404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    406: "NOT_ACCEPTABLE",
    409: "CONFLICT",
    413: "BODY_TOO_LARGE",
    415: "UNSUPPORTED_MEDIA_TYPE",
    422: "VALIDATION",
    429: "RATE_LIMITED",
    500: "INTERNAL",
    503: "UNAVAILABLE",
}

# What each error means, as the served schema describes it (a route may say more: ``notes``).
_DESCRIPTIONS: Mapping[int, str] = {
    401: "no token, or a wrong or disabled one",
    403: "the token lacks the scope this call needs",
    404: "no such thing on this desk",
    413: "the body is too large",
    422: "a field, parameter or header is not valid (each one named)",
    429: "past the client's rate limit; see Retry-After",
    503: "the desk is not ready",
}


class ApiProblem(Exception):
    """An answer other than success, raised anywhere under a route and turned into an ``ApiErrorBody``."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        headers: Mapping[str, str] | None = None,
        fields: Sequence[FieldProblem] = (),
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers: dict[str, str] = dict(headers or {})
        self.fields: list[FieldProblem] = list(fields)

    def response(self) -> JSONResponse:
        """This problem as the ``ApiErrorBody`` JSON answer, with its status and headers."""
        return error_response(self.status, self.code, self.message, headers=self.headers, fields=self.fields)


def error_response(
    status: int, code: str, message: str, *, headers: Mapping[str, str] | None = None, fields: Iterable[FieldProblem] = (),
) -> JSONResponse:
    """The JSON answer for one error (also used by the ASGI middlewares, which run outside FastAPI's handlers)."""
    body = ApiErrorBody(code=code, message=message, fields=list(fields))
    return JSONResponse(body.model_dump(mode="json"), status_code=status, headers=dict(headers or {}))


def field_problems(errors: Sequence[Any]) -> list[FieldProblem]:
    """One ``FieldProblem`` per pydantic error: the dotted location and pydantic's own sentence."""
    problems: list[FieldProblem] = []
    for error in errors:
        location = ".".join(str(part) for part in error.get("loc", ())) or "body"
        problems.append(FieldProblem(field=location, reason=str(error.get("msg", "is not valid"))))
    return problems


def _status_code(status: int) -> str:
    if status in _STATUS_CODES:
        return _STATUS_CODES[status]
    try:
        return HTTPStatus(status).name
    except ValueError:
        return "ERROR"


async def _on_problem(request: Request, exc: Exception) -> Response:
    if not isinstance(exc, ApiProblem):
        raise exc
    return exc.response()


async def _on_validation(request: Request, exc: Exception) -> Response:
    if not isinstance(exc, RequestValidationError):
        raise exc
    problems = field_problems(exc.errors())
    named = ", ".join(f"{p.field}: {p.reason}" for p in problems[:3])
    more = f" (and {len(problems) - 3} more)" if len(problems) > 3 else ""
    return error_response(422, "VALIDATION", f"the request is not valid: {named}{more}", fields=problems)


async def _on_http(request: Request, exc: Exception) -> Response:
    if not isinstance(exc, StarletteHTTPException):
        raise exc
    if exc.status_code == 400 and isinstance(exc.__cause__, ValueError):
        # FastAPI's "error parsing the body" (a body that is not UTF-8, say): malformed input, answered as such.
        reason = f"the body could not be read as JSON: {type(exc.__cause__).__name__}"
        return error_response(422, "VALIDATION", f"the request is not valid: body: {reason}",
                              fields=[FieldProblem(field="body", reason=reason)])
    message = exc.detail if isinstance(exc.detail, str) and exc.detail else HTTPStatus(exc.status_code).phrase
    return error_response(exc.status_code, _status_code(exc.status_code), message, headers=exc.headers)


async def _on_unexpected(request: Request, exc: Exception) -> Response:
    # The traceback goes to the log; the client learns only that it was our fault.
    log.error("the local API failed on %s %s", request.method, request.url.path, exc_info=exc)
    return error_response(500, "INTERNAL", "the desk failed to answer this request; the fault is logged on the desk")


def install_error_handlers(app: FastAPI) -> None:
    """Make every error ``app`` answers an ``ApiErrorBody``."""
    app.add_exception_handler(ApiProblem, _on_problem)
    app.add_exception_handler(RequestValidationError, _on_validation)
    app.add_exception_handler(StarletteHTTPException, _on_http)
    app.add_exception_handler(Exception, _on_unexpected)


def error_responses(*statuses: int, notes: Mapping[int, str] | None = None) -> dict[int | str, dict[str, Any]]:
    """The ``responses=`` of a route answering ``statuses`` with an ``ApiErrorBody`` (so the served schema
    says what each error looks like); ``notes`` replaces the description of a status where the route means
    something more precise."""
    described = {**_DESCRIPTIONS, **(notes or {})}
    return {
        status: {"model": ApiErrorBody, "description": described.get(status, HTTPStatus(status).phrase)}
        for status in statuses
    }
