"""Order requests as they arrive from a source, and their validation into typed new orders."""

from __future__ import annotations

import math
from dataclasses import dataclass
from decimal import Decimal
from typing import TypeVar

from .instruments import Instrument, Segment
from .money import MoneyError, rupees_to_paise
from .orders import OrderSource, OrderType, Product, Side, Validity
from .rejections import Rejection, RejectReason


@dataclass(frozen=True, slots=True)
class OrderRequest:
    """An order as a source asks for it, before anything is trusted.

    Fields are loosely typed on purpose: a ticket, an API client or a script may send a string,
    a float or garbage, and every such value must come back as a clear rejection, not an exception.
    ``price`` is in rupees (``Decimal``, ``str``, ``int`` or ``float``); ``None`` for a market order.
    The default source, STRATEGY, is for code inside the desk's own process (tests, benchmarks, an
    embedded strategy), which vouches for itself; the local API always says API and is asked for
    its client's authority, as the ticket is for the signed-in operator's.
    """

    instrument_key: str
    side: object
    quantity: object
    price: object = None
    order_type: object = OrderType.LIMIT
    product: object = Product.INTRADAY
    validity: object = Validity.DAY
    source: OrderSource = OrderSource.STRATEGY
    actor: str = "unknown"
    tag: str = ""


@dataclass(frozen=True, slots=True)
class NewOrder:
    """A request that passed validation: typed, quantity in units, price in integer paise (``None`` = market)."""

    instrument: Instrument
    side: Side
    quantity: int
    price: int | None
    order_type: OrderType
    product: Product
    validity: Validity
    source: OrderSource
    actor: str
    tag: str = ""


_E = TypeVar("_E", Side, OrderType, Product, Validity)

# Quantities of 10**18 units or more are refused before being turned into an int: building (and
# printing) a number like 1e999999 takes seconds and then raises ValueError in str().
_MAX_QUANTITY_DIGITS = 18


def _show(value: object) -> str:
    """``repr`` for a rejection message that cannot itself raise (repr of an int over 4,300 digits does)."""
    try:
        return repr(value)
    except Exception:  # noqa: BLE001 - a rejection must never turn into an exception
        return f"<unprintable {type(value).__name__}>"


def _enum_value(enum_type: type[_E], value: object) -> _E | None:
    if isinstance(value, enum_type):
        return value
    if isinstance(value, str):
        try:
            return enum_type(value.strip().upper())
        except ValueError:
            return None
    return None


def _quantity(value: object, instrument: Instrument) -> int | Rejection:
    if isinstance(value, bool) or not isinstance(value, (int, float, Decimal, str)):
        return Rejection(RejectReason.INVALID_QUANTITY, "quantity must be a whole number", _show(value))
    try:
        number = Decimal(str(value).strip()) if not isinstance(value, int) else Decimal(value)
    except ArithmeticError:
        return Rejection(RejectReason.INVALID_QUANTITY, "quantity must be a whole number", _show(value))
    if not number.is_finite() or number != number.to_integral_value():
        return Rejection(RejectReason.INVALID_QUANTITY, "quantity must be a whole number", _show(value))
    if not number.is_zero() and number.adjusted() >= _MAX_QUANTITY_DIGITS:
        shown = f"{number:.3E}"
        if number < 0:
            return Rejection(RejectReason.INVALID_QUANTITY, "quantity must be positive", shown, "> 0")
        return Rejection(
            RejectReason.ABOVE_FREEZE_QUANTITY,
            f"quantity is above the exchange freeze quantity {instrument.freeze_quantity}",
            shown,
            str(instrument.freeze_quantity),
        )
    quantity = int(number)
    if quantity <= 0:
        return Rejection(RejectReason.INVALID_QUANTITY, "quantity must be positive", str(quantity), "> 0")
    if not instrument.is_lot_multiple(quantity):
        return Rejection(
            RejectReason.NOT_LOT_MULTIPLE,
            f"quantity must be a multiple of the lot size {instrument.lot_size}",
            str(quantity),
            str(instrument.lot_size),
        )
    if quantity > instrument.freeze_quantity:
        return Rejection(
            RejectReason.ABOVE_FREEZE_QUANTITY,
            f"quantity is above the exchange freeze quantity {instrument.freeze_quantity}",
            str(quantity),
            str(instrument.freeze_quantity),
        )
    return quantity


def _price(value: object, instrument: Instrument) -> int | Rejection:
    if isinstance(value, float) and not math.isfinite(value):
        return Rejection(RejectReason.INVALID_PRICE, "price must be a finite number", _show(value))
    if isinstance(value, bool) or not isinstance(value, (int, float, Decimal, str)):
        return Rejection(RejectReason.INVALID_PRICE, "price must be a number of rupees", _show(value))
    try:
        paise = rupees_to_paise(value.strip() if isinstance(value, str) else value)
    except MoneyError as exc:
        reason = RejectReason.PRICE_OFF_TICK if "finer than one paisa" in str(exc) else RejectReason.INVALID_PRICE
        return Rejection(reason, f"price is not valid: {exc}", _show(value))
    if paise <= 0:
        return Rejection(RejectReason.INVALID_PRICE, "price must be positive", str(value), "> 0")
    if not instrument.is_on_tick(paise):
        return Rejection(
            RejectReason.PRICE_OFF_TICK,
            f"price must be a multiple of the tick size ({instrument.tick_size} paise)",
            str(value),
            str(instrument.tick_size),
        )
    return paise


def validate_request(request: OrderRequest, instrument: Instrument | None) -> NewOrder | Rejection:
    """Check a request's own fields against its instrument. Pure: no state, no I/O."""
    if instrument is None:
        return Rejection(RejectReason.UNKNOWN_INSTRUMENT, "no such instrument", _show(request.instrument_key))
    side = _enum_value(Side, request.side)
    if side is None:
        return Rejection(RejectReason.INVALID_SIDE, "side must be BUY or SELL", _show(request.side))
    order_type = _enum_value(OrderType, request.order_type)
    if order_type is None:
        return Rejection(RejectReason.INVALID_ORDER_TYPE, "order type must be LIMIT or MARKET", _show(request.order_type))
    product = _enum_value(Product, request.product)
    if product is None:
        return Rejection(RejectReason.INVALID_PRODUCT, "unknown product", _show(request.product))
    is_cash = instrument.segment is Segment.CASH
    if product is (Product.CARRY if is_cash else Product.DELIVERY):
        allowed = "DELIVERY or INTRADAY" if is_cash else "CARRY or INTRADAY"
        return Rejection(RejectReason.INVALID_PRODUCT, f"{instrument.key} takes {allowed}", str(product), allowed)
    validity = _enum_value(Validity, request.validity)
    if validity is None:
        return Rejection(RejectReason.INVALID_VALIDITY, "validity must be DAY or IOC", _show(request.validity))
    quantity = _quantity(request.quantity, instrument)
    if isinstance(quantity, Rejection):
        return quantity
    price: int | None = None
    if order_type is OrderType.LIMIT:
        if request.price is None:
            return Rejection(RejectReason.INVALID_PRICE, "a limit order needs a price", "None")
        checked = _price(request.price, instrument)
        if isinstance(checked, Rejection):
            return checked
        price = checked
    elif request.price is not None:
        return Rejection(RejectReason.INVALID_PRICE, "a market order takes no price", _show(request.price))
    return NewOrder(
        instrument=instrument,
        side=side,
        quantity=quantity,
        price=price,
        order_type=order_type,
        product=product,
        validity=validity,
        source=request.source,
        actor=request.actor,
        tag=request.tag,
    )
