"""PaperBroker behind the Broker protocol: validation, matching, partial fills, cancel/modify, streams, determinism."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable
from dataclasses import replace

import pytest

from app.brokers.base import Broker, BrokerError, BrokerErrorCode, PlaceRequest
from app.brokers.paper import PaperBroker, PaperConfig, load_universe
from app.domain.broker_messages import BrokerOrderUpdate
from app.domain.instruments import Exchange, Instrument, Segment
from app.domain.market import Tick
from app.domain.money import round_div
from app.domain.orders import OrderStatus, OrderType, Side, Validity
from tests.support.calendar import PAPER_SESSION_DAY
from tests.support.virtual_time import on_virtual_time

UNIVERSE = load_universe(session_day=PAPER_SESSION_DAY)
BY_KEY = {entry.instrument.key: entry.instrument for entry in UNIVERSE}
RELIANCE = BY_KEY["NSE:RELIANCE"]
NIFTY_FUT = BY_KEY["NFO:NIFTY:2026-12-29:FUT"]


class FakeClock:
    """Monotonic seconds for the rate limiter; tests move it on so quotas never bind by accident."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        self.now += 1.0
        return self.now


def _counter_ns() -> Callable[[], int]:
    counter = itertools.count(1)
    return lambda: next(counter)


def _config(**overrides: object) -> PaperConfig:
    base = PaperConfig(
        seed=11, tick_interval_ms=None, partial_fill=False, clock=FakeClock(), wall_clock_ns=_counter_ns()
    )
    return replace(base, **overrides)  # type: ignore[arg-type]


async def _connected(**overrides: object) -> PaperBroker:
    broker = PaperBroker(_config(**overrides), UNIVERSE)
    await broker.connect()
    return broker


def _touch(ticks: list[Tick], key: str) -> tuple[int, int]:
    tick = next(t for t in ticks if t.instrument_key == key)
    assert tick.bid is not None and tick.ask is not None
    return tick.bid, tick.ask


async def _updates(broker: PaperBroker) -> list[BrokerOrderUpdate]:
    """Everything on the order-update stream; ends the broker's session."""
    await broker.disconnect()
    return [update async for update in broker.order_updates()]


def _request(
    coid: str, instrument: Instrument, side: Side, quantity: int, price: int, **fields: object
) -> PlaceRequest:
    return replace(PlaceRequest(coid, instrument, side, quantity, price), **fields)  # type: ignore[arg-type]


async def test_implements_the_protocol_with_breeze_like_capabilities() -> None:
    broker = PaperBroker(_config(), UNIVERSE)
    assert isinstance(broker, Broker)
    caps = broker.capabilities
    assert caps.name == "paper"
    assert (caps.market_orders, caps.modify, caps.bulk_cancel) == (False, True, False)
    assert caps.exchanges == frozenset(Exchange)
    assert (caps.rate_limits.order_actions_per_second, caps.rate_limits.calls_per_minute) == (10, 100)
    assert caps.rate_limits.calls_per_day == 5000
    assert [entry.instrument.key for entry in broker.universe] == [entry.instrument.key for entry in UNIVERSE]


async def test_default_broker_loads_the_resource_universe() -> None:
    assert len(PaperBroker().universe) == len(UNIVERSE)


async def test_marketable_buy_fills_at_the_ask_not_the_limit() -> None:
    broker = await _connected()
    _, ask = _touch(broker.step(), RELIANCE.key)
    limit = ask + 2_000  # ₹20 above: stays marketable through one step's move
    ack = await broker.place(_request("b1", RELIANCE, Side.BUY, 10, limit))
    assert ack.broker_order_id == "PB00000001"
    _, fill_ask = _touch(broker.step(), RELIANCE.key)
    (row,) = await broker.order_book()
    assert row.status is OrderStatus.FILLED
    assert (row.filled_quantity, row.average_price) == (10, fill_ask)
    assert fill_ask < limit
    (position,) = await broker.positions()
    assert (position.instrument_key, position.quantity, position.average_price) == (RELIANCE.key, 10, fill_ask)
    funds = await broker.funds()
    assert funds.used_margin == 10 * fill_ask
    assert funds.available == 10_00_000_00 - 10 * fill_ask
    updates = await _updates(broker)
    assert [u.status for u in updates] == [OrderStatus.OPEN, OrderStatus.FILLED]
    assert updates[0].ts_ns == ack.ts_ns and updates[0].filled_quantity == 0
    assert (updates[1].broker_order_id, updates[1].client_order_id) == ("PB00000001", "b1")
    assert (updates[1].filled_quantity, updates[1].average_price) == (10, fill_ask)


