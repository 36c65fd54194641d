"""Strict translation between Breeze's payloads and the desk's types.

Breeze writes numbers as strings ("420.00"), sometimes as floats (23832.85) and leaves fields
``None``. Every value is checked here: a missing field, an unparsable number, an unknown status or a
contract the security master does not know raises ``BrokerError(MALFORMED)`` naming the field and the
value, never a ``KeyError`` deep in the engine. Money becomes integer paise; only average prices,
which need not be whole paise, are rounded (half to even).

Stream prices are JSON floats, and floats carry noise: ``1000.4000000000001`` is 1000.40 one unit in
the last place off. A value within ``NOISE_PAISE`` (1e-4 paisa, i.e. 1e-6 rupee) of a whole paisa is
that paisa. Why that bound: a float's spacing is about 2e-16 of its value, so even at ₹1 crore
(far above any Indian share or contract price) one unit in the last place is ~2e-9 rupee and a chain of
a few float operations stays below ~1e-8; the bound is a hundred times that, and still ten thousand
times finer than a paisa, so a value really between paise (``420.005``) is still refused. A price
that is NaN, infinite, negative or between paise raises ``RefusedPrice`` (a MALFORMED error the
adapter counts on its own).

No number Breeze sends for this desk (a price, a quantity, a balance) comes near ten trillion (1e13);
one that does is refused before it becomes a ``Fraction`` or an ``int``: ``Decimal("1e3000000")``
would otherwise hold the event loop for seconds, and ``1e30`` would read as a price.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import date
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from fractions import Fraction
from typing import Any

from app.brokers.base import BrokerError, BrokerErrorCode, PlaceRequest
from app.domain.broker_messages import (
    BrokerOrder,
    BrokerOrderUpdate,
    BrokerPosition,
    BrokerTrade,
    Funds,
)
from app.domain.instruments import Exchange, OptionRight, Segment
from app.domain.market import Tick
from app.domain.orders import OrderStatus, Product, Side, Validity

from .contracts import BreezeContract, breeze_date, rupees_text
from .master import MAX_RUPEES_EXPONENT, ContractFields, SecurityMaster

# Breeze's order states (REST rows and, through the SDK's code table, the order feed).
_STATUS = {
    "requested": OrderStatus.OPEN,
    "queued": OrderStatus.OPEN,
    "ordered": OrderStatus.OPEN,
    # Frozen by the exchange pending approval: it may still trade, so it counts as working.
    "freezed": OrderStatus.OPEN,
    "partially executed": OrderStatus.PARTIALLY_FILLED,
    "executed": OrderStatus.FILLED,
    "cancelled": OrderStatus.CANCELLED,
    "partially executed and cancelled": OrderStatus.CANCELLED,
    "rejected": OrderStatus.REJECTED,
    "expired": OrderStatus.EXPIRED,
    "partially executed and expired": OrderStatus.EXPIRED,
}
_SIDE = {"buy": Side.BUY, "sell": Side.SELL}
_RIGHT = {"call": OptionRight.CALL, "put": OptionRight.PUT}
_VALIDITY = {Validity.DAY: "day", Validity.IOC: "ioc"}
# Cash intraday is Breeze's "margin" product, delivery its "cash"; F&O products are the contract kind.
_CASH_PRODUCT = {Product.INTRADAY: "margin", Product.DELIVERY: "cash", Product.CARRY: "cash"}
# Breeze takes a free-text remark of limited length; the desk's client order id fits well within it.
MAX_REMARK = 20
# How far from a whole paisa a value may be and still be that paisa (float noise; see the module docstring).
NOISE_PAISE = Fraction(1, 10_000)
# The float counterpart of ``MAX_RUPEES_EXPONENT``: a value this large or larger is not a number Breeze means.
_TOO_LARGE = 10.0 ** (MAX_RUPEES_EXPONENT + 1)


class RefusedPrice(BrokerError):
    """A price that is clearly not one: not a number, NaN, infinite, ten trillion or more, not positive, or between paise."""

    def __init__(self, what: str, value: object) -> None:
        super().__init__(BrokerErrorCode.MALFORMED, _cannot_read(what, value))


def malformed(what: str, value: object) -> BrokerError:
    return BrokerError(BrokerErrorCode.MALFORMED, _cannot_read(what, value))


def _cannot_read(what: str, value: object) -> str:
    return f"Breeze sent {what} = {repr(value)[:80]}, which the desk cannot read"


# -- requests ---------------------------------------------------------------------------------------


def place_kwargs(request: PlaceRequest, contract: BreezeContract) -> dict[str, str]:
    """The SDK's ``place_order`` arguments. Always a limit order: the desk prices market orders itself
    (with its protection) and never lets the SDK turn one into its own aggressive limit."""
    instrument = contract.instrument
    product = _CASH_PRODUCT[request.product] if instrument.segment is Segment.CASH else str(contract.product_type)
    return {
        "stock_code": contract.stock_code,
        "exchange_code": contract.exchange_code,
        "product": product,
        "action": "buy" if request.side is Side.BUY else "sell",
        "order_type": "limit",
        "stoploss": "",
        "quantity": str(request.quantity),
        "price": rupees_text(request.price),
        "validity": _VALIDITY[request.validity],
        "user_remark": request.client_order_id[:MAX_REMARK],
        **contract.contract_fields(),
    }


# -- numbers ----------------------------------------------------------------------------------------


def paise(value: object, what: str) -> int:
    """Rupees (``"420.05"``, ``420.05``, ``420``, ``420.05000000000001``) to paise: a value within
    ``NOISE_PAISE`` of a whole paisa is that paisa; anything else is malformed."""
    # Fraction is exact for any float or decimal text: nothing is rounded before the check.
    exact = _float(value, what) if isinstance(value, float) else Fraction(_decimal(value, what))
    hundredths = exact * 100
    whole = round(hundredths)
    if abs(hundredths - whole) > NOISE_PAISE:
        raise malformed(what, value)
    return whole


def price(value: object, what: str) -> int:
    """A trade or quote price in paise: positive, within ``NOISE_PAISE`` of a whole paisa; else ``RefusedPrice``."""
    try:
        amount = paise(value, what)
    except BrokerError:
        raise RefusedPrice(what, value) from None
    if amount <= 0:
        raise RefusedPrice(what, value)
    return amount


def _float(value: float, what: str) -> Fraction:
    if not math.isfinite(value) or abs(value) >= _TOO_LARGE:
        raise malformed(what, value)
    return Fraction(value)


def average_paise(value: object, what: str) -> int | None:
    """An average price in paise, rounded half to even; ``None`` when Breeze reports none (0 or empty)."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    amount = (_decimal(value, what) * 100).quantize(Decimal(1), rounding=ROUND_HALF_EVEN)
    if amount < 0:
        raise malformed(what, value)
    return int(amount) or None


