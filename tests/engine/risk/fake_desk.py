"""A desk and its broker in memory, behind the ports the kill switch and flatten act through.

Orders rest at the broker until a cancel reaches it (the next read of its book settles them) or,
for flatten's orders, fill at once; positions follow the fills. Every call a component makes is
logged in order in ``calls``, so a test can say what happened first. The real engine behind the
same ports is tested end to end in test_kill_switch.py.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Coroutine
from typing import Any, TypeVar

from app.brokers.base import BrokerError, BrokerErrorCode
from app.domain.audit import AuditEventType, AuditSource
from app.domain.broker_messages import BrokerPosition
from app.domain.events import AlertLevel
from app.domain.instruments import Exchange, Instrument, Segment
from app.domain.orders import (
    Order,
    OrderSource,
    OrderStatus,
    OrderType,
    Product,
    Side,
    Validity,
)
from app.domain.rejections import Rejection, RejectReason
from app.domain.requests import OrderRequest
from app.domain.trading_state import TradingState
from app.engine.results import CancelResult, SubmitResult

T = TypeVar("T")

NOW_NS = 1_795_000_000 * 1_000_000_000

NIFTY_FUT = Instrument("NFO:NIFTY:2026-12-29:FUT", Exchange.NFO, "NIFTY", "NIFTY", Segment.FUTURES,
                       lot_size=75, tick_size=10, freeze_quantity=1_800, expiry=dt.date(2026, 12, 29))
RELIANCE = Instrument("NSE:RELIANCE", Exchange.NSE, "RELIANCE", "RELIANCE", Segment.CASH,
                      lot_size=1, tick_size=5, freeze_quantity=100_000)


def resting(client_order_id: str, instrument_key: str = RELIANCE.key) -> Order:
    """A limit buy working at the broker."""
    return Order(client_order_id, instrument_key, Side.BUY, 1, 100_00, OrderType.LIMIT, Product.INTRADAY, Validity.DAY,
                 OrderSource.API, "tom", NOW_NS, status=OrderStatus.OPEN, broker_order_id=f"B-{client_order_id}")


class FakeDesk:
    """Implements ``SweepOps``, ``CancelPacer`` and ``FlattenOps`` over in-memory orders and positions."""

    def __init__(self, orders: list[Order] | None = None, *, positions: dict[str, int] | None = None) -> None:
        self.calls: list[str] = []
        self.orders = {o.client_order_id: o for o in orders or []}
        self.state = TradingState.ACTIVE
        self.halts: list[tuple[str, str, bool]] = []
        self.published: list[object] = []
        self.alerts: list[tuple[AlertLevel, str, str]] = []
        self.records: list[tuple[AuditEventType, dict[str, Any], str, AuditSource]] = []
        self.started = True
        # The next this-many reads of the broker's book (or positions) fail.
        self.book_failures = 0
        self.positions_unreadable = False
        # The broker takes these cancels but never cancels the order; it refuses those with a message.
        self.never_cancels: set[str] = set()
        self.refuses_cancel: dict[str, str] = {}
        # Orders queued for the governor, how long each cancel takes, and the observed round trip.
        self.queued = 0
        self.cancel_spacing_s = 0.1
        self.rtt_s = 0.02
        # Flatten's side: the desk's positions (the broker's unless told otherwise), contracts, caps.
        self.positions: dict[str, int] = dict(positions or {})
        self.broker_extra: dict[str, int] = {}
        self.instruments = {i.key: i for i in (NIFTY_FUT, RELIANCE)}
        self.order_caps: dict[str, int] = {}
        self.gate_refuses: set[str] = set()
        self.fills = True

    # -- DeskOps ---------------------------------------------------------------------------------

    def halt(self, reason: str, actor: str, *, restate: bool = False) -> None:
        self.calls.append("halt")
        self.state = TradingState.HALTED
        self.halts.append((reason, actor, restate))

    def working_orders(self) -> list[Order]:
        return [o for o in self.orders.values() if o.status.is_working]

    def order(self, client_order_id: str) -> Order | None:
        return self.orders.get(client_order_id)

    async def cancel(self, client_order_id: str, *, actor: str, source: AuditSource) -> CancelResult:
        self.calls.append(f"cancel {client_order_id}")
        if client_order_id in self.refuses_cancel:
            return CancelResult(False, client_order_id, self.refuses_cancel[client_order_id])
        self.orders[client_order_id].cancel_requested = True
        return CancelResult(True, client_order_id, "cancel sent")

    def record(self, event: AuditEventType, payload: dict[str, Any], actor: str, source: AuditSource) -> None:
        self.calls.append(f"record {event}")
        self.records.append((event, payload, actor, source))

    async def durable_or_log(self, event: AuditEventType, payload: dict[str, Any], actor: str, source: AuditSource) -> None:
        self.calls.append(f"durable {event}")
        self.records.append((event, payload, actor, source))

    # -- SweepOps --------------------------------------------------------------------------------

    def clock_ns(self) -> int:
        return NOW_NS

    def publish(self, event: object) -> None:
        self.calls.append(f"publish {type(event).__name__}")
        self.published.append(event)

    def alert(self, level: AlertLevel, component: str, message: str) -> None:
        self.alerts.append((level, component, message))

    def spawn(self, name: str, coro: Coroutine[Any, Any, T]) -> asyncio.Task[T]:
        self.calls.append(f"spawn {name}")
        return asyncio.get_running_loop().create_task(coro, name=name)

    async def wait_started(self) -> bool:
        return self.started

    async def reconcile_working(self) -> int:
        self._read_book()
        return len(self.working_orders())

    # -- CancelPacer -----------------------------------------------------------------------------

    def entries_waiting(self) -> int:
        return self.queued

    def drop_queued(self, reason: str) -> int:
        self.calls.append("drop_queued")
        dropped, self.queued = self.queued, 0
        return dropped

    def expected_seconds(self, cancels: int) -> float:
        return cancels * self.cancel_spacing_s

    def round_trip_s(self) -> float:
        return self.rtt_s

    # -- FlattenOps ------------------------------------------------------------------------------

    def reduce_only(self, reason: str, actor: str) -> None:
        self.calls.append("reduce_only")
        self.state = TradingState.REDUCING

    async def submit(self, request: OrderRequest) -> SubmitResult:
        key = str(request.instrument_key)
        self.calls.append(f"submit {key} {request.side} {request.quantity}")
        if key in self.gate_refuses:
            return SubmitResult(False, None, Rejection(RejectReason.STALE_PRICE, "no fresh price"))
        assert isinstance(request.side, Side) and isinstance(request.quantity, int)
        client_id = f"F-{len(self.orders) + 1}"
        order = Order(client_id, key, request.side, request.quantity, 100_00, OrderType.MARKET, Product.INTRADAY,
                      Validity.DAY, request.source, request.actor, NOW_NS, status=OrderStatus.OPEN)
        self.orders[client_id] = order
        if self.fills:
            order.status = OrderStatus.FILLED
            signed = order.quantity if order.side is Side.BUY else -order.quantity
            self.positions[key] = self.positions.get(key, 0) + signed
        return SubmitResult(True, client_id, None, order.status)

    async def reconcile(self) -> None:
        self._read_book()

    async def broker_positions(self) -> list[BrokerPosition]:
        self.calls.append("broker_positions")
        if self.positions_unreadable:
            raise TimeoutError("no answer")
        held = {**self.positions, **self.broker_extra}
        return [BrokerPosition(key, quantity, None) for key, quantity in held.items()]

    def open_positions(self) -> dict[str, int]:
        return {key: quantity for key, quantity in self.positions.items() if quantity}

    def instrument(self, instrument_key: str) -> Instrument | None:
        return self.instruments.get(instrument_key)

    def max_order_quantity(self, instrument: Instrument) -> int | None:
        return self.order_caps.get(instrument.key)

    def _read_book(self) -> None:
        self.calls.append("read_book")
        if self.book_failures:
            self.book_failures -= 1
            raise BrokerError(BrokerErrorCode.UNAVAILABLE, "HTTP 502")
        for order in self.working_orders():
            if order.cancel_requested and order.client_order_id not in self.never_cancels:
                order.status = OrderStatus.CANCELLED