async def test_marketable_sell_fills_at_the_bid_and_a_round_trip_realizes_cash() -> None:
    broker = await _connected()
    bid, ask = _touch(broker.step(), RELIANCE.key)
    await broker.place(_request("b1", RELIANCE, Side.BUY, 4, ask + 2_000))
    _, buy_price = _touch(broker.step(), RELIANCE.key)
    await broker.place(_request("s1", RELIANCE, Side.SELL, 4, bid - 2_000))
    sell_price, _ = _touch(broker.step(), RELIANCE.key)
    book = await broker.order_book()
    assert [(row.side, row.status, row.average_price) for row in book] == [
        (Side.BUY, OrderStatus.FILLED, buy_price),
        (Side.SELL, OrderStatus.FILLED, sell_price),
    ]
    assert sell_price > bid - 2_000
    (position,) = await broker.positions()
    assert (position.quantity, position.average_price) == (0, None)
    funds = await broker.funds()
    assert funds.used_margin == 0
    assert funds.available == 10_00_000_00 + 4 * (sell_price - buy_price)
    await broker.disconnect()


async def test_non_marketable_orders_rest_and_block_funds() -> None:
    broker = await _connected()
    bid, ask = _touch(broker.step(), RELIANCE.key)
    buy_limit = bid - bid // 20 // 5 * 5  # 5% under the bid, on the tick
    sell_limit = ask + ask // 20 // 5 * 5
    await broker.place(_request("b1", RELIANCE, Side.BUY, 3, buy_limit))
    await broker.place(_request("s1", RELIANCE, Side.SELL, 2, sell_limit))
    for _ in range(30):
        broker.step()
    book = await broker.order_book()
    assert [(row.status, row.filled_quantity, row.average_price) for row in book] == [(OrderStatus.OPEN, 0, None)] * 2
    assert await broker.positions() == []
    assert (await broker.funds()).used_margin == 3 * buy_limit + 2 * sell_limit
    assert [u.status for u in await _updates(broker)] == [OrderStatus.OPEN, OrderStatus.OPEN]


async def test_partial_fills_accumulate_to_the_full_quantity_with_a_cumulative_average() -> None:
    broker = await _connected(partial_fill=True)
    _, ask = _touch(broker.step(), NIFTY_FUT.key)
    quantity = NIFTY_FUT.freeze_quantity  # 27 lots
    await broker.place(_request("big", NIFTY_FUT, Side.BUY, quantity, ask + 50_000))
    ask_at: dict[int, int] = {}
    for _ in range(200):
        ticks = broker.step()
        ask_at[ticks[0].ts_ns] = _touch(ticks, NIFTY_FUT.key)[1]
    updates = [u for u in await _updates(broker) if u.status is not OrderStatus.OPEN]
    assert len(updates) > 1, "a 27-lot order should fill over several steps"
    assert [u.status for u in updates] == [OrderStatus.PARTIALLY_FILLED] * (len(updates) - 1) + [OrderStatus.FILLED]
    filled = 0
    value = 0
    for update in updates:
        assert update.filled_quantity is not None
        step_quantity = update.filled_quantity - filled
        assert step_quantity > 0 and step_quantity % NIFTY_FUT.lot_size == 0
        filled = update.filled_quantity
        value += step_quantity * ask_at[update.ts_ns]
        assert update.average_price == round_div(value, filled)
    assert filled == quantity


