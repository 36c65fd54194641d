"""Health checks for a monitoring system: liveness and readiness, without a token.

Neither reveals a position, an order or a price: only whether the process serves (live) and whether
the desk could take an order now (ready: engine running, broker connected, feed fresh, database
usable, trading not HALTED), each part named so the failing one is plain from the 503's body.
"""

from __future__ import annotations

import logging
from typing import Annotated

from fastapi import APIRouter, Depends, Response

from app.api.context import ApiContext, use_context
from app.api.models import API_PREFIX, Liveness, Readiness
from app.domain.trading_state import TradingState
from app.engine.engine import Lifecycle

log = logging.getLogger(__name__)

# The feed's newest tick may be this old when the limits in force set no reference age (deny-all
# limits set zero): a few seconds, as the desk's status bar starts to warn.
FALLBACK_FEED_AGE_S = 5.0

router = APIRouter(prefix=f"{API_PREFIX}/health", tags=["health"])


@router.get("/live", summary="The process serves (always 200 while it does)")
async def live() -> Liveness:
    return Liveness()


def _database_ok(context: ApiContext) -> bool:
    try:
        return context.database_ok()
    # A probe that fails says "not ok": it must not turn readiness into a 500.
    except Exception:
        log.exception("the database check failed")
        return False


@router.get(
    "/ready",
    summary="The desk could take an order now (503 with the same body when not)",
    responses={503: {"model": Readiness, "description": "not ready: the false parts say why"}},
)
async def ready(response: Response, context: Annotated[ApiContext, Depends(use_context)]) -> Readiness:
    engine = context.engine
    now = engine.clock_ns()
    running = engine.lifecycle is Lifecycle.RUNNING
    connected = running and engine.broker_down_since_ns is None and not engine.session_expired
    newest = engine.market_data.newest_ts_ns
    age_s = max(0, now - newest) / 1e9 if newest is not None else None
    reference_s = engine.gate.limits.desk.reference_max_age_ns / 1e9
    # Fresh as the gate needs a reference price: no older than the limits allow.
    fresh = age_s is not None and age_s <= (reference_s if reference_s > 0 else FALLBACK_FEED_AGE_S)
    database = _database_ok(context)
    state = engine.trading_state
    answer = Readiness(
        ready=running and connected and fresh and database and state is not TradingState.HALTED,
        broker_connected=connected,
        feed_age_s=age_s,
        feed_fresh=fresh,
        database_ok=database,
        trading_state=state,
        engine=engine.lifecycle.lower(),
    )
    if not answer.ready:
        response.status_code = 503
    return answer
