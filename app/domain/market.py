"""Market data as the desk sees it."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Tick:
    """A last-traded price (and touch, when known) in integer paise, stamped in epoch nanoseconds."""

    instrument_key: str
    price: int
    ts_ns: int
    bid: int | None = None
    ask: int | None = None
    volume: int = 0