async def test_cancel_a_working_order_then_cancel_again_is_refused() -> None:
    broker = await _connected(partial_fill=True)
    bid, _ = _touch(broker.step(), RELIANCE.key)
    await broker.place(_request("b1", RELIANCE, Side.BUY, 5, bid - 5_000))
    broker.step()
    await broker.cancel("PB00000001")
    (row,) = await broker.order_book()
    assert row.status is OrderStatus.CANCELLED
    with pytest.raises(BrokerError) as raised:
        await broker.cancel("PB00000001")
    # The order's end is the answer, not a fault: the engine does not count it as a broker error.
    assert raised.value.code is BrokerErrorCode.ALREADY_FINAL
    assert "already CANCELLED" in raised.value.message
    with pytest.raises(BrokerError) as raised:
        await broker.cancel("PB99999999")
    assert raised.value.code is BrokerErrorCode.UNKNOWN_ORDER
    assert raised.value.body["Error"] == raised.value.message
    for _ in range(20):
        broker.step()
    updates = await _updates(broker)
    assert [(u.status, u.filled_quantity) for u in updates] == [(OrderStatus.OPEN, 0), (OrderStatus.CANCELLED, 0)]


async def test_cancel_of_a_filled_order_is_refused() -> None:
    broker = await _connected()
    _, ask = _touch(broker.step(), RELIANCE.key)
    await broker.place(_request("b1", RELIANCE, Side.BUY, 1, ask + 2_000))
    broker.step()
    with pytest.raises(BrokerError) as raised:
        await broker.cancel("PB00000001")
    assert raised.value.code is BrokerErrorCode.ALREADY_FINAL
    assert "already FILLED" in raised.value.message
    assert raised.value.body == {"Success": None, "Status": 500, "Error": raised.value.message}
    (row,) = await broker.order_book()
    assert row.status is OrderStatus.FILLED


async def test_a_partly_filled_cancel_keeps_its_fills() -> None:
    broker = await _connected(partial_fill=True)
    _, ask = _touch(broker.step(), NIFTY_FUT.key)
    await broker.place(_request("big", NIFTY_FUT, Side.BUY, NIFTY_FUT.freeze_quantity, ask + 50_000))
    broker.step()
    await broker.cancel("PB00000001")
    (row,) = await broker.order_book()
    assert row.status is OrderStatus.CANCELLED
    assert 0 < row.filled_quantity < NIFTY_FUT.freeze_quantity
    (position,) = await broker.positions()
    assert position.quantity == row.filled_quantity
    assert (await _updates(broker))[-1].filled_quantity == row.filled_quantity


UNKNOWN = Instrument("NSE:NOSUCH", Exchange.NSE, "NOSUCH", "NOSUCH", Segment.CASH, 1, 5, 100000)


