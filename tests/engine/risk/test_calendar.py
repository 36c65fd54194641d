"""Trading hours from the real exchange calendar: sessions, holidays, weekends, the horizon, speed."""

from __future__ import annotations

import datetime as dt
import statistics
import sys
import time
from types import FrameType

import exchange_calendars  # type: ignore[import-untyped]  # ships no type information
import pandas as pd  # type: ignore[import-untyped]  # no pandas-stubs in the venv
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from app.domain.india_time import IST
from app.domain.instruments import Exchange
from app.engine.risk.calendar import SessionStatus, TradingCalendar

EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def ist_ns(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0) -> int:
    """Epoch nanoseconds of an IST wall-clock time, via an aware datetime (no float rounding)."""
    delta = dt.datetime(year, month, day, hour, minute, second, tzinfo=IST) - EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1_000


@pytest.fixture(scope="module")
def calendar() -> TradingCalendar:
    return TradingCalendar()


@pytest.fixture(scope="module")
def library_sessions() -> set[dt.date]:
    library = exchange_calendars.get_calendar("XBOM", start="2026-01-01")
    return {ts.date() for ts in library.sessions}


def test_a_normal_monday_is_open_until_the_close(calendar: TradingCalendar) -> None:
    assert calendar.status(Exchange.NSE, ist_ns(2026, 11, 23, 10, 0)) == SessionStatus(True, "open until 15:30 IST")
    assert calendar.is_open(Exchange.NSE, ist_ns(2026, 11, 23, 10, 0))


def test_the_open_is_inclusive(calendar: TradingCalendar) -> None:
    assert calendar.status(Exchange.NSE, ist_ns(2026, 11, 23, 9, 14, 59)) == SessionStatus(
        False, "before the open at 09:15 IST"
    )
    assert calendar.is_open(Exchange.NSE, ist_ns(2026, 11, 23, 9, 15, 0))
    assert not calendar.is_open(Exchange.NSE, ist_ns(2026, 11, 23, 9, 15) - 1)


def test_the_close_is_exclusive(calendar: TradingCalendar) -> None:
    assert calendar.is_open(Exchange.NSE, ist_ns(2026, 11, 23, 15, 29, 59))
    assert calendar.is_open(Exchange.NSE, ist_ns(2026, 11, 23, 15, 30) - 1)
    assert calendar.status(Exchange.NSE, ist_ns(2026, 11, 23, 15, 30, 0)) == SessionStatus(
        False, "after the close at 15:30 IST"
    )
    assert not calendar.is_open(Exchange.NSE, ist_ns(2026, 11, 23, 23, 59, 59))


def test_the_day_boundary_is_indian_midnight(calendar: TradingCalendar) -> None:
    # 2026-11-23 00:30 IST is still 2026-11-22 (Sunday) in UTC; IST must decide the day.
    assert calendar.status(Exchange.NSE, ist_ns(2026, 11, 23, 0, 30)) == SessionStatus(
        False, "before the open at 09:15 IST"
    )


@pytest.mark.parametrize(("day", "name"), [(21, "Saturday"), (22, "Sunday")])
def test_weekends_have_no_session(calendar: TradingCalendar, day: int, name: str) -> None:
    assert calendar.status(Exchange.NSE, ist_ns(2026, 11, day, 11, 0)) == SessionStatus(False, f"{name}: no session")


def test_a_special_saturday_session_known_to_the_library_is_open(calendar: TradingCalendar) -> None:
    # Budget day 2025-02-01 was a Saturday with a full session; the library's sessions win over the weekmask.
    assert exchange_calendars.get_calendar("XBOM").is_session("2025-02-01")
    assert calendar.is_open(Exchange.NSE, ist_ns(2025, 2, 1, 11, 0))


@pytest.mark.parametrize("holiday", [dt.date(2026, 1, 26), dt.date(2026, 11, 24)])
def test_trading_holidays_known_to_the_library_are_closed(
    calendar: TradingCalendar, library_sessions: set[dt.date], holiday: dt.date
) -> None:
    # Republic Day and Guru Nanak Jayanti, both weekdays; the library must agree they are holidays.
    assert holiday.weekday() < 5
    assert holiday not in library_sessions
    assert holiday - dt.timedelta(days=1) in library_sessions or holiday + dt.timedelta(days=1) in library_sessions
    status = calendar.status(Exchange.NSE, ist_ns(holiday.year, holiday.month, holiday.day, 11, 0))
    assert status == SessionStatus(False, f"{holiday.isoformat()} is a trading holiday (no session)")


def test_beyond_the_horizon_is_closed_and_says_why(calendar: TradingCalendar) -> None:
    assert calendar.last_covered_day == dt.date(2026, 12, 31)
    assert calendar.is_open(Exchange.NSE, ist_ns(2026, 12, 31, 11, 0))
    status = calendar.status(Exchange.NSE, ist_ns(2027, 1, 4, 10, 0))
    assert status == SessionStatus(
        False, "the exchange calendar only covers sessions up to 2026-12-31; update exchange-calendars"
    )


