"""The engine and its calendar: versions stored and audited at start, and what the operator is told
about the calendar's cover and expiring contracts. The engine's clock is fixed: no test reads today."""

from __future__ import annotations

import asyncio
import datetime as dt
from pathlib import Path

from sqlalchemy import text

from app.brokers.paper import PaperBroker, PaperConfig, UniverseEntry
from app.domain.events import Alert
from app.domain.instruments import Exchange, Instrument, Segment
from app.domain.trading_state import TradingState
from app.engine.engine import Engine
from app.engine.risk.calendar import TradingCalendar
from app.engine.risk.calendar_data import CalendarLoad
from app.store import calendar_versions
from app.store.audit_writer import AuditWriter
from app.store.migrate import open_store
from tests.engine.conftest import cash
from tests.support.calendar import ist_ns, synthetic_calendar
from tests.support.limits import wide_limits
from tests.support.virtual_time import on_virtual_time

REL = cash("RELIANCE")


def future(expiry: dt.date) -> Instrument:
    return Instrument(
        key=f"NFO:RELIANCE:{expiry.isoformat()}:FUT", exchange=Exchange.NFO, symbol="RELIANCE", underlying="RELIANCE",
        segment=Segment.FUTURES, lot_size=500, tick_size=10, freeze_quantity=20_000, expiry=expiry,
    )


async def alerts_at_start(now_ns: int, calendar: TradingCalendar, instruments: list[Instrument]) -> list[Alert]:
    entries = [UniverseEntry(i, 100_000) for i in instruments]
    broker = PaperBroker(PaperConfig(tick_interval_ms=None, wall_clock_ns=lambda: now_ns), universe=entries)
    engine = Engine(broker, instruments, clock_ns=lambda: now_ns, limits=wide_limits(instruments), calendar=calendar)
    seen: list[Alert] = []
    engine.bus.subscribe(Alert, seen.append)
    await engine.start()
    await engine.stop()
    return seen


async def test_start_warns_a_month_ahead_of_an_uncovered_year_and_of_expiring_contracts() -> None:
    calendar = TradingCalendar(synthetic_calendar({2026: []}))
    today, later = future(dt.date(2026, 12, 2)), future(dt.date(2026, 12, 29))
    alerts = await alerts_at_start(ist_ns(2026, 12, 2, 10, 0), calendar, [REL, today, later])
    messages = [a.message for a in alerts]
    assert any("the 2027 trading holidays are not in the desk's calendar" in m and "before 2027-01-01" in m for m in messages)
    assert f"expiring today (2026-12-02): {today.key}" in messages
    assert not any(later.key in m for m in messages)


async def test_start_in_an_uncovered_year_says_new_risk_is_refused_and_lists_expired_contracts() -> None:
    calendar = TradingCalendar(synthetic_calendar({2026: []}))
    old = future(dt.date(2026, 12, 29))
    messages = [a.message for a in await alerts_at_start(ist_ns(2027, 1, 4, 10, 0), calendar, [REL, old])]
    assert any("the 2027 trading holidays are not in the desk's calendar, so new risk is refused" in m for m in messages)
    assert f"expired, orders are refused: {old.key}" in messages


async def test_inside_the_cover_start_says_nothing_about_the_calendar() -> None:
    calendar = TradingCalendar(synthetic_calendar({2026: [], 2027: []}))
    alerts = await alerts_at_start(ist_ns(2026, 12, 2, 10, 0), calendar, [REL])
    assert not [a for a in alerts if a.component in ("calendar", "expiry")]


