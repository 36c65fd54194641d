"""Desks sharing a broker account: each claims a slot at start, runs its governor on its share, gives the slot
back at its stop, and a desk finding no free slot refuses to start naming who holds them (SQLite and PostgreSQL)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import update

from app.brokers.account import paper_account
from app.brokers.base import RateLimits
from app.brokers.paper import PaperConfig
from app.desk import Desk, DeskError, DeskOptions
from app.domain.actors import Actor, Permission
from app.domain.india_time import ist_day
from app.domain.trading_state import TradingState
from app.engine.risk.calendar_data import load_effective
from app.store import account_leases, rate_counters
from app.store.account_leases import holders
from app.store.db import make_engine
from app.store.export import rows
from app.store.migrate import open_store
from app.store.models import AccountLeaseRow
from tests.support.calendar import cover_today

POOL = paper_account("pool")


def options(home: Path, url: str, desks: int = 2, account: str | None = "pool") -> DeskOptions:
    home = cover_today(home)
    return DeskOptions(
        command="simulate", database_url=url, home=home, instruments=3, desks_per_account=desks,
        paper=PaperConfig(tick_interval_ms=None, account=account), calendar=load_effective(home),
    )


async def poll_until(condition: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.02)


async def test_a_desk_holds_its_slot_while_it_runs_and_trades_on_its_share(db_url: str, tmp_path: Path) -> None:
    store = open_store(db_url)
    desk = Desk(options(tmp_path / "a", db_url))
    day = ist_day(desk.clock_ns()).isoformat()
    with store.begin() as connection:
        # A desk that traded through the pool earlier today and stopped: its calls still count today.
        rate_counters.upsert(connection, day, POOL, "GONEGN", "calls", 700)
    try:
        async with desk:
            engine = desk.running_engine
            assert engine.account_share.account == POOL
            schedule = engine.governor.schedule
            assert schedule.limits == RateLimits(5, 50, 2500)
            assert [(h.desk_id, h.slot) for h in holders(store, POOL)] == [(desk.identity.desk_id, 0)]
            # The start's own reads are counted on top of the 700 charged.
            assert schedule.day_calls > 700
            spent = schedule.day_calls - 700
        # Released: cooling until the desk's last calls leave the broker's minute window.
        [cooling] = holders(store, POOL)
        assert cooling.expires_ns - time.time_ns() <= account_leases.RELEASE_COOLDOWN_NS
        # The store holds what this desk spent itself; the absent desk's row is untouched.
        own = rate_counters.load(store, day, POOL, desk.identity.desk_id)
        assert own["calls"] >= spent
        assert own["calls"] < 700
        assert rate_counters.load(store, day, POOL, "GONEGN") == {"calls": 700}
    finally:
        store.dispose()


async def test_a_desk_whose_lease_is_taken_halts(db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(account_leases, "RENEW_INTERVAL_S", 0.05)
    store = make_engine(db_url)
    table: Any = AccountLeaseRow.__table__
    try:
        async with Desk(options(tmp_path / "a", db_url, account=None)) as desk:
            engine = desk.running_engine
            assert engine.trading_state is TradingState.ACTIVE
            with store.begin() as connection:
                connection.execute(update(table).values(desk_id="OTHERS"))
            await poll_until(lambda: engine.trading_state is TradingState.HALTED, "the halt")
            assert "rate limits is not assured" in engine.halt_reason
            with pytest.raises(ValueError, match="restart the desk to claim one"):
                await engine.rearm(Actor("trader", frozenset({Permission.REARM})), "try again")
            assert engine.trading_state is TradingState.HALTED
    finally:
        store.dispose()


# One desk per SQLite store: only PostgreSQL has desks sharing an account.
@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
async def test_desks_share_the_account_and_one_too_many_is_refused(db_url: str, tmp_path: Path) -> None:
    store = make_engine(db_url)
    try:
        async with Desk(options(tmp_path / "a", db_url)) as first, Desk(options(tmp_path / "b", db_url, desks=3)) as second:
            ids = (first.identity.desk_id, second.identity.desk_id)
            assert [(h.desk_id, h.slot) for h in holders(store, POOL)] == [(ids[0], 0), (ids[1], 1)]
            # The database's 2 slots win over the second desk's setting of 3.
            assert second.running_engine.governor.schedule.limits == RateLimits(5, 50, 2500)
            with pytest.raises(DeskError) as refused:
                async with Desk(options(tmp_path / "c", db_url)):
                    pass
            message = str(refused.value)
            assert "\n" not in message and ids[0] in message and ids[1] in message and "firm.desks_per_account" in message
            # A desk on its own paper account is not held back by the pool.
            async with Desk(options(tmp_path / "d", db_url, desks=1, account=None)) as alone:
                assert alone.running_engine.governor.schedule.limits == RateLimits(10, 100, 5000)
        warnings = [r for r in rows(store) if r["event_type"] == "alert.raised" and '"budget"' in str(r["payload"])]
        assert len(warnings) == 1 and "firm.desks_per_account is 3" in str(warnings[0]["payload"])
        assert [h.desk_id for h in holders(store, POOL)] == list(ids)
    finally:
        store.dispose()


@pytest.mark.parametrize("desks", [0, 11])
def test_a_number_of_desks_out_of_bounds_is_refused_naming_the_setting(tmp_path: Path, desks: int) -> None:
    with pytest.raises(DeskError, match=rf"firm.desks_per_account must be a whole number from 1 to 10, got {desks}"):
        options(tmp_path / "a", "sqlite://", desks=desks)
