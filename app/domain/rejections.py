"""Stable reason codes for refused orders; the value and the limit travel with each."""

from __future__ import annotations

import enum
from dataclasses import dataclass


class RejectReason(enum.StrEnum):
    """Why an order was refused. Codes are stable: the audit trail and API clients rely on them.

    ``REASON_TEXT`` below says what each one means; a test keeps the two in step.
    """

    UNKNOWN_INSTRUMENT = "UNKNOWN_INSTRUMENT"
    NOT_AUTHORISED = "NOT_AUTHORISED"
    NOT_MODIFIABLE = "NOT_MODIFIABLE"
    INVALID_SIDE = "INVALID_SIDE"
    INVALID_ORDER_TYPE = "INVALID_ORDER_TYPE"
    INVALID_PRODUCT = "INVALID_PRODUCT"
    INVALID_VALIDITY = "INVALID_VALIDITY"
    INVALID_QUANTITY = "INVALID_QUANTITY"
    NOT_LOT_MULTIPLE = "NOT_LOT_MULTIPLE"
    ABOVE_FREEZE_QUANTITY = "ABOVE_FREEZE_QUANTITY"
    INVALID_PRICE = "INVALID_PRICE"
    PRICE_OFF_TICK = "PRICE_OFF_TICK"
    TRADING_HALTED = "TRADING_HALTED"
    NOT_RISK_REDUCING = "NOT_RISK_REDUCING"
    NO_LIMIT = "NO_LIMIT"
    RESTRICTED_INSTRUMENT = "RESTRICTED_INSTRUMENT"
    ORDER_TYPE_NOT_ALLOWED = "ORDER_TYPE_NOT_ALLOWED"
    PRODUCT_NOT_ALLOWED = "PRODUCT_NOT_ALLOWED"
    MARKET_CLOSED = "MARKET_CLOSED"
    CALENDAR_UNPUBLISHED = "CALENDAR_UNPUBLISHED"
    CONTRACT_EXPIRED = "CONTRACT_EXPIRED"
    SOURCE_RATE_LIMIT = "SOURCE_RATE_LIMIT"
    MAX_OPEN_ORDERS = "MAX_OPEN_ORDERS"
    MAX_ORDERS_PER_DAY = "MAX_ORDERS_PER_DAY"
    DUPLICATE_ORDER = "DUPLICATE_ORDER"
    ORDER_QUANTITY_LIMIT = "ORDER_QUANTITY_LIMIT"
    STALE_PRICE = "STALE_PRICE"
    PRICE_COLLAR = "PRICE_COLLAR"
    ORDER_VALUE_LIMIT = "ORDER_VALUE_LIMIT"
    POSITION_QUANTITY_LIMIT = "POSITION_QUANTITY_LIMIT"
    POSITION_VALUE_LIMIT = "POSITION_VALUE_LIMIT"
    UNDERLYING_GROSS_LIMIT = "UNDERLYING_GROSS_LIMIT"
    UNDERLYING_NET_LIMIT = "UNDERLYING_NET_LIMIT"
    GROSS_EXPOSURE_LIMIT = "GROSS_EXPOSURE_LIMIT"
    NET_EXPOSURE_LIMIT = "NET_EXPOSURE_LIMIT"
    DAILY_LOSS_LIMIT = "DAILY_LOSS_LIMIT"
    TRAILING_LOSS_LIMIT = "TRAILING_LOSS_LIMIT"
    THROTTLED = "THROTTLED"
    ENGINE_NOT_RUNNING = "ENGINE_NOT_RUNNING"
    AUDIT_UNAVAILABLE = "AUDIT_UNAVAILABLE"
    BROKER_REJECTED = "BROKER_REJECTED"
    BROKER_RATE_LIMITED = "BROKER_RATE_LIMITED"
    BROKER_UNAVAILABLE = "BROKER_UNAVAILABLE"
    BROKER_TIMEOUT = "BROKER_TIMEOUT"