@pytest.mark.parametrize(
    ("request_", "message"),
    [
        (_request("x", UNKNOWN, Side.BUY, 1, 100_00), "Unknown instrument NSE:NOSUCH"),
        (_request("x", NIFTY_FUT, Side.BUY, 64, 26_000_00), "not a multiple of the lot size 65"),
        (_request("x", NIFTY_FUT, Side.BUY, 1755 + 65, 26_000_00), "above the freeze quantity 1755"),
        (_request("x", RELIANCE, Side.BUY, 0, 1_500_00), "Quantity must be positive"),
        (_request("x", RELIANCE, Side.BUY, -5, 1_500_00), "Quantity must be positive"),
        (_request("x", RELIANCE, Side.SELL, 1, 1_500_03), "not a multiple of the tick size 5"),
        (_request("x", RELIANCE, Side.BUY, 1, 0), "Price must be positive"),
        (_request("x", RELIANCE, Side.BUY, 1, -100), "Price must be positive"),
        (_request("x", RELIANCE, Side.BUY, 1, 1_500_00, order_type=OrderType.MARKET), "Market orders"),
    ],
    ids=["unknown", "lot", "freeze", "zero-qty", "negative-qty", "off-tick", "zero-price", "negative-price", "market"],
)
async def test_bad_place_is_rejected_and_disturbs_nothing(request_: PlaceRequest, message: str) -> None:
    broker = await _connected()
    bid, _ = _touch(broker.step(), RELIANCE.key)
    await broker.place(_request("keep", RELIANCE, Side.BUY, 7, bid - 5_000))
    before = await broker.order_book()
    with pytest.raises(BrokerError) as raised:
        await broker.place(request_)
    error = raised.value
    assert error.code is BrokerErrorCode.REJECTED
    assert message in error.message
    assert error.body == {"Success": None, "Status": 500, "Error": error.message}
    assert await broker.order_book() == before
    ack = await broker.place(_request("next", RELIANCE, Side.BUY, 1, bid - 5_000))
    assert ack.broker_order_id == "PB00000002"
    await broker.cancel("PB00000001")
    updates = await _updates(broker)
    assert [(u.client_order_id, u.status) for u in updates] == [
        ("keep", OrderStatus.OPEN),
        ("next", OrderStatus.OPEN),
        ("keep", OrderStatus.CANCELLED),
    ]


async def test_calls_need_a_connection() -> None:
    broker = PaperBroker(_config(), UNIVERSE)
    calls = [
        broker.place(_request("x", RELIANCE, Side.BUY, 1, 1_500_00)),
        broker.modify("PB00000001", price=1_500_00),
        broker.cancel("PB00000001"),
        broker.order_book(),
        broker.positions(),
        broker.funds(),
        broker.subscribe([RELIANCE.key]),
    ]
    for call in calls:
        with pytest.raises(BrokerError) as raised:
            await call
        assert raised.value.code is BrokerErrorCode.NOT_CONNECTED
    with pytest.raises(BrokerError) as raised:
        broker.step()
    assert raised.value.code is BrokerErrorCode.NOT_CONNECTED


async def test_modify_price_makes_a_resting_order_fill() -> None:
    broker = await _connected()
    bid, ask = _touch(broker.step(), RELIANCE.key)
    await broker.place(_request("b1", RELIANCE, Side.BUY, 10, bid - 5_000))
    broker.step()
    await broker.modify("PB00000001", quantity=20, price=ask + 2_000)
    (row,) = await broker.order_book()
    assert (row.quantity, row.price, row.status) == (20, ask + 2_000, OrderStatus.OPEN)
    _, fill_ask = _touch(broker.step(), RELIANCE.key)
    (row,) = await broker.order_book()
    assert (row.status, row.filled_quantity, row.average_price) == (OrderStatus.FILLED, 20, fill_ask)
    updates = await _updates(broker)
    assert [u.status for u in updates] == [OrderStatus.OPEN, OrderStatus.OPEN, OrderStatus.FILLED]
    assert updates[1].reason is not None and "modified" in updates[1].reason


async def test_modify_refusals_leave_the_order_alone() -> None:
    broker = await _connected(partial_fill=True)
    _, ask = _touch(broker.step(), NIFTY_FUT.key)
    await broker.place(_request("big", NIFTY_FUT, Side.BUY, NIFTY_FUT.freeze_quantity, ask + 50_000))
    broker.step()
    (before,) = await broker.order_book()
    assert before.status is OrderStatus.PARTIALLY_FILLED
    refusals = [
        ({"quantity": before.filled_quantity}, "above the filled quantity"),
        ({"quantity": 100}, "lot size"),
        ({"price": ask + 3}, "tick size"),
        ({"price": 0}, "Price must be positive"),
        ({}, "Nothing to modify"),
    ]
    for change, message in refusals:
        with pytest.raises(BrokerError) as raised:
            await broker.modify("PB00000001", **change)
        assert raised.value.code is BrokerErrorCode.REJECTED
        assert message in raised.value.message
    assert await broker.order_book() == [before]
    with pytest.raises(BrokerError) as raised:
        await broker.modify("PB00000042", price=ask)
    assert raised.value.code is BrokerErrorCode.UNKNOWN_ORDER
    await broker.cancel("PB00000001")
    with pytest.raises(BrokerError) as raised:
        await broker.modify("PB00000001", price=ask)
    assert raised.value.code is BrokerErrorCode.ALREADY_FINAL
    await broker.disconnect()


