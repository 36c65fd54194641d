"""PaperBroker: the desk's embedded default broker, an exchange simulator behind the Broker protocol.

It behaves like Breeze where the desk can tell: limit orders only, the same rate limits enforced
server-side, errors as ``{"Success", "Status", "Error"}`` bodies, cumulative order updates. Orders
match only when the market steps (every ``tick_interval_ms``, or on ``step()``), so an order that
is marketable on arrival fills at the next step, never inside ``place()``.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from app.brokers.account import paper_account
from app.brokers.base import (
    BREEZE_RATE_LIMITS,
    BrokerCapabilities,
    BrokerError,
    BrokerErrorCode,
    PlaceAck,
    PlaceRequest,
    RateLimits,
)
from app.brokers.stream import Stream
from app.domain.broker_messages import (
    BrokerOrder,
    BrokerOrderUpdate,
    BrokerPosition,
    Funds,
)
from app.domain.instruments import Exchange, Instrument
from app.domain.market import Tick
from app.domain.money import round_div
from app.domain.orders import OrderStatus, OrderType, Side, Validity
from app.domain.positions import Position

from .market import SyntheticMarket
from .rate_limiter import RateLimiter
from .universe import UniverseEntry, load_universe


@dataclass(frozen=True, slots=True)
class PaperConfig:
    """How the paper market behaves.

    ``tick_interval_ms=None`` runs no background stepping: the caller drives the market with
    ``PaperBroker.step()``, which is how tests and replayable simulations get exact determinism.
    ``clock`` (monotonic seconds) feeds the rate limiter; ``wall_clock_ns`` stamps ticks, acks and
    updates. ``starting_cash`` is in paise (₹10,00,000 by default). ``journal_path``, when set, gets
    one JSON line per order the "exchange" received, written before the ack: the broker's own
    record, against which crash tests check that the desk audited every order it sent.
    ``order_id_prefix`` starts the market's order ids (and so its fill ids): a desk gives each run its
    own, so a restarted market's ``...00000001`` is never taken for the last run's, as a real broker's
    ids never repeat.
    ``account`` names a simulated account desks share (each in its own process, with its own market):
    their desks then split its rate limits as they would a real broker account's; ``None`` keeps the
    account the desk's own. ``call_log``, when set, gets one JSON line per call that passed the rate
    limiter (``{"call", "action", "ns"}``): what the "exchange" took, against which a test of several
    desks checks that the account's limits held across processes. ``ns`` is when the call left the desk
    (the real wall clock, before the simulated latency): that latency is the same for every call, and
    the wait that simulates it is not the network's jitter but only this process's event loop's.
    """

    seed: int = 0
    latency_ms: float = 0.0
    reject_rate: float = 0.0
    tick_interval_ms: float | None = 100.0
    partial_fill: bool = True
    rate_limits: RateLimits = BREEZE_RATE_LIMITS
    starting_cash: int = 10_00_000_00
    volatility_bp: float = 2.0
    tick_queue_size: int = 10_000
    journal_path: Path | None = None
    account: str | None = None
    call_log: Path | None = None
    clock: Callable[[], float] = field(default=time.monotonic)
    wall_clock_ns: Callable[[], int] = field(default=time.time_ns)
    order_id_prefix: str = "PB"

    def __post_init__(self) -> None:
        if self.latency_ms < 0:
            raise ValueError(f"latency_ms must not be negative, got {self.latency_ms}")
        if not 0.0 <= self.reject_rate <= 1.0:
            raise ValueError(f"reject_rate must be within [0, 1], got {self.reject_rate}")
        if self.tick_interval_ms is not None and self.tick_interval_ms <= 0:
            raise ValueError(f"tick_interval_ms must be positive or None, got {self.tick_interval_ms}")
        if self.starting_cash < 0:
            raise ValueError(f"starting_cash must not be negative, got {self.starting_cash}")
        if self.tick_queue_size <= 0:
            raise ValueError(f"tick_queue_size must be positive, got {self.tick_queue_size}")
        if self.account is not None:
            paper_account(self.account)


@dataclass(slots=True)
class _PaperOrder:
    broker_order_id: str
    client_order_id: str
    instrument: Instrument
    side: Side
    quantity: int
    price: int
    validity: Validity
    status: OrderStatus
    filled_quantity: int = 0
    fill_value: int = 0

    @property
    def average_price(self) -> int | None:
        return round_div(self.fill_value, self.filled_quantity) if self.filled_quantity else None

    def row(self) -> BrokerOrder:
        return BrokerOrder(
            broker_order_id=self.broker_order_id,
            client_order_id=self.client_order_id,
            instrument_key=self.instrument.key,
            side=self.side,
            quantity=self.quantity,
            price=self.price,
            status=self.status,
            filled_quantity=self.filled_quantity,
            average_price=self.average_price,
        )


def _error(code: BrokerErrorCode, message: str) -> BrokerError:
    return BrokerError(code, message, body={"Success": None, "Status": 500, "Error": message})


def _check_terms(instrument: Instrument, quantity: int, price: int) -> str | None:
    """What the exchange would refuse in an order's quantity and price, or ``None``."""
    if quantity <= 0:
        return f"Quantity must be positive, got {quantity}"
    if not instrument.is_lot_multiple(quantity):
        return f"Quantity {quantity} is not a multiple of the lot size {instrument.lot_size} for {instrument.key}"
    if quantity > instrument.freeze_quantity:
        return f"Quantity {quantity} is above the freeze quantity {instrument.freeze_quantity} for {instrument.key}"
    if price <= 0:
        return f"Price must be positive, got {price} paise"
    if not instrument.is_on_tick(price):
        return (
            f"Price {price} paise is not a multiple of the tick size {instrument.tick_size} paise for {instrument.key}"
        )
    return None


