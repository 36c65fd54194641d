"""The risk limits document: its schema, every value check, and a one-line message for each problem.

The document (``resources/limits.toml`` ships a conservative one)::

    [desk]                                  # desk-wide caps; money in rupees (``_inr``)
    max_gross_exposure_inr = 2500000
    max_net_exposure_inr = 2000000
    daily_loss_limit_inr = 25000
    trailing_loss_limit_inr = 15000         # optional: drop from the day's P&L peak
    max_open_orders = 20
    max_orders_per_day = 500
    duplicate_window_seconds = 2            # 0 turns the duplicate check off
    reference_max_age_seconds = 15
    allowed_order_types = ["LIMIT", "MARKET"]
    allowed_products = ["INTRADAY", "DELIVERY", "CARRY"]
    restricted = ["NSE:YESBANK"]            # covered, but refused

    [desk.max_orders_per_second]            # per order source; default fills the rest
    default = 2
    ticket = 5

    [breakers]                              # optional; these are the defaults
    warn_fractions = [0.8, 0.9]

    [defaults]                              # values only: covers nothing by itself
    max_order_lots = 1000
    max_order_value_inr = 200000
    price_collar_pct = 5
    max_position_lots = 3000
    max_position_value_inr = 500000

    [underlyings.NIFTY]                     # covers every NIFTY contract
    max_order_lots = 1
    max_gross_exposure_inr = 2000000

    [instruments."NSE:RELIANCE"]            # covers one instrument
    max_order_value_inr = "150000.50"

Default deny: an instrument is covered only by its own ``[instruments."KEY"]`` section or by
its underlying's ``[underlyings.NAME]``; ``[defaults]`` only supplies values. A per-instrument
value comes from the instrument's section, else its underlying's, else ``[defaults]``.

Unknown keys are refused (a typo must not silently drop a limit), and so is every value that
makes no sense; :class:`LimitsError` lists every problem with its field path. Sections naming
instruments the broker does not list are not errors here: :meth:`RiskLimits.review` reports them
against the desk's instrument list.

:func:`validate_document` gives the checked :class:`LimitsDocument`; ``app.engine.risk.limits``
compiles it into what the gate reads.
"""

from __future__ import annotations

import difflib
import itertools
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    PlainSerializer,
    ValidationError,
)

from app.domain.instruments import Exchange
from app.domain.money import MoneyError, format_inr, paise_to_rupees, rupees_to_paise
from app.domain.orders import OrderSource, OrderType, Product
from app.validation_messages import (
    Loc,
    MessageStyle,
    describe_errors,
    model_at,
    quote_key,
)

from .document_error import DocumentError

_MAX_COUNT = 1_000_000_000
_MAX_SECONDS = 86_400  # nothing on a desk waits longer than a day
_DEFAULT_RATE_KEY = "default"


class LimitsError(DocumentError):
    """The limits document cannot be used. ``problems`` holds one line per problem, each naming its field."""

    kind = "limits"


# --------------------------------------------------------------------------------------------
# Value checks: each raises ValueError saying what is wrong; the allowed values come from _ALLOWED
# --------------------------------------------------------------------------------------------


class _Invalid(ValueError):
    """A value the document cannot use; a ValueError, so pydantic reports it against its field."""


def _number(value: Any) -> Decimal:
    # TOML gives int, float or str; a bool is an int to Python but never a number here.
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise _Invalid("not a number")
    try:
        amount = Decimal(repr(value) if isinstance(value, float) else value)
    except (InvalidOperation, ValueError):
        raise _Invalid("not a number") from None
    if not amount.is_finite():
        raise _Invalid("not a finite number")
    return amount


