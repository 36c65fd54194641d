"""The risk limits: a TOML document a trader can read, checked, and compiled into what the gate reads.

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
"""

from __future__ import annotations

import difflib
import itertools
import re
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path
from types import MappingProxyType
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    PlainSerializer,
    ValidationError,
)

from app.domain.instruments import Exchange, Instrument
from app.domain.money import MoneyError, format_inr, paise_to_rupees, rupees_to_paise
from app.domain.orders import OrderSource, OrderType, Product

from .document_error import DocumentError

# app/engine/risk/limits.py -> parents[3] is the repository root; an editable install keeps it there.
DEFAULT_LIMITS_PATH = Path(__file__).resolve().parents[3] / "resources" / "limits.toml"

NS_PER_SECOND = 1_000_000_000
_MAX_COUNT = 1_000_000_000
_MAX_SECONDS = 86_400  # nothing on a desk waits longer than a day
_DEFAULT_RATE_KEY = "default"


class LimitsError(DocumentError):
    """The limits document cannot be used. ``problems`` holds one line per problem, each naming its field."""

    kind = "limits"


# --------------------------------------------------------------------------------------------
# Compiled limits: what the gate reads (money in paise, quantities in units, times in ns)
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class InstrumentLimits:
    """The per-instrument caps after resolution (instrument > underlying > defaults)."""

    instrument_key: str
    underlying: str
    max_order_quantity: int
    max_order_value: int
    price_collar_bps: int
    max_position_quantity: int
    max_position_value: int
    restricted: bool


@dataclass(frozen=True, slots=True)
class UnderlyingLimits:
    """Exposure caps over every contract of one underlying."""

    max_gross_exposure: int
    max_net_exposure: int


@dataclass(frozen=True, slots=True)
class DeskLimits:
    """Desk-wide caps and switches."""

    max_gross_exposure: int
    max_net_exposure: int
    daily_loss_limit: int
    trailing_loss_limit: int | None
    max_open_orders: int
    max_orders_per_day: int
    duplicate_window_ns: int
    reference_max_age_ns: int
    allowed_order_types: frozenset[OrderType]
    allowed_products: frozenset[Product]
    enforce_trading_hours: bool
    max_orders_per_second: Mapping[OrderSource, int]


@dataclass(frozen=True, slots=True)
class BreakerLimits:
    """Thresholds of the automatic breakers and of the early warnings."""

    broker_disconnect_seconds: float
    stale_data_seconds: float
    error_storm_count: int
    error_storm_seconds: float
    warn_fractions: tuple[float, ...]


@dataclass(frozen=True, slots=True)
class Coverage:
    """How a set of limits meets the desk's instrument list (for the operator, never for the gate)."""

    covered: tuple[str, ...]
    uncovered: tuple[str, ...]
    warnings: tuple[str, ...]


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
class _Level:
    label: str  # the TOML table, as the operator reads it: "[defaults]"
    terms: InstrumentTerms


@dataclass(frozen=True, slots=True)
class _Resolved:
    max_order_lots: int
    max_order_value: int
    price_collar_bps: int
    max_position_lots: int
    max_position_value: int


def _resolve(levels: list[_Level]) -> tuple[dict[str, tuple[int, str]], list[str]]:
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


def _contradictions(merged: dict[str, tuple[int, str]], owner: str | None) -> list[str]:
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


def _compiled(merged: dict[str, tuple[int, str]]) -> _Resolved:
    return _Resolved(
        max_order_lots=merged["max_order_lots"][0],
        max_order_value=merged["max_order_value_inr"][0],
        price_collar_bps=merged["price_collar_pct"][0],
        max_position_lots=merged["max_position_lots"][0],
        max_position_value=merged["max_position_value_inr"][0],
    )


# --------------------------------------------------------------------------------------------
# RiskLimits
# --------------------------------------------------------------------------------------------


