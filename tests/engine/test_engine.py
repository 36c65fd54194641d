"""The engine end to end on the real paper broker: lifecycle, the one submit path, fail-closed halts."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from decimal import Decimal

import pytest

from app.brokers.base import BrokerError, BrokerErrorCode, PlaceAck, PlaceRequest
from app.brokers.paper import PaperBroker, PaperConfig, UniverseEntry, load_universe
from app.domain.broker_messages import BrokerOrder, BrokerOrderUpdate
from app.domain.events import (
    Alert,
    OrderEvent,
    OrderRejected,
    TaskCrashed,
    TradingStateChanged,
)
from app.domain.market import Tick
from app.domain.orders import OrderStatus, OrderType, Side
from app.domain.rejections import RejectReason
from app.domain.requests import OrderRequest
from app.domain.trading_state import TradingState
from app.engine.config import EngineConfig
from app.engine.engine import Engine, EngineStartError, Lifecycle
from app.engine.governor import GovernorConfig
from tests.support.limits import wide_limits
from tests.support.virtual_time import on_virtual_time

UNIVERSE = load_universe()
ENTRIES = UNIVERSE[:5]
RELIANCE = next(e for e in UNIVERSE if e.instrument.key == "NSE:RELIANCE")
LIMITS = wide_limits([RELIANCE.instrument, *(e.instrument for e in ENTRIES)])


def make_engine(config: EngineConfig | None = None, **paper: object) -> tuple[Engine, PaperBroker]:
    paper.setdefault("tick_interval_ms", None)
    # The broker's limiter counts on the loop's clock, as the governor does: on virtual time the
    # two agree exactly, whatever the machine's load.
    paper.setdefault("clock", asyncio.get_running_loop().time)
    broker = PaperBroker(PaperConfig(seed=7, **paper), universe=[RELIANCE, *ENTRIES])  # type: ignore[arg-type]
    engine = Engine(broker, [RELIANCE.instrument, *(e.instrument for e in ENTRIES)], config, limits=LIMITS)
    return engine, broker


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


def rupees(paise: int) -> Decimal:
    return Decimal(paise) / 100


def buy(price_paise: int | None, quantity: object = 1, **kw: object) -> OrderRequest:
    order_type = OrderType.LIMIT if price_paise is not None else OrderType.MARKET
    return OrderRequest("NSE:RELIANCE", Side.BUY, quantity, rupees(price_paise) if price_paise else None, order_type=order_type, **kw)  # type: ignore[arg-type]


async def test_marketable_buy_fills_into_a_position() -> None:
    engine, broker = make_engine()
    await engine.start()
    broker.step()
    await settle()
    last = engine.market_data.last_price("NSE:RELIANCE")
    assert last is not None
    result = await engine.submit(buy(last + 20 * RELIANCE.instrument.tick_size, 5))
    assert result.accepted and result.client_order_id
    for _ in range(10):
        broker.step()
        await settle()
    order = engine.oms.get(result.client_order_id)
    assert order is not None and order.status is OrderStatus.FILLED
    assert engine.portfolio.position("NSE:RELIANCE") == 5
    assert engine.portfolio.exposure.gross > 0
    await engine.stop()
    assert engine.lifecycle is Lifecycle.STOPPED


BAD_REQUESTS = [
    (buy(150_000, 0), RejectReason.INVALID_QUANTITY),
    (buy(150_000, -1), RejectReason.INVALID_QUANTITY),
    (buy(150_000, 1.5), RejectReason.INVALID_QUANTITY),
    (buy(150_001), RejectReason.PRICE_OFF_TICK),
    (OrderRequest("NSE:RELIANCE", Side.BUY, 1, float("nan")), RejectReason.INVALID_PRICE),
    (OrderRequest("NSE:RELIANCE", Side.BUY, 1, float("inf")), RejectReason.INVALID_PRICE),
    (OrderRequest("NSE:RELIANCE", Side.BUY, 1, "-1500"), RejectReason.INVALID_PRICE),
    (OrderRequest("NSE:NOPE", Side.BUY, 1, "100"), RejectReason.UNKNOWN_INSTRUMENT),
    (OrderRequest(None, Side.BUY, 1, "100"), RejectReason.UNKNOWN_INSTRUMENT),  # type: ignore[arg-type]
    (OrderRequest("NSE:RELIANCE", "SIDEWAYS", 1, "100"), RejectReason.INVALID_SIDE),
]


@pytest.mark.parametrize("request_, reason", BAD_REQUESTS)
async def test_bad_orders_are_refused_and_disturb_nothing(request_: OrderRequest, reason: RejectReason) -> None:
    engine, broker = make_engine()
    await engine.start()
    broker.step()
    await settle()
    resting = await engine.submit(buy(100_000, 1))
    assert resting.accepted
    rejected: list[OrderRejected] = []
    engine.bus.subscribe(OrderRejected, rejected.append)
    book_before = await broker.order_book()
    result = await engine.submit(request_)
    assert not result.accepted
    assert result.rejection is not None and result.rejection.reason is reason
    assert result.rejection.message
    assert [r.rejection.reason for r in rejected] == [reason]
    assert await broker.order_book() == book_before
    assert engine.trading_state is TradingState.ACTIVE
    assert resting.client_order_id is not None
    assert engine.oms.get(resting.client_order_id).status is OrderStatus.OPEN  # type: ignore[union-attr]
    await engine.stop()


async def test_market_order_becomes_protected_marketable_limit() -> None:
    engine, broker = make_engine(EngineConfig(market_protection_bps=100))
    await engine.start()
    assert (await engine.submit(buy(None, 1))).rejection.reason is RejectReason.STALE_PRICE  # type: ignore[union-attr]
    broker.step()
    await settle()
    last = engine.market_data.last_price("NSE:RELIANCE")
    assert last is not None
    result = await engine.submit(buy(None, 1))
    assert result.accepted
    order = engine.oms.get(result.client_order_id)  # type: ignore[arg-type]
    tick = RELIANCE.instrument.tick_size
    assert order is not None and order.order_type is OrderType.MARKET
    assert order.price % tick == 0
    assert last < order.price <= last * 101 // 100
    sell = await engine.submit(OrderRequest("NSE:RELIANCE", Side.SELL, 1, None, order_type=OrderType.MARKET))
    sold = engine.oms.get(sell.client_order_id)  # type: ignore[arg-type]
    assert sold is not None and last * 99 // 100 <= sold.price < last and sold.price % tick == 0
    await engine.stop()


async def test_halted_refuses_new_orders_but_cancels_pass() -> None:
    engine, broker = make_engine()
    await engine.start()
    broker.step()
    await settle()
    resting = await engine.submit(buy(100_000, 1))
    states: list[TradingStateChanged] = []
    engine.bus.subscribe(TradingStateChanged, states.append)
    engine.halt("operator test", "alice")
    assert engine.trading_state is TradingState.HALTED
    assert states[0].current is TradingState.HALTED and states[0].actor == "alice"
    refused = await engine.submit(buy(100_000, 1))
    assert refused.rejection is not None and refused.rejection.reason is RejectReason.TRADING_HALTED
    assert "operator test" in refused.rejection.message
    cancelled = await engine.cancel(resting.client_order_id)  # type: ignore[arg-type]
    assert cancelled.ok
    await settle()
    assert engine.oms.get(resting.client_order_id).status is OrderStatus.CANCELLED  # type: ignore[arg-type, union-attr]
    await engine.stop()


async def test_reducing_admits_only_orders_that_shrink_the_position() -> None:
    engine, broker = make_engine(EngineConfig(initial_state=TradingState.ACTIVE))
    await engine.start()
    broker.step()
    await settle()
    last = engine.market_data.last_price("NSE:RELIANCE")
    assert last is not None
    await engine.submit(buy(last + 40 * 5, 4))
    for _ in range(10):
        broker.step()
        await settle()
    assert engine.portfolio.position("NSE:RELIANCE") == 4
    engine._set_state(TradingState.REDUCING, "test", "risk")
    more = await engine.submit(buy(last, 1))
    assert more.rejection is not None and more.rejection.reason is RejectReason.NOT_RISK_REDUCING
    too_big = await engine.submit(OrderRequest("NSE:RELIANCE", Side.SELL, 5, rupees(last * 14 // 10 // 5 * 5)))
    assert too_big.rejection is not None and too_big.rejection.reason is RejectReason.NOT_RISK_REDUCING
    first = await engine.submit(OrderRequest("NSE:RELIANCE", Side.SELL, 3, rupees(last * 14 // 10 // 5 * 5)))
    assert first.accepted
    # 3 of the 4 are already being sold: a further 2 would flip the position.
    second = await engine.submit(OrderRequest("NSE:RELIANCE", Side.SELL, 2, rupees(last * 14 // 10 // 5 * 5)))
    assert second.rejection is not None and second.rejection.reason is RejectReason.NOT_RISK_REDUCING
    assert (await engine.submit(OrderRequest("NSE:RELIANCE", Side.SELL, 1, rupees(last * 14 // 10 // 5 * 5)))).accepted
    await engine.stop()


@on_virtual_time
async def test_the_governor_paces_places_so_the_broker_never_refuses() -> None:
    engine, broker = make_engine()
    await engine.start()
    broker.step()
    await settle()
    started = asyncio.get_running_loop().time()
    results = await asyncio.gather(*(engine.submit(buy(100_000 + 5 * i, 1)) for i in range(14)))
    elapsed = asyncio.get_running_loop().time() - started
    assert all(r.accepted for r in results), [r.rejection for r in results if not r.accepted]
    assert RejectReason.BROKER_RATE_LIMITED not in engine.rejections
    # Places may use 8 of the broker's 10 actions a second (2 stay free for cancels): the ninth
    # waits for the first to leave the trailing second, and the last goes five spacings after it.
    assert elapsed == pytest.approx(1.0 + 5 * (1 + GovernorConfig().margin) / 10)
    await engine.stop()


class _RateLimitedBroker(PaperBroker):
    async def place(self, request: PlaceRequest) -> PlaceAck:
        raise BrokerError(BrokerErrorCode.RATE_LIMITED, "Limit exceed", {"Success": None, "Status": 429, "Error": "Limit exceed"})


async def test_broker_rate_limit_answer_becomes_a_rejection_and_an_alert() -> None:
    broker = _RateLimitedBroker(PaperConfig(seed=1, tick_interval_ms=None), universe=[RELIANCE])
    engine = Engine(broker, [RELIANCE.instrument], limits=LIMITS)
    await engine.start()
    broker.step()
    await settle()
    alerts: list[Alert] = []
    engine.bus.subscribe(Alert, alerts.append)
    result = await engine.submit(buy(100_000, 1))
    assert result.rejection is not None and result.rejection.reason is RejectReason.BROKER_RATE_LIMITED
    assert engine.oms.get(result.client_order_id).status is OrderStatus.REJECTED  # type: ignore[arg-type, union-attr]
    assert engine.trading_state is TradingState.ACTIVE
    assert any(a.component == "governor" for a in alerts)
    await engine.stop()


async def test_crashed_task_latches_halted_and_is_reported() -> None:
    engine, _ = make_engine()
    await engine.start()
    crashes: list[TaskCrashed] = []
    alerts: list[Alert] = []
    engine.bus.subscribe(TaskCrashed, crashes.append)
    engine.bus.subscribe(Alert, alerts.append)

    async def doomed() -> None:
        raise RuntimeError("strategy bug")

    engine.supervisor.spawn("doomed", doomed())
    await settle()
    assert engine.trading_state is TradingState.HALTED
    assert "doomed" in engine.halt_reason
    assert crashes and crashes[0].task == "doomed"
    assert alerts and alerts[0].level == "CRITICAL"
    refused = await engine.submit(buy(100_000, 1))
    assert refused.rejection is not None and refused.rejection.reason is RejectReason.TRADING_HALTED
    await engine.stop()


async def test_failing_critical_handler_halts_but_others_still_run() -> None:
    engine, broker = make_engine()
    await engine.start()
    broker.step()
    await settle()

    def broken(tick: Tick) -> None:
        raise KeyError("oops")

    engine.bus.subscribe(Tick, broken, name="broken-risk-feed")
    broker.step()
    await settle()
    assert engine.trading_state is TradingState.HALTED
    assert engine.market_data.last_price("NSE:RELIANCE") is not None
    await engine.stop()


class _SlowPlaceBroker(PaperBroker):
    """Fault injection: the broker takes the order but never answers in time."""

    async def place(self, request: PlaceRequest) -> PlaceAck:
        ack = await super().place(request)
        await asyncio.sleep(10)
        return ack


@on_virtual_time
async def test_place_timeout_keeps_order_working_and_reconciles() -> None:
    broker = _SlowPlaceBroker(PaperConfig(seed=1, tick_interval_ms=None, clock=asyncio.get_running_loop().time), universe=[RELIANCE])
    engine = Engine(broker, [RELIANCE.instrument], EngineConfig(broker_call_timeout=0.05), limits=LIMITS)
    await engine.start()
    broker.step()
    await settle()
    alerts: list[Alert] = []
    engine.bus.subscribe(Alert, alerts.append)
    result = await engine.submit(buy(100_000, 1))
    assert not result.accepted
    assert result.rejection is not None and result.rejection.reason is RejectReason.BROKER_TIMEOUT
    # Well before the broker's late answer (10 s): only reconciliation can have found the order.
    await asyncio.sleep(0.1)
    order = engine.oms.get(result.client_order_id)  # type: ignore[arg-type]
    # The broker did take it: reconciliation finds it and the desk tracks it as working.
    assert order is not None and order.status is OrderStatus.OPEN and order.broker_order_id is not None
    assert any("reconciling" in a.message for a in alerts)
    await engine.stop()


class _BuggyBroker(PaperBroker):
    async def place(self, request: PlaceRequest) -> PlaceAck:
        raise ZeroDivisionError("adapter bug")


async def test_adapter_exception_halts_the_desk() -> None:
    broker = _BuggyBroker(PaperConfig(seed=1, tick_interval_ms=None), universe=[RELIANCE])
    engine = Engine(broker, [RELIANCE.instrument], limits=LIMITS)
    await engine.start()
    broker.step()
    await settle()
    result = await engine.submit(buy(100_000, 1))
    assert not result.accepted
    assert engine.trading_state is TradingState.HALTED
    await engine.stop()


class _ExpiringBroker(PaperBroker):
    async def place(self, request: PlaceRequest) -> PlaceAck:
        raise BrokerError(BrokerErrorCode.SESSION_EXPIRED, "Resource not available.", {"Success": None, "Status": 500, "Error": "Resource not available."})


async def test_session_expiry_halts() -> None:
    broker = _ExpiringBroker(PaperConfig(seed=1, tick_interval_ms=None), universe=[RELIANCE])
    engine = Engine(broker, [RELIANCE.instrument], limits=LIMITS)
    await engine.start()
    broker.step()
    await settle()
    result = await engine.submit(buy(100_000, 1))
    assert result.rejection is not None and result.rejection.reason is RejectReason.BROKER_UNAVAILABLE
    assert engine.trading_state is TradingState.HALTED
    await engine.stop()


class _GarbageFeedBroker(PaperBroker):
    """Fault injection: the order-update stream carries junk before real updates."""

    def order_updates(self) -> AsyncIterator[BrokerOrderUpdate]:
        real = super().order_updates()

        async def mixed() -> AsyncIterator[BrokerOrderUpdate]:
            yield BrokerOrderUpdate(ts_ns=1)
            yield BrokerOrderUpdate(ts_ns=2, broker_order_id="PB99999999", status=OrderStatus.FILLED, filled_quantity=5)
            yield BrokerOrderUpdate(ts_ns=3, broker_order_id=7, filled_quantity="x")  # type: ignore[arg-type]
            yield BrokerOrderUpdate(ts_ns=4, client_order_id="nobody", status=OrderStatus.CANCELLED)
            async for update in real:
                yield update

        return mixed()


async def test_malformed_updates_never_crash_the_engine() -> None:
    broker = _GarbageFeedBroker(PaperConfig(seed=1, tick_interval_ms=None), universe=[RELIANCE])
    engine = Engine(broker, [RELIANCE.instrument], limits=LIMITS)
    await engine.start()
    broker.step()
    await settle()
    await settle()
    assert engine.oms.counters.malformed >= 2
    assert engine.oms.counters.unknown_order + engine.oms.counters.held >= 1
    assert engine.trading_state is TradingState.ACTIVE
    assert "broker.order_updates" in engine.supervisor.running
    result = await engine.submit(buy(100_000, 1))
    assert result.accepted
    await engine.stop()


async def test_connect_failure_is_a_clear_start_error() -> None:
    class _Down(PaperBroker):
        async def connect(self) -> None:
            raise BrokerError(BrokerErrorCode.UNAVAILABLE, "connection refused")

    engine = Engine(_Down(PaperConfig(tick_interval_ms=None), universe=[RELIANCE]), [RELIANCE.instrument], limits=LIMITS)
    with pytest.raises(EngineStartError, match="connection refused"):
        await engine.start()
    assert (await engine.submit(buy(100_000, 1))).rejection.reason is RejectReason.ENGINE_NOT_RUNNING  # type: ignore[union-attr]


async def test_stream_end_while_running_raises_alert() -> None:
    engine, broker = make_engine()
    await engine.start()
    broker.step()
    await settle()
    alerts: list[Alert] = []
    engine.bus.subscribe(Alert, alerts.append)
    await broker.disconnect()
    await settle()
    assert any("stream ended" in a.message for a in alerts)
    await engine.stop()


@on_virtual_time
async def test_stop_drains_in_flight_orders() -> None:
    engine, broker = make_engine(latency_ms=50)
    await engine.start()
    broker.step()
    await settle()
    broker.step()
    pending = asyncio.ensure_future(engine.submit(buy(100_000, 1)))
    await asyncio.sleep(0.01)
    await engine.stop()
    result = await pending
    assert result.accepted
    assert engine.lifecycle is Lifecycle.STOPPED
    assert (await engine.submit(buy(100_000, 1))).rejection.reason is RejectReason.ENGINE_NOT_RUNNING  # type: ignore[union-attr]


@on_virtual_time
async def test_cancel_before_ack_is_sent_once_acked() -> None:
    loop = asyncio.get_running_loop()
    engine, broker = make_engine(latency_ms=30)
    await engine.start()
    broker.step()
    await settle()
    placed = loop.time()
    pending = asyncio.ensure_future(engine.submit(buy(100_000, 1)))
    # Inside the place's round trip: the order is working at the desk, not yet acknowledged.
    await asyncio.sleep(0.005)
    (order,) = engine.oms.working()
    assert order.broker_order_id is None
    early = await engine.cancel(order.client_order_id)
    assert early.ok and "as soon as" in early.message
    assert (await pending).accepted
    assert order.status is OrderStatus.OPEN
    cancelled = asyncio.Event()
    engine.bus.subscribe(OrderEvent, lambda event: cancelled.set() if order.status is OrderStatus.CANCELLED else None)
    # A second of desk time is ample; on virtual time it costs nothing when the cancel is lost.
    await asyncio.wait_for(cancelled.wait(), 1.0)
    # The cancel went out in its governor slot (one spacing after the place) and landed a round trip later.
    assert loop.time() == pytest.approx(placed + (1 + GovernorConfig().margin) / 10 + 0.030)
    await engine.stop()


class _LossyFeedBroker(PaperBroker):
    """A paper broker whose order feed loses notifications and says so, as Breeze's does
    (``LossyOrderFeed``): while ``losing``, every update is dropped and reported lost. Each order-book
    read is counted and waits for ``book_open``."""

    def __init__(self, config: PaperConfig, universe: list[UniverseEntry]) -> None:
        super().__init__(config, universe)
        self.losing = False
        self.book_reads = 0
        self.book_open = asyncio.Event()
        self.book_open.set()
        self._gap_listeners: list[Callable[[str], None]] = []

    def on_order_feed_gap(self, callback: Callable[[str], None]) -> None:
        self._gap_listeners.append(callback)

    def lose(self, what: str) -> None:
        for listener in self._gap_listeners:
            listener(f"lost {what}")

    def order_updates(self) -> AsyncIterator[BrokerOrderUpdate]:
        real = super().order_updates()

        async def lossy() -> AsyncIterator[BrokerOrderUpdate]:
            async for update in real:
                if self.losing:
                    self.lose(f"{update.status} of {update.broker_order_id}")
                else:
                    yield update

        return lossy()

    async def order_book(self) -> list[BrokerOrder]:
        self.book_reads += 1
        await self.book_open.wait()
        return await super().order_book()


async def test_a_lost_order_notification_reads_the_book_again_once_per_burst() -> None:
    """Found: a fill whose notification the broker lost reached the desk only at some later reconcile."""
    broker = _LossyFeedBroker(PaperConfig(seed=1, tick_interval_ms=None), [RELIANCE])
    engine = Engine(broker, [RELIANCE.instrument], limits=LIMITS)
    await engine.start()
    broker.step()
    await settle()
    last = engine.market_data.last_price("NSE:RELIANCE")
    assert last is not None
    result = await engine.submit(buy(last + 20 * RELIANCE.instrument.tick_size, 5))
    await settle()
    order = engine.oms.get(result.client_order_id or "")
    assert order is not None and order.is_working
    reads = broker.book_reads
    broker.losing = True
    broker.book_open.clear()
    broker.step()  # fills the order; its notification is lost
    await settle()
    assert broker.book_reads == reads + 1, "one read, held open"
    assert engine.portfolio.position("NSE:RELIANCE") == 0, "the fill is not known yet"
    broker.lose("another")
    broker.lose("and another")
    await settle()
    assert broker.book_reads == reads + 1, "asks during a read wait for it"
    broker.book_open.set()
    await settle()
    await settle()
    assert order.status is OrderStatus.FILLED and engine.portfolio.position("NSE:RELIANCE") == 5
    assert broker.book_reads == reads + 2, "one more read for every ask during the first"
    await settle()
    assert broker.book_reads == reads + 2
    await engine.stop()
