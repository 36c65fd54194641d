"""The risk limits compiled into what the gate reads: money in paise, quantities in units, times in ns.

The document, its checks and its messages are in :mod:`app.engine.risk.limits_schema`; this
module turns a checked :class:`LimitsDocument` into :class:`RiskLimits`: desk and breaker records
built once, and one :class:`InstrumentLimits` per instrument, resolved (instrument > underlying >
defaults) on first use and memoised.

Default deny: an instrument is covered only by its own ``[instruments."KEY"]`` section or by
its underlying's ``[underlyings.NAME]``; ``[defaults]`` only supplies values. Sections naming
instruments the broker does not list are not errors: :meth:`RiskLimits.review` reports them
against the desk's instrument list.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from types import MappingProxyType
from typing import Any

from app.domain.instruments import Instrument
from app.domain.orders import OrderSource, OrderType, Product
from app.validation_messages import field_path, quote_key

from .limits_schema import (
    BreakerSection,
    DeskSection,
    InstrumentTerms,
    Level,
    LimitsDocument,
    LimitsError,
    UnderlyingSection,
    contradictions,
    read_limits_text,
    resolve,
    toml_tables,
    validate_document,
)

# Everything importable from here before the schema moved to limits_schema still is.
__all__ = [
    "DEFAULT_LIMITS_PATH",
    "NS_PER_SECOND",
    "BreakerLimits",
    "BreakerSection",
    "Coverage",
    "DeskLimits",
    "DeskSection",
    "InstrumentLimits",
    "InstrumentTerms",
    "LimitsDocument",
    "LimitsError",
    "RiskLimits",
    "UnderlyingLimits",
    "UnderlyingSection",
    "field_path",
    "load_limits_file",
    "parse_document",
    "parse_limits",
]

# app/engine/risk/limits.py -> parents[3] is the repository root; an editable install keeps it there.
DEFAULT_LIMITS_PATH = Path(__file__).resolve().parents[3] / "resources" / "limits.toml"

NS_PER_SECOND = 1_000_000_000

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


@dataclass(frozen=True, slots=True)
class _Resolved:
    max_order_lots: int
    max_order_value: int
    price_collar_bps: int
    max_position_lots: int
    max_position_value: int


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
                warnings.append(f"instruments.{quote_key(key)}: not in the desk's instrument list; the section has no effect")
        for name in self._underlyings:
            if name not in underlyings:
                warnings.append(f"underlyings.{quote_key(name)}: no instrument in the desk's list has this underlying")
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
        levels = [Level("[defaults]", self._document.defaults)]
        if underlying is not None:
            levels.append(Level(f"[underlyings.{quote_key(instrument.underlying)}]", underlying))
        if own is not None:
            levels.append(Level(f"[instruments.{quote_key(instrument.key)}]", own))
        merged, missing = resolve(levels)
        # Parse time checked each section with the underlying its key names; an instrument whose
        # real underlying differs can still come out incomplete or contradictory: fail closed.
        if missing:
            return None, f"no value for {', '.join(missing)}"
        clashes = contradictions(merged, None)
        if clashes:
            return None, clashes[0]
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
    return parse_limits(read_limits_text(path), str(path))


def parse_limits(text: str, origin: str) -> RiskLimits:
    """Compile limits from TOML text; ``origin`` (a file name) goes into every error."""
    return parse_document(toml_tables(text, origin), origin)


def parse_document(data: Mapping[str, Any], origin: str) -> RiskLimits:
    """Compile limits from a parsed document: TOML tables, or a stored :meth:`RiskLimits.document`."""
    document = validate_document(data, origin)
    return RiskLimits(_desk_limits(document.desk), _breaker_limits(document.breakers), document)


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

