"""Trading hours from the desk's own calendar data: the shipped file against exchange-calendars,
sessions, holidays, special sessions, years not covered, assumed years. No test reads today's date."""

from __future__ import annotations

import datetime as dt
import sys
from types import FrameType

import exchange_calendars  # type: ignore[import-untyped]  # ships no type information
import pandas as pd  # type: ignore[import-untyped]  # no pandas-stubs in the venv
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from app.domain.india_time import IST
from app.domain.instruments import Exchange
from app.engine.risk import calendar as calendar_module
from app.engine.risk.calendar import SessionStatus, TradingCalendar
from app.engine.risk.calendar_data import load_calendar_file, merge, parse_calendar_text
from tests.support.calendar import ist_ns, synthetic_calendar

# The data file's own muhurat sessions, which exchange-calendars does not know.
MUHURAT = {dt.date(2024, 11, 1), dt.date(2025, 10, 21)}


@pytest.fixture(scope="module")
def calendar() -> TradingCalendar:
    return TradingCalendar()


@pytest.fixture(scope="module")
def library_sessions() -> set[dt.date]:
    library = exchange_calendars.get_calendar("XBOM", start="2026-01-01")
    return {ts.date() for ts in library.sessions}


def test_a_normal_monday_is_open_until_the_close(calendar: TradingCalendar) -> None:
    assert calendar.status(Exchange.NSE, ist_ns(2026, 11, 23, 10, 0)) == SessionStatus(True, "open until 15:30 IST")


def test_the_open_is_inclusive(calendar: TradingCalendar) -> None:
    assert calendar.status(Exchange.NSE, ist_ns(2026, 11, 23, 9, 14, 59)) == SessionStatus(
        False, "before the open at 09:15 IST"
    )
    assert calendar.is_open(Exchange.NSE, ist_ns(2026, 11, 23, 9, 15, 0))


def test_the_close_is_exclusive(calendar: TradingCalendar) -> None:
    assert calendar.is_open(Exchange.NSE, ist_ns(2026, 11, 23, 15, 29, 59))
    assert calendar.status(Exchange.NSE, ist_ns(2026, 11, 23, 15, 30, 0)) == SessionStatus(
        False, "after the close at 15:30 IST"
    )


def test_the_day_boundary_is_indian_midnight(calendar: TradingCalendar) -> None:
    # 00:30 IST Monday is still Sunday in UTC; the Indian day decides.
    assert calendar.status(Exchange.NSE, ist_ns(2026, 11, 23, 0, 30)) == SessionStatus(False, "before the open at 09:15 IST")


@pytest.mark.parametrize(("day", "name"), [(21, "Saturday"), (22, "Sunday")])
def test_weekends_have_no_session(calendar: TradingCalendar, day: int, name: str) -> None:
    assert calendar.status(Exchange.NSE, ist_ns(2026, 11, day, 11, 0)) == SessionStatus(False, f"{name}: no session")


def test_a_budget_saturday_is_a_special_session(calendar: TradingCalendar) -> None:
    # Budget day 2025-02-01 was a Saturday with a full session.
    assert exchange_calendars.get_calendar("XBOM").is_session("2025-02-01")
    assert calendar.status(Exchange.NSE, ist_ns(2025, 2, 1, 11, 0)) == SessionStatus(True, "open until 15:30 IST (Union Budget)")


def test_muhurat_trading_opens_a_holiday_for_an_hour(calendar: TradingCalendar) -> None:
    # 2025-10-21 (Laxmi Pujan) is a holiday with muhurat trading 13:45-14:45 IST.
    assert not calendar.is_open(Exchange.NSE, ist_ns(2025, 10, 21, 11, 0))
    assert calendar.status(Exchange.NFO, ist_ns(2025, 10, 21, 13, 45)) == SessionStatus(True, "open until 14:45 IST (Muhurat trading)")
    assert not calendar.is_open(Exchange.NSE, ist_ns(2025, 10, 21, 14, 45))


@pytest.mark.parametrize("holiday", [dt.date(2026, 1, 26), dt.date(2026, 11, 24)])
def test_trading_holidays_agree_with_the_library(
    calendar: TradingCalendar, library_sessions: set[dt.date], holiday: dt.date
) -> None:
    assert holiday.weekday() < 5 and holiday not in library_sessions
    status = calendar.status(Exchange.NSE, ist_ns(holiday.year, holiday.month, holiday.day, 11, 0))
    assert status == SessionStatus(False, f"{holiday.isoformat()} is a trading holiday (no session)")


