"""Exchange trading hours for the pre-trade risk gate, from the desk's own calendar data.

The data (``calendar_data``: the shipped ``resources/calendar.toml`` with the operator's override)
is flattened once, per calendar, into plain dicts of integers and prebuilt answers, so the gate's
per-order question is a dict lookup and two integer comparisons, with no I/O.
"""

from __future__ import annotations

import bisect
import datetime as dt
import functools
from dataclasses import dataclass

from app.domain.india_time import IST_OFFSET_S, day_from_number, ist_day, ist_day_number
from app.domain.instruments import Exchange

from .calendar_data import (
    SHIPPED_CALENDAR_PATH,
    CalendarSet,
    ExchangeCalendar,
    load_calendar_file,
)

_NS_PER_S = 1_000_000_000
_EPOCH_ORDINAL = dt.date(1970, 1, 1).toordinal()


@dataclass(frozen=True, slots=True)
class SessionStatus:
    """Whether an exchange is in session at an instant, and why, in words for a person.

    ``covered`` is False on a day the calendar has no data for (its year's holidays are not in the
    calendar): the desk then does not know whether the exchange is open, and the gate refuses new risk.
    """

    open: bool
    reason: str
    covered: bool = True


# (open_ns, close_ns, before the open, during the session, after the close) for one session day.
_SessionEntry = tuple[int, int, SessionStatus, SessionStatus, SessionStatus]


@dataclass(frozen=True, slots=True)
class _Schedule:
    """One calendar flattened to integers: everything ``TradingCalendar`` needs after construction."""

    source: ExchangeCalendar
    sessions: dict[int, _SessionEntry]
    closed_days: dict[int, SessionStatus]
    opens_ns: tuple[int, ...]
    last_day: int
    regular_open_s: int
    regular_close_s: int


def _day_number(day: dt.date) -> int:
    return day.toordinal() - _EPOCH_ORDINAL


def _ns_at(day_number: int, time: dt.time) -> int:
    seconds = day_number * 86_400 + time.hour * 3600 + time.minute * 60 - IST_OFFSET_S
    return seconds * _NS_PER_S


def _flatten(cal: ExchangeCalendar) -> _Schedule:
    # Sessions share a handful of open/close times, so share their answers too.
    answers: dict[tuple[dt.time, dt.time, str], tuple[SessionStatus, SessionStatus, SessionStatus]] = {}

    def answer(opens: dt.time, closes: dt.time, note: str) -> tuple[SessionStatus, SessionStatus, SessionStatus]:
        key = (opens, closes, note)
        if key not in answers:
            answers[key] = (
                SessionStatus(False, f"before the open at {opens:%H:%M} IST{note}"),
                SessionStatus(True, f"open until {closes:%H:%M} IST{note}"),
                SessionStatus(False, f"after the close at {closes:%H:%M} IST{note}"),
            )
        return answers[key]

    sessions: dict[int, _SessionEntry] = {}
    closed_days: dict[int, SessionStatus] = {}
    for year, data in cal.years.items():
        specials = {s.day: s for s in data.special_sessions}
        note = f" (weekdays assumed: {year}'s holidays not published)" if data.assumed is not None else ""
        day = dt.date(year, 1, 1)
        while day.year == year:
            number = _day_number(day)
            special = specials.get(day)
            if special is not None:
                hours: tuple[dt.time, dt.time] | None = (special.open, special.close)
                label = f" ({special.name})"
            elif cal.is_session_weekday(day) and day not in data.holidays:
                hours, label = (cal.open, cal.close), note
            else:
                hours = None
            if hours is None:
                # A holiday on a weekend is still just a weekend to the person reading the reason.
                closed_days[number] = (
                    SessionStatus(False, f"{day:%A}: no session")
                    if not cal.is_session_weekday(day)
                    else SessionStatus(False, f"{day.isoformat()} is a trading holiday (no session)")
                )
            else:
                before, during, after = answer(hours[0], hours[1], label)
                sessions[number] = (_ns_at(number, hours[0]), _ns_at(number, hours[1]), before, during, after)
            day += dt.timedelta(days=1)
    opens = tuple(sorted(entry[0] for entry in sessions.values()))
    return _Schedule(
        source=cal,
        sessions=sessions,
        closed_days=closed_days,
        opens_ns=opens,
        last_day=max(sessions.keys() | closed_days.keys()),
        regular_open_s=cal.open.hour * 3600 + cal.open.minute * 60,
        regular_close_s=cal.close.hour * 3600 + cal.close.minute * 60,
    )