class PaperBroker:
    """A simulated broker and exchange implementing ``app.brokers.base.Broker``.

    Every REST-like call (place, modify, cancel, order_book, positions, funds) waits ``latency_ms``,
    needs a connection, then passes the rate limiter before anything else; ``subscribe`` is a stream
    request and is neither delayed nor counted. Ticks flow only for subscribed instruments; orders
    match on every instrument. Buys fill when the ask is at or under the limit, sells when the bid is
    at or over it, at the touch (price improvement). With ``partial_fill`` each step fills a random
    whole number of lots. IOC orders cancel whatever is left after their first step. Funds use full
    notional as margin (no leverage): positions at cost plus working orders at their limit.
    Deterministic under ``seed`` for the same sequence of calls and steps.
    """

    def __init__(self, config: PaperConfig | None = None, universe: Sequence[UniverseEntry] | None = None) -> None:
        self._config = config if config is not None else PaperConfig()
        entries = tuple(universe) if universe is not None else tuple(load_universe())
        self._universe = entries
        self._instruments = {entry.instrument.key: entry.instrument for entry in entries}
        seed = self._config.seed
        self._market = SyntheticMarket(entries, seed, volatility_bp=self._config.volatility_bp)
        self._limiter = RateLimiter(self._config.rate_limits, self._config.clock)
        # Separate generators so a change in fill behaviour cannot shift which orders get rejected.
        self._fill_rng = random.Random(f"fills:{seed}")
        self._reject_rng = random.Random(f"rejects:{seed}")
        self._orders: dict[str, _PaperOrder] = {}
        self._working: dict[str, _PaperOrder] = {}
        self._positions: dict[str, Position] = {}
        self._subscribed: set[str] = set()
        self._sequence = 0
        self._connected = False
        self._task: asyncio.Task[None] | None = None
        self._ticks: Stream[Tick] = Stream(self._config.tick_queue_size)
        self._updates: Stream[BrokerOrderUpdate] = Stream()
        self._capabilities = BrokerCapabilities(
            name="paper",
            rate_limits=self._config.rate_limits,
            exchanges=frozenset({Exchange.NSE, Exchange.BSE, Exchange.NFO, Exchange.BFO}),
            market_orders=False,
            modify=True,
            bulk_cancel=False,
            book_outlives_desk=False,
            account=paper_account(self._config.account) if self._config.account is not None else None,
        )

    @property
    def capabilities(self) -> BrokerCapabilities:
        return self._capabilities

    @property
    def universe(self) -> tuple[UniverseEntry, ...]:
        """The instruments this market trades, with their start prices."""
        return self._universe

    @property
    def dropped_ticks(self) -> int:
        """Ticks thrown away because the consumer fell behind (oldest first)."""
        return self._ticks.dropped

    # -- connection and streams ---------------------------------------------------------------

    async def connect(self) -> None:
        if self._connected:
            return
        if self._ticks.closed:
            # A reconnect gets fresh streams: the old iterators have already ended.
            self._ticks = Stream(self._config.tick_queue_size)
            self._updates = Stream()
        self._connected = True
        if self._config.tick_interval_ms is not None:
            self._task = asyncio.create_task(self._run(self._config.tick_interval_ms / 1000), name="paper-market")

    def _journal(self, request: PlaceRequest) -> None:
        if self._config.journal_path is None:
            return
        line = json.dumps({"client_order_id": request.client_order_id, "instrument": request.instrument.key})
        # Flushed to the OS before the ack: a killed desk process cannot take it back.
        with self._config.journal_path.open("a", encoding="utf-8") as handle:
            handle.write(line + "\n")

    async def disconnect(self) -> None:
        """Stop the market and end both streams. Orders and positions stay, as at a real broker."""
        self._connected = False
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            # wait() rather than awaiting the task: our own cancellation, if any, must still propagate.
            await asyncio.wait({task})
        self._ticks.close()
        self._updates.close()

    async def subscribe(self, instrument_keys: list[str]) -> None:
        if not self._connected:
            raise _error(BrokerErrorCode.NOT_CONNECTED, "Not connected")
        unknown = sorted(set(instrument_keys) - self._instruments.keys())
        if unknown:
            raise _error(BrokerErrorCode.REJECTED, f"Unknown instruments: {', '.join(unknown)}")
        self._subscribed.update(instrument_keys)

    def ticks(self) -> AsyncIterator[Tick]:
        return self._ticks.iterate()

    def order_updates(self) -> AsyncIterator[BrokerOrderUpdate]:
        return self._updates.iterate()

    def step(self) -> list[Tick]:
        """Advance the market one step and match resting orders; returns every instrument's tick."""
        if not self._connected:
            raise _error(BrokerErrorCode.NOT_CONNECTED, "Not connected")
        ts_ns = self._config.wall_clock_ns()
        ticks = self._market.step(ts_ns)
        for tick in ticks:
            if tick.instrument_key in self._subscribed:
                self._ticks.put(tick)
        for order in list(self._working.values()):
            self._match(order, ts_ns)
        return ticks

    async def _run(self, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            self.step()

    # -- orders -------------------------------------------------------------------------------

    async def place(self, request: PlaceRequest) -> PlaceAck:
        await self._request("place", order_action=True)
        self._journal(request)
        if request.order_type is not OrderType.LIMIT:
            raise _error(BrokerErrorCode.REJECTED, "Market orders are not accepted via the API; place a limit order")
        instrument = self._instruments.get(request.instrument.key)
        if instrument is None:
            raise _error(BrokerErrorCode.REJECTED, f"Unknown instrument {request.instrument.key}")
        problem = _check_terms(instrument, request.quantity, request.price)
        if problem is not None:
            raise _error(BrokerErrorCode.REJECTED, problem)
        self._sequence += 1
        order = _PaperOrder(
            broker_order_id=f"{self._config.order_id_prefix}{self._sequence:08d}",
            client_order_id=request.client_order_id,
            instrument=instrument,
            side=request.side,
            quantity=request.quantity,
            price=request.price,
            validity=request.validity,
            status=OrderStatus.OPEN,
        )
        self._orders[order.broker_order_id] = order
        if self._reject_rng.random() < self._config.reject_rate:
            # The exchange refused an order the broker accepted: it stays in the book as REJECTED.
            order.status = OrderStatus.REJECTED
            message = f"Order {order.broker_order_id} rejected by exchange: RMS check failed"
            raise _error(BrokerErrorCode.REJECTED, message)
        self._working[order.broker_order_id] = order
        ts_ns = self._config.wall_clock_ns()
        self._publish(order, ts_ns)
        return PlaceAck(broker_order_id=order.broker_order_id, ts_ns=ts_ns)

    async def modify(self, broker_order_id: str, *, quantity: int | None = None, price: int | None = None) -> None:
        await self._request("modify", order_action=True)
        order = self._working_order(broker_order_id)
        if quantity is None and price is None:
            raise _error(BrokerErrorCode.REJECTED, f"Nothing to modify on order {broker_order_id}")
        new_quantity = order.quantity if quantity is None else quantity
        new_price = order.price if price is None else price
        problem = _check_terms(order.instrument, new_quantity, new_price)
        if problem is None and new_quantity <= order.filled_quantity:
            problem = f"Quantity {new_quantity} must be above the filled quantity {order.filled_quantity}"
        if problem is not None:
            raise _error(BrokerErrorCode.REJECTED, problem)
        order.quantity, order.price = new_quantity, new_price
        self._publish(order, self._config.wall_clock_ns(), f"modified: quantity {new_quantity}, price {new_price}")

    async def cancel(self, broker_order_id: str) -> None:
        await self._request("cancel", order_action=True)
        order = self._working_order(broker_order_id)
        self._close(order, OrderStatus.CANCELLED, self._config.wall_clock_ns(), "cancelled by request")

    async def order_book(self) -> list[BrokerOrder]:
        await self._request("order_book")
        return [order.row() for order in self._orders.values()]

    async def positions(self) -> list[BrokerPosition]:
        await self._request("positions")
        return [
            BrokerPosition(
                instrument_key=key,
                quantity=position.quantity,
                average_price=round_div(position.cost, position.quantity) if position.quantity else None,
            )
            for key, position in self._positions.items()
        ]

    async def funds(self) -> Funds:
        await self._request("funds")
        realized = sum(position.realized for position in self._positions.values())
        used = sum(abs(position.cost) for position in self._positions.values()) + sum(
            (order.quantity - order.filled_quantity) * order.price for order in self._working.values()
        )
        return Funds(available=self._config.starting_cash + realized - used, used_margin=used)

    # -- internals ----------------------------------------------------------------------------

    async def _request(self, call: str, *, order_action: bool = False) -> None:
        sent_ns = time.time_ns()
        if self._config.latency_ms:
            await asyncio.sleep(self._config.latency_ms / 1000)
        # A call without a session never reaches the server, so it spends no quota.
        if not self._connected:
            raise _error(BrokerErrorCode.NOT_CONNECTED, f"Not connected: {call} was not sent")
        self._limiter.acquire(call, order_action=order_action)
        if self._config.call_log is not None:
            line = json.dumps({"call": call, "action": order_action, "ns": sent_ns})
            # One short append per call: several desk processes may log to files side by side.
            with self._config.call_log.open("a", encoding="utf-8") as handle:
                handle.write(line + "\n")

    def _working_order(self, broker_order_id: str) -> _PaperOrder:
        order = self._orders.get(broker_order_id)
        if order is None:
            raise _error(BrokerErrorCode.UNKNOWN_ORDER, f"No order with id {broker_order_id}")
        if order.status.is_terminal:
            message = f"Order {broker_order_id} is already {order.status} and cannot be changed"
            raise _error(BrokerErrorCode.ALREADY_FINAL, message)
        return order

    def _match(self, order: _PaperOrder, ts_ns: int) -> None:
        bid, ask = self._market.touch(order.instrument.key)
        touch = ask if order.side is Side.BUY else bid
        marketable = touch <= order.price if order.side is Side.BUY else touch >= order.price
        if marketable:
            remaining = order.quantity - order.filled_quantity
            lot = order.instrument.lot_size
            quantity = self._fill_rng.randint(1, remaining // lot) * lot if self._config.partial_fill else remaining
            order.filled_quantity += quantity
            order.fill_value += quantity * touch
            position = self._positions.setdefault(order.instrument.key, Position(order.instrument.key))
            position.apply(order.side.sign * quantity, touch)
            if order.filled_quantity == order.quantity:
                self._close(order, OrderStatus.FILLED, ts_ns)
                return
            order.status = OrderStatus.PARTIALLY_FILLED
            self._publish(order, ts_ns)
        if order.validity is Validity.IOC:
            self._close(order, OrderStatus.CANCELLED, ts_ns, "IOC: unfilled quantity cancelled")

    def _close(self, order: _PaperOrder, status: OrderStatus, ts_ns: int, reason: str | None = None) -> None:
        order.status = status
        del self._working[order.broker_order_id]
        self._publish(order, ts_ns, reason)

    def _publish(self, order: _PaperOrder, ts_ns: int, reason: str | None = None) -> None:
        self._updates.put(
            BrokerOrderUpdate(
                ts_ns=ts_ns,
                broker_order_id=order.broker_order_id,
                client_order_id=order.client_order_id,
                status=order.status,
                filled_quantity=order.filled_quantity,
                average_price=order.average_price,
                reason=reason,
            )
        )
