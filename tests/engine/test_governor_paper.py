"""The governor in front of the real PaperBroker: the broker never has to refuse a call.

Both run on the event loop's clock, and the tests run on virtual time, so every release and every
broker receipt lands exactly where the schedule puts it, however loaded the machine is. How late
real timers make the same run is the benchmarks' concern (tests/bench/governor.py, kill_switch.py).
"""

from __future__ import annotations

import asyncio

import pytest

from app.brokers.base import PlaceRequest, RateLimits
from app.brokers.paper import PaperBroker, PaperConfig, load_universe
from app.domain.orders import OrderStatus, Side
from app.engine.governor import CallKind, Governor, GovernorConfig
from tests.support.virtual_time import on_virtual_time

RELIANCE = next(entry for entry in load_universe() if entry.instrument.key == "NSE:RELIANCE")


class ShiftedClock:
    """The loop's clock plus an offset the test can push forward, so setting up the book (which
    the broker's own limiter would stretch over seconds) takes no time on the governor's clock."""

    def __init__(self) -> None:
        self.offset = 0.0
        self._loop = asyncio.get_running_loop()

    def __call__(self) -> float:
        return self._loop.time() + self.offset


def buy(name: str) -> PlaceRequest:
    # Far below the market: the orders rest, so every cancel finds a working order.
    return PlaceRequest(name, RELIANCE.instrument, Side.BUY, 1, 100_00)


async def broker_with_resting_orders(limits: RateLimits, count: int, latency_ms: float = 0.0) -> tuple[PaperBroker, list[str]]:
    clock = ShiftedClock()
    broker = PaperBroker(
        PaperConfig(tick_interval_ms=None, clock=clock, rate_limits=limits, latency_ms=latency_ms), universe=[RELIANCE]
    )
    await broker.connect()
    ids = []
    for n in range(count):
        if n and n % limits.order_actions_per_second == 0:
            clock.offset += 1.0
        ids.append((await broker.place(buy(f"rest{n}"))).broker_order_id)
    clock.offset += 61.0  # the broker's action and minute windows are empty again
    return broker, ids


@on_virtual_time
async def test_places_and_cancels_together_never_meet_a_broker_refusal() -> None:
    loop = asyncio.get_running_loop()
    limits = RateLimits(20, 1000, 100_000)
    broker, resting = await broker_with_resting_orders(limits, 30)
    governor = Governor(limits, GovernorConfig(max_wait=10.0))
    finished: list[str] = []

    async def place(n: int) -> None:
        await governor.acquire(CallKind.PLACE)
        await broker.place(buy(f"new{n}"))
        finished.append(f"place{n}")

    async def cancel(broker_order_id: str) -> None:
        await governor.acquire(CallKind.CANCEL)
        await broker.cancel(broker_order_id)
        finished.append(f"cancel{broker_order_id}")

    start = loop.time()
    places = [asyncio.create_task(place(n)) for n in range(40)]
    await asyncio.sleep(0)
    queued_places = governor.queued
    cancels = [asyncio.create_task(cancel(broker_order_id)) for broker_order_id in resting]
    # gather raises the first BrokerError, RATE_LIMITED included: none may come.
    await asyncio.gather(*places, *cancels)
    elapsed = loop.time() - start

    assert queued_places == 39
    first_queued_place = finished.index("place1")
    last_cancel = max(i for i, name in enumerate(finished) if name.startswith("cancel"))
    assert last_cancel < first_queued_place, "a queued place overtook a cancel"
    assert finished[:1] == ["place0"]
    book = await broker.order_book()
    assert sum(1 for row in book if row.status is OrderStatus.CANCELLED) == 30
    assert sum(1 for row in book if row.status is OrderStatus.OPEN) == 40
    # 70 actions spaced (1 + margin) / 20 s apart; places hold back two of every 20 slots a second.
    assert 69 * (1 + GovernorConfig().margin) / 20 - 1e-9 <= elapsed < 4.5
    assert governor.stats.released[CallKind.CANCEL] == 30 and governor.stats.throttled == 0
    await broker.disconnect()


@on_virtual_time
async def test_a_kill_switch_clears_the_book_within_the_bound() -> None:
    loop = asyncio.get_running_loop()
    # Breeze's 10 actions/s with a 5 ms round trip; the minute and day are generous so only the
    # action rate binds, as in the 200-order benchmark (scaled to 30 orders to stay short).
    limits = RateLimits(10, 1000, 100_000)
    broker, resting = await broker_with_resting_orders(limits, 30, latency_ms=5.0)
    governor = Governor(limits)
    expected = governor.expected_seconds(len(resting))

    async def cancel(broker_order_id: str) -> None:
        await governor.acquire(CallKind.CANCEL)
        await broker.cancel(broker_order_id)

    start = loop.time()
    await asyncio.gather(*(cancel(broker_order_id) for broker_order_id in resting))
    elapsed = loop.time() - start

    round_trip = 0.005
    # The default 5 % margin: cancels (1 + 0.05) / 10 s apart.
    assert expected == pytest.approx(29 * 0.105)
    # On the schedule's clock the last cancel lands exactly one round trip after its slot.
    assert elapsed == pytest.approx(expected + round_trip)
    book = await broker.order_book()
    assert all(row.status is OrderStatus.CANCELLED for row in book)
    # The reconciliation read goes at once: the action rate does not hold reads.
    read_start = loop.time()
    await governor.acquire(CallKind.READ)
    assert loop.time() == read_start
    await broker.disconnect()