def quantity(value: object, what: str) -> int:
    """A non-negative whole quantity (``"75"``, ``75``, ``"75.0"``)."""
    amount = _decimal(value, what)
    if amount != amount.to_integral_value() or amount < 0:
        raise malformed(what, value)
    return int(amount)


def _decimal(value: object, what: str) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise malformed(what, value)
    try:
        amount = Decimal(str(value).strip().replace(",", ""))
    except InvalidOperation:
        raise malformed(what, value) from None
    if not amount.is_finite() or amount.adjusted() > MAX_RUPEES_EXPONENT:
        raise malformed(what, value)
    return amount


def _field(row: Mapping[str, Any], name: str, where: str) -> Any:
    if not isinstance(row, Mapping):
        raise malformed(where, row)
    if name not in row:
        raise BrokerError(BrokerErrorCode.MALFORMED, f"Breeze's {where} has no {name!r} field")
    return row[name]


def _text(row: Mapping[str, Any], name: str, where: str) -> str:
    value = _field(row, name, where)
    if not isinstance(value, str) or not value.strip():
        raise malformed(f"{where}.{name}", value)
    return value.strip()


def status(value: object, what: str) -> OrderStatus:
    mapped = _STATUS.get(value.strip().lower()) if isinstance(value, str) else None
    if mapped is None:
        raise malformed(what, value)
    return mapped


def side(value: object, what: str) -> Side:
    mapped = _SIDE.get(value.strip().lower()) if isinstance(value, str) else None
    if mapped is None:
        raise malformed(what, value)
    return mapped


# -- contracts in rows ------------------------------------------------------------------------------