class RiskLimits:
    """Compiled limits: what the gate reads. Immutable (the per-instrument memo only caches)."""

    __slots__ = ("_document", "_exposure", "_instruments", "_memo", "_restricted", "_underlyings", "breakers", "desk")

    def __init__(self, desk: DeskLimits, breakers: BreakerLimits, document: LimitsDocument | None) -> None:
        self.desk = desk
        self.breakers = breakers
        self._document = document
        self._underlyings: Mapping[str, UnderlyingSection] = document.underlyings if document else {}
        self._instruments: Mapping[str, InstrumentTerms] = document.instruments if document else {}
        self._restricted = frozenset(document.desk.restricted) if document else frozenset()
        self._exposure: dict[str, UnderlyingLimits] = {
            name: UnderlyingLimits(section.max_gross_exposure_inr, section.max_net_exposure_inr or section.max_gross_exposure_inr)
            for name, section in self._underlyings.items()
            if section.max_gross_exposure_inr is not None
        }
        self._memo: dict[str, InstrumentLimits | None] = {}

    @classmethod
    def deny_all(cls) -> RiskLimits:
        """Covers no instrument, allows nothing: in force before any valid limits exist."""
        return cls(_DENY_DESK, _DEFAULT_BREAKERS, None)

    def for_instrument(self, instrument: Instrument) -> InstrumentLimits | None:
        """The instrument's caps, or None when no section covers it (default deny). O(1) after the first call."""
        try:
            return self._memo[instrument.key]
        except KeyError:
            limits, _problem = self._compile_instrument(instrument)
            self._memo[instrument.key] = limits
            return limits

    def for_underlying(self, underlying: str) -> UnderlyingLimits | None:
        """The underlying's exposure caps, or None when only the desk caps apply."""
        return self._exposure.get(underlying)

    def document(self) -> dict[str, Any]:
        """The normalised document (JSON-able): equal limits give equal documents, whatever the spelling."""
        if self._document is None:
            return {}
        data: dict[str, Any] = self._document.model_dump(mode="json", exclude_none=True)
        return data

    def review(self, instruments: Iterable[Instrument]) -> Coverage:
        """Which of ``instruments`` are covered, and every section or key that does not meet them."""
        universe = {instrument.key: instrument for instrument in instruments}
        underlyings = {instrument.underlying for instrument in universe.values()}
        warnings: list[str] = []
        for key in self._instruments:
            if key not in universe:
                warnings.append(f"instruments.{_quote(key)}: not in the desk's instrument list; the section has no effect")
        for name in self._underlyings:
            if name not in underlyings:
                warnings.append(f"underlyings.{_quote(name)}: no instrument in the desk's list has this underlying")
        for key in sorted(self._restricted):
            if key not in universe:
                warnings.append(f"desk.restricted: {key} is not in the desk's instrument list")
        covered, uncovered = [], []
        for key, instrument in universe.items():
            limits, problem = self._compile_instrument(instrument)
            if limits is not None:
                covered.append(key)
                continue
            uncovered.append(key)
            if problem is not None:
                warnings.append(f"{key}: {problem}; its orders are refused (NO_LIMIT)")
        if uncovered:
            shown = ", ".join(uncovered[:20]) + (f" and {len(uncovered) - 20} more" if len(uncovered) > 20 else "")
            warnings.append(f"{len(uncovered)} of {len(universe)} instruments have no limits, so their orders are refused: {shown}")
        return Coverage(tuple(covered), tuple(uncovered), tuple(warnings))

    def _compile_instrument(self, instrument: Instrument) -> tuple[InstrumentLimits | None, str | None]:
        underlying = self._underlyings.get(instrument.underlying)
        own = self._instruments.get(instrument.key)
        if self._document is None or (underlying is None and own is None):
            return None, None
        levels = [_Level("[defaults]", self._document.defaults)]
        if underlying is not None:
            levels.append(_Level(f"[underlyings.{_quote(instrument.underlying)}]", underlying))
        if own is not None:
            levels.append(_Level(f"[instruments.{_quote(instrument.key)}]", own))
        merged, missing = _resolve(levels)
        # Parse time checked each section with the underlying its key names; an instrument whose
        # real underlying differs can still come out incomplete or contradictory: fail closed.
        if missing:
            return None, f"no value for {', '.join(missing)}"
        contradictions = _contradictions(merged, None)
        if contradictions:
            return None, contradictions[0]
        terms = _compiled(merged)
        return InstrumentLimits(
            instrument_key=instrument.key,
            underlying=instrument.underlying,
            max_order_quantity=min(terms.max_order_lots * instrument.lot_size, instrument.freeze_quantity),
            max_order_value=terms.max_order_value,
            price_collar_bps=terms.price_collar_bps,
            max_position_quantity=terms.max_position_lots * instrument.lot_size,
            max_position_value=terms.max_position_value,
            restricted=instrument.key in self._restricted,
        ), None


_DEFAULT_BREAKERS = BreakerLimits(
    broker_disconnect_seconds=10.0, stale_data_seconds=30.0, error_storm_count=5, error_storm_seconds=60.0,
    warn_fractions=(0.8, 0.9),
)

