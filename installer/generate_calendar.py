"""Generate ``resources/calendar.toml``, the desk's trading calendar, from exchange-calendars.

Run once per data release, not by the desk: ``pip install -e '.[calendar]'`` then
``python installer/generate_calendar.py [--check]``. The desk itself reads only the TOML file and
needs neither exchange-calendars nor pandas.

exchange-calendars has no NSE calendar; its XBOM (BSE) calendar carries the SEBI-harmonised
trading holidays that NSE, BSE and their F&O segments share, with regular hours 09:15-15:30 IST.
Every weekday without a session becomes a holiday, every session on another day or with other
hours a special session (the budget Saturdays). The library has no muhurat sessions; the ones
below are added by hand from the exchanges' circulars and are the only data not from the library.

Before writing, the script rebuilds the desk's calendar from the generated text and checks that it
opens and closes exactly where the library does on every session day, and is closed on every other
day: the file is written only if the two agree.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from pathlib import Path

import exchange_calendars  # type: ignore[import-untyped]  # ships no type information

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from app.domain.india_time import IST
from app.domain.instruments import Exchange
from app.engine.risk.calendar import TradingCalendar
from app.engine.risk.calendar_data import (
    SHIPPED_CALENDAR_PATH,
    CalendarSet,
    ExchangeCalendar,
    SpecialSession,
    YearData,
    parse_calendar_text,
    render,
)

FIRST_YEAR = 2016
REGULAR_OPEN = dt.time(9, 15)
REGULAR_CLOSE = dt.time(15, 30)
# Diwali muhurat trading (one hour in the evening or afternoon of Laxmi Pujan), per NSE's circulars.
MUHURAT = (
    SpecialSession(dt.date(2024, 11, 1), dt.time(18, 0), dt.time(19, 0), "Muhurat trading"),
    SpecialSession(dt.date(2025, 10, 21), dt.time(13, 45), dt.time(14, 45), "Muhurat trading"),
)


def _library_sessions() -> dict[dt.date, tuple[dt.datetime, dt.datetime]]:
    calendar = exchange_calendars.get_calendar("XBOM", start=f"{FIRST_YEAR}-01-01")
    schedule = calendar.schedule
    return {
        session.date(): (row["open"].to_pydatetime().astimezone(IST), row["close"].to_pydatetime().astimezone(IST))
        for session, row in schedule.iterrows()
    }


def build(label: str) -> CalendarSet:
    """The calendar set exchange-calendars implies, with the hand-added muhurat sessions."""
    sessions = _library_sessions()
    last_year = max(sessions).year
    weekdays = frozenset(range(5))
    years: dict[int, YearData] = {}
    for year in range(FIRST_YEAR, last_year + 1):
        holidays: set[dt.date] = set()
        specials = [s for s in MUHURAT if s.day.year == year]
        day = dt.date(year, 1, 1)
        while day.year == year:
            hours = sessions.get(day)
            if hours is None:
                if day.weekday() in weekdays and not any(s.day == day for s in specials):
                    holidays.add(day)
            elif day.weekday() not in weekdays or (hours[0].time(), hours[1].time()) != (REGULAR_OPEN, REGULAR_CLOSE):
                name = "Union Budget" if day.month == 2 and day.day == 1 else "Special session"
                specials.append(SpecialSession(day, hours[0].time(), hours[1].time(), name))
            day += dt.timedelta(days=1)
        years[year] = YearData(year, frozenset(holidays), tuple(sorted(specials, key=lambda s: s.day)))
    india = ExchangeCalendar(
        "india", tuple(Exchange), REGULAR_OPEN, REGULAR_CLOSE, weekdays, years,
    )
    version = exchange_calendars.__version__
    return CalendarSet(
        label, f"exchange-calendars {version} (XBOM), muhurat sessions from NSE circulars",
        {"india": india}, dict.fromkeys(Exchange, india),
    )


def check_against_library(text: str) -> list[str]:
    """Every day from the first year to the library's last session: the desk's answer equals the library's."""
    calendar = TradingCalendar(parse_calendar_text(text, "generated"))
    sessions = _library_sessions()
    muhurat = {s.day for s in MUHURAT}
    problems: list[str] = []
    day, last = dt.date(FIRST_YEAR, 1, 1), max(sessions)
    while day <= last:
        hours = sessions.get(day)
        noon = int(dt.datetime.combine(day, dt.time(12, 0), IST).timestamp() * 1e9)
        if day in muhurat:
            pass
        elif hours is None:
            if calendar.is_open(Exchange.NSE, noon):
                problems.append(f"{day}: the library has no session, the desk opens")
        else:
            open_ns, close_ns = (int(t.timestamp() * 1e9) for t in hours)
            if not (calendar.is_open(Exchange.NSE, open_ns) and calendar.is_open(Exchange.NSE, close_ns - 1)
                    and not calendar.is_open(Exchange.NSE, open_ns - 1) and not calendar.is_open(Exchange.NSE, close_ns)):
                problems.append(f"{day}: the desk's hours differ from the library's {hours[0]:%H:%M}-{hours[1]:%H:%M}")
        day += dt.timedelta(days=1)
    return problems


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--label", default=f"{dt.date.today():%Y.%m}", help="the data's version label")
    parser.add_argument("--output", type=Path, default=SHIPPED_CALENDAR_PATH)
    parser.add_argument("--check", action="store_true", help="only compare the existing file with the library")
    args = parser.parse_args()
    if args.check:
        problems = check_against_library(args.output.read_text(encoding="utf-8"))
    else:
        text = render(build(args.label), header=[
            "Bulwark's trading calendar: sessions, holidays and special sessions per exchange (IST).",
            "Generated by installer/generate_calendar.py; see app/engine/risk/calendar_data.py for the format.",
            "Do not edit by hand: put corrections or a newly published year in calendar.toml in the data folder",
            "(main.py calendar import FILE), which overrides this file year by year.",
        ])
        problems = check_against_library(text)
        if not problems:
            args.output.write_text(text, encoding="utf-8")
            print(f"wrote {args.output}")
    for problem in problems:
        print(problem, file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
