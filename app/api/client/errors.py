"""The client's exceptions: one class per kind of refusal, each carrying the server's code and message.

A refused *order* is not among them: the gate's decision is data (``SubmitOut.accepted`` false with
its rejection), which a strategy reads and acts on. These are for calls the API itself refused
(bad token, wrong scope, bad input, too fast) or could not answer. No message ever holds the token.
"""

from __future__ import annotations

from collections.abc import Mapping

from pydantic import ValidationError

from app.api.models import ApiErrorBody, FieldProblem

# A body that is not an ApiErrorBody (a proxy's page, a crash) is quoted this far and no further.
_TEXT_LIMIT = 200


class ApiError(Exception):
    """The API refused or failed a call: HTTP ``status`` (0 when no answer came), stable ``code``, ``message``."""

    def __init__(self, status: int, code: str, message: str, fields: list[FieldProblem] | None = None) -> None:
        super().__init__(f"{status} {code}: {message}" if status else f"{code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.fields: list[FieldProblem] = list(fields or [])


class Unauthenticated(ApiError):
    """401: the token is missing, unknown or its client disabled."""


class Forbidden(ApiError):
    """403: the client's scopes do not include this call (read, trade, kill)."""


class NotFound(ApiError):
    """404: no such order (or path)."""


class PayloadTooLarge(ApiError):
    """413: the request body is over the server's ``api.max_body_bytes``."""


class InvalidRequest(ApiError):
    """422: the request did not validate; ``fields`` names each field and the reason."""


class RateLimited(ApiError):
    """429: this client's burst or per-minute rate is spent; ``retry_after`` seconds until it may call again."""

    def __init__(self, status: int, code: str, message: str, fields: list[FieldProblem] | None = None, *,
                 retry_after: float = 1.0) -> None:
        super().__init__(status, code, message, fields)
        self.retry_after = retry_after


class ServerError(ApiError):
    """5xx: the desk could not answer (its body says no more than the code: internals never leak)."""


class ConnectionFailed(ApiError):
    """No answer: the desk is not listening, the connection dropped, or the call timed out (status 0)."""


class StreamRefused(ApiError):
    """The event stream was closed as refused (1008): a wrong or disabled token, no read scope, or bad ``types``."""


_BY_STATUS: dict[int, type[ApiError]] = {
    401: Unauthenticated, 403: Forbidden, 404: NotFound, 413: PayloadTooLarge, 422: InvalidRequest,
}


def error_from_response(status: int, content: bytes, headers: Mapping[str, str]) -> ApiError:
    """The exception for an HTTP error answer, from its ``ApiErrorBody`` (or a short quote of whatever came)."""
    try:
        body = ApiErrorBody.model_validate_json(content)
    except ValidationError:
        text = content[:_TEXT_LIMIT].decode("utf-8", "replace").strip()
        body = ApiErrorBody(code=f"HTTP_{status}", message=text or "no message")
    if status == 429:
        return RateLimited(status, body.code, body.message, body.fields, retry_after=retry_after_seconds(headers))
    cls = ServerError if status >= 500 else _BY_STATUS.get(status, ApiError)
    return cls(status, body.code, body.message, body.fields)


def retry_after_seconds(headers: Mapping[str, str]) -> float:
    """``Retry-After`` in seconds (the API sends delta-seconds); 1 s when missing or unreadable."""
    try:
        return max(0.0, float(headers.get("retry-after", "1")))
    except ValueError:
        return 1.0


def invalid_locally(exc: ValidationError) -> InvalidRequest:
    """A request the client's own copy of the contract refused before sending: the same shape as the server's 422."""
    fields = [
        FieldProblem(field=".".join(("body", *(str(p) for p in err["loc"]))), reason=err["msg"])
        for err in exc.errors()
    ]
    return InvalidRequest(422, "VALIDATION", "the request does not validate (checked before sending)", fields)