# Every cap at zero: should anything reach past the missing instrument limits, it still stops.
_DENY_DESK = DeskLimits(
    max_gross_exposure=0, max_net_exposure=0, daily_loss_limit=0, trailing_loss_limit=None, max_open_orders=0,
    max_orders_per_day=0, duplicate_window_ns=0, reference_max_age_ns=0, allowed_order_types=frozenset(),
    allowed_products=frozenset(), enforce_trading_hours=True,
    max_orders_per_second=MappingProxyType({source: 0 for source in OrderSource}),
)

# --------------------------------------------------------------------------------------------
# Parsing and compiling
# --------------------------------------------------------------------------------------------


def load_limits_file(path: Path) -> RiskLimits:
    """Read and compile a limits file; :class:`LimitsError` for anything wrong with it."""
    try:
        text = path.read_bytes().decode("utf-8")
    except FileNotFoundError:
        raise LimitsError(str(path), ["file not found"]) from None
    except UnicodeDecodeError as exc:
        raise LimitsError(str(path), [f"not UTF-8 text ({exc.reason} at byte {exc.start})"]) from None
    except OSError as exc:
        raise LimitsError(str(path), [f"cannot be read: {exc.strerror or exc}"]) from None
    return parse_limits(text, str(path))


def parse_limits(text: str, origin: str) -> RiskLimits:
    """Compile limits from TOML text; ``origin`` (a file name) goes into every error."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        # Python 3.11 puts "(at line L, column C)" in the message itself.
        raise LimitsError(origin, [f"not valid TOML: {exc}; see https://toml.io for the syntax"]) from None
    return parse_document(data, origin)


def parse_document(data: Mapping[str, Any], origin: str) -> RiskLimits:
    """Compile limits from a parsed document: TOML tables, or a stored :meth:`RiskLimits.document`."""
    try:
        document = LimitsDocument.model_validate(data)
    except ValidationError as exc:
        raise LimitsError(origin, [_describe(error) for error in exc.errors(include_url=False)]) from None
    problems = _check(document)
    if problems:
        raise LimitsError(origin, problems)
    return RiskLimits(_desk_limits(document.desk), _breaker_limits(document.breakers), document)


def _check(document: LimitsDocument) -> list[str]:
    """What the field checks cannot see: values that contradict each other once overrides apply."""
    problems = []
    desk = document.desk
    if desk.max_net_exposure_inr > desk.max_gross_exposure_inr:
        problems.append(
            f"desk.max_net_exposure_inr = {format_inr(desk.max_net_exposure_inr)} is above desk.max_gross_exposure_inr = "
            f"{format_inr(desk.max_gross_exposure_inr)}: net exposure can never exceed gross; allowed: at most the gross cap"
        )
    defaults = _Level("[defaults]", document.defaults)
    problems += [f"defaults: {text}" for text in _contradictions(_resolve([defaults])[0], defaults.label)]
    for name, section in document.underlyings.items():
        path = f"underlyings.{_quote(name)}"
        level = _Level(f"[{path}]", section)
        merged, missing = _resolve([defaults, level])
        problems += [f"{path}.{field}: missing; set it here or in [defaults]; allowed: {_ALLOWED[field]}" for field in missing]
        problems += [f"{path}: {text}" for text in _contradictions(merged, level.label)]
        gross, net = section.max_gross_exposure_inr, section.max_net_exposure_inr
        if net is not None and gross is None:
            problems.append(f"{path}.max_net_exposure_inr is set without max_gross_exposure_inr; set both, or the gross cap alone")
        elif net is not None and gross is not None and net > gross:
            problems.append(
                f"{path}.max_net_exposure_inr = {format_inr(net)} is above max_gross_exposure_inr = {format_inr(gross)}: "
                "net exposure can never exceed gross; allowed: at most the gross cap"
            )
    for key, terms in document.instruments.items():
        path = f"instruments.{_quote(key)}"
        level = _Level(f"[{path}]", terms)
        # The key names the symbol, which is the underlying for every listed contract; the exact
        # underlying is only known with the instrument (see RiskLimits._compile_instrument).
        guess = key.split(":")[1]
        underlying = document.underlyings.get(guess)
        levels = [defaults] + ([_Level(f"[underlyings.{_quote(guess)}]", underlying)] if underlying else []) + [level]
        merged, missing = _resolve(levels)
        if underlying is None:  # otherwise the underlying's own check already named the missing fields
            problems += [f"{path}.{field}: missing; set it here or in [defaults]; allowed: {_ALLOWED[field]}" for field in missing]
        problems += [f"{path}: {text}" for text in _contradictions(merged, level.label)]
    return problems


def _desk_limits(desk: DeskSection) -> DeskLimits:
    return DeskLimits(
        max_gross_exposure=desk.max_gross_exposure_inr,
        max_net_exposure=desk.max_net_exposure_inr,
        daily_loss_limit=desk.daily_loss_limit_inr,
        trailing_loss_limit=desk.trailing_loss_limit_inr,
        max_open_orders=desk.max_open_orders,
        max_orders_per_day=desk.max_orders_per_day,
        duplicate_window_ns=_to_ns(desk.duplicate_window_seconds),
        reference_max_age_ns=_to_ns(desk.reference_max_age_seconds),
        allowed_order_types=frozenset(desk.allowed_order_types),
        allowed_products=frozenset(desk.allowed_products),
        enforce_trading_hours=desk.enforce_trading_hours,
        max_orders_per_second=MappingProxyType({OrderSource(key): rate for key, rate in desk.max_orders_per_second.items()}),
    )


def _breaker_limits(breakers: BreakerSection) -> BreakerLimits:
    return BreakerLimits(
        broker_disconnect_seconds=breakers.broker_disconnect_seconds,
        stale_data_seconds=breakers.stale_data_seconds,
        error_storm_count=breakers.error_storm_count,
        error_storm_seconds=breakers.error_storm_seconds,
        warn_fractions=breakers.warn_fractions,
    )


def _to_ns(seconds: float) -> int:
    # Through the shortest repr: 0.3 s is 300,000,000 ns, not 299,999,999.
    return int(Decimal(repr(seconds)) * NS_PER_SECOND)


# --------------------------------------------------------------------------------------------
# Error messages
# --------------------------------------------------------------------------------------------

_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")


def _quote(key: str) -> str:
    """A key as TOML would need it written: NIFTY, "NSE:RELIANCE"."""
    return key if _BARE_KEY.match(key) else '"' + key.replace("\\", "\\\\").replace('"', '\\"') + '"'


def field_path(loc: Iterable[str | int]) -> str:
    """A location as a TOML path: ``instruments."NSE:RELIANCE".max_order_lots``, ``desk.restricted[2]``."""
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += ("." if text else "") + _quote(part)
    return text


def _section_model(loc: tuple[str | int, ...]) -> type[BaseModel] | None:
    if not loc:
        return LimitsDocument
    sections: dict[tuple[str | int, ...], type[BaseModel]] = {
        ("desk",): DeskSection, ("breakers",): BreakerSection, ("defaults",): InstrumentTerms,
    }
    if len(loc) == 2 and loc[0] == "underlyings":
        return UnderlyingSection
    if len(loc) == 2 and loc[0] == "instruments":
        return InstrumentTerms
    return sections.get(loc)


def _show(value: Any) -> str:
    if isinstance(value, dict):
        return "{...}"
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _describe(error: Any) -> str:
    loc: tuple[str | int, ...] = tuple(error.get("loc", ()))
    kind = error.get("type", "")
    message = str(error.get("msg", "invalid value")).removeprefix("Value error, ")
    if loc and loc[-1] == "[key]":
        what = "instrument key" if loc[0] == "instruments" else "underlying name"
        return f"{field_path(loc[:-1])}: {message}; allowed: {_ALLOWED[what]}"
    path = field_path(loc) or "(document)"
    name = str(loc[-1]) if loc else ""
    if kind == "extra_forbidden":
        model = _section_model(loc[:-1])
        keys = list(model.model_fields) if model is not None else []
        close = difflib.get_close_matches(name, keys, n=1)
        hint = f" (did you mean {close[0]}?)" if close else ""
        section = f"[{field_path(loc[:-1])}]" if loc[:-1] else "the top level"
        return f"{path}: unknown key{hint}; allowed in {section}: {', '.join(keys)}"
    if kind == "missing":
        what = _ALLOWED.get(name, f"a [{path}] table" if _section_model(loc) else "a value")
        return f"{path}: missing; allowed: {what}"
    if kind in ("model_type", "dict_type"):
        return f"{path} = {_show(error.get('input'))}: must be a table ([{path}])"
    allowed = _ALLOWED.get(name)
    return f"{path} = {_show(error.get('input'))}: {message}" + (f"; allowed: {allowed}" if allowed else "")
