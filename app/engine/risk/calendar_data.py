"""The trading calendar as data: sessions, holidays and special sessions per exchange, year by year.

The desk owns this data (``resources/calendar.toml``, generated once from exchange-calendars by
``installer/generate_calendar.py``, plus an operator's override ``calendar.toml`` in the data
folder), so a library release never decides whether the desk may trade on 1 January. The file::

    format = 1
    label = "2026.11"                           # the data's own version label
    source = "where the data came from"

    [calendars.india]                           # one named calendar ...
    exchanges = ["NSE", "BSE", "NFO", "BFO"]    # ... used by these exchanges (each exactly once)
    open = "09:15"                              # regular hours, IST, half-open [open, close)
    close = "15:30"
    weekdays = ["Mon", "Tue", "Wed", "Thu", "Fri"]

    [calendars.india.years.2026]                # a year is covered only when it is listed
    holidays = [2026-01-26, 2026-03-03]         # weekday holidays (weekends are never sessions)
    special_sessions = [                        # muhurat, budget Saturdays: replace the day's hours
        { date = 2026-02-01, open = "09:15", close = "15:30", name = "Union Budget" },
    ]

    [calendars.india.years.2027]                # holidays not yet published: an operator accepted
    assumed_weekdays = { by = "asha", at = 2026-12-31T17:02:00+05:30, reason = "NSE list due 15 Dec" }

A year that is not listed is not covered: the gate refuses new risk on its days. An override's
years replace the shipped file's years of the same calendar (but an assumed year never replaces a
published one: a newer release's list wins); its hours and exchanges replace the shipped
calendar's. Every problem found is reported with its field path, all at once.
"""

from __future__ import annotations

import datetime as dt
import json
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from app.domain.india_time import IST
from app.domain.instruments import Exchange

from .document_error import DocumentError

FORMAT = 1
WEEKDAY_NAMES = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
# app/engine/risk/calendar_data.py -> parents[3] is the repository root (an editable install keeps it there).
SHIPPED_CALENDAR_PATH = Path(__file__).resolve().parents[3] / "resources" / "calendar.toml"
OVERRIDE_NAME = "calendar.toml"
# How far ahead of a year's end the desk starts warning that the next year's holidays are missing.
WARN_DAYS_AHEAD = 30


class CalendarError(DocumentError):
    """A calendar document cannot be used. ``problems`` holds one line per problem, each naming its field."""

    kind = "calendar"


@dataclass(frozen=True, slots=True)
class SpecialSession:
    """A session with its own hours on one day (muhurat trading, a budget Saturday)."""

    day: dt.date
    open: dt.time
    close: dt.time
    name: str


@dataclass(frozen=True, slots=True)
class Assumption:
    """An operator's acceptance that a year's weekdays are sessions until its holiday list is published."""

    by: str
    at: dt.datetime
    reason: str


@dataclass(frozen=True, slots=True)
class YearData:
    """One covered year: its weekday holidays and special sessions, or an operator's weekday assumption."""

    year: int
    holidays: frozenset[dt.date] = frozenset()
    special_sessions: tuple[SpecialSession, ...] = ()
    assumed: Assumption | None = None


@dataclass(frozen=True, slots=True)
class ExchangeCalendar:
    """One named calendar: the exchanges that use it, regular hours and the covered years."""

    name: str
    exchanges: tuple[Exchange, ...]
    open: dt.time
    close: dt.time
    weekdays: frozenset[int]
    years: Mapping[int, YearData]

    @property
    def published_through(self) -> int | None:
        """The newest year whose holiday list is in the calendar (assumed years do not count)."""
        published = sorted(year for year, data in self.years.items() if data.assumed is None)
        return published[-1] if published else None

    def is_session_weekday(self, day: dt.date) -> bool:
        return day.weekday() in self.weekdays


