"""The synthetic paper universe: the file's instruments first, then valid, NSE-shaped, deterministic ones."""

from __future__ import annotations

import re
from collections import Counter
from datetime import date, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.brokers.paper import UniverseEntry, UniverseError, load_universe
from app.brokers.paper.synthetic_universe import SYNTHETIC_PREFIX, synthetic_universe
from app.domain.instruments import (
    Exchange,
    Instrument,
    OptionRight,
    Segment,
    instrument_key,
)

SESSION = date(2026, 12, 1)
# The last Tuesday of December 2026 is a holiday here: every NFO contract must roll back to Monday.
HOLIDAY = date(2026, 12, 29)


def weekdays(_exchange: Exchange, day: date) -> bool:
    return day.weekday() < 5


def with_holiday(exchange: Exchange, day: date) -> bool:
    return weekdays(exchange, day) and not (exchange is Exchange.NFO and day == HOLIDAY)


def build(count: int, seed: int = 1, session_day: date = SESSION) -> list[UniverseEntry]:
    return synthetic_universe(count, seed=seed, session_day=session_day, is_session=weekdays)


def check_entry(entry: UniverseEntry, session_day: date) -> None:
    """Everything every generated instrument must satisfy, whatever the seed and the day."""
    inst = entry.instrument
    assert inst.key == instrument_key(inst.exchange, inst.symbol, inst.expiry, inst.strike, inst.right)
    # The limits file's key syntax: no spaces, colon-separated, a known exchange first.
    assert re.fullmatch(r"[^\s:]+(:[^\s:]+)+", inst.key) and inst.key.split(":")[0] in Exchange.__members__
    assert inst.symbol.startswith(SYNTHETIC_PREFIX) and inst.underlying == inst.symbol
    assert entry.start_price >= 2 * inst.tick_size and inst.is_on_tick(entry.start_price)
    assert inst.freeze_quantity % inst.lot_size == 0
    if inst.segment is Segment.CASH:
        assert inst.exchange in (Exchange.NSE, Exchange.BSE) and inst.lot_size == 1
        assert inst.tick_size == (1 if entry.start_price < 250_00 else 5)
    else:
        assert inst.tick_size == 5 and inst.freeze_quantity >= 20 * inst.lot_size
        assert inst.expiry is not None and inst.expiry >= session_day
        assert inst.expiry.weekday() <= (1 if inst.exchange is Exchange.NFO else 3)
        assert inst.expiry - session_day < timedelta(days=62)


def test_the_first_instruments_are_the_files_unchanged() -> None:
    file_universe = load_universe(session_day=SESSION, is_session=weekdays)
    assert build(len(file_universe) + 200)[: len(file_universe)] == file_universe
    assert build(5) == file_universe[:5]
    assert build(len(file_universe)) == file_universe


def test_same_seed_same_universe_other_seed_other_prices() -> None:
    assert build(400, seed=3) == build(400, seed=3)
    assert [e.start_price for e in build(400, seed=3)] != [e.start_price for e in build(400, seed=4)]


def test_a_larger_count_only_adds_instruments_at_the_end() -> None:
    assert build(1_000)[:333] == build(333)


def test_segment_mix_at_desk_scale() -> None:
    entries = build(2_000)
    file_count = len(load_universe(session_day=SESSION, is_session=weekdays))
    synthetic = entries[file_count:]
    segments = Counter(e.instrument.segment for e in synthetic)
    exchanges = Counter(e.instrument.exchange for e in synthetic)
    assert sum(segments.values()) == len(synthetic) == 2_000 - file_count
    # Cash, futures and options each a real share of the whole, on all four exchanges.
    for segment in Segment:
        assert segments[segment] >= 0.1 * len(synthetic), segments
    assert set(exchanges) == set(Exchange) and exchanges[Exchange.BSE] >= 0.05 * len(synthetic)
    # Each future's underlying also has options, and each option's a future, on the same expiry.
    futures = {(e.instrument.underlying, e.instrument.expiry) for e in synthetic if e.instrument.segment is Segment.FUTURES}
    options = {(e.instrument.underlying, e.instrument.expiry) for e in synthetic if e.instrument.segment is Segment.OPTIONS}
    assert futures == options
    assert len({e.instrument.key for e in entries}) == len(entries)


