"""Exchange trading hours for the pre-trade risk gate, taken from the ``exchange_calendars`` library.

The library (pandas underneath) is consulted once per calendar name, when the calendar is built;
the result is flattened into plain dicts of integers and prebuilt answers, so the gate's per-order
question is a dict lookup and two integer comparisons, with no I/O and no pandas.
"""

from __future__ import annotations

import bisect
import datetime as dt
import functools
from dataclasses import dataclass

import exchange_calendars  # type: ignore[import-untyped]  # ships no type information

from app.domain.india_time import IST, day_from_number, ist_day_number
from app.domain.instruments import Exchange

# Ten years of history is ample for replays and keeps the tables small; the end is whatever the
# installed library knows, because it only knows the holidays it has been told about.
_COVER_FROM = dt.date(2016, 1, 1)
_NS_PER_S = 1_000_000_000


@dataclass(frozen=True, slots=True)
class SessionStatus:
    """Whether an exchange is in its regular session at an instant, and why, in words for a person."""

    open: bool
    reason: str


# (open_ns, close_ns, before the open, during the session, after the close) for one session day.
_SessionEntry = tuple[int, int, SessionStatus, SessionStatus, SessionStatus]


@dataclass(frozen=True, slots=True)
class _Schedule:
    """One calendar flattened to integers: everything ``TradingCalendar`` needs after construction."""

    sessions: dict[int, _SessionEntry]
    closed_days: dict[int, SessionStatus]
    opens_ns: tuple[int, ...]
    first_day: int
    last_day: int
    before_cover: SessionStatus
    after_cover: SessionStatus


def _ist_hhmm(ts_ns: int) -> str:
    return dt.datetime.fromtimestamp(ts_ns // _NS_PER_S, IST).strftime("%H:%M")


@functools.cache
def _load_schedule(name: str) -> _Schedule:
    calendar = exchange_calendars.get_calendar(name, start=_COVER_FROM.isoformat())
    schedule = calendar.schedule
    # Pinned to nanoseconds because ``asi8`` counts in the column's own unit.
    opens = [int(v) for v in schedule["open"].dt.as_unit("ns").array.asi8]
    closes = [int(v) for v in schedule["close"].dt.as_unit("ns").array.asi8]
    weekmask = str(calendar.weekmask)

    # Sessions share a handful of open/close times, so share their answers too.
    answers: dict[tuple[str, str], tuple[SessionStatus, SessionStatus, SessionStatus]] = {}
    sessions: dict[int, _SessionEntry] = {}
    for open_ns, close_ns in zip(opens, closes, strict=True):
        times = (_ist_hhmm(open_ns), _ist_hhmm(close_ns))
        if times not in answers:
            answers[times] = (
                SessionStatus(False, f"before the open at {times[0]} IST"),
                SessionStatus(True, f"open until {times[1]} IST"),
                SessionStatus(False, f"after the close at {times[1]} IST"),
            )
        before, during, after = answers[times]
        sessions[ist_day_number(open_ns)] = (open_ns, close_ns, before, during, after)

    first_day, last_day = min(sessions), max(sessions)
    closed_days: dict[int, SessionStatus] = {}
    for day_number in range(first_day, last_day + 1):
        if day_number in sessions:
            continue
        day = day_from_number(day_number)
        # A holiday on a weekend is still just a weekend to the person reading the reason.
        if weekmask[day.weekday()] == "0":
            closed_days[day_number] = SessionStatus(False, f"{day:%A}: no session")
        else:
            closed_days[day_number] = SessionStatus(False, f"{day.isoformat()} is a trading holiday (no session)")

    first, last = day_from_number(first_day), day_from_number(last_day)
    return _Schedule(
        sessions=sessions,
        closed_days=closed_days,
        opens_ns=tuple(opens),
        first_day=first_day,
        last_day=last_day,
        before_cover=SessionStatus(False, f"the exchange calendar only covers sessions from {first.isoformat()}"),
        after_cover=SessionStatus(
            False, f"the exchange calendar only covers sessions up to {last.isoformat()}; update exchange-calendars"
        ),
    )


class TradingCalendar:
    """Regular trading sessions of NSE, BSE, NFO and BFO, answered in O(1) without I/O.

    ``exchange_calendars`` has no NSE calendar, only ``XBOM`` (BSE). NSE and BSE, cash and F&O,
    share the SEBI-harmonised trading holidays and regular hours (09:15-15:30 IST), so by default
    all four ``Exchange`` values use ``XBOM``. Sessions are half-open: the open instant trades,
    the close instant does not.

    Fails closed: an instant outside the library's sessions (before the first covered day or
    after the last) is never open, and its reason says the calendar needs updating. Construction
    loads the library once per name per process; later constructions reuse that work.
    """

    __slots__ = ("_by_exchange", "_schedule")

    def __init__(self, name: str = "XBOM") -> None:
        self._schedule = _load_schedule(name)
        # Keyed per exchange so a segment with its own hours later changes only this table.
        self._by_exchange: dict[Exchange, _Schedule] = dict.fromkeys(Exchange, self._schedule)

    @property
    def first_covered_day(self) -> dt.date:
        """The first session day the calendar knows; earlier instants are treated as closed."""
        return day_from_number(self._schedule.first_day)

    @property
    def last_covered_day(self) -> dt.date:
        """The last session day the library knows; later instants are treated as closed."""
        return day_from_number(self._schedule.last_day)

    def status(self, exchange: Exchange, now_ns: int) -> SessionStatus:
        """Whether ``exchange`` is in its regular session at epoch-nanosecond ``now_ns``, and why."""
        schedule = self._by_exchange[exchange]
        day_number = ist_day_number(now_ns)
        entry = schedule.sessions.get(day_number)
        if entry is None:
            closed = schedule.closed_days.get(day_number)
            if closed is not None:
                return closed
            return schedule.before_cover if day_number < schedule.first_day else schedule.after_cover
        open_ns, close_ns, before, during, after = entry
        if now_ns < open_ns:
            return before
        if now_ns < close_ns:
            return during
        return after

    def is_open(self, exchange: Exchange, now_ns: int) -> bool:
        """True only inside a regular session known to the calendar."""
        return self.status(exchange, now_ns).open

    def next_open_ns(self, exchange: Exchange, now_ns: int) -> int | None:
        """The first session open at or after ``now_ns``; None when that lies outside the calendar's cover.

        Inside a session this is the next session's open, not the current one's.
        """
        schedule = self._by_exchange[exchange]
        if ist_day_number(now_ns) < schedule.first_day:
            return None
        index = bisect.bisect_left(schedule.opens_ns, now_ns)
        if index == len(schedule.opens_ns):
            return None
        return schedule.opens_ns[index]

    def days_of_cover_left(self, now_ns: int) -> int:
        """Calendar days from ``now_ns``'s IST day to the last covered day; 0 once past it."""
        return max(0, self._schedule.last_day - ist_day_number(now_ns))