async def test_the_calendar_in_force_is_stored_once_per_change_with_its_audit_record(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/desk.db"
    writer = AuditWriter(open_store(url))
    writer.start()
    try:
        engine = Engine(PaperBroker(PaperConfig(tick_interval_ms=None), universe=[UniverseEntry(REL, 100_000)]), [REL],
                        audit=writer, limits=wide_limits([REL]))
        first = synthetic_calendar({2026: []})
        v1 = await engine.record_calendar(CalendarLoad(first, None, []))
        same = await engine.record_calendar(CalendarLoad(first, None, []))
        changed = synthetic_calendar({2026: [], 2027: [dt.date(2027, 1, 26)]})
        v2 = await engine.record_calendar(CalendarLoad(changed, None, []))
        assert v1 is not None and v1.changed and v1.version == 1
        assert same is not None and not same.changed and same.version == 1
        assert v2 is not None and v2.changed and v2.version == 2 and v2.sha256 != v1.sha256
        assert [v.version for v in calendar_versions.history(writer.engine)] == [2, 1]
    finally:
        writer.close()
    with writer.engine.connect() as connection:
        rows = connection.execute(text("SELECT payload FROM audit_log WHERE event_type = 'calendar.changed' ORDER BY seq")).all()
    assert len(rows) == 2 and '"changed_years":["india/2027"]' in rows[1][0]


async def test_a_refused_override_raises_a_critical_alert() -> None:
    engine = Engine(PaperBroker(PaperConfig(tick_interval_ms=None), universe=[UniverseEntry(REL, 100_000)]), [REL],
                    limits=wide_limits([REL]))
    seen: list[Alert] = []
    engine.bus.subscribe(Alert, seen.append)
    await engine.record_calendar(CalendarLoad(synthetic_calendar({2026: []}), None, ["calendar.toml: format: must be 1, got 2"]))
    assert [a.message for a in seen] == [
        "calendar override refused, the shipped calendar is in force: calendar.toml: format: must be 1, got 2"
    ]


async def test_a_calendar_that_cannot_be_recorded_halts_the_desk(tmp_path: Path) -> None:
    writer = AuditWriter(open_store(f"sqlite:///{tmp_path}/desk.db"))
    # The version insert fails, as on a full disk; the audit record goes with it (one transaction).
    with writer.engine.begin() as connection:
        connection.exec_driver_sql(
            "CREATE TRIGGER test_refuse BEFORE INSERT ON calendar_versions BEGIN SELECT RAISE(ABORT, 'disk full'); END"
        )
    writer.start()
    try:
        engine = Engine(PaperBroker(PaperConfig(tick_interval_ms=None), universe=[UniverseEntry(REL, 100_000)]), [REL],
                        audit=writer, limits=wide_limits([REL]))
        assert await engine.record_calendar(CalendarLoad(synthetic_calendar({2026: []}), None, [])) is None
        assert engine.trading_state is TradingState.HALTED
        assert "could not record the trading calendar in force" in engine.halt_reason
        assert "disk full" in engine.halt_reason
    finally:
        writer.close()
    with writer.engine.connect() as connection:
        assert connection.execute(text("SELECT count(*) FROM audit_log WHERE event_type = 'calendar.changed'")).scalar() == 0


@on_virtual_time
async def test_a_desk_running_past_midnight_is_told_as_one_started_that_day() -> None:
    # 30 November, 23:00 IST: nothing to say yet; after midnight it is 1 December, and the next
    # year's holidays are missing; the contract expiring on 1 December is named that morning.
    loop = asyncio.get_running_loop()
    start_s, base_ns = loop.time(), ist_ns(2026, 11, 30, 23, 0)

    def clock() -> int:
        return base_ns + round((loop.time() - start_s) * 1e9)

    expiring = future(dt.date(2026, 12, 1))
    entries = [UniverseEntry(i, 100_000) for i in (REL, expiring)]
    broker = PaperBroker(PaperConfig(tick_interval_ms=None, clock=loop.time, wall_clock_ns=clock), universe=entries)
    engine = Engine(broker, [REL, expiring], clock_ns=clock, limits=wide_limits([REL, expiring]),
                    calendar=TradingCalendar(synthetic_calendar({2026: []})))
    seen: list[Alert] = []
    engine.bus.subscribe(Alert, seen.append)
    await engine.start()
    assert not [a for a in seen if a.component in ("calendar", "expiry")]
    await asyncio.sleep(3600 + 2)
    messages = [a.message for a in seen if a.component in ("calendar", "expiry")]
    assert any("the 2027 trading holidays are not in the desk's calendar" in m for m in messages)
    assert f"expiring today (2026-12-01): {expiring.key}" in messages
    await engine.stop()