def test_before_the_first_covered_day_is_closed(calendar: TradingCalendar) -> None:
    first = calendar.first_covered_day
    before = first - dt.timedelta(days=7)
    status = calendar.status(Exchange.NSE, ist_ns(before.year, before.month, before.day, 10, 0))
    assert not status.open
    assert status.reason == f"the exchange calendar only covers sessions from {first.isoformat()}"
    assert calendar.next_open_ns(Exchange.NSE, ist_ns(before.year, before.month, before.day, 10, 0)) is None


@pytest.mark.parametrize(
    "when",
    [
        (2026, 11, 23, 10, 0),
        (2026, 11, 23, 9, 0),
        (2026, 11, 23, 15, 30),
        (2026, 11, 21, 11, 0),
        (2026, 11, 24, 11, 0),
        (2027, 1, 4, 10, 0),
    ],
)
def test_every_exchange_gives_the_same_answer(calendar: TradingCalendar, when: tuple[int, ...]) -> None:
    now_ns = ist_ns(*when)
    answers = {calendar.status(exchange, now_ns) for exchange in Exchange}
    assert len(answers) == 1


def test_next_open_from_a_saturday_is_monday_at_the_open(calendar: TradingCalendar) -> None:
    assert calendar.next_open_ns(Exchange.NFO, ist_ns(2026, 11, 21, 12, 0)) == ist_ns(2026, 11, 23, 9, 15)


def test_next_open_skips_a_holiday(calendar: TradingCalendar) -> None:
    # From inside Monday's session, the next open skips Tuesday's holiday to Wednesday.
    assert calendar.next_open_ns(Exchange.NSE, ist_ns(2026, 11, 23, 10, 0)) == ist_ns(2026, 11, 25, 9, 15)


def test_next_open_at_the_open_is_that_open(calendar: TradingCalendar) -> None:
    open_ns = ist_ns(2026, 11, 23, 9, 15)
    assert calendar.next_open_ns(Exchange.BSE, open_ns) == open_ns
    assert calendar.next_open_ns(Exchange.BSE, open_ns - 1) == open_ns


def test_next_open_past_the_horizon_is_none(calendar: TradingCalendar) -> None:
    assert calendar.next_open_ns(Exchange.NSE, ist_ns(2026, 12, 31, 10, 0)) is None
    assert calendar.next_open_ns(Exchange.NSE, ist_ns(2027, 1, 4, 10, 0)) is None
    assert calendar.next_open_ns(Exchange.NSE, ist_ns(2026, 12, 31, 9, 0)) == ist_ns(2026, 12, 31, 9, 15)


def test_days_of_cover_left(calendar: TradingCalendar) -> None:
    assert calendar.days_of_cover_left(ist_ns(2026, 11, 23, 10, 0)) == 38
    assert calendar.days_of_cover_left(ist_ns(2026, 12, 31, 23, 59)) == 0
    assert calendar.days_of_cover_left(ist_ns(2027, 3, 1)) == 0


def test_rebuilding_reuses_the_loaded_calendar(calendar: TradingCalendar) -> None:
    started = time.perf_counter()
    again = TradingCalendar()
    assert time.perf_counter() - started < 0.01
    assert again.status(Exchange.NSE, ist_ns(2026, 11, 23, 10, 0)).open


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
    expected = _LIBRARY.is_open_on_minute(pd.Timestamp(now_ns, tz="UTC"))
    assert calendar.status(Exchange.NSE, now_ns).open is expected


@settings(max_examples=200, deadline=None)
@given(offset_ns=st.integers(0, _LAST_MINUTE_NS - _FIRST_MINUTE_NS))
def test_status_agrees_with_the_library_at_any_nanosecond(calendar: TradingCalendar, offset_ns: int) -> None:
    now_ns = _FIRST_MINUTE_NS + offset_ns
    expected = _LIBRARY.is_open_at_time(pd.Timestamp(now_ns, tz="UTC"), side="left")
    assert calendar.status(Exchange.NSE, now_ns).open is expected


def test_status_is_fast_enough_for_the_gate(calendar: TradingCalendar) -> None:
    probes = [
        ist_ns(2026, 11, 23, 10, 0),
        ist_ns(2026, 11, 23, 8, 0),
        ist_ns(2026, 11, 23, 16, 0),
        ist_ns(2026, 11, 24, 10, 0),
        ist_ns(2026, 11, 21, 10, 0),
        ist_ns(2027, 1, 4, 10, 0),
    ] * 1_667
    status = calendar.status
    nse = Exchange.NSE
    started = time.perf_counter()
    for now_ns in probes:
        status(nse, now_ns)
    assert time.perf_counter() - started < 0.05

    one_call: list[int] = []
    for now_ns in probes[:3_000]:
        t0 = time.perf_counter_ns()
        status(nse, now_ns)
        one_call.append(time.perf_counter_ns() - t0)
    assert statistics.median(one_call) <= 2_000
