"""Limits documents for tests: wide limits that cover given instruments, with edits on top."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from app.domain.instruments import Instrument
from app.engine.risk.limits import RiskLimits, parse_limits

_DESK = {
    "max_gross_exposure_inr": "1e12",
    "max_net_exposure_inr": "1e12",
    "daily_loss_limit_inr": "1e11",
    "max_open_orders": 10_000,
    "max_orders_per_day": 1_000_000,
    "duplicate_window_seconds": 0,
    "reference_max_age_seconds": 3600,
    "allowed_order_types": ["LIMIT", "MARKET"],
    "allowed_products": ["INTRADAY", "DELIVERY", "CARRY"],
    "enforce_trading_hours": False,
    "restricted": [],
}
_RATES = {"default": 10_000}
_BREAKERS = {
    "broker_disconnect_seconds": 3600,
    "stale_data_seconds": 3600,
    "error_storm_count": 10_000,
    "error_storm_seconds": 1,
    "warn_fractions": [0.8, 0.9],
}
_DEFAULTS = {
    "max_order_lots": 1_000_000,
    "max_order_value_inr": "1e11",
    "price_collar_pct": 50,
    "max_position_lots": 10_000_000,
    "max_position_value_inr": "1e12",
}


def _value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, list):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    return str(value)


def _table(name: str, values: Mapping[str, object]) -> str:
    return f"[{name}]\n" + "".join(f"{k} = {_value(v)}\n" for k, v in values.items()) + "\n"


def limits_text(
    instruments: Iterable[Instrument],
    *,
    desk: Mapping[str, object] | None = None,
    rates: Mapping[str, object] | None = None,
    breakers: Mapping[str, object] | None = None,
    defaults: Mapping[str, object] | None = None,
    per_instrument: Mapping[str, Mapping[str, object]] | None = None,
    underlyings: Mapping[str, Mapping[str, object]] | None = None,
) -> str:
    """A TOML document covering ``instruments`` with wide limits; the mappings override fields."""
    text = _table("desk", {**_DESK, **(desk or {})})
    text += _table("desk.max_orders_per_second", {**_RATES, **(rates or {})})
    text += _table("breakers", {**_BREAKERS, **(breakers or {})})
    text += _table("defaults", {**_DEFAULTS, **(defaults or {})})
    for name, values in (underlyings or {}).items():
        text += _table(f"underlyings.{name}", values)
    for instrument in {i.key: i for i in instruments}.values():
        text += _table(f'instruments."{instrument.key}"', (per_instrument or {}).get(instrument.key, {}))
    return text


def wide_limits(instruments: Iterable[Instrument], **overrides: object) -> RiskLimits:
    return parse_limits(limits_text(instruments, **overrides), "test limits")  # type: ignore[arg-type]