async def test_ioc_cancels_its_unfilled_rest_after_one_step() -> None:
    broker = await _connected()
    bid, _ = _touch(broker.step(), RELIANCE.key)
    await broker.place(_request("ioc", RELIANCE, Side.BUY, 5, bid - 5_000, validity=Validity.IOC))
    broker.step()
    (row,) = await broker.order_book()
    assert (row.status, row.filled_quantity) == (OrderStatus.CANCELLED, 0)
    updates = await _updates(broker)
    assert updates[-1].reason is not None and "IOC" in updates[-1].reason


async def test_reject_rate_one_rejects_every_place() -> None:
    broker = await _connected(reject_rate=1.0)
    for n in range(5):
        with pytest.raises(BrokerError) as raised:
            await broker.place(_request(f"c{n}", RELIANCE, Side.BUY, 1, 1_500_00))
        assert raised.value.code is BrokerErrorCode.REJECTED
        assert raised.value.body["Success"] is None and raised.value.body["Status"] == 500
        assert "rejected by exchange" in str(raised.value.body["Error"])
    book = await broker.order_book()
    assert [(row.client_order_id, row.status) for row in book] == [(f"c{n}", OrderStatus.REJECTED) for n in range(5)]
    assert (await broker.funds()).used_margin == 0
    assert await _updates(broker) == []


async def _reject_pattern(seed: int) -> list[bool]:
    broker = await _connected(seed=seed, reject_rate=0.5)
    pattern = []
    for n in range(40):
        try:
            await broker.place(_request(f"c{n}", RELIANCE, Side.BUY, 1, 1_000_00))
            pattern.append(False)
        except BrokerError:
            pattern.append(True)
    await broker.disconnect()
    return pattern


async def test_rejections_are_seeded() -> None:
    first = await _reject_pattern(3)
    assert first == await _reject_pattern(3)
    assert any(first) and not all(first)
    assert first != await _reject_pattern(4)


@on_virtual_time
async def test_latency_is_honoured() -> None:
    # On virtual time a call takes exactly the latency it waits for, and no call waits for nothing.
    loop = asyncio.get_running_loop()
    slow = await _connected(latency_ms=60)
    started = loop.time()
    await slow.funds()
    await slow.order_book()
    assert loop.time() - started == pytest.approx(0.120)
    fast = await _connected(latency_ms=0)
    started = loop.time()
    for _ in range(20):
        await fast.funds()
    assert loop.time() == started
    await slow.disconnect()
    await fast.disconnect()


async def _session(seed: int) -> tuple[list[Tick], list[BrokerOrderUpdate], list[object]]:
    """One scripted session: the same calls in the same order, with a partial-filling market."""
    broker = await _connected(seed=seed, partial_fill=True, reject_rate=0.2)
    await broker.subscribe([RELIANCE.key, NIFTY_FUT.key, "NFO:NIFTY:2026-12-29:26000:CE"])
    ticks = broker.step()
    bid, ask = _touch(ticks, RELIANCE.key)
    fut_bid, fut_ask = _touch(ticks, NIFTY_FUT.key)
    requests = [
        _request("a", RELIANCE, Side.BUY, 40, ask + 1_000),
        _request("b", RELIANCE, Side.SELL, 25, bid - 1_000),
        _request("c", NIFTY_FUT, Side.BUY, 650, fut_ask + 500),
        _request("d", NIFTY_FUT, Side.SELL, 390, fut_bid),
        _request("e", RELIANCE, Side.BUY, 10, bid - 500),
    ]
    for request in requests:
        try:
            await broker.place(request)
        except BrokerError:
            pass
        broker.step()
    for _ in range(15):
        broker.step()
    for row in await broker.order_book():
        if row.status.is_working:
            await broker.cancel(row.broker_order_id)
    book: list[object] = [*await broker.order_book(), *await broker.positions(), await broker.funds()]
    await broker.disconnect()
    streamed = [tick async for tick in broker.ticks()]
    return streamed, [update async for update in broker.order_updates()], book


