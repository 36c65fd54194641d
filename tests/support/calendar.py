"""Calendars for tests: fixed IST instants, small synthetic calendars, and data folders that can
trade whatever the machine's clock says (so no test depends on today's date)."""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path

from app.desk import session_clock
from app.domain.india_time import IST, ist_day
from app.domain.instruments import Exchange
from app.engine.risk.calendar import TradingCalendar
from app.engine.risk.calendar_data import (
    OVERRIDE_NAME,
    Assumption,
    CalendarSet,
    ExchangeCalendar,
    YearData,
    load_effective,
    merge,
    render,
)

EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def ist_ns(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0) -> int:
    """Epoch nanoseconds of an IST wall-clock time, via an aware datetime (no float rounding)."""
    delta = dt.datetime(year, month, day, hour, minute, second, tzinfo=IST) - EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1_000


def synthetic_calendar(years: dict[int, list[dt.date] | None]) -> CalendarSet:
    """One calendar for every exchange, 09:15-15:30 on weekdays; a year mapped to None is assumed."""
    data = {
        year: YearData(year, frozenset(holidays)) if holidays is not None
        else YearData(year, assumed=Assumption("tester", dt.datetime(year - 1, 12, 31, 17, 0, tzinfo=IST), "test"))
        for year, holidays in years.items()
    }
    india = ExchangeCalendar("india", tuple(Exchange), dt.time(9, 15), dt.time(15, 30), frozenset(range(5)), data)
    return CalendarSet("test", "tests/support/calendar.py", {"india": india}, dict.fromkeys(Exchange, india))


def _assumed_now() -> dict[int, YearData]:
    """This year and the next (in India) as assumed weekday years, where the shipped calendar lacks them."""
    today = ist_day(time.time_ns())
    shipped = load_effective(None).calendar
    at = dt.datetime.now(IST).replace(microsecond=0)
    return {
        year: YearData(year, assumed=Assumption("test-suite", at, "tests run past the shipped calendar"))
        for year in shipped.uncovered_years(today)
    }


def _override(years: dict[int, YearData]) -> CalendarSet:
    shipped = load_effective(None).calendar
    calendars = {name: ExchangeCalendar(cal.name, cal.exchanges, cal.open, cal.close, cal.weekdays, years)
                 for name, cal in shipped.calendars.items()}
    return CalendarSet("test-suite", "tests/support/calendar.py", calendars)


def cover_today(home: Path) -> Path:
    """Make ``home`` able to trade now, whatever the clock says: when the shipped calendar lacks this
    year or the next (in India), write an override that assumes their weekdays, as an operator
    would with ``calendar accept-weekdays``."""
    missing = _assumed_now()
    if missing:
        home.mkdir(parents=True, exist_ok=True)
        (home / OVERRIDE_NAME).write_text(render(_override(missing)), encoding="utf-8")
    return home


def calendar_covering_now() -> TradingCalendar:
    """The shipped calendar, with this year and the next assumed where it lacks them (see ``cover_today``)."""
    missing = _assumed_now()
    return TradingCalendar(merge(load_effective(None).calendar, _override(missing)) if missing else None)


def desk_session_day() -> dt.date:
    """The day a desk started now trades on: today in a session, else the next session's day (as
    ``simulate``'s session clock picks it), so contracts rolled for it have not expired."""
    return ist_day(session_clock(calendar_covering_now(), time.time_ns(), 600)())


# A session day whose paper contracts are the December 2026 ones, for tests that name them by key.
PAPER_SESSION_DAY = dt.date(2026, 12, 1)
