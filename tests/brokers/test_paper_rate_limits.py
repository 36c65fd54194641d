"""Breeze's limits, enforced server-side by the paper broker: 10 order actions/s, 100 calls/min, 5000 calls/day."""

from __future__ import annotations

import pytest

from app.brokers.base import (
    BREEZE_RATE_LIMITS,
    BrokerError,
    BrokerErrorCode,
    PlaceRequest,
    RateLimits,
)
from app.brokers.paper import (
    PaperBroker,
    PaperConfig,
    RateLimiter,
    load_universe,
)
from app.domain.orders import OrderStatus, Side

UNIVERSE = load_universe()
RELIANCE = next(entry.instrument for entry in UNIVERSE if entry.instrument.key == "NSE:RELIANCE")


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _refused(limiter: RateLimiter, *, order_action: bool, call: str = "place") -> BrokerError:
    with pytest.raises(BrokerError) as raised:
        limiter.acquire(call, order_action=order_action)
    return raised.value


def test_ten_actions_per_second_then_refused_with_a_breeze_body() -> None:
    clock = FakeClock()
    limiter = RateLimiter(BREEZE_RATE_LIMITS, clock)
    for _ in range(10):
        limiter.acquire("place", order_action=True)
    error = _refused(limiter, order_action=True, call="cancel")
    assert error.code is BrokerErrorCode.RATE_LIMITED
    assert set(error.body) == {"Success", "Status", "Error"}
    assert error.body["Success"] is None and error.body["Status"] == 429
    assert isinstance(error.body["Error"], str) and "order actions per second" in error.body["Error"]
    assert "cancel" in error.message


def test_action_window_slides_and_refusals_do_not_count() -> None:
    clock = FakeClock()
    limiter = RateLimiter(BREEZE_RATE_LIMITS, clock)
    for _ in range(10):
        limiter.acquire("place", order_action=True)
    clock.now = 0.5
    for _ in range(5):
        _refused(limiter, order_action=True)
    clock.now = 0.999
    _refused(limiter, order_action=True)
    # Had the refusals at 0.5 s counted, only 5 would pass at 1.0 s.
    clock.now = 1.0
    for _ in range(10):
        limiter.acquire("modify", order_action=True)
    _refused(limiter, order_action=True)


def test_reads_do_not_use_the_action_quota() -> None:
    limiter = RateLimiter(BREEZE_RATE_LIMITS, FakeClock())
    for _ in range(10):
        limiter.acquire("place", order_action=True)
    limiter.acquire("order_book", order_action=False)
    limiter.acquire("funds", order_action=False)


def test_hundred_calls_per_minute_count_actions_and_reads() -> None:
    clock = FakeClock()
    limiter = RateLimiter(BREEZE_RATE_LIMITS, clock)
    for second in range(10):
        clock.now = float(second)
        for _ in range(5):
            limiter.acquire("place", order_action=True)
        for _ in range(5):
            limiter.acquire("positions", order_action=False)
    clock.now = 30.0
    error = _refused(limiter, order_action=False, call="funds")
    assert "100 calls per minute" in str(error.body["Error"])
    assert "calls per minute" in error.message
    # The first second's ten calls leave the window at 60 s; no more.
    clock.now = 60.0
    for _ in range(10):
        limiter.acquire("order_book", order_action=False)
    _refused(limiter, order_action=False)


def test_five_thousand_calls_per_day() -> None:
    clock = FakeClock()
    limiter = RateLimiter(BREEZE_RATE_LIMITS, clock)
    for i in range(5000):
        # 0.625 s apart (exact in binary) keeps 96 calls in any minute, so only the daily limit binds.
        clock.now = i * 0.625
        limiter.acquire("order_book", order_action=False)
    clock.now = 5000 * 0.625
    error = _refused(limiter, order_action=False)
    assert "5000 calls per day" in str(error.body["Error"])
    clock.now = 86_400.0 - 0.001
    _refused(limiter, order_action=False)
    clock.now = 86_400.0
    limiter.acquire("order_book", order_action=False)
    _refused(limiter, order_action=False)


def test_limits_must_be_positive() -> None:
    with pytest.raises(ValueError, match="calls_per_minute"):
        RateLimiter(RateLimits(10, 0, 5000))


def _broker(clock: FakeClock, limits: RateLimits = BREEZE_RATE_LIMITS) -> PaperBroker:
    return PaperBroker(PaperConfig(tick_interval_ms=None, clock=clock, rate_limits=limits), UNIVERSE)


def _buy(n: int) -> PlaceRequest:
    return PlaceRequest(f"c{n}", RELIANCE, Side.BUY, 1, 100_00)


async def test_broker_refuses_the_eleventh_action_without_creating_an_order() -> None:
    clock = FakeClock()
    broker = _broker(clock)
    await broker.connect()
    for n in range(10):
        await broker.place(_buy(n))
    with pytest.raises(BrokerError) as raised:
        await broker.cancel("PB00000001")
    assert raised.value.code is BrokerErrorCode.RATE_LIMITED
    assert raised.value.body["Status"] == 429
    with pytest.raises(BrokerError) as raised:
        await broker.place(_buy(10))
    assert raised.value.code is BrokerErrorCode.RATE_LIMITED
    book = await broker.order_book()
    assert len(book) == 10 and all(row.status is OrderStatus.OPEN for row in book)
    clock.now = 1.0
    ack = await broker.place(_buy(11))
    assert ack.broker_order_id == "PB00000011"
    await broker.disconnect()


async def test_every_broker_call_counts_toward_the_minute() -> None:
    clock = FakeClock()
    broker = _broker(clock, RateLimits(10, 6, 5000))
    await broker.connect()
    await broker.place(_buy(0))
    await broker.modify("PB00000001", price=101_00)
    await broker.cancel("PB00000001")
    await broker.order_book()
    await broker.positions()
    await broker.funds()
    for call in (broker.funds, broker.order_book, broker.positions):
        with pytest.raises(BrokerError) as raised:
            await call()
        assert raised.value.code is BrokerErrorCode.RATE_LIMITED
    clock.now = 60.0
    await broker.funds()
    await broker.disconnect()


async def test_broker_daily_limit() -> None:
    clock = FakeClock()
    broker = _broker(clock)
    await broker.connect()
    for i in range(5000):
        clock.now = i * 0.625
        await broker.order_book()
    with pytest.raises(BrokerError) as raised:
        await broker.positions()
    assert raised.value.code is BrokerErrorCode.RATE_LIMITED
    assert "calls per day" in str(raised.value.body["Error"])
    await broker.disconnect()


async def test_calls_while_disconnected_spend_no_quota() -> None:
    clock = FakeClock()
    broker = _broker(clock, RateLimits(1, 100, 5000))
    for _ in range(3):
        with pytest.raises(BrokerError) as raised:
            await broker.place(_buy(0))
        assert raised.value.code is BrokerErrorCode.NOT_CONNECTED
    await broker.connect()
    await broker.place(_buy(1))
    await broker.disconnect()
