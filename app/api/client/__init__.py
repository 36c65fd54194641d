"""A small typed client for the desk's local API: ``Bulwark`` (blocking) and ``AsyncBulwark`` (asyncio + stream).

It speaks HTTP with the server's own pydantic models (``app.api.models``) and imports nothing of the
desk itself: no engine, no database, no Qt, no FastAPI, so a strategy script stays light.
"""

from app.api.client.aio import AsyncBulwark
from app.api.client.calls import DEFAULT_URL, TOKEN_ENV, RetryPolicy
from app.api.client.errors import (
    ApiError,
    ConnectionFailed,
    Forbidden,
    InvalidRequest,
    NotFound,
    PayloadTooLarge,
    RateLimited,
    ServerError,
    StreamRefused,
    Unauthenticated,
)
from app.api.client.sync import Bulwark

__all__ = [
    "DEFAULT_URL",
    "TOKEN_ENV",
    "ApiError",
    "AsyncBulwark",
    "Bulwark",
    "ConnectionFailed",
    "Forbidden",
    "InvalidRequest",
    "NotFound",
    "PayloadTooLarge",
    "RateLimited",
    "RetryPolicy",
    "ServerError",
    "StreamRefused",
    "Unauthenticated",
]