def contract_of(row: Mapping[str, Any], master: SecurityMaster, where: str) -> BreezeContract:
    """The master's contract for a REST row's exchange, stock code, expiry, strike and right."""
    exchange_text = _text(row, "exchange_code", where)
    try:
        exchange = Exchange(exchange_text.upper())
    except ValueError:
        raise malformed(f"{where}.exchange_code", exchange_text) from None
    stock_code = _text(row, "stock_code", where).upper()
    expiry: date | None = None
    strike: int | None = None
    right: OptionRight | None = None
    if exchange.is_derivatives:
        expiry = _expiry(_field(row, "expiry_date", where), f"{where}.expiry_date")
        right_text = row.get("right")
        right = _RIGHT.get(right_text.strip().lower()) if isinstance(right_text, str) else None
        if right is not None:
            strike = paise(_field(row, "strike_price", where), f"{where}.strike_price")
    contract = master.by_fields.get(ContractFields(exchange, stock_code, expiry, strike, right))
    if contract is None:
        described = " ".join(str(part) for part in (exchange, stock_code, expiry, strike, right) if part is not None)
        raise BrokerError(BrokerErrorCode.MALFORMED, f"Breeze's {where} names a contract not in the security master: {described}")
    return contract


def _expiry(value: object, what: str) -> date:
    if isinstance(value, str):
        text = value.strip()
        try:
            return breeze_date(text)
        except ValueError:
            pass
        try:
            return date.fromisoformat(text[:10])
        except ValueError:
            pass
    raise malformed(what, value)


# -- rows -------------------------------------------------------------------------------------------


def order_row(row: Mapping[str, Any], master: SecurityMaster) -> BrokerOrder:
    """One order-book row (see ``filled_quantity`` for what executed)."""
    where = "order row"
    order_id = _text(row, "order_id", where)
    contract = contract_of(row, master, where)
    ordered = quantity(_field(row, "quantity", where), f"{where}.quantity")
    state = status(_field(row, "status", where), f"{where}.status")
    average = average_paise(row.get("average_price"), f"{where}.average_price")
    filled = filled_quantity(row, state, average)
    remark = row.get("user_remark")
    return BrokerOrder(
        broker_order_id=order_id,
        client_order_id=remark.strip() if isinstance(remark, str) and remark.strip() else None,
        instrument_key=contract.instrument.key,
        side=side(_field(row, "action", where), f"{where}.action"),
        quantity=ordered,
        price=paise(_field(row, "price", where), f"{where}.price"),
        status=state,
        filled_quantity=filled,
        average_price=average if filled else None,
    )


def filled_quantity(row: Mapping[str, Any], state: OrderStatus, average: int | None) -> int:
    """How much of an order-book row's order executed. Breeze reports no executed quantity: it is
    ordered minus pending minus cancelled, except for a rejection (nothing filled) and an expiry
    without an average price (``average``, as ``average_paise`` read the row's)."""
    where = "order row"
    ordered = quantity(_field(row, "quantity", where), f"{where}.quantity")
    pending = quantity(_field(row, "pending_quantity", where), f"{where}.pending_quantity")
    cancelled = quantity(_blank_is_zero(row.get("cancelled_quantity")), f"{where}.cancelled_quantity")
    if state is OrderStatus.REJECTED or (state is OrderStatus.EXPIRED and average is None):
        return 0
    return max(0, ordered - pending - cancelled)


def position_row(row: Mapping[str, Any], master: SecurityMaster) -> BrokerPosition | None:
    """One portfolio-positions row; ``None`` for a flat one (Breeze lists closed positions too)."""
    where = "position row"
    held = quantity(_field(row, "quantity", where), f"{where}.quantity")
    if held == 0:
        return None
    direction = side(_field(row, "action", where), f"{where}.action")
    contract = contract_of(row, master, where)
    return BrokerPosition(
        instrument_key=contract.instrument.key,
        quantity=held if direction is Side.BUY else -held,
        average_price=average_paise(row.get("average_price"), f"{where}.average_price"),
    )


def trade_row(row: Mapping[str, Any], master: SecurityMaster) -> BrokerTrade:
    where = "trade row"
    return BrokerTrade(
        broker_order_id=_text(row, "order_id", where),
        instrument_key=contract_of(row, master, where).instrument.key,
        side=side(_field(row, "action", where), f"{where}.action"),
        quantity=quantity(_field(row, "quantity", where), f"{where}.quantity"),
        average_price=_required_average(_field(row, "average_cost", where), f"{where}.average_cost"),
        trade_date=_expiry(_field(row, "trade_date", where), f"{where}.trade_date"),
    )


