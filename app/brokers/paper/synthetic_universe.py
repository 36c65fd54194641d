"""A paper universe of any size: the file's instruments first, then generated ones after them.

The desk, its benchmarks and a demo need hundreds of instruments; ``resources/instruments.json``
lists 27 real names. Past those come synthetic underlyings, each a family of contracts:

* stocks ``SYN0001``, ``SYN0002``...: NSE cash, a BSE listing for some, and for a share of them a
  monthly NFO future with calls and puts on the two strikes around the start price;
* every twentieth family an index-like ``SYNIDX01``...: a monthly future (NFO, or BFO for every
  other one, like SENSEX) and calls and puts on three strikes, no cash.

The terms are shaped like NSE's, not exchange data: cash ticks 5 paise (1 paisa below ₹250),
derivatives 5 paise; a stock future's lot is worth ₹5-10 lakh, an index future's about ₹15-20
lakh like NIFTY's; derivatives freeze at a whole number of lots. Option prices are Black-76 values
at a plausible volatility. Derivatives roll exactly as the file's do (``next_monthly_expiry``).

Everything is drawn from ``seed`` in family order, so a larger universe only adds instruments
at the end: the first ``n`` of any larger count are the ``n`` of ``count=n``.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator, Sequence
from datetime import date

from app.domain.instruments import (
    Exchange,
    Instrument,
    OptionRight,
    Segment,
    instrument_key,
)

from .universe import (
    WEEKDAYS,
    SessionDay,
    UniverseEntry,
    UniverseError,
    load_universe,
    next_monthly_expiry,
)

# Real listings are never named so; the generator still refuses a clash with the file.
SYNTHETIC_PREFIX = "SYN"
_INDEX_EVERY = 20
_INDEX_FIRST = 10  # the first index-like family: early enough that a few hundred instruments hold one
_BSE_SHARE = 0.3
_FNO_SHARE = 0.4
_CASH_FREEZE_QUANTITY = 100_000  # as the file's cash entries
_LOW_PRICE = 250_00  # below ₹250 a cash stock ticks in whole paise
_DERIVATIVE_TICK = 5
_CARRY_PER_YEAR = 0.07
_STRIKE_STEPS = (50, 100, 250, 500, 1_000, 2_000, 5_000, 10_000)  # paise


def synthetic_universe(
    count: int, *, seed: int, session_day: date, is_session: SessionDay, base: Sequence[UniverseEntry] | None = None,
) -> list[UniverseEntry]:
    """``count`` instruments: the file's universe (``base``, default ``load_universe``) first, unchanged, then synthetic ones.

    Deterministic in ``seed``, ``session_day`` and ``is_session`` (which roll the derivatives as
    ``load_universe`` does); ``count`` only decides where the list stops. Raises ``ValueError`` for
    a count below 1 and ``UniverseError`` if a generated key is already in ``base``.
    """
    if isinstance(count, bool) or count < 1:
        raise ValueError(f"count must be a whole number of at least 1, got {count!r}")
    entries = list(base) if base is not None else load_universe(session_day=session_day, is_session=is_session)
    if count <= len(entries):
        return entries[:count]
    keys = {entry.instrument.key for entry in entries}
    families = _families(random.Random(f"synthetic-universe:{seed}"), session_day, is_session)
    while len(entries) < count:
        for entry in next(families):
            key = entry.instrument.key
            if key in keys:
                raise UniverseError(f"synthetic instrument {key} has the key of an instrument already in the universe")
            keys.add(key)
            entries.append(entry)
    return entries[:count]


def _families(rng: random.Random, session_day: date, is_session: SessionDay) -> Iterator[list[UniverseEntry]]:
    stocks = indices = 0
    number = 0
    while True:
        number += 1
        if number % _INDEX_EVERY == _INDEX_FIRST:
            indices += 1
            yield _index_family(f"{SYNTHETIC_PREFIX}IDX{indices:02d}", indices, rng, session_day, is_session)
        else:
            stocks += 1
            yield _stock_family(f"{SYNTHETIC_PREFIX}{stocks:04d}", rng, session_day, is_session)


def _stock_family(symbol: str, rng: random.Random, session_day: date, is_session: SessionDay) -> list[UniverseEntry]:
    # Every draw is made whatever the branches, so one family always takes the same share of the stream.
    rupees = math.exp(rng.uniform(math.log(40), math.log(6_000)))  # about a third below ₹250
    on_bse = rng.random() < _BSE_SHARE
    in_fno = rng.random() < _FNO_SHARE
    lot_value = rng.uniform(5.25e7, 9.75e7)  # paise: ₹5.25-9.75 lakh, inside ₹5-10 lakh after rounding the lot
    freeze_lots = rng.choice((20, 25, 30, 40))
    volatility = rng.uniform(0.20, 0.45)
    tick = 1 if rupees * 100 < _LOW_PRICE else 5
    price = _on_tick(rupees * 100, tick)
    entries = [_cash(Exchange.NSE, symbol, tick, price)]
    if on_bse:
        entries.append(_cash(Exchange.BSE, symbol, tick, price))
    if not in_fno:
        return entries
    expiry = next_monthly_expiry(Exchange.NFO, session_day, WEEKDAYS.index("Tue"), is_session)
    years = _years(session_day, expiry)
    future = _on_tick(price * (1 + _CARRY_PER_YEAR * years), _DERIVATIVE_TICK)
    lot = _stock_lot(lot_value / future)
    step = max((s for s in _STRIKE_STEPS if s <= price * 0.02), default=_STRIKE_STEPS[0])
    lower = price // step * step
    contract = _Contract(Exchange.NFO, symbol, expiry, lot, lot * freeze_lots)
    entries.append(contract.future(future))
    for strike in (lower, lower + step):
        entries += contract.options(strike, future, volatility, years)
    return entries


def _index_family(
    symbol: str, number: int, rng: random.Random, session_day: date, is_session: SessionDay,
) -> list[UniverseEntry]:
    rupees = math.exp(rng.uniform(math.log(20_000), math.log(85_000)))
    lot_value = rng.uniform(1.5e8, 2.0e8)  # paise: ₹15-20 lakh, as NIFTY, BANKNIFTY and SENSEX lots
    freeze_lots = rng.randint(20, 30)
    volatility = rng.uniform(0.12, 0.18)
    exchange, weekday = (Exchange.NFO, "Tue") if number % 2 else (Exchange.BFO, "Thu")
    expiry = next_monthly_expiry(exchange, session_day, WEEKDAYS.index(weekday), is_session)
    years = _years(session_day, expiry)
    future = _on_tick(rupees * 100, _DERIVATIVE_TICK)
    lot = max(5, round(lot_value / future / 5) * 5)
    step = 100_00 if future > 40_000_00 else 50_00
    middle = round(future / step) * step
    contract = _Contract(exchange, symbol, expiry, lot, lot * freeze_lots)
    entries = [contract.future(future)]
    for strike in (middle - step, middle, middle + step):
        entries += contract.options(strike, future, volatility, years)
    return entries


def _cash(exchange: Exchange, symbol: str, tick: int, price: int) -> UniverseEntry:
    instrument = Instrument(
        key=instrument_key(exchange, symbol), exchange=exchange, symbol=symbol, underlying=symbol,
        segment=Segment.CASH, lot_size=1, tick_size=tick, freeze_quantity=_CASH_FREEZE_QUANTITY,
    )
    return UniverseEntry(instrument, price)


class _Contract:
    """The terms one underlying's futures and options share: where, when, lot and freeze."""

    def __init__(self, exchange: Exchange, symbol: str, expiry: date, lot: int, freeze: int) -> None:
        self.exchange, self.symbol, self.expiry, self.lot, self.freeze = exchange, symbol, expiry, lot, freeze

    def _entry(self, segment: Segment, price: int, strike: int | None = None, right: OptionRight | None = None) -> UniverseEntry:
        instrument = Instrument(
            key=instrument_key(self.exchange, self.symbol, self.expiry, strike, right), exchange=self.exchange,
            symbol=self.symbol, underlying=self.symbol, segment=segment, lot_size=self.lot,
            tick_size=_DERIVATIVE_TICK, freeze_quantity=self.freeze, expiry=self.expiry, strike=strike, right=right,
        )
        return UniverseEntry(instrument, price)

    def future(self, price: int) -> UniverseEntry:
        return self._entry(Segment.FUTURES, price)

    def options(self, strike: int, forward: int, volatility: float, years: float) -> list[UniverseEntry]:
        return [
            self._entry(Segment.OPTIONS, _option_price(right, forward, strike, volatility, years), strike, right)
            for right in (OptionRight.CALL, OptionRight.PUT)
        ]


