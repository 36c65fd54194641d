"""The firm halt reaching a running desk through its halt watch: a real engine and store, the firm flag
written as `main.py panic --firm` writes it, and the desk's confirmation and heartbeat read back."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import pytest
from sqlalchemy import Engine as SqlEngine

from app.brokers.paper import PaperBroker, PaperConfig, load_universe
from app.domain.actors import Actor, Permission
from app.domain.audit import AuditSource
from app.domain.trading_state import TradingState
from app.engine.engine import Engine
from app.engine.halt_watch import FIRM_HOLD, HaltWatch
from app.store.audit_writer import AuditWriter
from app.store.desk_identity import (
    DeskIdentity,
    mark_stopped,
    register,
    registered_desks,
)
from app.store.export import rows
from app.store.firm_flag import (
    FirmAck,
    FirmState,
    acks,
    persist_firm_halt,
    persist_firm_rearm,
)
from app.store.migrate import open_store
from tests.support.limits import wide_limits

RELIANCE = next(e for e in load_universe() if e.instrument.key == "NSE:RELIANCE")
OPERATOR = Actor("ops", frozenset({Permission.REARM}))
DESK = DeskIdentity("AAAAAA", "alpha")


@dataclass
class Desk:
    engine: Engine
    writer: AuditWriter
    watch: HaltWatch

    @property
    def store(self) -> SqlEngine:
        return self.writer.engine


def from_outside(url: str, write: Callable[[AuditWriter], FirmState]) -> FirmState:
    """A firm command's own writer (another process, in real life)."""
    store = open_store(url)
    writer = AuditWriter(store)
    writer.start()
    try:
        return write(writer)
    finally:
        writer.close()
        store.dispose()


def firm_halt(url: str, reason: str) -> FirmState:
    return from_outside(url, lambda writer: persist_firm_halt(writer, reason, "risk:carol", timeout=10))


async def until(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + 10
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.01)


async def ack_of(desk: Desk, firm_id: int, *, swept: bool) -> FirmAck:
    found: dict[str, FirmAck] = {}

    def confirmed() -> bool:
        found.update(acks(desk.store, firm_id))
        ack = found.get(DESK.desk_id)
        return ack is not None and (ack.swept_ns is not None or not swept)

    await until(confirmed, f"the desk's confirmation of firm halt {firm_id}")
    return found[DESK.desk_id]


async def started_desk(url: str) -> Desk:
    writer = AuditWriter(open_store(url), desk_id=DESK.desk_id)
    writer.start()
    await asyncio.to_thread(register, writer.engine, DESK)
    broker = PaperBroker(PaperConfig(seed=7, tick_interval_ms=None), universe=[RELIANCE])
    engine = Engine(broker, [RELIANCE.instrument], audit=writer, limits=wide_limits([RELIANCE.instrument]),
                    desk_id=DESK.desk_id)
    watch = HaltWatch(engine, writer, url, poll_s=0.01, heartbeat_s=0.02)
    await watch.start()
    await engine.start()
    return Desk(engine, writer, watch)


@pytest.fixture
async def desk(db_url: str) -> AsyncIterator[Desk]:
    running = await started_desk(db_url)
    yield running
    await running.engine.stop()
    running.writer.close()
    running.store.dispose()


async def test_a_firm_halt_halts_the_desk_confirms_it_and_holds_the_rearm_until_the_firm_is_rearmed(
    desk: Desk, db_url: str,
) -> None:
    engine = desk.engine
    halt = await asyncio.to_thread(firm_halt, db_url, "exchange outage")
    await until(lambda: engine.trading_state is TradingState.HALTED, "the desk to halt")
    assert engine.halt_reason == f"kill switch: firm halt {halt.id}: exchange outage"
    assert engine.trading_state_actor == "risk:carol"
    report = engine.kill_switch.last
    assert report is not None and report.source is AuditSource.PANIC
    ack = await ack_of(desk, halt.id, swept=True)
    assert ack.swept_ns is not None and ack.swept_ns >= ack.halted_ns
    assert ack.still_working == 0
    confirmations = [r for r in rows(desk.store) if r["event_type"] == "firm.ack"]
    assert len(confirmations) == 2
    with pytest.raises(ValueError, match=f"firm halt {halt.id}"):
        await engine.rearm(OPERATOR, "my desk is fine")
    assert engine.trading_state is TradingState.HALTED
    await asyncio.to_thread(from_outside, db_url, lambda w: persist_firm_rearm(w, halt, "exchange back", "risk:carol", timeout=10))
    await until(lambda: FIRM_HOLD not in engine.rearm_holds, "the firm's hold to be lifted")
    # The firm's re-arm leaves each desk halted until it is re-armed on its own.
    assert engine.trading_state is TradingState.HALTED
    await engine.rearm(OPERATOR, "my desk is fine")
    assert engine.trading_state is TradingState.ACTIVE
    assert [firm.id for firm in desk.watch.firm_engaged] == [halt.id]


async def test_a_desk_starting_while_the_firm_is_halted_starts_halted_and_confirms(db_url: str) -> None:
    halt = await asyncio.to_thread(firm_halt, db_url, "before the start")
    desk = await started_desk(db_url)
    try:
        assert desk.engine.trading_state is TradingState.HALTED
        assert desk.engine.halt_reason == f"kill switch: firm halt {halt.id}: before the start"
        assert FIRM_HOLD in desk.engine.rearm_holds
        await ack_of(desk, halt.id, swept=True)
    finally:
        await desk.engine.stop()
        desk.writer.close()
        desk.store.dispose()


async def test_the_watch_beats_while_the_desk_runs_and_a_clean_stop_stays_stopped(desk: Desk) -> None:
    def seen() -> int | None:
        (row,) = registered_desks(desk.store)
        return row.seen_ns

    first = await asyncio.to_thread(seen)
    assert first is not None
    beats: list[int | None] = []

    def beaten() -> bool:
        beats.append(seen())
        return beats[-1] is not None and beats[-1] > first  # type: ignore[operator]

    await until(beaten, "a heartbeat")
    await desk.engine.stop()
    await desk.writer.execute(lambda connection: mark_stopped(connection, DESK.desk_id))
    # Longer than several beats: one in flight as the watch stopped must not bring the desk back.
    await asyncio.sleep(0.1)
    assert await asyncio.to_thread(seen) is None
