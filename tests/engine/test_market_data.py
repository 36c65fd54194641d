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