async def test_same_seed_same_session_different_seed_different_market() -> None:
    first = await _session(21)
    second = await _session(21)
    assert first == second
    ticks, updates, _ = first
    assert {tick.instrument_key for tick in ticks} == {RELIANCE.key, NIFTY_FUT.key, "NFO:NIFTY:2026-12-29:26000:CE"}
    assert any(u.status is OrderStatus.PARTIALLY_FILLED for u in updates)
    other_ticks, _, _ = await _session(22)
    assert [(t.price, t.bid, t.ask) for t in other_ticks] != [(t.price, t.bid, t.ask) for t in ticks]


async def test_subscribe_rejects_unknown_keys_atomically() -> None:
    broker = await _connected()
    with pytest.raises(BrokerError) as raised:
        await broker.subscribe([RELIANCE.key, "NSE:NOSUCH"])
    assert raised.value.code is BrokerErrorCode.REJECTED
    assert "NSE:NOSUCH" in raised.value.message
    broker.step()
    await broker.disconnect()
    assert [tick async for tick in broker.ticks()] == []


async def test_tick_overflow_drops_the_oldest_and_counts() -> None:
    broker = await _connected(tick_queue_size=5)
    await broker.subscribe([entry.instrument.key for entry in UNIVERSE])
    broker.step()
    last = broker.step()
    await broker.disconnect()
    received = [tick async for tick in broker.ticks()]
    assert received == last[-5:]
    assert broker.dropped_ticks == 2 * len(UNIVERSE) - 5


@on_virtual_time
async def test_background_market_streams_ticks_fills_orders_and_ends_on_disconnect() -> None:
    # On virtual time the background walk steps only when the test waits, never between its lines.
    broker = await _connected(tick_interval_ms=5.0)
    await broker.subscribe([RELIANCE.key])
    ticks = broker.ticks()
    first = await asyncio.wait_for(anext(ticks), timeout=2)
    assert first.instrument_key == RELIANCE.key
    assert first.ask is not None
    await broker.place(_request("bg", RELIANCE, Side.BUY, 3, first.ask + 5_000))
    updates = broker.order_updates()
    seen = [await asyncio.wait_for(anext(updates), timeout=2) for _ in range(2)]
    assert [u.status for u in seen] == [OrderStatus.OPEN, OrderStatus.FILLED]
    for _ in range(3):
        tick = await asyncio.wait_for(anext(ticks), timeout=2)
        assert tick.instrument_key == RELIANCE.key
    await broker.disconnect()

    async def drain() -> None:
        async for _ in ticks:
            pass
        async for _ in updates:
            pass

    await asyncio.wait_for(drain(), timeout=2)


async def test_reconnect_gives_fresh_streams_and_keeps_orders() -> None:
    broker = await _connected()
    bid, _ = _touch(broker.step(), RELIANCE.key)
    await broker.place(_request("r", RELIANCE, Side.BUY, 1, bid - 5_000))
    await broker.disconnect()
    assert [u.status async for u in broker.order_updates()] == [OrderStatus.OPEN]
    await broker.connect()
    await broker.cancel("PB00000001")
    await broker.disconnect()
    assert [u.status async for u in broker.order_updates()] == [OrderStatus.CANCELLED]


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("latency_ms", -1.0),
        ("reject_rate", 1.5),
        ("tick_interval_ms", 0.0),
        ("starting_cash", -1),
        ("tick_queue_size", 0),
    ],
)
def test_config_is_checked(field: str, value: object) -> None:
    with pytest.raises(ValueError, match=field):
        PaperConfig(**{field: value})  # type: ignore[arg-type]