def funds(payload: object) -> Funds:
    """Cash free and blocked for equity and F&O (the segments the desk trades), in paise."""
    where = "funds"
    if not isinstance(payload, Mapping):
        raise malformed(where, payload)
    allocated = sum(paise(_field(payload, f"allocated_{s}", where), f"{where}.allocated_{s}") for s in ("equity", "fno"))
    blocked = sum(average_paise(_field(payload, f"block_by_trade_{s}", where), f"{where}.block_by_trade_{s}") or 0
                  for s in ("equity", "fno"))
    return Funds(available=allocated - blocked, used_margin=blocked)


def quote_tick(payload: object, contract: BreezeContract, ts_ns: int) -> Tick:
    """The first quote row of ``get_quotes`` as a tick."""
    rows = payload if isinstance(payload, list) else None
    if not rows or not all(isinstance(row, Mapping) for row in rows):
        raise malformed("quotes", payload)
    # A BSE quote comes second, after the same stock's NSE listing.
    row = next((r for r in rows if str(r.get("exchange_code", "")).upper() == contract.exchange_code), rows[0])
    return Tick(
        instrument_key=contract.instrument.key,
        price=price(_field(row, "ltp", "quote"), "quote.ltp"),
        ts_ns=ts_ns,
        bid=_optional_price(row.get("best_bid_price"), "quote.best_bid_price"),
        ask=_optional_price(row.get("best_offer_price"), "quote.best_offer_price"),
    )


# -- stream messages (already unpacked by the SDK's parse_data) --------------------------------------


def is_order_message(data: Mapping[str, Any]) -> bool:
    return "orderReference" in data or "sourceNumber" in data


def stream_tick(data: Mapping[str, Any], master: SecurityMaster, ts_ns: int) -> Tick | None:
    """A ``stock`` event as a tick, stamped when it arrived; ``None`` for a symbol the desk does not
    map or a message without a last price (market depth, a contract before its first trade: none or 0).
    A price that is not one raises ``RefusedPrice``."""
    symbol = data.get("symbol")
    contract = master.by_symbol.get(symbol) if isinstance(symbol, str) else None
    last = data.get("last")
    if contract is None or _no_price(last):
        return None
    volume = data.get("ttq")
    return Tick(
        instrument_key=contract.instrument.key,
        price=price(last, "stock.last"),
        ts_ns=ts_ns,
        bid=_optional_price(data.get("bPrice"), "stock.bPrice"),
        ask=_optional_price(data.get("sPrice"), "stock.sPrice"),
        volume=quantity(volume, "stock.ttq") if volume not in (None, "") else 0,
    )


def order_update(data: Mapping[str, Any], ts_ns: int) -> BrokerOrderUpdate:
    """An ``order`` event: cash notifications name the executed quantity ``orderExecutedQuantity``,
    F&O ones ``executedQuantity``; both are cumulative."""
    where = "order notification"
    order_id = _text(data, "orderReference", where)
    executed_name = "orderExecutedQuantity" if "orderExecutedQuantity" in data else "executedQuantity"
    executed = _field(data, executed_name, where)
    return BrokerOrderUpdate(
        ts_ns=ts_ns,
        broker_order_id=order_id,
        status=status(_field(data, "orderStatus", where), f"{where}.orderStatus"),
        filled_quantity=quantity(_blank_is_zero(executed), f"{where}.{executed_name}"),
        average_price=average_paise(data.get("averageExecutedRate"), f"{where}.averageExecutedRate"),
    )


def _blank_is_zero(value: object) -> object:
    # Breeze leaves a count it has nothing for as None or ""; anything else must read as a number.
    return 0 if value is None or (isinstance(value, str) and not value.strip()) else value


def _required_average(value: object, what: str) -> int:
    average = average_paise(value, what)
    if average is None:
        raise malformed(what, value)
    return average


def _no_price(value: object) -> bool:
    # Breeze shows "no price" as None, "" or 0 (an empty side of the book, no trade yet).
    return value is None or value == "" or (isinstance(value, (int, float)) and not isinstance(value, bool) and value == 0)


def _optional_price(value: object, what: str) -> int | None:
    return None if _no_price(value) else price(value, what)