def test_lots_ticks_and_prices_are_shaped_like_nses() -> None:
    entries = [e for e in build(2_000) if e.instrument.symbol.startswith(SYNTHETIC_PREFIX)]
    for entry in entries:
        check_entry(entry, SESSION)
    cash = [e for e in entries if e.instrument.segment is Segment.CASH]
    assert all(40_00 <= e.start_price <= 6_000_00 for e in cash)
    # Most cash stocks tick in 5 paise; the low-priced ones in whole paise.
    ticks = Counter(e.instrument.tick_size for e in cash)
    assert ticks[5] > ticks[1] > 0
    futures = [e for e in entries if e.instrument.segment is Segment.FUTURES]
    index_futures = [e for e in futures if e.instrument.symbol.startswith(SYNTHETIC_PREFIX + "IDX")]
    stock_futures = [e for e in futures if e not in index_futures]
    assert index_futures and stock_futures
    for future in stock_futures:
        assert 5_00_000_00 <= future.instrument.lot_size * future.start_price <= 10_00_000_00
    for future in index_futures:
        inst = future.instrument
        assert inst.lot_size % 5 == 0 and 5 <= inst.lot_size <= 100
        assert 10_00_000_00 <= inst.lot_size * future.start_price <= 25_00_000_00
        assert not any(e.instrument.segment is Segment.CASH and e.instrument.underlying == inst.underlying for e in entries)


def test_option_prices_follow_strike_and_right() -> None:
    by_key = {e.instrument.key: e for e in build(2_000)}
    chains: dict[tuple[str, OptionRight], list[tuple[int, int]]] = {}
    for entry in by_key.values():
        inst = entry.instrument
        if inst.segment is Segment.OPTIONS and inst.symbol.startswith(SYNTHETIC_PREFIX):
            assert inst.strike is not None and inst.right is not None
            chains.setdefault((inst.underlying, inst.right), []).append((inst.strike, entry.start_price))
    assert chains
    for (_underlying, right), chain in chains.items():
        prices = [price for _strike, price in sorted(chain)]
        # A higher strike never makes a call dearer or a put cheaper.
        assert prices == sorted(prices, reverse=right is OptionRight.CALL)


def test_derivatives_roll_as_the_file_rolls_them() -> None:
    entries = synthetic_universe(2_000, seed=1, session_day=SESSION, is_session=with_holiday)
    expiries = {(e.instrument.exchange, e.instrument.expiry) for e in entries if e.instrument.segment is not Segment.CASH}
    file_expiries = {
        (e.instrument.exchange, e.instrument.expiry)
        for e in load_universe(session_day=SESSION, is_session=with_holiday)
        if e.instrument.expiry is not None
    }
    assert expiries == file_expiries == {(Exchange.NFO, date(2026, 12, 28)), (Exchange.BFO, date(2026, 12, 31))}
    # After the December expiry the next contract is January's.
    later = synthetic_universe(400, seed=1, session_day=date(2026, 12, 30), is_session=with_holiday)
    assert {e.instrument.expiry for e in later if e.instrument.exchange is Exchange.NFO} == {date(2027, 1, 26)}


def test_bad_counts_and_colliding_keys_are_refused() -> None:
    for count in (0, -3):
        with pytest.raises(ValueError, match="count must be a whole number of at least 1"):
            build(count)
    clash = Instrument("NSE:SYN0001", Exchange.NSE, "SYN0001", "SYN0001", Segment.CASH, 1, 5, 100_000)
    with pytest.raises(UniverseError, match="NSE:SYN0001"):
        synthetic_universe(3, seed=1, session_day=SESSION, is_session=weekdays, base=[UniverseEntry(clash, 100_00)])


@settings(max_examples=25, deadline=None)
@given(
    count=st.integers(min_value=1, max_value=400),
    seed=st.integers(min_value=0, max_value=2**63),
    session_day=st.dates(min_value=date(2026, 1, 1), max_value=date(2030, 12, 31)),
)
def test_any_count_seed_and_day_give_a_valid_universe(count: int, seed: int, session_day: date) -> None:
    file_universe = load_universe(session_day=session_day, is_session=weekdays)
    entries = synthetic_universe(count, seed=seed, session_day=session_day, is_session=weekdays, base=file_universe)
    assert len(entries) == count
    assert entries[: len(file_universe)] == file_universe[:count]
    assert len({e.instrument.key for e in entries}) == count
    for entry in entries[len(file_universe):]:
        check_entry(entry, session_day)