def _rupees(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise _Invalid("not an amount of rupees")
    try:
        paise = rupees_to_paise(value)
    except MoneyError as exc:
        raise _Invalid(str(exc)) from None
    if paise <= 0:
        raise _Invalid("must be more than zero")
    return paise


def _rupees_text(paise: int) -> str:
    return str(paise_to_rupees(paise))


def _percent_bps(value: Any) -> int:
    amount = _number(value)
    if not 0 < amount <= 100:
        raise _Invalid("out of range")
    bps = amount * 100
    if bps != bps.to_integral_value():
        raise _Invalid("finer than 0.01 %")
    return int(bps)


def _bps_text(bps: int) -> str:
    return f"{bps // 100}.{bps % 100:02d}"


def _seconds(value: Any) -> float:
    amount = _number(value)
    if not 0 < amount <= _MAX_SECONDS:
        raise _Invalid("out of range")
    return float(amount)


def _window_seconds(value: Any) -> float:
    amount = _number(value)
    if not 0 <= amount <= _MAX_SECONDS:
        raise _Invalid("out of range")
    return float(amount)


def _count(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise _Invalid("not a whole number")
    if not 1 <= value <= _MAX_COUNT:
        raise _Invalid("out of range")
    return value


def _fractions(value: Any) -> tuple[float, ...]:
    if not isinstance(value, (list, tuple)) or not value:
        raise _Invalid("not a non-empty list")
    fractions = []
    for item in value:
        try:
            amount = None if isinstance(item, str) else _number(item)
        except ValueError:
            amount = None
        if amount is None or not 0 < amount < 1:
            raise _Invalid(f"{item!r} is not a number between 0 and 1")
        fractions.append(float(amount))
    if any(b <= a for a, b in itertools.pairwise(fractions)):
        raise _Invalid("not strictly increasing")
    return tuple(fractions)


def _choices(value: Any, kind: type[OrderType | Product]) -> list[Any]:
    if not isinstance(value, (list, tuple)) or not value:
        raise _Invalid("not a non-empty list")
    chosen = set()
    for item in value:
        name = item.strip().upper() if isinstance(item, str) else ""
        if name not in kind.__members__:
            raise _Invalid(f"{item!r} is unknown")
        chosen.add(kind[name])
    return sorted(chosen)


def _order_types(value: Any) -> list[OrderType]:
    return _choices(value, OrderType)


def _products(value: Any) -> list[Product]:
    return _choices(value, Product)


_RATE_KEYS = (_DEFAULT_RATE_KEY, *(source.value for source in OrderSource))


def _rates(value: Any) -> dict[str, int]:
    if not isinstance(value, dict):
        raise _Invalid("not a table")
    for key in value:
        if key not in _RATE_KEYS:
            close = difflib.get_close_matches(str(key), _RATE_KEYS, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise _Invalid(f"key {key!r} is not an order source{hint}")
    rates: dict[str, int] = {}
    for key, rate in value.items():
        try:
            rates[key] = _count(rate)
        except ValueError as exc:
            raise _Invalid(f"{key} = {rate!r}: {exc}") from None
    # Normalised to every source by name: "default = 5" and naming all seven as 5 mean the same.
    missing = [source.value for source in OrderSource if source.value not in rates]
    if missing and _DEFAULT_RATE_KEY not in rates:
        raise _Invalid(f"no rate for {', '.join(missing)} and no 'default' to fill them")
    fill = rates.get(_DEFAULT_RATE_KEY, 0)
    return {source.value: rates.get(source.value, fill) for source in OrderSource}


_KEY_RE = re.compile(r"^[^\s:]+(:[^\s:]+)+$")


def _instrument_key(value: Any) -> str:
    if not isinstance(value, str) or not _KEY_RE.match(value) or value.split(":")[0] not in Exchange.__members__:
        raise _Invalid(f"{value!r} is not an instrument key")
    return value


def _instrument_keys(value: Any) -> list[str]:
    if not isinstance(value, (list, tuple)):
        raise _Invalid("not a list")
    return sorted({_instrument_key(item) for item in value})


def _underlying_name(value: Any) -> str:
    if not isinstance(value, str) or not re.fullmatch(r"[^\s:]+", value):
        raise _Invalid(f"{value!r} is not an underlying name")
    return value


def _strict_bool(value: Any) -> bool:
    if not isinstance(value, bool):
        raise _Invalid("not true or false")
    return value


_Rupees = Annotated[int, BeforeValidator(_rupees), PlainSerializer(_rupees_text, return_type=str)]
_MaybeRupees = Annotated[
    int | None, BeforeValidator(_rupees), PlainSerializer(_rupees_text, return_type=str, when_used="unless-none")
]
_MaybeBps = Annotated[
    int | None, BeforeValidator(_percent_bps), PlainSerializer(_bps_text, return_type=str, when_used="unless-none")
]
_Count = Annotated[int, BeforeValidator(_count)]
_MaybeCount = Annotated[int | None, BeforeValidator(_count)]
_Seconds = Annotated[float, BeforeValidator(_seconds)]
_Window = Annotated[float, BeforeValidator(_window_seconds)]
_InstrumentKey = Annotated[str, BeforeValidator(_instrument_key)]
_UnderlyingName = Annotated[str, BeforeValidator(_underlying_name)]

_MONEY = "an amount of rupees above zero, exact to the paisa (25000, 1e5 or \"1250.50\")"
_ALLOWED: dict[str, str] = {
    "max_gross_exposure_inr": _MONEY,
    "max_net_exposure_inr": _MONEY + ", at most the gross cap",
    "daily_loss_limit_inr": _MONEY,
    "trailing_loss_limit_inr": _MONEY + " (leave it out to turn the trailing limit off)",
    "max_open_orders": f"a whole number from 1 to {_MAX_COUNT}",
    "max_orders_per_day": f"a whole number from 1 to {_MAX_COUNT}",
    "duplicate_window_seconds": f"seconds from 0 (off) to {_MAX_SECONDS}",
    "reference_max_age_seconds": f"seconds above 0, at most {_MAX_SECONDS}",
    "allowed_order_types": f"a non-empty list of {', '.join(OrderType.__members__)}",
    "allowed_products": f"a non-empty list of {', '.join(Product.__members__)}",
    "enforce_trading_hours": "true or false",
    "restricted": "a list of instrument keys such as \"NSE:RELIANCE\"",
    "max_orders_per_second": (
        f"a table of order sources ({', '.join(_RATE_KEYS)}) to whole numbers from 1 to {_MAX_COUNT}; "
        "'default' is needed unless every source is named"
    ),
    "broker_disconnect_seconds": f"seconds above 0, at most {_MAX_SECONDS}",
    "stale_data_seconds": f"seconds above 0, at most {_MAX_SECONDS}",
    "error_storm_count": f"a whole number from 1 to {_MAX_COUNT}",
    "error_storm_seconds": f"seconds above 0, at most {_MAX_SECONDS}",
    "warn_fractions": "a non-empty list of numbers strictly between 0 and 1, strictly increasing",
    "max_order_lots": f"a whole number of lots from 1 to {_MAX_COUNT}",
    "max_order_value_inr": _MONEY,
    "price_collar_pct": "a percentage above 0 and at most 100, in steps of 0.01 (5 = 5 %)",
    "max_position_lots": f"a whole number of lots from 1 to {_MAX_COUNT}, at least max_order_lots",
    "max_position_value_inr": _MONEY + ", at least max_order_value_inr",
    "instrument key": "EXCHANGE:SYMBOL[:...] with EXCHANGE one of " + ", ".join(Exchange.__members__),
    "underlying name": "a name without spaces or colons, such as NIFTY",
}

# --------------------------------------------------------------------------------------------
# The document model
# --------------------------------------------------------------------------------------------


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class InstrumentTerms(_Section):
    """Per-instrument caps; each may be left to a wider section."""

    max_order_lots: _MaybeCount = None
    max_order_value_inr: _MaybeRupees = None
    price_collar_pct: _MaybeBps = None
    max_position_lots: _MaybeCount = None
    max_position_value_inr: _MaybeRupees = None


class UnderlyingSection(InstrumentTerms):
    """Covers every contract of one underlying; may cap the underlying's gross and net exposure."""

    max_gross_exposure_inr: _MaybeRupees = None
    max_net_exposure_inr: _MaybeRupees = None


class DeskSection(_Section):
    """Desk-wide caps and switches."""

    max_gross_exposure_inr: _Rupees
    max_net_exposure_inr: _Rupees
    daily_loss_limit_inr: _Rupees
    trailing_loss_limit_inr: _MaybeRupees = None
    max_open_orders: _Count
    max_orders_per_day: _Count
    duplicate_window_seconds: _Window
    reference_max_age_seconds: _Seconds
    allowed_order_types: Annotated[list[OrderType], BeforeValidator(_order_types)]
    allowed_products: Annotated[list[Product], BeforeValidator(_products)]
    enforce_trading_hours: Annotated[bool, BeforeValidator(_strict_bool)] = True
    restricted: Annotated[list[str], BeforeValidator(_instrument_keys)] = []
    max_orders_per_second: Annotated[dict[str, int], BeforeValidator(_rates)]


class BreakerSection(_Section):
    """Breaker thresholds; every field has a default."""

    broker_disconnect_seconds: _Seconds = 10.0
    stale_data_seconds: _Seconds = 30.0
    error_storm_count: _Count = 5
    error_storm_seconds: _Seconds = 60.0
    warn_fractions: Annotated[tuple[float, ...], BeforeValidator(_fractions)] = (0.8, 0.9)


class LimitsDocument(_Section):
    """The whole limits document."""

    desk: DeskSection
    breakers: BreakerSection = BreakerSection()
    defaults: InstrumentTerms = InstrumentTerms()
    underlyings: dict[_UnderlyingName, UnderlyingSection] = {}
    instruments: dict[_InstrumentKey, InstrumentTerms] = {}


_TERMS = tuple(InstrumentTerms.model_fields)

# --------------------------------------------------------------------------------------------
# Resolution: instrument > underlying > defaults
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Level:
    """One section's terms in the resolution order, with the table it is written as."""

    label: str  # the TOML table, as the operator reads it: "[defaults]"
    terms: InstrumentTerms


def resolve(levels: list[Level]) -> tuple[dict[str, tuple[int, str]], list[str]]:
    """Merge the levels (later wins) into field -> (value, label), and list the fields set nowhere."""
    merged: dict[str, tuple[int, str]] = {}
    for level in levels:
        for name in _TERMS:
            value = getattr(level.terms, name)
            if value is not None:
                merged[name] = (value, level.label)
    return merged, [name for name in _TERMS if name not in merged]


def _show_term(name: str, value: int) -> str:
    if name.endswith("_inr"):
        return format_inr(value)
    return str(value)


def contradictions(merged: dict[str, tuple[int, str]], owner: str | None) -> list[str]:
    """Position caps below order caps. Only those involving ``owner`` (None: any), so each is reported once."""
    found = []
    for order_field, position_field in (("max_order_lots", "max_position_lots"), ("max_order_value_inr", "max_position_value_inr")):
        if order_field not in merged or position_field not in merged:
            continue
        (order_cap, order_from), (position_cap, position_from) = merged[order_field], merged[position_field]
        if position_cap < order_cap and (owner is None or owner in (order_from, position_from)):
            found.append(
                f"{position_field} = {_show_term(position_field, position_cap)} (from {position_from}) is below "
                f"{order_field} = {_show_term(order_field, order_cap)} (from {order_from}): one order would break "
                "the position limit; raise the position limit or lower the order limit"
            )
    return found


# --------------------------------------------------------------------------------------------
# Reading and checking
# --------------------------------------------------------------------------------------------


def _check(document: LimitsDocument) -> list[str]:
    """What the field checks cannot see: values that contradict each other once overrides apply."""
    problems = []
    desk = document.desk
    if desk.max_net_exposure_inr > desk.max_gross_exposure_inr:
        problems.append(
            f"desk.max_net_exposure_inr = {format_inr(desk.max_net_exposure_inr)} is above desk.max_gross_exposure_inr = "
            f"{format_inr(desk.max_gross_exposure_inr)}: net exposure can never exceed gross; allowed: at most the gross cap"
        )
    defaults = Level("[defaults]", document.defaults)
    problems += [f"defaults: {text}" for text in contradictions(resolve([defaults])[0], defaults.label)]
    for name, section in document.underlyings.items():
        path = f"underlyings.{quote_key(name)}"
        level = Level(f"[{path}]", section)
        merged, missing = resolve([defaults, level])
        problems += [f"{path}.{field}: missing; set it here or in [defaults]; allowed: {_ALLOWED[field]}" for field in missing]
        problems += [f"{path}: {text}" for text in contradictions(merged, level.label)]
        gross, net = section.max_gross_exposure_inr, section.max_net_exposure_inr
        if net is not None and gross is None:
            problems.append(f"{path}.max_net_exposure_inr is set without max_gross_exposure_inr; set both, or the gross cap alone")
        elif net is not None and gross is not None and net > gross:
            problems.append(
                f"{path}.max_net_exposure_inr = {format_inr(net)} is above max_gross_exposure_inr = {format_inr(gross)}: "
                "net exposure can never exceed gross; allowed: at most the gross cap"
            )
    for key, terms in document.instruments.items():
        path = f"instruments.{quote_key(key)}"
        level = Level(f"[{path}]", terms)
        # The key names the symbol, which is the underlying for every listed contract; the exact
        # underlying is only known with the instrument (see RiskLimits._compile_instrument).
        guess = key.split(":")[1]
        underlying = document.underlyings.get(guess)
        levels = [defaults] + ([Level(f"[underlyings.{quote_key(guess)}]", underlying)] if underlying else []) + [level]
        merged, missing = resolve(levels)
        if underlying is None:  # otherwise the underlying's own check already named the missing fields
            problems += [f"{path}.{field}: missing; set it here or in [defaults]; allowed: {_ALLOWED[field]}" for field in missing]
        problems += [f"{path}: {text}" for text in contradictions(merged, level.label)]
    return problems



def read_limits_text(path: Path) -> str:
    """The text of a limits file; :class:`LimitsError` when it cannot be read as UTF-8."""
    try:
        return path.read_bytes().decode("utf-8")
    except FileNotFoundError:
        raise LimitsError(str(path), ["file not found"]) from None
    except UnicodeDecodeError as exc:
        raise LimitsError(str(path), [f"not UTF-8 text ({exc.reason} at byte {exc.start})"]) from None
    except OSError as exc:
        raise LimitsError(str(path), [f"cannot be read: {exc.strerror or exc}"]) from None


def toml_tables(text: str, origin: str) -> dict[str, Any]:
    """The tables of a TOML text; :class:`LimitsError` naming the line and column of a syntax error."""
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        # Python 3.11 puts "(at line L, column C)" in the message itself.
        raise LimitsError(origin, [f"not valid TOML: {exc}; see https://toml.io for the syntax"]) from None


def validate_document(data: Mapping[str, Any], origin: str) -> LimitsDocument:
    """The checked document; :class:`LimitsError` listing every problem, each naming its field."""
    try:
        document = LimitsDocument.model_validate(data)
    except ValidationError as exc:
        raise LimitsError(origin, describe_errors(exc, _STYLE)) from None
    problems = _check(document)
    if problems:
        raise LimitsError(origin, problems)
    return document


def _allowed(loc: Loc) -> str:
    if loc and loc[-1] == "[key]":  # pydantic's location of a section name that failed its check
        return _ALLOWED["instrument key" if loc[0] == "instruments" else "underlying name"]
    if not loc or model_at(LimitsDocument, loc[:-1]) is None:
        return ""
    return _ALLOWED.get(str(loc[-1]), "")


# One file, so no source to name; an unknown key's message already names its section.
_STYLE = MessageStyle(
    root=LimitsDocument, item="key", whole="(document)", value_width=80, unknown_in_full=False, allowed=_allowed
)
