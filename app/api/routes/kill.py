"""The kill switch over the API: ``POST /v1/kill`` halts the desk and sweeps its working orders.

The desk is HALTED before the answer is written: the engine's ``engage_kill_switch`` is synchronous
up to the halt. Re-arming is never offered here; only an operator at the desk (or ``main.py rearm``)
re-arms, with a reason.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Depends, Request
from fastapi.security import HTTPAuthorizationCredentials

from app.api.auth import Principal, authenticate, bearer, require
from app.api.context import ApiContext, use_context
from app.api.convert import ist_time
from app.api.errors import ApiProblem, error_responses
from app.api.models import API_PREFIX, KillIn, KillOut
from app.domain.actors import ApiScope
from app.domain.audit import AuditSource
from app.domain.trading_state import TradingState

router = APIRouter(prefix=API_PREFIX, tags=["kill switch"])

_rate_limited_killer = require(ApiScope.KILL)


async def killer(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
    context: Annotated[ApiContext, Depends(use_context)],
) -> Principal:
    """A caller whose token holds the ``kill`` scope. Its rate limit refuses a kill only once the desk
    is already HALTED: a strategy that spent its budget trading can still stop the desk."""
    if context.engine.trading_state is TradingState.HALTED:
        return await _rate_limited_killer(request, credentials, context)
    found = authenticate(context, request, credentials.credentials if credentials is not None else None, ApiScope.KILL)
    if isinstance(found, ApiProblem):
        raise found
    context.limiter.take(found.client.name)  # counted against the rate, never refused by it
    return found


@router.post(
    "/kill",
    summary="Halt the desk now and cancel every working order (re-arming is not offered over the API)",
    responses=error_responses(
        401, 403, 413, 422, 429, notes={429: "already HALTED and past the client's rate; see Retry-After"},
    ),
)
async def kill(
    principal: Annotated[Principal, Depends(killer)],
    context: Annotated[ApiContext, Depends(use_context)],
    body: Annotated[KillIn | None, Body(description="why; a stop button may send no body")] = None,
) -> KillOut:
    engine = context.engine
    reason = (body or KillIn()).reason
    report = engine.engage_kill_switch(reason, actor=principal.actor.name, source=AuditSource.API)
    # A press while a sweep runs joins it: the answer then carries that sweep's start and bound.
    return KillOut(
        trading_state=engine.trading_state,
        halted_at=ist_time(report.engaged_at_ns),
        working_orders=report.working_at_engage,
        expected_seconds=report.expected_clear_s,
    )