REASON_TEXT: dict[RejectReason, str] = {
    RejectReason.UNKNOWN_INSTRUMENT: "the instrument is not in the desk's instrument list",
    RejectReason.NOT_AUTHORISED: (
        "the operator may not do this: a ticket order needs a signed-in operator who may trade, in their own name; "
        "a modify, the order's own trader"
    ),
    RejectReason.NOT_MODIFIABLE: (
        "the order cannot be modified now: it is unknown, already final, not yet acknowledged by the broker, "
        "being cancelled or modified, or the modify changes nothing"
    ),
    RejectReason.INVALID_SIDE: "side is not BUY or SELL",
    RejectReason.INVALID_ORDER_TYPE: "order type is not LIMIT or MARKET",
    RejectReason.INVALID_PRODUCT: "product is not DELIVERY, INTRADAY or CARRY, or does not fit the segment",
    RejectReason.INVALID_VALIDITY: "validity is not DAY or IOC",
    RejectReason.INVALID_QUANTITY: "quantity is missing, not a positive whole number, or absurdly large",
    RejectReason.NOT_LOT_MULTIPLE: "quantity is not a whole number of lots",
    RejectReason.ABOVE_FREEZE_QUANTITY: "quantity is above the exchange's freeze quantity for one order",
    RejectReason.INVALID_PRICE: "price is missing, not a finite positive number, or given for a market order",
    RejectReason.PRICE_OFF_TICK: "price is not a multiple of the tick size",
    RejectReason.TRADING_HALTED: "the desk is HALTED: no new orders until an authorised operator re-arms",
    RejectReason.NOT_RISK_REDUCING: "the desk is REDUCING: only orders that shrink an open position pass",
    RejectReason.NO_LIMIT: "no risk limits cover this instrument (default deny)",
    RejectReason.RESTRICTED_INSTRUMENT: "the instrument is on the restricted list",
    RejectReason.ORDER_TYPE_NOT_ALLOWED: "the limits do not allow this order type",
    RejectReason.PRODUCT_NOT_ALLOWED: "the limits do not allow this product",
    RejectReason.MARKET_CLOSED: "the exchange is not in session now (per the desk's trading calendar)",
    RejectReason.CALENDAR_UNPUBLISHED: (
        "today's year has no holiday list in the desk's calendar and no operator accepted weekdays as sessions: "
        "new risk is refused (risk-reducing orders pass in regular weekday hours)"
    ),
    RejectReason.CONTRACT_EXPIRED: "the contract's expiry date has passed",
    RejectReason.SOURCE_RATE_LIMIT: "this order source sent more orders per second than its limit",
    RejectReason.MAX_OPEN_ORDERS: "the number of working orders is at its limit",
    RejectReason.MAX_ORDERS_PER_DAY: "the number of orders sent today is at its limit",
    RejectReason.DUPLICATE_ORDER: "same instrument, side, quantity and price as an order sent moments ago",
    RejectReason.ORDER_QUANTITY_LIMIT: "quantity is above the maximum order size",
    RejectReason.STALE_PRICE: "no reference price, or the last one is too old to check the order against",
    RejectReason.PRICE_COLLAR: "price is too far from the reference price",
    RejectReason.ORDER_VALUE_LIMIT: "order value is above the maximum order value",
    RejectReason.POSITION_QUANTITY_LIMIT: "position plus working orders would exceed the maximum position size",
    RejectReason.POSITION_VALUE_LIMIT: "position plus working orders would exceed the maximum position value",
    RejectReason.UNDERLYING_GROSS_LIMIT: "gross exposure in this underlying would exceed its cap",
    RejectReason.UNDERLYING_NET_LIMIT: "net exposure in this underlying would exceed its cap",
    RejectReason.GROSS_EXPOSURE_LIMIT: "the desk's gross exposure would exceed its cap",
    RejectReason.NET_EXPOSURE_LIMIT: "the desk's net exposure would exceed its cap",
    RejectReason.DAILY_LOSS_LIMIT: "today's loss (realized + unrealized) is at the daily loss limit: only risk-reducing orders pass",
    RejectReason.TRAILING_LOSS_LIMIT: "today's P&L fell too far from its peak: only risk-reducing orders pass",
    RejectReason.THROTTLED: "the broker's rate limit leaves no room for this order soon enough",
    RejectReason.ENGINE_NOT_RUNNING: "the engine is starting or stopping",
    RejectReason.AUDIT_UNAVAILABLE: "the audit store failed: nothing is sent that cannot be recorded",
    RejectReason.BROKER_REJECTED: "the broker refused the order",
    RejectReason.BROKER_RATE_LIMITED: "the broker refused the call for its rate limit",
    RejectReason.BROKER_UNAVAILABLE: "the broker could not be reached or failed",
    RejectReason.BROKER_TIMEOUT: "the broker did not answer in time; the order's state is being reconciled",
}


@dataclass(frozen=True, slots=True)
class Rejection:
    """A refusal: the code, a sentence for a person, and the offending value against the limit."""

    reason: RejectReason
    message: str
    value: str | None = None
    limit: str | None = None
