"""Events published on the engine's bus. Immutable snapshots: a subscriber can keep them."""

from __future__ import annotations

import enum
from dataclasses import dataclass

from .orders import OrderSource, OrderStatus, OrderType, Product, Side
from .rejections import Rejection
from .trading_state import TradingState


@dataclass(frozen=True, slots=True)
class OrderSnapshot:
    """An order as it stood right after a change."""

    client_order_id: str
    broker_order_id: str | None
    instrument_key: str
    side: Side
    quantity: int
    price: int
    order_type: OrderType
    product: Product
    source: OrderSource
    actor: str
    status: OrderStatus
    filled_quantity: int
    fill_value: int
    ts_ns: int


@dataclass(frozen=True, slots=True)
class OrderEvent:
    """An order changed state (or was created)."""

    order: OrderSnapshot
    previous: OrderStatus | None


@dataclass(frozen=True, slots=True)
class OrderRejected:
    """A request was refused before reaching the broker, or the broker refused it."""

    instrument_key: str
    source: OrderSource
    actor: str
    rejection: Rejection
    client_order_id: str | None = None


@dataclass(frozen=True, slots=True)
class TradingStateChanged:
    """The desk moved between ACTIVE, REDUCING and HALTED, by whom and why."""

    previous: TradingState
    current: TradingState
    reason: str
    actor: str


class AlertLevel(enum.StrEnum):
    """How loudly an alert should be shown."""

    INFO = "INFO"
    WARNING = "WARNING"
    CRITICAL = "CRITICAL"


@dataclass(frozen=True, slots=True)
class Alert:
    """Something an operator should see."""

    level: AlertLevel
    component: str
    message: str
    ts_ns: int


@dataclass(frozen=True, slots=True)
class TaskCrashed:
    """A supervised engine task died with an unhandled exception."""

    task: str
    error: str
    ts_ns: int


@dataclass(frozen=True, slots=True)
class BrokerStatus:
    """The broker connection came up or went down."""

    broker: str
    connected: bool
    detail: str
    ts_ns: int
