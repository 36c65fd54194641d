"""Today's realised P&L from stored fills, as ``main.py rearm`` measures it with no desk running."""

from __future__ import annotations

import datetime as dt

from app.domain.fills import Fill
from app.domain.india_time import IST
from app.domain.orders import Side
from app.engine.offline_rearm import today_realized


def ns(day: int, hour: int) -> int:
    return int(dt.datetime(2026, 11, day, hour, tzinfo=IST).timestamp()) * 1_000_000_000


def fill(n: int, side: Side, quantity: int, price: int, ts_ns: int) -> Fill:
    return Fill(f"F{n}", f"C{n}", "NSE:RELIANCE", side, quantity, price, ts_ns)


def test_only_todays_realised_pnl_counts_and_a_carried_position_keeps_its_cost() -> None:
    fills = [
        fill(1, Side.BUY, 10, 10_000, ns(27, 10)),
        fill(2, Side.SELL, 5, 11_000, ns(27, 11)),  # yesterday: +₹50 realised
        fill(3, Side.SELL, 5, 9_000, ns(30, 10)),   # today, against the carried cost of ₹100: -₹50
    ]
    assert today_realized(fills, ns(30, 15)) == -5_000


def test_no_fill_today_is_zero() -> None:
    fills = [fill(1, Side.BUY, 10, 10_000, ns(27, 10)), fill(2, Side.SELL, 10, 8_000, ns(27, 11))]
    assert today_realized(fills, ns(30, 15)) == 0
    assert today_realized([], ns(30, 15)) == 0


def test_fills_dated_after_today_count_as_today() -> None:
    # A desk on a session clock (simulate while the market is closed) dates fills at the next session.
    fills = [fill(1, Side.BUY, 10, 10_000, ns(30, 10)), fill(2, Side.SELL, 10, 9_500, ns(30, 14))]
    assert today_realized(fills, ns(29, 20)) == -5_000
