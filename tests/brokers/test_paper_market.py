"""The synthetic market: deterministic under a seed, always on the tick grid, moves proportional to price."""

from __future__ import annotations

import itertools
import random
import statistics

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.brokers.paper import SyntheticMarket, UniverseEntry, load_universe
from app.domain.instruments import Exchange, Instrument, Segment
from app.domain.market import Tick
from tests.support.calendar import PAPER_SESSION_DAY

UNIVERSE = load_universe(session_day=PAPER_SESSION_DAY)


def _run(market: SyntheticMarket, steps: int) -> list[list[Tick]]:
    return [market.step(1_000 + i) for i in range(steps)]


def test_same_seed_same_ticks_whatever_the_entry_order() -> None:
    shuffled = list(UNIVERSE)
    random.Random(3).shuffle(shuffled)
    first = _run(SyntheticMarket(UNIVERSE, seed=42), 300)
    second = _run(SyntheticMarket(shuffled, seed=42), 300)
    assert first == second


def test_different_seed_different_ticks() -> None:
    assert _run(SyntheticMarket(UNIVERSE, seed=1), 50) != _run(SyntheticMarket(UNIVERSE, seed=2), 50)


def test_every_instrument_ticks_each_step_in_key_order() -> None:
    market = SyntheticMarket(UNIVERSE, seed=0)
    ticks = market.step(123)
    keys = [tick.instrument_key for tick in ticks]
    assert keys == sorted(entry.instrument.key for entry in UNIVERSE) == market.keys
    assert all(tick.ts_ns == 123 for tick in ticks)
    assert all(market.touch(tick.instrument_key) == (tick.bid, tick.ask) for tick in ticks)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(min_value=0, max_value=2**32), volatility_bp=st.sampled_from([0.0, 1.0, 3.0, 50.0]))
def test_ticks_are_positive_on_tick_with_a_one_or_two_tick_spread(seed: int, volatility_bp: float) -> None:
    market = SyntheticMarket(UNIVERSE, seed=seed, volatility_bp=volatility_bp)
    tick_sizes = {entry.instrument.key: entry.instrument.tick_size for entry in UNIVERSE}
    for step in _run(market, 120):
        for tick in step:
            size = tick_sizes[tick.instrument_key]
            assert tick.bid is not None and tick.ask is not None
            assert 0 < tick.bid <= tick.price <= tick.ask
            assert tick.price % size == tick.bid % size == tick.ask % size == 0
            assert tick.ask - tick.bid in (size, 2 * size)
            assert tick.volume > 0


def test_a_crashing_penny_instrument_stays_positive() -> None:
    penny = Instrument("NSE:PENNY", Exchange.NSE, "PENNY", "PENNY", Segment.CASH, 1, 5, 100000)
    market = SyntheticMarket([UniverseEntry(penny, 10)], seed=9, volatility_bp=5_000)
    for step in _run(market, 2_000):
        (tick,) = step
        assert tick.bid is not None and tick.bid >= 5
        assert tick.price >= 10


def test_moves_are_a_few_basis_points_and_cheap_contracts_still_move() -> None:
    market = SyntheticMarket(UNIVERSE, seed=5, volatility_bp=2.0)
    history = _run(market, 2_000)
    for key in ("NSE:RELIANCE", "NFO:NIFTY:2026-12-29:FUT", "NFO:NIFTY:2026-12-29:26000:CE"):
        prices = [tick.price for step in history for tick in step if tick.instrument_key == key]
        moves_bp = [abs(b - a) / a * 10_000 for a, b in itertools.pairwise(prices)]
        assert 0.8 <= statistics.fmean(moves_bp) <= 3.0, key
        assert len(set(prices)) > 20, key


def test_zero_volatility_holds_prices() -> None:
    market = SyntheticMarket(UNIVERSE, seed=5, volatility_bp=0.0)
    start = {entry.instrument.key: entry.start_price for entry in UNIVERSE}
    for step in _run(market, 20):
        assert all(tick.price == start[tick.instrument_key] for tick in step)


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="at least one instrument"):
        SyntheticMarket([], seed=0)
    with pytest.raises(ValueError, match="volatility_bp"):
        SyntheticMarket(UNIVERSE, seed=0, volatility_bp=-1.0)
    with pytest.raises(KeyError):
        SyntheticMarket(UNIVERSE, seed=0).touch("NSE:NOSUCH")