@dataclass(frozen=True, slots=True)
class CalendarSet:
    """Every calendar of a document (or of the shipped file merged with the override)."""

    label: str
    source: str
    calendars: Mapping[str, ExchangeCalendar]
    by_exchange: Mapping[Exchange, ExchangeCalendar] = field(default_factory=dict)

    def for_exchange(self, exchange: Exchange) -> ExchangeCalendar:
        return self.by_exchange[exchange]

    def uncovered_years(self, today: dt.date) -> list[int]:
        """This year and the next where some calendar lacks them: what ``calendar accept-weekdays`` may assume."""
        return [year for year in (today.year, today.year + 1)
                if any(year not in cal.years for cal in self.calendars.values())]

    def document(self) -> dict[str, Any]:
        """The whole calendar as plain JSON-able data (the stored version and its hash are of this)."""
        return {
            "format": FORMAT,
            "label": self.label,
            "source": self.source,
            "calendars": {name: _calendar_document(cal) for name, cal in sorted(self.calendars.items())},
        }

    def cover_notice(self, today: dt.date) -> str | None:
        """What an operator must be told about the calendar's cover on ``today`` (None: nothing).

        Inside the last ``WARN_DAYS_AHEAD`` days of a year whose successor is not covered, a warning;
        in a year that is not covered, or only assumed, the standing situation.
        """
        notices: list[str] = []
        for cal in sorted(self.calendars.values(), key=lambda c: c.name):
            names = "/".join(cal.exchanges)
            data = cal.years.get(today.year)
            if data is None:
                notices.append(
                    f"{names}: the {today.year} trading holidays are not in the desk's calendar, so new risk is refused; "
                    f"import the published list (main.py calendar import FILE) or accept weekdays as sessions "
                    f"(main.py calendar accept-weekdays {today.year} --reason ...)"
                )
            elif data.assumed is not None:
                notices.append(
                    f"{names}: trading {today.year} on weekdays assumed as sessions (accepted by {data.assumed.by}: "
                    f"{data.assumed.reason}); import the published holiday list as soon as it is out"
                )
            year_end = dt.date(today.year, 12, 31)
            if (year_end - today).days <= WARN_DAYS_AHEAD and today.year + 1 not in cal.years:
                notices.append(
                    f"{names}: the {today.year + 1} trading holidays are not in the desk's calendar; import them "
                    f"(main.py calendar import FILE) before {today.year + 1}-01-01 or new risk will be refused from then"
                )
        return "; ".join(notices) or None


def parse_calendar_text(text: str, origin: str, *, partial: bool = False) -> CalendarSet:
    """Read and check a calendar document; raises CalendarError listing every problem.

    A ``partial`` document (an override) need not cover every exchange: the merge checks that.
    """
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise CalendarError(origin, [f"not valid TOML: {exc}"]) from None
    return _Parser(origin, partial).document(raw)


def load_calendar_file(path: Path, *, partial: bool = False) -> CalendarSet:
    """Read and check a calendar file; a missing or unreadable file is a CalendarError naming it."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise CalendarError(str(path), ["file not found"]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise CalendarError(str(path), [f"not readable: {exc}"]) from None
    return parse_calendar_text(text, str(path), partial=partial)


def overlay(base: CalendarSet, top: CalendarSet, *, complete: bool) -> CalendarSet:
    """``top``'s calendars over ``base``'s: its hours and exchanges win, its years replace same-numbered
    years, except that an assumed year never replaces a published one.

    ``complete``: the result must cover every exchange (the calendar in force); an override need not.
    """
    calendars = dict(base.calendars)
    for name, cal in top.calendars.items():
        years = dict(calendars[name].years) if name in calendars else {}
        for year, data in cal.years.items():
            # An assumption stands in for a list not yet published: once the base has the list
            # (a newer release), the list wins and the assumption has done its job.
            if data.assumed is not None and year in years and years[year].assumed is None:
                continue
            years[year] = data
        calendars[name] = replace(cal, years=dict(sorted(years.items())))
    problems: list[str] = []
    by_exchange = _index_exchanges(calendars, problems, require_all=complete)
    if problems:
        raise CalendarError(f"{base.label} with {top.label} over it", problems)
    if complete:
        return CalendarSet(f"{base.label}+{top.label}", f"{base.source}; override: {top.source}", calendars, by_exchange)
    return CalendarSet(top.label, top.source, calendars, by_exchange)


def merge(shipped: CalendarSet, override: CalendarSet) -> CalendarSet:
    """The calendar in force: the shipped calendar with the data folder's override over it."""
    return overlay(shipped, override, complete=True)


@dataclass(frozen=True, slots=True)
class CalendarLoad:
    """The calendar in force and what the operator must be told about how it was loaded."""

    calendar: CalendarSet
    override: Path | None
    problems: list[str]


