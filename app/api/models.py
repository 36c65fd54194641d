"""The local API's request and response bodies: the one contract between the server and the client.

Money crosses the API as rupees in decimal strings ("1500.05"), never floats; the engine's integer
paise stay inside. Times are ISO 8601 with their offset. Enums are the desk's own stable codes.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from app.domain.events import AlertLevel
from app.domain.orders import (
    OrderSource,
    OrderStatus,
    OrderType,
    Product,
    Side,
    Validity,
)
from app.domain.trading_state import TradingState

API_PREFIX = "/v1"
IDEMPOTENCY_HEADER = "Idempotency-Key"

Rupees = Annotated[Decimal, Field(max_digits=20, decimal_places=2, description="rupees, e.g. \"1500.05\"")]
# An order's price: above zero, so a zero or negative price is a 422 naming the field, not a gate refusal.
PositiveRupees = Annotated[Decimal, Field(gt=0, max_digits=20, decimal_places=2, description="rupees, e.g. \"1500.05\"")]
InstrumentKey = Annotated[str, StringConstraints(min_length=1, max_length=64), Field(description="the desk's instrument key")]
OrderId = Annotated[str, StringConstraints(min_length=1, max_length=64), Field(description="the desk's client order id")]
Reason = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=500)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# -- errors -------------------------------------------------------------------------------------


class FieldProblem(_Model):
    """One field that was wrong, and why."""

    field: str = Field(description="dotted path of the field, e.g. body.quantity")
    reason: str


class ApiErrorBody(_Model):
    """Every 4xx and 5xx answer: a stable code, a sentence, and for 422 each field's problem."""

    code: str = Field(description="stable code, e.g. UNAUTHENTICATED, FORBIDDEN, RATE_LIMITED, VALIDATION, NOT_FOUND")
    message: str
    fields: list[FieldProblem] = Field(default_factory=list)


# -- health and status --------------------------------------------------------------------------


class Liveness(_Model):
    status: Literal["ok"] = "ok"


class Readiness(_Model):
    """Whether the desk can take orders now; every part named (503 when ``ready`` is false)."""

    ready: bool
    broker_connected: bool
    feed_age_s: float | None = Field(description="seconds since the last tick; null before the first")
    feed_fresh: bool
    database_ok: bool
    trading_state: TradingState
    engine: str = Field(description="the engine's lifecycle: created, starting, running, stopping, stopped")


class LimitUse(_Model):
    """One limit: what is used, the cap, and the share (0-1, may exceed 1)."""

    used: Rupees
    limit: Rupees
    share: float


class GovernorBudget(_Model):
    """The broker's rate limits as the governor spends them."""

    actions_per_second: int
    actions_used_last_second: int
    calls_per_minute: int
    calls_used_last_minute: int
    calls_per_day: int
    calls_used_today: int


class DeskStatus(_Model):
    trading_state: TradingState
    reason: str
    since: dt.datetime | None
    by: str
    gross: LimitUse
    net: LimitUse
    day_pnl: Rupees
    daily_loss_limit: Rupees
    open_orders: int
    governor: GovernorBudget


# -- market --------------------------------------------------------------------------------------


class InstrumentOut(_Model):
    key: InstrumentKey
    symbol: str
    underlying: str
    exchange: str
    segment: str
    expiry: dt.date | None
    strike: Rupees | None
    right: str | None
    lot_size: int
    tick_size: Rupees
    freeze_quantity: int


class Quote(_Model):
    key: InstrumentKey
    last: Rupees | None
    at: dt.datetime | None
    age_s: float | None = Field(description="seconds since the last trade price; null when none yet")


class PositionOut(_Model):
    key: InstrumentKey
    quantity: int = Field(description="signed units: long positive, short negative")
    average_price: Rupees | None
    last: Rupees | None
    realised_pnl: Rupees
    unrealised_pnl: Rupees


class LimitsOut(_Model):
    """The limits in force: their version, and the document as the risk officer wrote it (TOML)."""

    version: int | None
    source: str
    document: str


class AlertOut(_Model):
    seq: int = Field(description="increasing number; ask for alerts after the last one seen")
    level: AlertLevel
    component: str
    message: str
    at: dt.datetime


# -- orders --------------------------------------------------------------------------------------


class OrderIn(_Model):
    """A new order. ``price`` for LIMIT; none for MARKET (sent as a protected limit)."""

    instrument: InstrumentKey
    side: Side
    quantity: int = Field(gt=0, le=10**12, description="units (a multiple of the lot size)")
    price: PositiveRupees | None = None
    order_type: OrderType = OrderType.LIMIT
    product: Product = Product.INTRADAY
    validity: Validity = Validity.DAY
    tag: Annotated[str, StringConstraints(max_length=64)] = ""


class ModifyIn(_Model):
    """New terms for a working order: the whole order's quantity (units), its price, or both."""

    quantity: int | None = Field(default=None, gt=0, le=10**12)
    price: PositiveRupees | None = None


class RejectionOut(_Model):
    """Why the gate, the governor or the broker refused: stable code, sentence, the value and the limit."""

    code: str
    message: str
    value: str | None = None
    limit: str | None = None


class OrderOut(_Model):
    client_order_id: OrderId
    broker_order_id: str | None
    instrument: InstrumentKey
    side: Side
    quantity: int
    price: Rupees
    order_type: OrderType
    product: Product
    source: OrderSource
    actor: str
    status: OrderStatus
    filled_quantity: int
    average_fill_price: Rupees | None
    updated: dt.datetime | None


class SubmitOut(_Model):
    """The gate's decision. ``accepted`` false carries the rejection; the HTTP status is 200 either way."""

    accepted: bool
    client_order_id: OrderId | None
    status: OrderStatus | None
    rejection: RejectionOut | None
    replayed: bool = Field(default=False, description="true when this answer is the stored one for a repeated idempotency key")


class CheckOut(_Model):
    """One check a preview found the order would fail."""

    code: str
    message: str
    value: str | None = None
    limit: str | None = None
    field: str | None = None


class HeadroomOut(_Model):
    name: str
    used_after: Rupees
    limit: Rupees


class PreviewOut(_Model):
    """What the order would meet now, sending nothing: every problem, the price, value and headroom."""

    would_pass: bool
    problems: list[CheckOut]
    price: Rupees | None
    value: Rupees
    headroom: list[HeadroomOut]


class CancelOut(_Model):
    ok: bool
    client_order_id: OrderId
    message: str


class ModifyOut(_Model):
    ok: bool
    client_order_id: OrderId
    message: str
    rejection: RejectionOut | None


# -- kill switch ---------------------------------------------------------------------------------


class KillIn(_Model):
    """Why the desk is being stopped: recorded with the kill switch's engagement."""

    reason: Reason = "kill switch over the local API"


class KillOut(_Model):
    """The desk is HALTED when this returns; the sweep of working orders runs on."""

    trading_state: TradingState
    halted_at: dt.datetime
    working_orders: int = Field(description="working orders the sweep is cancelling")
    expected_seconds: float = Field(description="the broker's rate limit bounds the sweep to about this long")


# -- stream --------------------------------------------------------------------------------------


class StreamEvent(_Model):
    """One message on the WebSocket stream ``/v1/stream``."""

    type: Literal["order", "fill", "state", "alert", "rejected", "hello", "bye"]
    seq: int
    at: dt.datetime
    data: dict[str, object]
