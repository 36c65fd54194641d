"""The kill switch over the API: ``POST /v1/kill`` halts the desk and sweeps its working orders.

The desk is HALTED before the answer is written: the engine's ``engage_kill_switch`` is synchronous
up to the halt. Re-arming is never offered here; only an operator at the desk (or ``main.py rearm``)
re-arms, with a reason.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Depends

from app.api.auth import Principal, require
from app.api.context import ApiContext, use_context
from app.api.convert import ist_time
from app.api.errors import error_responses
from app.api.models import API_PREFIX, KillIn, KillOut
from app.domain.actors import ApiScope
from app.domain.audit import AuditSource
from app.domain.trading_state import TradingState

router = APIRouter(prefix=API_PREFIX, tags=["kill switch"])



def _halted(context: ApiContext) -> bool:
    return context.engine.trading_state is TradingState.HALTED


# Its rate limit refuses a kill only once the desk is already HALTED: a strategy that spent its budget
# trading can still stop the desk.
killer = require(ApiScope.KILL, refuse_over_rate=_halted)


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