def load_effective(home: Path | None, shipped_path: Path = SHIPPED_CALENDAR_PATH) -> CalendarLoad:
    """The shipped calendar, with the data folder's override over it when there is one.

    The shipped file must be valid (CalendarError otherwise: an installation without a calendar
    cannot trade). A broken override is reported in ``problems`` and ignored, so the desk still
    starts on the shipped data; the operator fixes it with ``calendar check``.
    """
    shipped = load_calendar_file(shipped_path)
    if home is None:
        return CalendarLoad(shipped, None, [])
    path = home / OVERRIDE_NAME
    if not path.exists():
        return CalendarLoad(shipped, None, [])
    try:
        return CalendarLoad(merge(shipped, load_calendar_file(path, partial=True)), path, [])
    except CalendarError as exc:
        return CalendarLoad(shipped, path, [f"{exc.origin}: {problem}" for problem in exc.problems])


def render(calendars: CalendarSet, header: Iterable[str] = ()) -> str:
    """The document as TOML text that ``parse_calendar_text`` reads back to the same calendars."""
    lines = [f"# {line}" if line else "#" for line in header]
    lines += [f"format = {FORMAT}", f"label = {_quote(calendars.label)}", f"source = {_quote(calendars.source)}"]
    for name, cal in sorted(calendars.calendars.items()):
        lines += [
            "",
            f"[calendars.{name}]",
            "exchanges = [" + ", ".join(_quote(str(e)) for e in cal.exchanges) + "]",
            f'open = "{cal.open:%H:%M}"',
            f'close = "{cal.close:%H:%M}"',
            "weekdays = [" + ", ".join(_quote(WEEKDAY_NAMES[d]) for d in sorted(cal.weekdays)) + "]",
        ]
        for year, data in sorted(cal.years.items()):
            lines += ["", f"[calendars.{name}.years.{year}]"]
            if data.assumed is not None:
                at = data.assumed.at.isoformat(timespec="seconds")
                lines.append(
                    f"assumed_weekdays = {{ by = {_quote(data.assumed.by)}, at = {at}, reason = {_quote(data.assumed.reason)} }}"
                )
                continue
            lines.append("holidays = [" + ", ".join(day.isoformat() for day in sorted(data.holidays)) + "]")
            if data.special_sessions:
                lines.append("special_sessions = [")
                for s in data.special_sessions:
                    lines.append(
                        f'    {{ date = {s.day.isoformat()}, open = "{s.open:%H:%M}", close = "{s.close:%H:%M}", '
                        f"name = {_quote(s.name)} }},"
                    )
                lines.append("]")
    return "\n".join(lines) + "\n"


def _quote(text: str) -> str:
    # A TOML basic string; json's escapes (\\, \", \n, \uXXXX) are all valid TOML escapes.
    return json.dumps(text, ensure_ascii=False)


def _calendar_document(cal: ExchangeCalendar) -> dict[str, Any]:
    years: dict[str, Any] = {}
    for year, data in sorted(cal.years.items()):
        if data.assumed is not None:
            years[str(year)] = {"assumed_weekdays": {
                "by": data.assumed.by, "at": data.assumed.at.isoformat(), "reason": data.assumed.reason,
            }}
        else:
            years[str(year)] = {
                "holidays": [day.isoformat() for day in sorted(data.holidays)],
                "special_sessions": [
                    {"date": s.day.isoformat(), "open": f"{s.open:%H:%M}", "close": f"{s.close:%H:%M}", "name": s.name}
                    for s in data.special_sessions
                ],
            }
    return {
        "exchanges": list(cal.exchanges),
        "open": f"{cal.open:%H:%M}",
        "close": f"{cal.close:%H:%M}",
        "weekdays": [WEEKDAY_NAMES[d] for d in sorted(cal.weekdays)],
        "years": years,
    }


def _index_exchanges(
    calendars: Mapping[str, ExchangeCalendar], problems: list[str], *, require_all: bool = True,
) -> dict[Exchange, ExchangeCalendar]:
    by_exchange: dict[Exchange, ExchangeCalendar] = {}
    for cal in calendars.values():
        for exchange in cal.exchanges:
            other = by_exchange.get(exchange)
            if other is not None:
                problems.append(f"exchange {exchange} is in both calendars.{other.name} and calendars.{cal.name}")
            by_exchange[exchange] = cal
    missing = [str(e) for e in Exchange if e not in by_exchange]
    if missing and require_all:
        problems.append(f"no calendar covers exchange(s) {', '.join(missing)}")
    return by_exchange


