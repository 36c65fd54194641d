"""The desk watching the persisted HALTED flag: a real engine and store, and the flag written as `main.py panic` writes it."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import pytest
from sqlalchemy import Engine as SqlEngine

from app.brokers.paper import PaperBroker, PaperConfig, load_universe
from app.domain.actors import Actor, Permission
from app.domain.audit import AuditSource
from app.domain.events import Alert, AlertLevel
from app.domain.trading_state import TradingState
from app.engine.engine import Engine
from app.engine.halt_watch import (
    ALERT_AFTER_FAILURES,
    HaltWatch,
    StateRow,
    halted_after,
    newest_flag_id,
)
from app.store.audit_writer import AuditWriter
from app.store.halt_flag import persist_halt, persist_rearm
from app.store.migrate import open_store
from tests.support.limits import wide_limits

RELIANCE = next(e for e in load_universe() if e.instrument.key == "NSE:RELIANCE")
OPERATOR = Actor("ops", frozenset({Permission.REARM}))


@dataclass
class Watched:
    engine: Engine
    writer: AuditWriter
    watch: HaltWatch
    url: str
    alerts: list[Alert]

    def flag(self, reason: str, actor: str = "panic:alice", desk_id: str | None = None) -> None:
        """What `main.py panic` writes first, from its own writer (its own process, in real life)."""
        desk = self.engine.desk_id if desk_id is None else desk_id
        store = open_store(self.url)
        writer = AuditWriter(store, desk_id=desk)
        writer.start()
        try:
            persist_halt(writer, desk, reason, actor, timeout=10)
        finally:
            writer.close()
            store.dispose()

    async def until(self, condition: Callable[[], bool], what: str) -> None:
        deadline = time.monotonic() + 10
        while not condition():
            assert time.monotonic() < deadline, f"timed out waiting for {what}"
            await asyncio.sleep(0.01)

    async def engaged_on(self, reason: str) -> StateRow:
        await self.until(lambda: any(row.reason == reason for row in self.watch.engaged), f"the watch to act on {reason!r}")
        return next(row for row in self.watch.engaged if row.reason == reason)

    async def rearm(self) -> None:
        await self.until(lambda: not self.engine.kill_switch.sweeping, "the sweep to end")
        await self.engine.rearm(OPERATOR, "checked")


@pytest.fixture
async def watched(db_url: str) -> AsyncIterator[Watched]:
    writer = AuditWriter(open_store(db_url))
    writer.start()
    broker = PaperBroker(PaperConfig(seed=7, tick_interval_ms=None), universe=[RELIANCE])
    engine = Engine(broker, [RELIANCE.instrument], audit=writer, limits=wide_limits([RELIANCE.instrument]))
    alerts: list[Alert] = []
    engine.bus.subscribe(Alert, alerts.append, name="test.alerts")
    watch = HaltWatch(engine, writer, db_url, poll_s=0.01)
    await watch.start()
    await engine.start()
    yield Watched(engine, writer, watch, db_url, alerts)
    await engine.stop()
    writer.close()
    writer.engine.dispose()


async def test_a_flag_from_another_process_engages_the_kill_switch(watched: Watched) -> None:
    assert watched.engine.trading_state is TradingState.ACTIVE
    await asyncio.to_thread(watched.flag, "runaway algo")
    row = await watched.engaged_on("runaway algo")
    engine = watched.engine
    assert TradingState(engine.trading_state) is TradingState.HALTED
    assert engine.halt_reason == "kill switch: runaway algo" and engine.trading_state_actor == "panic:alice"
    report = engine.kill_switch.last
    assert report is not None and report.source is AuditSource.PANIC and report.actor == "panic:alice"
    await engine.kill_switch.wait()
    # The desk's own row for it is what `main.py panic` looks for when the channel is out.
    desk = engine.desk_id
    own = await asyncio.to_thread(halted_after, watched.writer.engine, desk, row.id, "panic:alice")
    assert own is not None and own.reason == "kill switch: runaway algo"
    assert await asyncio.to_thread(newest_flag_id, watched.writer.engine, desk, "runaway algo", "panic:alice") == row.id
    # Another desk's rows are not this desk's answer.
    assert await asyncio.to_thread(halted_after, watched.writer.engine, "OTHERD", row.id, "panic:alice") is None


async def test_the_desks_own_halts_and_rearms_are_not_taken_for_a_flag(watched: Watched) -> None:
    engine = watched.engine
    engine.halt("error storm")
    await watched.rearm()
    engine.engage_kill_switch("pressed in the window", "ops")
    await watched.rearm()
    engine.engage_kill_switch("over the channel", "panic:alice", AuditSource.PANIC)
    await watched.rearm()
    # Rows are read in order: once the watch acts on this flag it has passed all of the above.
    await asyncio.to_thread(watched.flag, "the real one")
    await watched.engaged_on("the real one")
    assert [row.reason for row in watched.watch.engaged] == ["the real one"]


async def test_a_rearm_after_a_flag_halt_holds(watched: Watched) -> None:
    await asyncio.to_thread(watched.flag, "first")
    await watched.engaged_on("first")
    await watched.rearm()
    assert watched.engine.trading_state is TradingState.ACTIVE
    await asyncio.to_thread(watched.flag, "second")
    await watched.engaged_on("second")
    assert [row.reason for row in watched.watch.engaged] == ["first", "second"]


async def test_a_flag_for_another_desk_is_not_this_desks(watched: Watched) -> None:
    # A colleague's desk halted on the same database (main.py panic --desk ID): this one trades on.
    await asyncio.to_thread(watched.flag, "for the colleague", desk_id="OTHERD")
    await asyncio.to_thread(watched.flag, "for this desk")
    await watched.engaged_on("for this desk")
    assert [row.reason for row in watched.watch.engaged] == ["for this desk"]


async def test_a_flag_whose_panic_the_channel_already_brought_is_not_engaged_twice(
    watched: Watched, caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="app.engine.halt_watch")
    # `main.py panic` over a working channel: the desk engaged, then reads the flag written first.
    watched.engine.engage_kill_switch("both ways", "panic:bob", AuditSource.PANIC)
    await asyncio.to_thread(watched.flag, "both ways", "panic:bob")
    await watched.until(lambda: any("already in force" in r.getMessage() for r in caplog.records), "the flag to be seen")
    assert watched.watch.engaged == []


async def test_a_rearm_row_from_outside_is_left_alone(watched: Watched, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="app.engine.halt_watch")
    watched.engine.halt("error storm")

    def rearm_from_outside() -> None:
        store = open_store(watched.url)
        writer = AuditWriter(store)
        writer.start()
        try:
            persist_rearm(writer, watched.engine.desk_id, TradingState.HALTED, TradingState.ACTIVE, "not through the desk",
                          "mallory", timeout=10)
        finally:
            writer.close()
            store.dispose()

    await asyncio.to_thread(rearm_from_outside)
    await watched.until(lambda: any("left alone" in r.getMessage() for r in caplog.records), "the row to be seen")
    assert watched.engine.trading_state is TradingState.HALTED


async def test_a_store_that_cannot_be_read_for_a_while_is_survived_and_alerted(
    watched: Watched, caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="app.engine.halt_watch")
    store: SqlEngine = watched.writer.engine

    def rename(old: str, new: str) -> None:
        with store.begin() as connection:
            connection.exec_driver_sql(f"ALTER TABLE {old} RENAME TO {new}")

    # A real read error: the table is not there for a while.
    await asyncio.to_thread(rename, "trading_state", "trading_state_away")
    await watched.until(lambda: any(a.component == "halt_watch" and a.level is AlertLevel.CRITICAL for a in watched.alerts),
                        f"the alert after {ALERT_AFTER_FAILURES} failed reads")
    await asyncio.to_thread(rename, "trading_state_away", "trading_state")
    await asyncio.to_thread(watched.flag, "after the outage")
    await watched.engaged_on("after the outage")
    failures = [r for r in caplog.records if "failed" in r.getMessage() and "retrying" in r.getMessage()]
    assert len(failures) == 1  # logged once, not once per read
    assert any(a.component == "halt_watch" and a.level is AlertLevel.INFO for a in watched.alerts)
    assert watched.engine.trading_state is TradingState.HALTED


async def test_the_watch_runs_under_the_engine_and_ends_with_it(watched: Watched) -> None:
    assert "halt_watch" in watched.engine.supervisor.running
    await watched.engine.stop()
    assert "halt_watch" not in watched.engine.supervisor.running
