"""``GET /metrics``: the desk's metrics in Prometheus' text format (0.0.4), for a token with the read scope."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4

from app.api.auth import Principal, require
from app.api.errors import error_responses
from app.api.metrics import metrics_of
from app.domain.actors import ApiScope

router = APIRouter(tags=["metrics"])


@router.get(
    "/metrics",
    summary="The desk's metrics (Prometheus text format 0.0.4)",
    response_class=Response,
    responses={
        200: {"description": "the exposition", "content": {"text/plain": {"schema": {"type": "string"}}}},
        **error_responses(401, 403, 429),
    },
)
async def metrics(request: Request, _principal: Annotated[Principal, Depends(require(ApiScope.READ))]) -> Response:
    """Ticks, loop lag, gate and broker-call latency, broker errors, the governor's budgets, the audit
    backlog, orders by outcome, the trading state, bus drops and the API's own requests; read from the
    engine when scraped."""
    return Response(metrics_of(request.app).exposition(), media_type=CONTENT_TYPE_PLAIN_0_0_4)