class _Parser:
    """Walks the raw TOML, collecting every problem with its field path before giving up."""

    def __init__(self, origin: str, partial: bool) -> None:
        self.origin = origin
        self.partial = partial
        self.problems: list[str] = []

    def problem(self, path: str, text: str) -> None:
        self.problems.append(f"{path}: {text}")

    def document(self, raw: Mapping[str, Any]) -> CalendarSet:
        self._unknown(raw, {"format", "label", "source", "calendars"}, "")
        if raw.get("format") != FORMAT:
            self.problem("format", f"must be {FORMAT}, got {raw.get('format')!r}")
        label = self._text(raw, "label", "label")
        source = self._text(raw, "source", "source")
        calendars: dict[str, ExchangeCalendar] = {}
        tables = raw.get("calendars")
        if not isinstance(tables, dict) or not tables:
            self.problem("calendars", "must hold at least one [calendars.NAME] table")
        else:
            for name, table in tables.items():
                parsed = self._calendar(str(name), table)
                if parsed is not None:
                    calendars[str(name)] = parsed
        by_exchange: dict[Exchange, ExchangeCalendar] = {}
        if calendars:
            by_exchange = _index_exchanges(calendars, self.problems, require_all=not self.partial)
        if self.problems:
            raise CalendarError(self.origin, self.problems)
        return CalendarSet(label, source, calendars, by_exchange)

    def _unknown(self, table: Mapping[str, Any], allowed: set[str], path: str) -> None:
        for key in table:
            if key not in allowed:
                self.problem(f"{path}{key}", f"unknown key (allowed: {', '.join(sorted(allowed))})")

    def _text(self, table: Mapping[str, Any], key: str, path: str) -> str:
        value = table.get(key)
        if not isinstance(value, str) or not value.strip():
            self.problem(path, f"must be a non-empty string, got {value!r}")
            return ""
        if any(ord(ch) < 32 for ch in value):
            self.problem(path, "must not contain control characters")
        return value.strip()

    def _time(self, value: object, path: str) -> dt.time | None:
        if isinstance(value, str):
            try:
                parsed = dt.time.fromisoformat(value)
                if len(value) == 5 and parsed.second == 0:
                    return parsed
            except ValueError:
                pass
        self.problem(path, f"must be a time of day like \"09:15\" (IST), got {value!r}")
        return None

    def _calendar(self, name: str, table: object) -> ExchangeCalendar | None:
        path = f"calendars.{name}"
        if not isinstance(table, dict):
            self.problem(path, "must be a table")
            return None
        self._unknown(table, {"exchanges", "open", "close", "weekdays", "years"}, f"{path}.")
        exchanges: list[Exchange] = []
        raw_exchanges = table.get("exchanges")
        if not isinstance(raw_exchanges, list) or not raw_exchanges:
            self.problem(f"{path}.exchanges", f"must be a non-empty list of {[e.value for e in Exchange]}")
        else:
            for item in raw_exchanges:
                if item not in {e.value for e in Exchange}:
                    self.problem(f"{path}.exchanges", f"unknown exchange {item!r} (known: {[e.value for e in Exchange]})")
                elif Exchange(item) in exchanges:
                    self.problem(f"{path}.exchanges", f"{item} is listed twice")
                else:
                    exchanges.append(Exchange(item))
        opens = self._time(table.get("open"), f"{path}.open")
        closes = self._time(table.get("close"), f"{path}.close")
        if opens is not None and closes is not None and not opens < closes:
            self.problem(f"{path}.close", f"must be after the open ({opens:%H:%M}), got {closes:%H:%M}")
        weekdays: set[int] = set()
        raw_weekdays = table.get("weekdays")
        if not isinstance(raw_weekdays, list) or not raw_weekdays:
            self.problem(f"{path}.weekdays", f"must be a non-empty list of {list(WEEKDAY_NAMES)}")
        else:
            for item in raw_weekdays:
                if item not in WEEKDAY_NAMES:
                    self.problem(f"{path}.weekdays", f"unknown weekday {item!r} (use {list(WEEKDAY_NAMES)})")
                else:
                    weekdays.add(WEEKDAY_NAMES.index(item))
        years: dict[int, YearData] = {}
        raw_years = table.get("years")
        if not isinstance(raw_years, dict) or not raw_years:
            self.problem(f"{path}.years", "must hold at least one [years.YYYY] table")
        elif opens is not None and closes is not None:
            for key, value in raw_years.items():
                parsed = self._year(str(key), value, f"{path}.years.{key}", frozenset(weekdays))
                if parsed is not None:
                    years[parsed.year] = parsed
        if opens is None or closes is None or not exchanges or not weekdays:
            return None
        return ExchangeCalendar(name, tuple(exchanges), opens, closes, frozenset(weekdays), dict(sorted(years.items())))

    def _year(self, key: str, table: object, path: str, weekdays: frozenset[int]) -> YearData | None:
        if not (key.isdigit() and len(key) == 4 and 1990 <= int(key) <= 2200):
            self.problem(path, "a year must be four digits between 1990 and 2200")
            return None
        year = int(key)
        if not isinstance(table, dict):
            self.problem(path, "must be a table")
            return None
        self._unknown(table, {"holidays", "special_sessions", "assumed_weekdays"}, f"{path}.")
        if "assumed_weekdays" in table:
            if "holidays" in table or "special_sessions" in table:
                self.problem(path, "a year with assumed_weekdays has no holidays or special sessions (it is not published)")
            return self._assumed(year, table["assumed_weekdays"], f"{path}.assumed_weekdays")
        raw_holidays = table.get("holidays")
        if not isinstance(raw_holidays, list):
            self.problem(f"{path}.holidays", "must be a list of dates like 2027-01-26 (an empty list when the year has none)")
            return None
        holidays: set[dt.date] = set()
        for item in raw_holidays:
            if not isinstance(item, dt.date) or isinstance(item, dt.datetime):
                self.problem(f"{path}.holidays", f"{item!r} is not a date like 2027-01-26 (no quotes)")
            elif item.year != year:
                self.problem(f"{path}.holidays", f"{item.isoformat()} is not in {year}")
            elif item.weekday() not in weekdays:
                self.problem(f"{path}.holidays", f"{item.isoformat()} is a {item:%A}, never a session: list weekday holidays only")
            elif item in holidays:
                self.problem(f"{path}.holidays", f"{item.isoformat()} is listed twice")
            else:
                holidays.add(item)
        specials: list[SpecialSession] = []
        raw_specials = table.get("special_sessions", [])
        if not isinstance(raw_specials, list):
            self.problem(f"{path}.special_sessions", "must be a list of { date, open, close, name } tables")
            raw_specials = []
        for index, item in enumerate(raw_specials):
            special = self._special(year, item, f"{path}.special_sessions[{index}]")
            if special is None:
                continue
            if any(s.day == special.day for s in specials):
                self.problem(f"{path}.special_sessions[{index}]", f"{special.day.isoformat()} already has a special session")
                continue
            specials.append(special)
        return YearData(year, frozenset(holidays), tuple(sorted(specials, key=lambda s: s.day)))

    def _special(self, year: int, item: object, path: str) -> SpecialSession | None:
        if not isinstance(item, dict):
            self.problem(path, "must be a table { date, open, close, name }")
            return None
        self._unknown(item, {"date", "open", "close", "name"}, f"{path}.")
        day = item.get("date")
        if not isinstance(day, dt.date) or isinstance(day, dt.datetime):
            self.problem(f"{path}.date", f"must be a date like 2027-02-01 (no quotes), got {day!r}")
            day = None
        elif day.year != year:
            self.problem(f"{path}.date", f"{day.isoformat()} is not in {year}")
            day = None
        opens = self._time(item.get("open"), f"{path}.open")
        closes = self._time(item.get("close"), f"{path}.close")
        name = self._text(item, "name", f"{path}.name")
        if opens is not None and closes is not None and not opens < closes:
            self.problem(f"{path}.close", f"must be after the open ({opens:%H:%M}), got {closes:%H:%M}")
            return None
        if day is None or opens is None or closes is None or not name:
            return None
        return SpecialSession(day, opens, closes, name)

    def _assumed(self, year: int, item: object, path: str) -> YearData | None:
        if not isinstance(item, dict):
            self.problem(path, "must be a table { by, at, reason }")
            return None
        self._unknown(item, {"by", "at", "reason"}, f"{path}.")
        by = self._text(item, "by", f"{path}.by")
        reason = self._text(item, "reason", f"{path}.reason")
        at = item.get("at")
        if not isinstance(at, dt.datetime) or at.tzinfo is None:
            self.problem(f"{path}.at", f"must be a date and time with its offset like 2026-12-31T17:00:00+05:30, got {at!r}")
            return None
        if not by or not reason:
            return None
        return YearData(year, assumed=Assumption(by, at.astimezone(IST), reason))
