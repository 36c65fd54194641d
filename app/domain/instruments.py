"""Tradable instruments on Indian exchanges: NSE/BSE cash, NFO/BFO futures and options."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import date


class Exchange(enum.StrEnum):
    """Exchange segment codes as Indian brokers name them."""

    NSE = "NSE"
    BSE = "BSE"
    NFO = "NFO"
    BFO = "BFO"

    @property
    def is_derivatives(self) -> bool:
        return self in (Exchange.NFO, Exchange.BFO)


class Segment(enum.StrEnum):
    """Cash equity, futures or options."""

    CASH = "CASH"
    FUTURES = "FUTURES"
    OPTIONS = "OPTIONS"


class OptionRight(enum.StrEnum):
    """Call (CE) or put (PE)."""

    CALL = "CALL"
    PUT = "PUT"


class InstrumentError(ValueError):
    """An instrument definition is inconsistent."""


@dataclass(frozen=True, slots=True)
class Instrument:
    """One tradable contract. Prices (tick size, strike) are integer paise; quantities are units.

    ``key`` is the desk-wide identifier (for example ``NSE:RELIANCE`` or ``NFO:NIFTY:2026-12-29:FUT``);
    ``underlying`` groups contracts for exposure (RELIANCE cash and its futures share one).
    """

    key: str
    exchange: Exchange
    symbol: str
    underlying: str
    segment: Segment
    lot_size: int
    tick_size: int
    freeze_quantity: int
    expiry: date | None = None
    strike: int | None = None
    right: OptionRight | None = None

    def __post_init__(self) -> None:
        if not self.key or not self.symbol or not self.underlying:
            raise InstrumentError("key, symbol and underlying are required")
        if self.lot_size <= 0:
            raise InstrumentError(f"{self.key}: lot_size must be positive, got {self.lot_size}")
        if self.tick_size <= 0:
            raise InstrumentError(f"{self.key}: tick_size must be positive paise, got {self.tick_size}")
        if self.freeze_quantity < self.lot_size:
            raise InstrumentError(
                f"{self.key}: freeze_quantity {self.freeze_quantity} is below one lot ({self.lot_size})"
            )
        if self.segment is Segment.CASH:
            if self.exchange.is_derivatives:
                raise InstrumentError(f"{self.key}: cash instruments trade on NSE or BSE, not {self.exchange}")
            if self.expiry or self.strike is not None or self.right is not None:
                raise InstrumentError(f"{self.key}: a cash instrument has no expiry, strike or right")
        else:
            if not self.exchange.is_derivatives:
                raise InstrumentError(f"{self.key}: derivatives trade on NFO or BFO, not {self.exchange}")
            if self.expiry is None:
                raise InstrumentError(f"{self.key}: a {self.segment.lower()} contract needs an expiry")
        if self.segment is Segment.FUTURES and (self.strike is not None or self.right is not None):
            raise InstrumentError(f"{self.key}: a future has no strike or right")
        if self.segment is Segment.OPTIONS:
            if self.strike is None or self.strike <= 0 or self.right is None:
                raise InstrumentError(f"{self.key}: an option needs a positive strike and a right")
            if self.strike % self.tick_size:
                raise InstrumentError(f"{self.key}: strike {self.strike} is off the tick size")

    def is_on_tick(self, price: int) -> bool:
        return price % self.tick_size == 0

    def is_lot_multiple(self, quantity: int) -> bool:
        return quantity % self.lot_size == 0


_RIGHT_SUFFIX = {OptionRight.CALL: "CE", OptionRight.PUT: "PE"}


def instrument_key(
    exchange: Exchange,
    symbol: str,
    expiry: date | None = None,
    strike: int | None = None,
    right: OptionRight | None = None,
) -> str:
    """The desk-wide key: ``NSE:RELIANCE``, ``NFO:NIFTY:2026-12-29:FUT``, ``NFO:NIFTY:2026-12-29:26000:CE``.

    The strike in the key is in rupees (as traders read it), with paise only when there are any.
    """
    if expiry is None:
        return f"{exchange}:{symbol}"
    if strike is None or right is None:
        return f"{exchange}:{symbol}:{expiry.isoformat()}:FUT"
    rupees, paise = divmod(strike, 100)
    strike_text = str(rupees) if paise == 0 else f"{rupees}.{paise:02d}"
    return f"{exchange}:{symbol}:{expiry.isoformat()}:{strike_text}:{_RIGHT_SUFFIX[right]}"
