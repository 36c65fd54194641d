"""Bearer tokens, scopes and the per-client rate: the door every call but the health checks passes.

``require(scope)`` is the FastAPI dependency a route declares; it answers the ``Principal`` (the
client and the actor it acts as) or refuses: 401 with ``WWW-Authenticate: Bearer`` for a missing,
unknown or disabled token, 403 for a token without the scope, 429 with ``Retry-After`` past the
client's rate. Every refusal by the token is audited, coalesced (``RefusalAuditor``) so that a flood
of bad tokens cannot flood the audit chain. The token itself never reaches a record or a log line.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from fastapi import Depends, Request, WebSocket
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.requests import HTTPConnection

from app.api.context import ApiContext, get_context, use_context
from app.api.errors import ApiProblem
from app.domain.actors import Actor, ApiScope
from app.domain.audit import AuditEventType, AuditSource
from app.security.api_clients import ApiClient, AuthRefusal
from app.security.operators import AuditSink

COALESCE_SECONDS = 10.0
UNAUTHENTICATED_PER_WINDOW = 10
"""Records of refusals that named no client, in total per window: each address has its own window, so
without this cap a sweep from many addresses (off loopback) would write a record for each."""
# Distinct (reason, client-or-address) pairs remembered for coalescing; the oldest is forgotten first.
MAX_TRACKED = 10_000
WRONG_SCOPE = "scope"
POLICY_VIOLATION = 1008
"""The WebSocket close code of a refused token, scope or rate."""
UNNAMED_ACTOR = "api:?"
"""The actor of a refusal whose token named no client ("?" is not a valid client name)."""

# auto_error off: the refusals are ours (audited, ApiErrorBody); declared so OpenAPI shows the scheme.
bearer = HTTPBearer(auto_error=False, description="an API client's token: `Authorization: Bearer bwk_...`")


@dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated API client and the actor it acts as on the desk (``api:<name>``)."""

    client: ApiClient
    actor: Actor


@dataclass(slots=True)
class _Window:
    opened: float
    suppressed: int = 0


class RefusalAuditor:
    """Records ``API_REFUSED`` at most once per (reason, client-or-address) per ``window`` seconds; the
    next record carries how many were suppressed since the last one (``suppressed``). Refusals that named
    no client are also capped in total, at ``max_unauthenticated`` records per window whatever the
    address; the next such record carries how many the cap left out (``capped``)."""

    def __init__(
        self, sink: AuditSink, *, window: float = COALESCE_SECONDS, clock: Callable[[], float] = time.monotonic,
        max_tracked: int = MAX_TRACKED, max_unauthenticated: int = UNAUTHENTICATED_PER_WINDOW,
    ) -> None:
        self._sink = sink
        self._window = window
        self._clock = clock
        self._max = max_tracked
        self._windows: OrderedDict[tuple[str, str], _Window] = OrderedDict()
        self._max_unauthenticated = max_unauthenticated
        self._unauthenticated = _Window(float("-inf"))
        self._unauthenticated_recorded = 0

    def _capped(self, now: float) -> bool:
        """Whether the total cap on unauthenticated records leaves this one out (counted if so)."""
        total = self._unauthenticated
        if now - total.opened >= self._window:
            total.opened, self._unauthenticated_recorded = now, 0
        if self._unauthenticated_recorded >= self._max_unauthenticated:
            total.suppressed += 1
            return True
        self._unauthenticated_recorded += 1
        return False

    def refused(self, reason: str, *, client: str | None, remote: str, path: str, scope: str | None = None) -> bool:
        """Note one refusal; True when it was recorded, False when coalesced into the next record."""
        now = self._clock()
        subject = client if client is not None else remote
        key = (reason, subject)
        window = self._windows.get(key)
        if window is not None and now - window.opened < self._window:
            window.suppressed += 1
            return False
        if client is None and self._capped(now):
            return False
        suppressed = window.suppressed if window is not None else 0
        self._windows[key] = _Window(now)
        self._windows.move_to_end(key)
        while len(self._windows) > self._max:
            self._windows.popitem(last=False)
        payload: dict[str, Any] = {"reason": reason, "client": client, "remote": remote, "path": path,
                                   "suppressed": suppressed}
        if scope is not None:
            payload["scope"] = scope
        if client is None:
            payload["capped"], self._unauthenticated.suppressed = self._unauthenticated.suppressed, 0
        actor = f"api:{client}" if client is not None else UNNAMED_ACTOR
        self._sink(AuditEventType.API_REFUSED, payload, actor, AuditSource.API)
        return True


