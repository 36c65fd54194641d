"""Orders: submit through the gate and governor, preview, list, read, modify and cancel.

The API is one more source for the engine's single order path: a submit names the client's actor
(``api:<name>``) and passes it as the operator, so the engine asks for its TRADE authority and counts
the gate's per-source rate per client. Every client with the read scope sees every order; cancel and
modify reach only the client's own, and that is the engine's decision (audited there), not ours.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Header, Path, Query

from app.api.auth import Principal, require
from app.api.context import ApiContext, use_context
from app.api.convert import average_price, ist_time, optional_rupees
from app.api.errors import ApiProblem, error_responses
from app.api.idempotency import KEY_PATTERN, MAX_KEY_LENGTH, fingerprint
from app.api.models import (
    API_PREFIX,
    IDEMPOTENCY_HEADER,
    CancelOut,
    CheckOut,
    HeadroomOut,
    ModifyIn,
    ModifyOut,
    OrderId,
    OrderIn,
    OrderOut,
    PreviewOut,
    RejectionOut,
    SubmitOut,
)
from app.domain.actors import ApiScope
from app.domain.audit import AuditSource
from app.domain.events import OrderSnapshot
from app.domain.money import paise_to_rupees
from app.domain.orders import Order, OrderSource
from app.domain.rejections import Rejection, RejectReason
from app.domain.requests import OrderRequest
from app.engine.request_problems import REQUEST_FIELD
from app.engine.results import OrderPreview, SubmitResult

router = APIRouter(prefix=API_PREFIX, tags=["orders"])

_AUTH_ERRORS = (401, 403, 429)
_BODY_ERRORS = (413, 422)

# The body field each field-level refusal is about: the engine's own table, with the instrument under its body name.
_BODY_FIELD = {**REQUEST_FIELD, RejectReason.UNKNOWN_INSTRUMENT: "instrument"}

IdempotencyKey = Annotated[
    str | None,
    Header(
        alias=IDEMPOTENCY_HEADER, min_length=1, max_length=MAX_KEY_LENGTH, pattern=KEY_PATTERN,
        description="a key of the client's choosing: a retried request with the same key and body is answered "
        "once, never placed twice (kept 24 h)",
    ),
]
OrderIdPath = Annotated[OrderId, Path(description="the desk's client order id")]


def _request(body: OrderIn, principal: Principal) -> OrderRequest:
    return OrderRequest(
        instrument_key=body.instrument, side=body.side, quantity=body.quantity, price=body.price,
        order_type=body.order_type, product=body.product, validity=body.validity,
        source=OrderSource.API, actor=principal.actor.name, tag=body.tag,
    )


def rejection_out(rejection: Rejection) -> RejectionOut:
    """A refusal as the API shows it: its stable code, sentence, value and limit."""
    return RejectionOut(code=str(rejection.reason), message=rejection.message, value=rejection.value, limit=rejection.limit)


def submit_out(result: SubmitResult) -> SubmitOut:
    """The engine's answer to a submit: the order it created, or the refusal."""
    return SubmitOut(
        accepted=result.accepted, client_order_id=result.client_order_id, status=result.status,
        rejection=rejection_out(result.rejection) if result.rejection is not None else None,
    )


def preview_out(preview: OrderPreview) -> PreviewOut:
    """A preview as the API shows it: every problem (with the body field it is about), money in rupees."""
    problems = [
        CheckOut(code=str(r.reason), message=r.message, value=r.value, limit=r.limit, field=_BODY_FIELD.get(r.reason))
        for r in preview.rejections
    ]
    headroom = [
        # Quantity limits are in units: shown as plain numbers, the name saying so.
        HeadroomOut(name=h.name, used_after=paise_to_rupees(h.after), limit=paise_to_rupees(h.limit))
        if h.unit == "paise"
        else HeadroomOut(name=f"{h.name} (units)", used_after=Decimal(h.after), limit=Decimal(h.limit))
        for h in preview.headroom
    ]
    return PreviewOut(
        would_pass=preview.ok, problems=problems,
        price=optional_rupees(preview.price),
        value=paise_to_rupees(preview.order_value or 0), headroom=headroom,
    )


def order_out(order: Order | OrderSnapshot) -> OrderOut:
    """An order (the OMS's, or an event's snapshot of one) as the API shows it: rupees and an IST time."""
    updated_ns = order.updated_ns if isinstance(order, Order) else order.ts_ns
    return OrderOut(
        client_order_id=order.client_order_id, broker_order_id=order.broker_order_id,
        instrument=order.instrument_key, side=order.side, quantity=order.quantity,
        price=paise_to_rupees(order.price), order_type=order.order_type, product=order.product,
        source=order.source, actor=order.actor, status=order.status, filled_quantity=order.filled_quantity,
        average_fill_price=average_price(order.fill_value, order.filled_quantity),
        updated=ist_time(updated_ns) if updated_ns else None,
    )


