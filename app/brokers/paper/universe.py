"""The paper market's instrument universe, read from ``resources/instruments.json``.

Each entry carries the instrument's contract terms and the price the synthetic market starts from.
All money fields are integer paise and say so in their name (``tick_size_paise``, ``strike_paise``,
``start_price_paise``), so a rupee figure cannot slip in unnoticed.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from app.domain.india_time import IST
from app.domain.instruments import (
    Exchange,
    Instrument,
    InstrumentError,
    OptionRight,
    Segment,
    instrument_key,
)

# app/brokers/paper/universe.py -> parents[3] is the repository root; an editable install keeps it there.
DEFAULT_UNIVERSE_PATH = Path(__file__).resolve().parents[3] / "resources" / "instruments.json"
WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri")
# Whether a day is a trading session of an exchange (the desk's calendar answers; the default
# knows only weekdays).
SessionDay = Callable[[Exchange, date], bool]


def _weekday(_exchange: Exchange, day: date) -> bool:
    return day.weekday() < 5


def monthly_expiry(exchange: Exchange, year: int, month: int, weekday: int, is_session: SessionDay) -> date:
    """The month's last ``weekday`` (0 = Monday), moved back to the previous session day if it is not one."""
    first_of_next = date(year + month // 12, month % 12 + 1, 1)
    last = first_of_next - dt.timedelta(days=1)
    day = last - dt.timedelta(days=(last.weekday() - weekday) % 7)
    # A month never has more than a handful of holidays in a row; a week bounds the walk, and a
    # calendar that knows no session in it gives the rule's own day.
    for back in range(7):
        candidate = day - dt.timedelta(days=back)
        if is_session(exchange, candidate):
            return candidate
    return day


def next_monthly_expiry(exchange: Exchange, session_day: date, weekday: int, is_session: SessionDay) -> date:
    """The expiry of the nearest monthly contract still trading on ``session_day`` (expiry day included)."""
    expiry = monthly_expiry(exchange, session_day.year, session_day.month, weekday, is_session)
    if expiry >= session_day:
        return expiry
    year, month = (session_day.year + 1, 1) if session_day.month == 12 else (session_day.year, session_day.month + 1)
    return monthly_expiry(exchange, year, month, weekday, is_session)



class UniverseError(ValueError):
    """The universe file is missing, unreadable or has a malformed entry."""


@dataclass(frozen=True, slots=True)
class UniverseEntry:
    """One instrument of the paper market and its reference start price in paise."""

    instrument: Instrument
    start_price: int


def load_universe(
    path: Path | str | None = None, *, session_day: date | None = None, is_session: SessionDay | None = None,
) -> list[UniverseEntry]:
    """Read and check the universe file (default: ``resources/instruments.json`` at the repository root).

    Derivatives whose ``expiry`` is a rule (``{"monthly": "Tue"}``) get the nearest contract that has
    not expired on ``session_day`` (default: today in India), its expiry moved back to the previous
    session day when the rule's day is a holiday (``is_session``, default: any weekday; the desk
    passes its trading calendar). Their key is computed from the contract terms.

    Raises ``UniverseError`` (a ``ValueError``) naming the entry and the field for anything malformed,
    and for duplicate keys.
    """
    day = session_day if session_day is not None else dt.datetime.now(IST).date()
    session = is_session if is_session is not None else _weekday
    source = Path(path) if path is not None else DEFAULT_UNIVERSE_PATH
    try:
        document = json.loads(source.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UniverseError(f"universe file not found: {source}") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UniverseError(f"universe file {source} is not readable JSON: {exc}") from None
    if not isinstance(document, dict) or not isinstance(document.get("instruments"), list):
        raise UniverseError(f"universe file {source}: expected an object with an 'instruments' list")
    entries: list[UniverseEntry] = []
    seen: set[str] = set()
    for index, raw in enumerate(document["instruments"]):
        entry = _parse_entry(index, raw, day, session)
        key = entry.instrument.key
        if key in seen:
            raise UniverseError(f"instruments[{index}] ({key}): duplicate key")
        seen.add(key)
        entries.append(entry)
    if not entries:
        raise UniverseError(f"universe file {source} lists no instruments")
    return entries


class _Entry:
    """Typed field access to one raw entry, with errors that name the entry and the field."""

    def __init__(self, index: int, raw: Mapping[str, object]) -> None:
        self.raw = raw
        key = raw.get("key")
        self.label = f"instruments[{index}]" + (f" ({key})" if isinstance(key, str) and key else "")

    def error(self, field: str, problem: str) -> UniverseError:
        return UniverseError(f"{self.label}: field '{field}' {problem}, got {self.raw.get(field)!r}")

    def text(self, field: str) -> str:
        value = self.raw.get(field)
        if not isinstance(value, str) or not value.strip():
            raise self.error(field, "must be a non-empty string")
        return value

    def positive_int(self, field: str) -> int:
        value = self.raw.get(field)
        # bool is an int subclass; a JSON true must not read as 1.
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise self.error(field, "must be a positive integer")
        return value

    def optional_date(self, field: str) -> date | None:
        if self.raw.get(field) is None:
            return None
        try:
            return date.fromisoformat(self.text(field))
        except ValueError:
            raise self.error(field, "must be an ISO date (YYYY-MM-DD)") from None

    def optional_positive_int(self, field: str) -> int | None:
        return None if self.raw.get(field) is None else self.positive_int(field)

    def choice(self, field: str, enum_type: type[Exchange | Segment | OptionRight]) -> str:
        value = self.text(field)
        allowed = [member.value for member in enum_type]
        if value not in allowed:
            raise self.error(field, f"must be one of {allowed}")
        return value


def _parse_entry(index: int, raw: object, session_day: date, is_session: SessionDay) -> UniverseEntry:
    if not isinstance(raw, dict):
        raise UniverseError(f"instruments[{index}]: expected an object, got {type(raw).__name__}")
    entry = _Entry(index, raw)
    exchange = Exchange(entry.choice("exchange", Exchange))
    segment = Segment(entry.choice("segment", Segment))
    right = OptionRight(entry.choice("right", OptionRight)) if raw.get("right") is not None else None
    symbol = entry.text("symbol")
    strike = entry.optional_positive_int("strike_paise")
    rule = raw.get("expiry")
    if isinstance(rule, dict):
        weekday = rule.get("monthly")
        if set(rule) != {"monthly"} or weekday not in WEEKDAYS:
            raise entry.error("expiry", f'must be a date (YYYY-MM-DD) or {{"monthly": DAY}} with DAY one of {list(WEEKDAYS)}')
        if raw.get("key") is not None:
            raise entry.error("key", "must be left out when the expiry is a rule (it is computed from the contract terms)")
        expiry: date | None = next_monthly_expiry(exchange, session_day, WEEKDAYS.index(weekday), is_session)
        key = instrument_key(exchange, symbol, expiry, strike, right)
    else:
        expiry = entry.optional_date("expiry")
        key = entry.text("key")
    try:
        instrument = Instrument(
            key=key,
            exchange=exchange,
            symbol=symbol,
            underlying=entry.text("underlying"),
            segment=segment,
            lot_size=entry.positive_int("lot_size"),
            tick_size=entry.positive_int("tick_size_paise"),
            freeze_quantity=entry.positive_int("freeze_quantity"),
            expiry=expiry,
            strike=strike,
            right=right,
        )
    except InstrumentError as exc:
        raise UniverseError(f"{entry.label}: {exc}") from None
    expected = instrument_key(exchange, symbol, expiry, strike, right)
    if key != expected:
        raise UniverseError(f"{entry.label}: field 'key' does not match the contract terms, expected {expected!r}")
    start_price = entry.positive_int("start_price_paise")
    if not instrument.is_on_tick(start_price):
        raise entry.error("start_price_paise", f"must be a multiple of the tick size ({instrument.tick_size} paise)")
    return UniverseEntry(instrument=instrument, start_price=start_price)