def _schedules(calendars: CalendarSet) -> dict[Exchange, _Schedule]:
    flattened = {name: _flatten(cal) for name, cal in calendars.calendars.items()}
    # Keyed per exchange so a segment with its own hours changes only its own table.
    return {exchange: flattened[cal.name] for exchange, cal in calendars.by_exchange.items()}


@functools.cache
def _shipped() -> tuple[CalendarSet, dict[Exchange, _Schedule]]:
    # Flattening takes tens of milliseconds; every engine built without a calendar shares this one.
    calendars = load_calendar_file(SHIPPED_CALENDAR_PATH)
    return calendars, _schedules(calendars)


class TradingCalendar:
    """Regular and special sessions of NSE, BSE, NFO and BFO, answered in O(1) without I/O.

    Built from a ``CalendarSet`` (default: the shipped file alone). Sessions are half-open: the open
    instant trades, the close instant does not. Fails closed: a day of a year the calendar does not
    cover is never open, and its status says so (``covered`` False) and what the operator can do.
    Years an operator accepted as "weekdays are sessions" are open on weekdays at regular hours.
    """

    __slots__ = ("_by_exchange", "_uncovered", "calendars")

    def __init__(self, calendars: CalendarSet | None = None) -> None:
        if calendars is None:
            self.calendars, self._by_exchange = _shipped()
        else:
            self.calendars, self._by_exchange = calendars, _schedules(calendars)
        self._uncovered: dict[int, SessionStatus] = {}

    @property
    def label(self) -> str:
        return self.calendars.label

    @property
    def last_covered_day(self) -> dt.date:
        """The last day every exchange's calendar covers; later days are not known to be sessions."""
        return day_from_number(min(s.last_day for s in self._by_exchange.values()))

    def status(self, exchange: Exchange, now_ns: int) -> SessionStatus:
        """Whether ``exchange`` is in session at epoch-nanosecond ``now_ns``, and why."""
        schedule = self._by_exchange[exchange]
        day_number = ist_day_number(now_ns)
        entry = schedule.sessions.get(day_number)
        if entry is None:
            closed = schedule.closed_days.get(day_number)
            if closed is not None:
                return closed
            return self._not_covered(day_number)
        open_ns, close_ns, before, during, after = entry
        if now_ns < open_ns:
            return before
        if now_ns < close_ns:
            return during
        return after

    def _not_covered(self, day_number: int) -> SessionStatus:
        status = self._uncovered.get(day_number)
        if status is None:
            year = day_from_number(day_number).year
            status = SessionStatus(
                False,
                f"the {year} trading holidays are not in the desk's calendar (main.py calendar import FILE, "
                f"or main.py calendar accept-weekdays {year})",
                covered=False,
            )
            self._uncovered[day_number] = status
        return status

    def is_open(self, exchange: Exchange, now_ns: int) -> bool:
        """True only inside a session known to the calendar."""
        return self.status(exchange, now_ns).open

    def weekday_hours_open(self, exchange: Exchange, now_ns: int) -> bool:
        """Whether ``now_ns`` falls in regular hours on a regular weekday, holidays unknown.

        The gate asks this only on a day the calendar does not cover, to let risk-reducing orders
        through when the exchange is probably open; the exchange refuses them if it is not.
        """
        schedule = self._by_exchange[exchange]
        seconds = now_ns // _NS_PER_S + IST_OFFSET_S
        day = day_from_number(seconds // 86_400)
        second_of_day = seconds % 86_400
        return schedule.source.is_session_weekday(day) and schedule.regular_open_s <= second_of_day < schedule.regular_close_s

    def next_open_ns(self, exchange: Exchange, now_ns: int) -> int | None:
        """The first session open at or after ``now_ns``; None when no known session follows.

        Inside a session this is the next session's open, not the current one's.
        """
        schedule = self._by_exchange[exchange]
        index = bisect.bisect_left(schedule.opens_ns, now_ns)
        if index == len(schedule.opens_ns):
            return None
        return schedule.opens_ns[index]

    def is_session_day(self, exchange: Exchange, day: dt.date) -> bool:
        """Whether ``day`` is a session day; on a day the calendar does not cover, whether it is a weekday.

        For rolling contracts' expiry dates, where a best guess is needed; the gate never uses it.
        """
        schedule = self._by_exchange[exchange]
        number = _day_number(day)
        if number in schedule.sessions:
            return True
        if number in schedule.closed_days:
            return False
        return schedule.source.is_session_weekday(day)

    def cover_notice(self, now_ns: int) -> str | None:
        """What the operator must be told about the calendar's cover today (see ``CalendarSet.cover_notice``)."""
        return self.calendars.cover_notice(ist_day(now_ns))