def _remote(connection: HTTPConnection) -> str:
    return connection.client.host if connection.client is not None else "unknown"


_UNAUTHENTICATED = {
    AuthRefusal.MISSING: "no bearer token: send `Authorization: Bearer <token>`",
    AuthRefusal.UNKNOWN: "the token is not valid (unknown, mistyped or rotated)",
    AuthRefusal.DISABLED: "the token's API client is disabled",
}


def authenticate(
    context: ApiContext, connection: HTTPConnection, token: str | None, scope: ApiScope,
) -> Principal | ApiProblem:
    """The principal ``token`` stands for if it holds ``scope``; else the refusal (already audited)."""
    found = context.clients.authenticate(token)
    path = connection.url.path
    if not isinstance(found, ApiClient):
        # The token names no client we may trust here (a disabled one's name is not returned): keyed by address.
        context.refusals.refused(str(found), client=None, remote=_remote(connection), path=path)
        message = _UNAUTHENTICATED.get(found, "the token is not valid")
        return ApiProblem(401, "UNAUTHENTICATED", message, headers={"WWW-Authenticate": "Bearer"})
    if scope not in found.scopes:
        context.refusals.refused(WRONG_SCOPE, client=found.name, remote=_remote(connection), path=path, scope=str(scope))
        return ApiProblem(403, "FORBIDDEN", f"the API client {found.name} lacks the {scope} scope this call needs")
    return Principal(found, found.actor)


def require(
    scope: ApiScope, *, refuse_over_rate: Callable[[ApiContext], bool] | None = None,
) -> Callable[..., Awaitable[Principal]]:
    """A FastAPI dependency: the caller's ``Principal`` if its bearer token holds ``scope`` and its rate allows.

    With ``refuse_over_rate``, a call past the rate is still counted but refused only when it answers true
    (the kill switch: refused for rate only once the desk is already HALTED)."""

    async def principal(
        request: Request,
        credentials: HTTPAuthorizationCredentials | None = Depends(bearer),  # noqa: B008 - FastAPI's idiom
        context: ApiContext = Depends(use_context),  # noqa: B008 - FastAPI's idiom
    ) -> Principal:
        token = credentials.credentials if credentials is not None else None
        found = authenticate(context, request, token, scope)
        if isinstance(found, ApiProblem):
            raise found
        wait = context.limiter.take(found.client.name)
        if wait is not None and (refuse_over_rate is None or refuse_over_rate(context)):
            raise ApiProblem(
                429, "RATE_LIMITED",
                f"the API client {found.client.name} made more than {context.limiter.burst} requests at once or "
                f"{context.limiter.per_minute} a minute: retry in {wait} s",
                headers={"Retry-After": str(wait)},
            )
        return found

    principal.__name__ = f"require_{scope}"
    return principal


def websocket_token(ws: WebSocket) -> str | None:
    """The token a WebSocket presented: its ``Authorization: Bearer`` header, else its ``?token=``."""
    header = ws.headers.get("authorization")
    if header is not None:
        kind, _, value = header.partition(" ")
        return value.strip() or None if kind.lower() == "bearer" else None
    return ws.query_params.get("token") or None


async def websocket_principal(ws: WebSocket, scope: ApiScope) -> Principal | None:
    """The principal of a WebSocket's token (``Authorization`` header or ``?token=``), or None after closing
    the socket with 1008 (policy violation): a refusal (audited like an HTTP one), or past the client's rate
    (the same bucket as its HTTP calls, so reconnecting in a loop is held to it too)."""
    context = get_context(ws)
    found = authenticate(context, ws, websocket_token(ws), scope)
    if isinstance(found, ApiProblem):
        await ws.close(code=POLICY_VIOLATION, reason=found.message[:120])
        return None
    wait = context.limiter.take(found.client.name)
    if wait is not None:
        await ws.close(code=POLICY_VIOLATION, reason=f"rate limit: the API client is past its rate; retry in {wait} s")
        return None
    return found
