"""Rate counters in the store (SQLite and PostgreSQL): a restart within the IST day resumes the day's calls."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from sqlalchemy import Engine

from app.brokers.base import RateLimits
from app.domain.india_time import ist_day
from app.engine.governor import CallKind, Governor, Throttled
from app.store import rate_counters
from app.store.audit_writer import AuditWriter
from app.store.migrate import open_store

# 2026-11-20 10:00 IST, fixed so the test cannot straddle a midnight.
WALL_NS = 1_795_152_600 * 1_000_000_000
TODAY = ist_day(WALL_NS).isoformat()
DESK = "AAAAAA"


@pytest.fixture
def engine(db_url: str) -> Any:
    store = open_store(db_url)
    yield store
    store.dispose()


def test_upsert_inserts_then_updates_and_keys_stay_apart(engine: Engine) -> None:
    assert rate_counters.load(engine, TODAY, "paper", DESK) == {}
    with engine.begin() as connection:
        rate_counters.upsert(connection, TODAY, "paper", DESK, "calls", 1)
        rate_counters.upsert(connection, TODAY, "paper", DESK, "calls", 2)
        rate_counters.upsert(connection, TODAY, "paper", DESK, "order_actions", 1)
        rate_counters.upsert(connection, TODAY, "breeze", DESK, "calls", 7)
        rate_counters.upsert(connection, "2026-11-19", "paper", DESK, "calls", 4999)
    with engine.begin() as connection:
        rate_counters.upsert(connection, TODAY, "paper", DESK, "calls", 3)
    assert rate_counters.load(engine, TODAY, "paper", DESK) == {"calls": 3, "order_actions": 1}
    assert rate_counters.load(engine, TODAY, "breeze", DESK) == {"calls": 7}
    assert rate_counters.load(engine, "2026-11-19", "paper", DESK) == {"calls": 4999}
    assert rate_counters.load(engine, "2026-11-21", "paper", DESK) == {}


def test_each_desk_keeps_its_own_count_and_the_account_total_is_their_sum(engine: Engine) -> None:
    with engine.begin() as connection:
        rate_counters.upsert(connection, TODAY, "paper", DESK, "calls", 30)
        rate_counters.upsert(connection, TODAY, "paper", "BBBBBB", "calls", 12)
        rate_counters.upsert(connection, TODAY, "paper", "BBBBBB", "order_actions", 5)
        rate_counters.upsert(connection, TODAY, "breeze", "BBBBBB", "calls", 99)
    assert rate_counters.load(engine, TODAY, "paper", DESK) == {"calls": 30}
    assert rate_counters.load(engine, TODAY, "paper", "BBBBBB") == {"calls": 12, "order_actions": 5}
    assert rate_counters.account_totals(engine, TODAY, "paper") == {"calls": 42, "order_actions": 5}


def test_a_rolled_back_upsert_leaves_nothing(engine: Engine) -> None:
    with pytest.raises(RuntimeError), engine.begin() as connection:
        rate_counters.upsert(connection, TODAY, "paper", DESK, "calls", 10)
        raise RuntimeError("the rest of the batch failed")
    assert rate_counters.load(engine, TODAY, "paper", DESK) == {}


async def test_a_restart_within_the_day_resumes_the_day_cap(engine: Engine) -> None:
    # 10 calls a day: places may use 8, cancels and reads the last 2.
    limits = RateLimits(1000, 1000, 10)
    writer = AuditWriter(engine)
    writer.start()
    writes: list[asyncio.Future[Any]] = []

    def persist(day: str, kind: str, count: int) -> None:
        # As the engine wires it: one row write batched through the single writer.
        writes.append(writer.execute(lambda connection: rate_counters.upsert(connection, day, "paper", DESK, kind, count)))

    first = Governor(limits, wall_ns=lambda: WALL_NS, on_count=persist)
    for _ in range(6):
        await first.acquire(CallKind.PLACE)
    await first.acquire(CallKind.READ)
    await first.acquire(CallKind.CANCEL)
    await asyncio.gather(*writes)
    writer.close()
    assert rate_counters.load(engine, TODAY, "paper", DESK) == {"calls": 8, "order_actions": 7}

    # The desk restarts the same day: no more places, and two calls left for cancels and reads.
    second = Governor(limits, wall_ns=lambda: WALL_NS, initial_counts=rate_counters.load(engine, TODAY, "paper", DESK))
    with pytest.raises(Throttled, match="calls per day"):
        await second.acquire(CallKind.PLACE)
    await second.acquire(CallKind.CANCEL)
    await second.acquire(CallKind.READ)
    blocked = asyncio.ensure_future(second.acquire(CallKind.READ))
    await asyncio.sleep(0.05)
    assert not blocked.done() and second.queued == 1
    blocked.cancel()

    # A fresh day starts from nothing.
    tomorrow = Governor(limits, wall_ns=lambda: WALL_NS + 86_400 * 1_000_000_000,
                        initial_counts=rate_counters.load(engine, ist_day(WALL_NS + 86_400 * 1_000_000_000).isoformat(), "paper", DESK))
    for _ in range(8):
        await tomorrow.acquire(CallKind.PLACE)
