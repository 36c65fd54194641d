"""Every problem with an order request's own fields at once, for the order ticket's live preview.

``validate_request`` stops at the first bad field: right for ``submit``, which refuses on the
first problem, but a ticket being typed wants each problem next to its own field. Here a field
found bad is set aside (a known-good stand-in takes its place) and the request is validated
again, so the next bad field is found too. The first problem is always the one ``submit`` would
give. The stand-ins never reach the gate: a request with any problem is not risk-checked.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from decimal import Decimal
from types import MappingProxyType

from app.domain.instruments import Instrument
from app.domain.orders import OrderType, Product, Side, Validity
from app.domain.rejections import Rejection, RejectReason
from app.domain.requests import NewOrder, OrderRequest, validate_request

# The field of the request each validation refusal is about: the one the stand-in replaces (the local
# API names the same fields in its 422s and previews). An unknown instrument is not here: it is reported alone.
REQUEST_FIELD: Mapping[RejectReason, str] = MappingProxyType({
    RejectReason.INVALID_SIDE: "side",
    RejectReason.INVALID_ORDER_TYPE: "order_type",
    RejectReason.INVALID_PRODUCT: "product",
    RejectReason.INVALID_VALIDITY: "validity",
    RejectReason.INVALID_QUANTITY: "quantity",
    RejectReason.NOT_LOT_MULTIPLE: "quantity",
    RejectReason.ABOVE_FREEZE_QUANTITY: "quantity",
    RejectReason.INVALID_PRICE: "price",
    RejectReason.PRICE_OFF_TICK: "price",
})


def _set_aside(request: OrderRequest, field: str, instrument: Instrument) -> OrderRequest:
    """``request`` with ``field`` replaced by a value ``validate_request`` accepts."""
    if field == "side":
        return dataclasses.replace(request, side=Side.BUY)
    if field == "order_type":
        # Whichever type the price field already fits, so a bad type does not also flag the price.
        return dataclasses.replace(request, order_type=OrderType.MARKET if request.price is None else OrderType.LIMIT)
    if field == "product":
        return dataclasses.replace(request, product=Product.INTRADAY)  # valid in every segment
    if field == "validity":
        return dataclasses.replace(request, validity=Validity.DAY)
    if field == "quantity":
        return dataclasses.replace(request, quantity=instrument.lot_size)
    # The price: none for a market order, one tick for a limit order.
    market = str(request.order_type).strip().upper() == OrderType.MARKET
    return dataclasses.replace(request, price=None if market else Decimal(instrument.tick_size) / 100)


def request_problems(request: OrderRequest, instrument: Instrument | None) -> tuple[list[Rejection], NewOrder | None]:
    """Every field problem of ``request`` (in ``validate_request``'s order), and the order when there are none.

    An unknown instrument is the only problem reported alone: without the instrument the quantity
    (lots) and the price (tick) cannot be judged.
    """
    problems: list[Rejection] = []
    # At most one pass per field, plus the last one that validates.
    for _ in range(len(set(REQUEST_FIELD.values())) + 1):
        checked = validate_request(request, instrument)
        if not isinstance(checked, Rejection):
            return problems, (checked if not problems else None)
        problems.append(checked)
        field = REQUEST_FIELD.get(checked.reason)
        if field is None or instrument is None:
            break
        request = _set_aside(request, field, instrument)
    return problems, None
