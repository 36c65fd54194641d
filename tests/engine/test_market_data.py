from __future__ import annotations

from app.domain.market import Tick
from app.engine.market_data import MarketData


def test_last_price_and_age() -> None:
    md = MarketData()
    assert md.last_price("NSE:X") is None
    assert md.age_ns("NSE:X", 10) is None
    md.on_tick(Tick("NSE:X", 10_000, ts_ns=1_000))
    md.on_tick(Tick("NSE:X", 10_005, ts_ns=2_000))
    assert md.last_price("NSE:X") == 10_005
    assert md.age_ns("NSE:X", 5_000) == 3_000
    assert md.ticks == 2


def test_late_tick_does_not_overwrite_newer_price() -> None:
    md = MarketData()
    md.on_tick(Tick("NSE:X", 10_005, ts_ns=2_000))
    md.on_tick(Tick("NSE:X", 9_000, ts_ns=1_000))
    assert md.last_price("NSE:X") == 10_005
    assert md.out_of_order == 1


def test_newest_tick_time_over_all_instruments() -> None:
    md = MarketData()
    assert md.newest_ts_ns is None
    md.on_tick(Tick("NSE:X", 10_000, ts_ns=2_000))
    md.on_tick(Tick("NSE:Y", 20_000, ts_ns=3_000))
    # Older than the newest yet new for its own instrument: the feed's newest time stays.
    md.on_tick(Tick("NSE:X", 10_005, ts_ns=2_500))
    assert md.newest_ts_ns == 3_000
    md.on_tick(Tick("NSE:X", 10_010, ts_ns=4_000))
    assert md.newest_ts_ns == 4_000
