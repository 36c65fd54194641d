"""The async Broker protocol every adapter (paper, Breeze) implements, and its error type."""

from __future__ import annotations

import enum
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from app.domain.broker_messages import (
    BookRow,
    BrokerOrderUpdate,
    BrokerPosition,
    Funds,
)
from app.domain.instruments import Exchange, Instrument
from app.domain.market import Tick
from app.domain.orders import OrderType, Product, Side, Validity


@dataclass(frozen=True, slots=True)
class RateLimits:
    """The broker's published request limits. Place, modify and cancel share ``order_actions_per_second``."""

    order_actions_per_second: int
    calls_per_minute: int
    calls_per_day: int


# ICICI Direct's published Breeze limits; the paper broker enforces the same ones.
BREEZE_RATE_LIMITS = RateLimits(order_actions_per_second=10, calls_per_minute=100, calls_per_day=5000)


class BrokerCall(enum.StrEnum):
    """The Broker protocol's methods that reach the broker, for pricing them in API calls."""

    PLACE = "place"
    MODIFY = "modify"
    CANCEL = "cancel"
    ORDER_BOOK = "order_book"
    POSITIONS = "positions"
    FUNDS = "funds"
    SUBSCRIBE = "subscribe"


@dataclass(frozen=True, slots=True)
class BrokerCapabilities:
    """What a broker can do and how fast; the engine shapes its traffic from this.

    ``call_costs`` says how many of the broker's API calls one protocol method really makes (an SDK
    may add hidden calls, or need one call per exchange); a method not named costs one call.
    """

    name: str
    rate_limits: RateLimits
    exchanges: frozenset[Exchange]
    market_orders: bool
    modify: bool
    bulk_cancel: bool
    streams_ticks: bool = True
    streams_order_updates: bool = True
    call_costs: Mapping[BrokerCall, int] = field(default_factory=dict)
    # False for a broker that lives inside the desk process (paper): its book ends with the process,
    # so an order the store shows working and the next start's book does not list can never fill.
    book_outlives_desk: bool = True
    # The broker account the calls spend (a fingerprint from app.brokers.account, never a key), when desks
    # may share it and so its rate limits; ``None``: the account is the desk's alone (its own paper market).
    account: str | None = None

    def calls(self, call: BrokerCall) -> int:
        """API calls that one ``call`` spends of the per-minute and per-day limits."""
        return self.call_costs.get(call, 1)


@dataclass(frozen=True, slots=True)
class PlaceRequest:
    """An order the engine releases to a broker: already validated, price in integer paise."""

    client_order_id: str
    instrument: Instrument
    side: Side
    quantity: int
    price: int
    order_type: OrderType = OrderType.LIMIT
    product: Product = Product.INTRADAY
    validity: Validity = Validity.DAY


@dataclass(frozen=True, slots=True)
class PlaceAck:
    """The broker took the order and gave it this id."""

    broker_order_id: str
    ts_ns: int


class BrokerErrorCode(enum.StrEnum):
    """Why a broker call failed, in terms the engine can act on."""

    RATE_LIMITED = "RATE_LIMITED"
    REJECTED = "REJECTED"
    SESSION_EXPIRED = "SESSION_EXPIRED"
    TIMEOUT = "TIMEOUT"
    UNAVAILABLE = "UNAVAILABLE"
    MALFORMED = "MALFORMED"
    UNKNOWN_ORDER = "UNKNOWN_ORDER"
    NOT_CONNECTED = "NOT_CONNECTED"
    AUTH_FAILED = "AUTH_FAILED"
    # A cancel (or modify) found the order already ended at the broker: an answer, not a fault.
    ALREADY_FINAL = "ALREADY_FINAL"


class BrokerError(Exception):
    """A broker call failed. ``body`` keeps the broker's own error payload (already free of secrets)."""

    def __init__(self, code: BrokerErrorCode, message: str, body: Mapping[str, object] | None = None) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.body: Mapping[str, object] = body if body is not None else {}


@runtime_checkable
class Broker(Protocol):
    """An order-routing and market-data connection. Every method may raise ``BrokerError``.

    ``ticks()`` and ``order_updates()`` each have a single consumer (the engine); they end when the
    broker disconnects.
    """

    @property
    def capabilities(self) -> BrokerCapabilities: ...

    async def connect(self) -> None: ...

    async def disconnect(self) -> None: ...

    async def subscribe(self, instrument_keys: list[str]) -> None: ...

    async def place(self, request: PlaceRequest) -> PlaceAck: ...

    async def modify(self, broker_order_id: str, *, quantity: int | None = None, price: int | None = None) -> None: ...

    async def cancel(self, broker_order_id: str) -> None: ...

    async def order_book(self) -> Sequence[BookRow]:
        """Today's orders, one row per order; a row the adapter cannot read is an ``UnreadableOrder``."""
        ...

    async def positions(self) -> list[BrokerPosition]: ...

    async def funds(self) -> Funds: ...

    def ticks(self) -> AsyncIterator[Tick]: ...

    def order_updates(self) -> AsyncIterator[BrokerOrderUpdate]: ...


@runtime_checkable
class SessionBroker(Protocol):
    """A broker whose login is a session token the trader fetches by hand each day (Breeze).

    ``login_url`` is where the trader logs in to get one; ``renew_session`` starts a session with
    it (raising ``BrokerError``); ``on_session_lost`` registers who hears, from any thread, that the
    session ended (expiry or refusal), with a reason fit for the operator.
    """

    def login_url(self) -> str: ...

    async def renew_session(self, session_token: str) -> None: ...

    def on_session_lost(self, callback: Callable[[str], None]) -> None: ...


@runtime_checkable
class LossyOrderFeed(Protocol):
    """A broker whose order-update stream can lose a notification and know it (Breeze: one its SDK or
    the adapter could not read).

    ``on_order_feed_gap`` registers who hears, from any thread, that one was lost, with the reason:
    the update it carried (a fill, say) is then only in the broker's order book.
    """

    def on_order_feed_gap(self, callback: Callable[[str], None]) -> None: ...