def _option_price(right: OptionRight, forward: int, strike: int, volatility: float, years: float) -> int:
    """Black-76 at no interest, in paise on the derivatives tick; at least two ticks, as the market keeps it."""
    spread = volatility * math.sqrt(years)
    d1 = (math.log(forward / strike) + spread * spread / 2) / spread
    d2 = d1 - spread
    if right is OptionRight.CALL:
        value = forward * _normal(d1) - strike * _normal(d2)
    else:
        value = strike * _normal(-d2) - forward * _normal(-d1)
    return max(_on_tick(value, _DERIVATIVE_TICK), 2 * _DERIVATIVE_TICK)


def _normal(x: float) -> float:
    return 0.5 * (1 + math.erf(x / math.sqrt(2)))


def _years(session_day: date, expiry: date) -> float:
    # An expiry-day contract still has its last session to run.
    return max((expiry - session_day).days, 1) / 365


def _stock_lot(shares: float) -> int:
    """A round lot (a multiple of 5, 25, 50...) within 2.5 % of ``shares``, so the lot's value stays in its band."""
    step = max((s for s in (1, 5, 25, 50, 100, 250, 500) if s <= shares / 20), default=1)
    return max(step, round(shares / step) * step)


def _on_tick(paise: float, tick: int) -> int:
    return max(round(paise / tick), 2) * tick
