"""A seeded synthetic market: one random walk per instrument, on the tick grid, with a touch."""

from __future__ import annotations

import math
import random
from collections.abc import Iterable
from dataclasses import dataclass

from app.domain.instruments import Instrument
from app.domain.market import Tick

from .universe import UniverseEntry


@dataclass(slots=True)
class _Book:
    instrument: Instrument
    price: int
    bid: int
    ask: int


class SyntheticMarket:
    """Random-walk prices for a fixed set of instruments, deterministic under ``seed``.

    Each ``step`` moves every instrument by a Gaussian number of basis points (``volatility_bp`` is
    the standard deviation per step), rounded to whole ticks. Instruments are walked in key order, so
    the same seed and the same instruments give the same ticks whatever order they were passed in.
    Prices never fall below two ticks, which keeps the bid (one tick under the last price at most)
    positive. Options and futures walk independently of their underlying.
    """

    def __init__(self, entries: Iterable[UniverseEntry], seed: int, *, volatility_bp: float = 2.0) -> None:
        if volatility_bp < 0:
            raise ValueError(f"volatility_bp must not be negative, got {volatility_bp}")
        self._rng = random.Random(f"market:{seed}")
        self._volatility = volatility_bp / 10_000
        self._books: dict[str, _Book] = {}
        for entry in sorted(entries, key=lambda e: e.instrument.key):
            tick = entry.instrument.tick_size
            price = max(_to_tick(entry.start_price, tick), 2 * tick)
            self._books[entry.instrument.key] = _Book(entry.instrument, price, price - tick, price)
        if not self._books:
            raise ValueError("a market needs at least one instrument")

    @property
    def keys(self) -> list[str]:
        return list(self._books)

    def touch(self, instrument_key: str) -> tuple[int, int]:
        """The current best bid and ask in paise. Raises ``KeyError`` for an instrument not in the market."""
        book = self._books[instrument_key]
        return book.bid, book.ask

    def step(self, ts_ns: int) -> list[Tick]:
        """Move every instrument one step and return their new ticks, in key order."""
        ticks: list[Tick] = []
        for key, book in self._books.items():
            tick = book.instrument.tick_size
            exact_ticks = book.price * self._rng.gauss(0.0, self._volatility) / tick
            # Round at random in proportion to the fraction: a ₹200 option whose 2 bp move is
            # under one tick still moves a tick now and then, and the walk stays unbiased.
            whole = math.floor(exact_ticks)
            moved = whole + (1 if self._rng.random() < exact_ticks - whole else 0)
            book.price = max(book.price + moved * tick, 2 * tick)
            spread_ticks = self._rng.randint(1, 2)
            book.bid = book.price - tick if spread_ticks == 2 else book.price
            book.ask = book.bid + spread_ticks * tick
            volume = self._rng.randint(1, 20) * book.instrument.lot_size
            ticks.append(Tick(key, book.price, ts_ns, bid=book.bid, ask=book.ask, volume=volume))
        return ticks


def _to_tick(price: int, tick: int) -> int:
    return (price // tick) * tick