def test_a_year_the_file_does_not_cover_is_closed_and_says_what_to_do() -> None:
    calendar = TradingCalendar(synthetic_calendar({2026: []}))
    assert calendar.last_covered_day == dt.date(2026, 12, 31)
    status = calendar.status(Exchange.NSE, ist_ns(2027, 1, 4, 10, 0))
    assert not status.open and not status.covered
    assert "2027 trading holidays are not in the desk's calendar" in status.reason
    assert "calendar accept-weekdays 2027" in status.reason
    assert calendar.weekday_hours_open(Exchange.NSE, ist_ns(2027, 1, 4, 10, 0))
    assert not calendar.weekday_hours_open(Exchange.NSE, ist_ns(2027, 1, 2, 10, 0))  # a Saturday
    assert not calendar.weekday_hours_open(Exchange.NSE, ist_ns(2027, 1, 4, 15, 30))


def test_before_the_first_covered_year_is_not_covered(calendar: TradingCalendar) -> None:
    status = calendar.status(Exchange.NSE, ist_ns(2015, 6, 1, 10, 0))
    assert not status.open and not status.covered


@pytest.mark.parametrize("when", [(2026, 11, 23, 10, 0), (2026, 11, 23, 9, 0), (2026, 11, 21, 11, 0), (2027, 1, 4, 10, 0)])
def test_every_exchange_gives_the_same_answer(calendar: TradingCalendar, when: tuple[int, ...]) -> None:
    assert len({calendar.status(exchange, ist_ns(*when)) for exchange in Exchange}) == 1


def test_next_open_skips_weekends_and_holidays(calendar: TradingCalendar) -> None:
    assert calendar.next_open_ns(Exchange.NFO, ist_ns(2026, 11, 21, 12, 0)) == ist_ns(2026, 11, 23, 9, 15)
    # From inside Monday's session, the next open skips Tuesday's holiday to Wednesday.
    assert calendar.next_open_ns(Exchange.NSE, ist_ns(2026, 11, 23, 10, 0)) == ist_ns(2026, 11, 25, 9, 15)
    open_ns = ist_ns(2026, 11, 23, 9, 15)
    assert calendar.next_open_ns(Exchange.BSE, open_ns) == open_ns


def test_next_open_past_the_cover_is_none() -> None:
    calendar = TradingCalendar(synthetic_calendar({2026: []}))
    assert calendar.next_open_ns(Exchange.NSE, ist_ns(2026, 12, 31, 10, 0)) is None
    assert calendar.next_open_ns(Exchange.NSE, ist_ns(2026, 12, 31, 9, 0)) == ist_ns(2026, 12, 31, 9, 15)


def test_session_days_for_contract_rolls(calendar: TradingCalendar) -> None:
    assert calendar.is_session_day(Exchange.NFO, dt.date(2026, 11, 23))
    assert not calendar.is_session_day(Exchange.NFO, dt.date(2026, 11, 24))  # a holiday
    assert not calendar.is_session_day(Exchange.NFO, dt.date(2026, 11, 21))  # a Saturday
    # Past the cover the best guess is the weekday.
    assert calendar.is_session_day(Exchange.NFO, dt.date(2027, 1, 26))
    assert not calendar.is_session_day(Exchange.NFO, dt.date(2027, 1, 30))


def test_an_assumed_year_trades_weekdays_at_regular_hours() -> None:
    cal = TradingCalendar(synthetic_calendar({2027: None}))
    status = cal.status(Exchange.NSE, ist_ns(2027, 1, 26, 10, 0))  # Republic Day, unknown to an assumed year
    assert status.open and status.covered and "weekdays assumed" in status.reason
    assert not cal.is_open(Exchange.NSE, ist_ns(2027, 1, 2, 10, 0))
    assert cal.next_open_ns(Exchange.NSE, ist_ns(2026, 12, 31, 16, 0)) == ist_ns(2027, 1, 1, 9, 15)


def test_an_override_year_replaces_the_shipped_year() -> None:
    shipped = load_calendar_file(calendar_module.SHIPPED_CALENDAR_PATH)
    override = parse_calendar_text(
        'format = 1\nlabel = "fix"\nsource = "test"\n[calendars.india]\nexchanges = ["NSE", "BSE", "NFO", "BFO"]\n'
        'open = "09:15"\nclose = "15:30"\nweekdays = ["Mon", "Tue", "Wed", "Thu", "Fri"]\n'
        "[calendars.india.years.2026]\nholidays = [2026-11-23]\n",
        "override", partial=True,
    )
    cal = TradingCalendar(merge(shipped, override))
    assert not cal.is_open(Exchange.NSE, ist_ns(2026, 11, 23, 10, 0))  # now a holiday
    assert cal.is_open(Exchange.NSE, ist_ns(2026, 11, 24, 10, 0))  # no longer one
    assert not cal.is_open(Exchange.NSE, ist_ns(2025, 12, 25, 10, 0))  # other years stay as shipped


