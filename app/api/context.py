"""What every route reads: the engine, the API clients, the settings and the API's own state.

One ``ApiContext`` per served app, kept on ``app.state.context``; routes reach it through the
``get_context`` dependency (works for HTTP requests and WebSockets alike).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from starlette.requests import HTTPConnection

from app.api.idempotency import IdempotencyStore
from app.api.rate_limit import ClientRateLimiter
from app.engine.engine import Engine
from app.settings import ApiSettings

if TYPE_CHECKING:
    from app.api.alert_log import AlertLog
    from app.api.auth import RefusalAuditor
    from app.desk import Desk
    from app.security.api_clients import ApiClientDirectory


@dataclass
class ApiContext:
    """The desk as the API sees it. ``desk`` is None when the API serves an engine built without a
    desk (tests, benchmarks). ``database_ok`` answers whether the desk's store is usable (readiness)."""

    engine: Engine
    clients: ApiClientDirectory
    settings: ApiSettings
    desk: Desk | None
    alerts: AlertLog
    limiter: ClientRateLimiter
    idempotency: IdempotencyStore
    database_ok: Callable[[], bool]
    refusals: RefusalAuditor


def get_context(request: HTTPConnection) -> ApiContext:
    """FastAPI dependency: the context of the app serving ``request`` (callable directly too)."""
    context: ApiContext = request.app.state.context
    return context


async def use_context(request: HTTPConnection) -> ApiContext:
    """``get_context`` for ``Depends``: FastAPI sends a plain-function dependency to a worker thread and
    back, which costs a request about half a millisecond (more on a loaded machine); a coroutine runs inline."""
    return get_context(request)
