"""The checks ``main.py rearm`` makes with no desk running: today's realised P&L from stored fills,
and which desk start settles a sweep an earlier run left unfinished (a real engine on a SQLite store)."""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path

import pytest

from app.brokers.base import BrokerError, BrokerErrorCode
from app.brokers.paper import PaperBroker, PaperConfig, load_universe
from app.domain.audit import AuditEventType, AuditSource
from app.domain.fills import Fill
from app.domain.india_time import IST
from app.domain.orders import Side
from app.domain.trading_state import TradingState
from app.engine.engine import Engine
from app.engine.offline_rearm import RearmRefused, check_offline_rearm, today_realized
from app.store.audit_writer import AuditWriter
from app.store.desk_identity import UNFOLDERED_DESK_ID
from app.store.desk_state import DeskScope
from app.store.halt_flag import persist_halt
from app.store.migrate import open_store
from tests.support.book_faults import BookReadFails
from tests.support.limits import wide_limits

RELIANCE = next(e for e in load_universe() if e.instrument.key == "NSE:RELIANCE")
LIMITS_FILE = Path(__file__).resolve().parents[2] / "resources" / "limits.toml"


def ns(day: int, hour: int) -> int:
    return int(dt.datetime(2026, 11, day, hour, tzinfo=IST).timestamp()) * 1_000_000_000


def fill(n: int, side: Side, quantity: int, price: int, ts_ns: int) -> Fill:
    return Fill(f"F{n}", f"C{n}", "NSE:RELIANCE", side, quantity, price, ts_ns)


def test_only_todays_realised_pnl_counts_and_a_carried_position_keeps_its_cost() -> None:
    fills = [
        fill(1, Side.BUY, 10, 10_000, ns(27, 10)),
        fill(2, Side.SELL, 5, 11_000, ns(27, 11)),  # yesterday: +₹50 realised
        fill(3, Side.SELL, 5, 9_000, ns(30, 10)),   # today, against the carried cost of ₹100: -₹50
    ]
    assert today_realized(fills, ns(30, 15)) == -5_000


def test_no_fill_today_is_zero() -> None:
    fills = [fill(1, Side.BUY, 10, 10_000, ns(27, 10)), fill(2, Side.SELL, 10, 8_000, ns(27, 11))]
    assert today_realized(fills, ns(30, 15)) == 0
    assert today_realized([], ns(30, 15)) == 0


def test_fills_dated_after_today_count_as_today() -> None:
    # A desk on a session clock (simulate while the market is closed) dates fills at the next session.
    fills = [fill(1, Side.BUY, 10, 10_000, ns(30, 10)), fill(2, Side.SELL, 10, 9_500, ns(30, 14))]
    assert today_realized(fills, ns(29, 20)) == -5_000


async def test_only_a_desk_start_that_read_the_brokers_book_settles_an_unfinished_sweep(tmp_path: Path) -> None:
    writer = AuditWriter(open_store(f"sqlite:///{tmp_path / 'desk.db'}"))
    writer.start()

    async def desk_run(broker: PaperBroker) -> TradingState:
        # As `simulate` runs one: app.start first, then the engine's start reads the store and the book.
        await writer.append(AuditEventType.APP_START, {"command": "simulate"}, actor="system", source=AuditSource.SYSTEM)
        engine = Engine(broker, [RELIANCE.instrument], audit=writer, limits=wide_limits([RELIANCE.instrument]))
        await engine.start()
        state = engine.trading_state
        await engine.stop()
        # Durable in order: everything the run queued before it is committed too.
        await writer.append(AuditEventType.APP_STOP, {}, actor="system", source=AuditSource.SYSTEM)
        return state

    def check() -> None:
        # The engines below run without a data folder and are the store's first desk: records naming no desk are theirs.
        check_offline_rearm(writer.engine, DeskScope(UNFOLDERED_DESK_ID, legacy=True), TradingState.ACTIVE, now_ns=time.time_ns(),
                            limits_file=LIMITS_FILE)

    paper = PaperConfig(seed=7, tick_interval_ms=None)
    try:
        await writer.append(AuditEventType.APP_START, {"command": "simulate"}, actor="system", source=AuditSource.SYSTEM)
        persist_halt(writer, UNFOLDERED_DESK_ID, "runaway", "rita")
        await writer.append(AuditEventType.KILL_SWITCH_ENGAGED, {"reason": "runaway", "working": 3},
                            actor="rita", source=AuditSource.OPERATOR)
        with pytest.raises(RearmRefused, match="a desk run started a kill-switch sweep"):
            check()
        # A desk started (app.start is written) but could not read the broker's book: it knows no more.
        refused = BrokerError(BrokerErrorCode.REJECTED, "Invalid exchange code")
        assert await desk_run(BookReadFails(paper, [RELIANCE], refused)) is TradingState.HALTED
        with pytest.raises(RearmRefused, match="no desk start has read the broker's order book since"):
            check()
        # One that read it knew what was working from there on.
        assert await desk_run(PaperBroker(paper, [RELIANCE])) is TradingState.HALTED
        check()
    finally:
        writer.close()
        writer.engine.dispose()
