"""The request body size limit: 413 for a body over ``max_bytes``, however it is sent.

Pure ASGI (no body buffering of its own): a ``Content-Length`` over the limit is refused before the
app sees the request; a chunked body is counted as it streams and cut the moment it passes the limit,
so a client can never make the desk hold more than the limit of its body.
"""

from __future__ import annotations

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.api.errors import error_response


class BodyTooLarge(HTTPException):
    """Raised from ``receive`` once a streamed body passes the limit; answered as 413 by the error handlers."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"the request body is larger than {limit} bytes")


class BodyLimit:
    """ASGI middleware answering 413 (``ApiErrorBody``, code BODY_TOO_LARGE) to bodies over ``max_bytes``."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.max_bytes
        declared = _content_length(scope)
        if declared is not None and declared > limit:
            await error_response(413, "BODY_TOO_LARGE", BodyTooLarge(limit).detail)(scope, receive, send)
            return
        seen = 0
        started = False

        async def limited_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise BodyTooLarge(limit)
            return message

        async def watched_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, watched_send)
        except BodyTooLarge as exc:
            # Only reached when something read the body outside the routes' error handlers.
            if started:
                raise
            await error_response(413, "BODY_TOO_LARGE", exc.detail)(scope, receive, send)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope["headers"]:
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None