def test_cover_notice_warns_thirty_days_ahead_and_after_the_year_end() -> None:
    shipped = synthetic_calendar({2026: []})
    assert shipped.cover_notice(dt.date(2026, 11, 30)) is None
    warning = shipped.cover_notice(dt.date(2026, 12, 1))
    assert warning is not None and "2027 trading holidays are not in the desk's calendar" in warning and "before 2027-01-01" in warning
    refused = shipped.cover_notice(dt.date(2027, 1, 4))
    assert refused is not None and "new risk is refused" in refused
    assumed = synthetic_calendar({2026: [], 2027: None}).cover_notice(dt.date(2027, 3, 1))
    assert assumed is not None and "weekdays assumed" in assumed and "accepted by tester" in assumed


def test_the_shipped_calendar_is_loaded_once() -> None:
    assert TradingCalendar().calendars is TradingCalendar().calendars


def test_status_never_calls_into_pandas_or_the_library(calendar: TradingCalendar) -> None:
    called: list[str] = []

    def record(frame: FrameType, event: str, arg: object) -> None:
        if event == "call":
            called.append(frame.f_code.co_filename)

    probes = [ist_ns(2026, 11, 23, 10), ist_ns(2026, 11, 24, 10), ist_ns(2026, 11, 21), ist_ns(2027, 1, 4), 0]
    sys.setprofile(record)
    try:
        for now_ns in probes:
            calendar.status(Exchange.NSE, now_ns)
    finally:
        sys.setprofile(None)
    assert called, "the profiler saw no calls, so it proves nothing"
    assert not [path for path in called if "pandas" in path or "exchange_calendars" in path]


_LIBRARY = exchange_calendars.get_calendar("XBOM", start="2016-01-01")
_FIRST_MINUTE_NS = _LIBRARY.first_minute.value
_LAST_MINUTE_NS = _LIBRARY.last_minute.value
_NS_PER_MINUTE = 60_000_000_000
_COVERED_MINUTES = (_LAST_MINUTE_NS - _FIRST_MINUTE_NS) // _NS_PER_MINUTE
# The first minute is a 09:15 open, so whole days from it land on opens and +375 minutes on closes.
_OPEN_TO_CLOSE_MINUTES = 375


def _muhurat_day(now_ns: int) -> bool:
    return dt.datetime.fromtimestamp(now_ns / 1e9, IST).date() in MUHURAT


@settings(max_examples=300, deadline=None)
@given(
    minute=st.one_of(
        st.integers(0, _COVERED_MINUTES),
        # Bias towards the open and the close, where an off-by-one would hide.
        st.tuples(
            st.integers(0, _COVERED_MINUTES // 1_440),
            st.sampled_from([0, _OPEN_TO_CLOSE_MINUTES]),
            st.integers(-2, 2),
        ).map(lambda t: t[0] * 1_440 + t[1] + t[2]),
    )
)
def test_status_agrees_with_the_library_on_every_minute(calendar: TradingCalendar, minute: int) -> None:
    assume(0 <= minute <= _COVERED_MINUTES)
    now_ns = _FIRST_MINUTE_NS + minute * _NS_PER_MINUTE
    assume(not _muhurat_day(now_ns))
    expected = _LIBRARY.is_open_on_minute(pd.Timestamp(now_ns, tz="UTC"))
    assert calendar.status(Exchange.NSE, now_ns).open is expected


@settings(max_examples=200, deadline=None)
@given(offset_ns=st.integers(0, _LAST_MINUTE_NS - _FIRST_MINUTE_NS))
def test_status_agrees_with_the_library_at_any_nanosecond(calendar: TradingCalendar, offset_ns: int) -> None:
    now_ns = _FIRST_MINUTE_NS + offset_ns
    assume(not _muhurat_day(now_ns))
    expected = _LIBRARY.is_open_at_time(pd.Timestamp(now_ns, tz="UTC"), side="left")
    assert calendar.status(Exchange.NSE, now_ns).open is expected
