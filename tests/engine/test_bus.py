"""The event bus: typed routing, handler isolation, bounded queues that never block the publisher."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import pytest

from app.engine.bus import EventBus


@dataclass(frozen=True)
class Base:
    n: int


@dataclass(frozen=True)
class Child(Base):
    pass


@dataclass(frozen=True)
class Other:
    n: int


def test_routes_by_type_and_base_class() -> None:
    bus = EventBus()
    base_seen: list[object] = []
    child_seen: list[object] = []
    other_seen: list[object] = []
    bus.subscribe(Base, base_seen.append)
    bus.subscribe(Child, child_seen.append)
    bus.subscribe(Other, other_seen.append)
    bus.publish(Base(1))
    bus.publish(Child(2))
    bus.publish(Other(3))
    assert base_seen == [Base(1), Child(2)]
    assert child_seen == [Child(2)]
    assert other_seen == [Other(3)]


def test_subscribing_later_sees_later_events() -> None:
    bus = EventBus()
    first: list[object] = []
    bus.subscribe(Base, first.append)
    bus.publish(Base(1))
    late: list[object] = []
    bus.subscribe(Base, late.append)
    bus.publish(Base(2))
    assert first == [Base(1), Base(2)]
    assert late == [Base(2)]


def test_raising_handler_never_stops_delivery_to_others() -> None:
    crashes: list[str] = []
    bus = EventBus(on_critical_error=lambda name, exc: crashes.append(name))
    before: list[object] = []
    after: list[object] = []

    def explode(event: Base) -> None:
        raise RuntimeError("boom")

    bus.subscribe(Base, before.append)
    bus.subscribe(Base, explode, name="exploder")
    bus.subscribe(Base, after.append)
    for i in range(3):
        bus.publish(Base(i))
    assert before == after == [Base(0), Base(1), Base(2)]
    assert bus.handler_errors == 3
    assert crashes == ["exploder"] * 3


def test_non_critical_handler_failure_is_counted_but_not_escalated() -> None:
    crashes: list[str] = []
    bus = EventBus(on_critical_error=lambda name, exc: crashes.append(name))

    def explode(event: Base) -> None:
        raise ValueError("ui glitch")

    bus.subscribe(Base, explode, critical=False)
    bus.publish(Base(1))
    assert bus.handler_errors == 1
    assert crashes == []


def test_lossy_queue_drops_oldest_and_counts() -> None:
    bus = EventBus()
    queue = bus.subscribe_queue([Base], name="ui", maxsize=3, lossy=True)
    for i in range(10):
        bus.publish(Base(i))
    assert queue.dropped == 7
    assert [e.n for e in queue.drain()] == [7, 8, 9]  # type: ignore[attr-defined]
    assert bus.queue_stats()["ui"]["dropped"] == 7


def test_lossless_queue_never_drops() -> None:
    bus = EventBus()
    queue = bus.subscribe_queue([Base], name="audit", maxsize=None, lossy=False)
    for i in range(50_000):
        bus.publish(Base(i))
    assert queue.dropped == 0
    assert len(queue) == 50_000
    assert queue.high_water == 50_000


def test_lossy_queue_requires_a_bound() -> None:
    bus = EventBus()
    with pytest.raises(ValueError):
        bus.subscribe_queue([Base], name="bad", maxsize=None, lossy=True)


async def test_slow_consumer_does_not_block_publisher() -> None:
    bus = EventBus()
    queue = bus.subscribe_queue([Base], name="slow-ui", maxsize=100, lossy=True)
    received: list[int] = []

    async def slow_consumer() -> None:
        while True:
            event = await queue.get()
            received.append(event.n)  # type: ignore[attr-defined]
            await asyncio.sleep(0.01)

    consumer = asyncio.create_task(slow_consumer())
    await asyncio.sleep(0)
    for i in range(10_000):
        bus.publish(Base(i))
    await asyncio.sleep(0.05)
    consumer.cancel()
    # The publisher ran to completion without yielding; the consumer then sees only the newest 100.
    # (How fast publishing is belongs to tests/bench/ticks.py.)
    assert queue.dropped == 10_000 - 100
    assert received[0] == 10_000 - 100
    assert received == list(range(9_900, 9_900 + len(received)))


async def test_queue_get_waits_for_next_event() -> None:
    bus = EventBus()
    queue = bus.subscribe_queue([Other], name="q", maxsize=10)
    getter = asyncio.create_task(queue.get())
    await asyncio.sleep(0.01)
    assert not getter.done()
    bus.publish(Base(1))
    await asyncio.sleep(0.01)
    assert not getter.done()
    bus.publish(Other(5))
    assert await asyncio.wait_for(getter, 1) == Other(5)


def test_unsubscribe_removes_every_inline_subscription_of_the_handler() -> None:
    bus = EventBus()
    seen: list[object] = []
    kept: list[object] = []
    bus.subscribe(Base, seen.append)
    bus.subscribe(Other, seen.append)
    bus.subscribe(Base, kept.append)
    bus.publish(Base(1))  # routes cached before the unsubscribe: it must clear them
    bus.unsubscribe(seen.append)
    bus.publish(Base(2))
    bus.publish(Other(3))
    bus.unsubscribe(seen.append)  # twice, or never subscribed: nothing to do
    assert seen == [Base(1)]
    assert kept == [Base(1), Base(2)]
