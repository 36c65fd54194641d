"""What a broker reports about orders, in the desk's terms (adapters map their vendor's payloads here)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from .orders import OrderStatus, Side


@dataclass(frozen=True, slots=True)
class BrokerOrderUpdate:
    """A change to one order as the broker reports it.

    Broker feeds duplicate, reorder and drop messages, and fields go missing, so everything but the
    timestamp is optional and ``filled_quantity`` is cumulative: replaying or reordering updates can
    then never double-count a fill. ``average_price`` is the cumulative average fill price in paise.
    """

    ts_ns: int
    broker_order_id: str | None = None
    client_order_id: str | None = None
    status: OrderStatus | None = None
    filled_quantity: int | None = None
    average_price: int | None = None
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class BrokerOrder:
    """One row of the broker's order book, used to reconcile the desk's view."""

    broker_order_id: str
    client_order_id: str | None
    instrument_key: str
    side: Side
    quantity: int
    price: int
    status: OrderStatus
    filled_quantity: int
    average_price: int | None


@dataclass(frozen=True, slots=True)
class UnreadableOrder:
    """A row of the broker's order book that could not be read; ``problem`` says what failed.

    ``broker_order_id``, ``client_order_id``, ``status``, ``filled_quantity`` and ``average_price``
    are what could still be read (``None`` when not even that; an average is also ``None`` when
    nothing executed). The order behind it may still be working.
    """

    broker_order_id: str | None
    problem: str
    client_order_id: str | None = None
    status: OrderStatus | None = None
    filled_quantity: int | None = None
    average_price: int | None = None

    @property
    def may_be_working(self) -> bool:
        return self.status is None or self.status.is_working


# One row of a broker's order book: read, or reported as unreadable (the other rows still count).
BookRow = BrokerOrder | UnreadableOrder


@dataclass(frozen=True, slots=True)
class BrokerPosition:
    """The broker's net position in one instrument."""

    instrument_key: str
    quantity: int
    average_price: int | None


@dataclass(frozen=True, slots=True)
class Funds:
    """Cash the broker reports, in paise."""

    available: int
    used_margin: int


@dataclass(frozen=True, slots=True)
class BrokerTrade:
    """One row of the broker's trade book: an execution of ``broker_order_id``."""

    broker_order_id: str
    instrument_key: str
    side: Side
    quantity: int
    average_price: int
    trade_date: date