def _known(context: ApiContext, client_order_id: str) -> Order:
    order = context.engine.oms.get(client_order_id)
    if order is None:
        raise ApiProblem(404, "NOT_FOUND", f"no order {client_order_id} on this desk")
    return order


@router.post(
    "/orders", response_model=SubmitOut, responses=error_responses(*_AUTH_ERRORS, *_BODY_ERRORS),
    summary="Submit an order through the risk gate and the rate governor",
)
async def submit(
    body: OrderIn,
    principal: Annotated[Principal, Depends(require(ApiScope.TRADE))],
    context: Annotated[ApiContext, Depends(use_context)],
    idempotency_key: IdempotencyKey = None,
) -> SubmitOut:
    """The gate's decision: ``accepted``, or the refusal's code, value and limit (HTTP 200 either way)."""
    request = _request(body, principal)

    async def place() -> SubmitOut:
        return submit_out(await context.engine.submit(request, operator=principal.actor))

    if idempotency_key is None:
        return await place()
    return await context.idempotency.submit_once(
        principal.client.name, idempotency_key, fingerprint(body), place,
    )


@router.post(
    "/orders/preview", response_model=PreviewOut, responses=error_responses(*_AUTH_ERRORS, *_BODY_ERRORS),
    summary="What an order would meet now, sending nothing",
)
async def preview(
    body: OrderIn,
    principal: Annotated[Principal, Depends(require(ApiScope.READ))],
    context: Annotated[ApiContext, Depends(use_context)],
) -> PreviewOut:
    return preview_out(context.engine.preview(_request(body, principal)))


@router.get(
    "/orders", response_model=list[OrderOut], responses=error_responses(*_AUTH_ERRORS, 422),
    summary="The desk's orders: working ones, or all of today's",
)
async def list_orders(
    principal: Annotated[Principal, Depends(require(ApiScope.READ))],
    context: Annotated[ApiContext, Depends(use_context)],
    status: Annotated[Literal["working", "all"], Query(description="working orders only, or all")] = "working",
    mine: Annotated[bool, Query(description="only this client's own orders")] = False,
) -> list[OrderOut]:
    oms = context.engine.oms
    orders = oms.working() if status == "working" else oms.orders()
    if mine:
        orders = [o for o in orders if o.actor == principal.actor.name]
    return [order_out(o) for o in orders]


@router.get(
    "/orders/{client_order_id}", response_model=OrderOut, responses=error_responses(*_AUTH_ERRORS, 404, 422),
    summary="One order",
)
async def get_order(
    client_order_id: OrderIdPath,
    principal: Annotated[Principal, Depends(require(ApiScope.READ))],
    context: Annotated[ApiContext, Depends(use_context)],
) -> OrderOut:
    return order_out(_known(context, client_order_id))


@router.patch(
    "/orders/{client_order_id}", response_model=ModifyOut, responses=error_responses(*_AUTH_ERRORS, 404, *_BODY_ERRORS),
    summary="Modify a working order of this client's: quantity (units), price, or both",
)
async def modify_order(
    client_order_id: OrderIdPath,
    body: ModifyIn,
    principal: Annotated[Principal, Depends(require(ApiScope.TRADE))],
    context: Annotated[ApiContext, Depends(use_context)],
) -> ModifyOut:
    _known(context, client_order_id)
    result = await context.engine.modify(
        client_order_id, quantity=body.quantity, price=body.price, operator=principal.actor,
    )
    return ModifyOut(
        ok=result.ok, client_order_id=result.client_order_id, message=result.message,
        rejection=rejection_out(result.rejection) if result.rejection is not None else None,
    )


@router.delete(
    "/orders/{client_order_id}", response_model=CancelOut, responses=error_responses(*_AUTH_ERRORS, 404, 422),
    summary="Cancel a working order of this client's",
)
async def cancel_order(
    client_order_id: OrderIdPath,
    principal: Annotated[Principal, Depends(require(ApiScope.TRADE))],
    context: Annotated[ApiContext, Depends(use_context)],
) -> CancelOut:
    _known(context, client_order_id)
    result = await context.engine.cancel(
        client_order_id, actor=principal.actor.name, source=AuditSource.API, operator=principal.actor,
    )
    return CancelOut(ok=result.ok, client_order_id=result.client_order_id, message=result.message)
