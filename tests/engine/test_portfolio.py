"""Portfolio totals kept incrementally must equal a from-scratch recomputation, always."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from app.domain.fills import Fill
from app.domain.instruments import Exchange, Instrument
from app.domain.market import Tick
from app.domain.orders import Side
from app.engine.portfolio import Portfolio

from .conftest import cash, future

UNIVERSE: dict[str, Instrument] = {
    i.key: i for i in [cash("RELIANCE"), cash("RELIANCE", exchange=Exchange.BSE), cash("TCS"), future("RELIANCE", 500, 10_000)]
}
KEYS = sorted(UNIVERSE)

fill_events = st.tuples(
    st.just("fill"), st.sampled_from(KEYS), st.sampled_from([Side.BUY, Side.SELL]),
    st.integers(1, 20), st.integers(1, 5_000),
)
tick_events = st.tuples(st.just("tick"), st.sampled_from(KEYS), st.integers(1, 5_000))


def recompute(events: list[tuple]) -> dict[str, object]:
    qty: dict[str, int] = {}
    cash_flow: dict[str, int] = {}
    tick_mark: dict[str, int] = {}
    fill_mark: dict[str, int] = {}
    for event in events:
        if event[0] == "fill":
            _, key, side, lots, price = event
            n = lots * UNIVERSE[key].lot_size * side.sign
            qty[key] = qty.get(key, 0) + n
            cash_flow[key] = cash_flow.get(key, 0) - n * price
            fill_mark[key] = price
        else:
            _, key, price = event
            tick_mark[key] = price
    # Marked at the last tick; with none yet, at the last fill price.
    mark = {**fill_mark, **tick_mark}
    net = gross = 0
    by_underlying: dict[str, list[int]] = {}
    total_pnl = 0
    for key, q in qty.items():
        value = q * mark[key]
        net += value
        gross += abs(value)
        group = by_underlying.setdefault(UNIVERSE[key].underlying, [0, 0])
        group[0] += abs(value)
        group[1] += value
        total_pnl += cash_flow[key] + value
    return {"net": net, "gross": gross, "by_underlying": by_underlying, "total_pnl": total_pnl}


@settings(max_examples=200, deadline=None)
@given(st.lists(st.one_of(fill_events, tick_events), max_size=60))
def test_incremental_totals_equal_recomputation(events: list[tuple]) -> None:
    portfolio = Portfolio(UNIVERSE)
    for ts, event in enumerate(events):
        if event[0] == "fill":
            _, key, side, lots, price = event
            portfolio.on_fill(Fill(f"f{ts}", "c", key, side, lots * UNIVERSE[key].lot_size, price, ts))
        else:
            _, key, price = event
            portfolio.on_tick(Tick(key, price, ts))
    expected = recompute(events)
    assert portfolio.exposure.net == expected["net"]
    assert portfolio.exposure.gross == expected["gross"]
    for underlying, (gross, net) in expected["by_underlying"].items():  # type: ignore[union-attr]
        assert portfolio.underlying_exposure(underlying).gross == gross
        assert portfolio.underlying_exposure(underlying).net == net
    # realized + unrealized is the whole P&L: cash flow plus what the open quantity is worth now.
    assert portfolio.realized + portfolio.unrealized == expected["total_pnl"]
    assert sum(v.unrealized for v in portfolio.views()) == portfolio.unrealized


def test_worked_example_with_flip_and_marks() -> None:
    portfolio = Portfolio(UNIVERSE)
    key = "NSE:RELIANCE"
    portfolio.on_fill(Fill("1", "c", key, Side.BUY, 10, 150_000, 1))
    assert portfolio.exposure.net == 1_500_000
    portfolio.on_tick(Tick(key, 151_000, 2))
    assert portfolio.unrealized == 10_000
    portfolio.on_fill(Fill("2", "c", key, Side.SELL, 15, 152_000, 3))
    assert portfolio.realized == 20_000
    assert portfolio.position(key) == -5
    # marked at the last tick (151,000), not the fill: short 5 gains 1,000 paise each
    assert portfolio.unrealized == 5_000
    assert portfolio.exposure.net == -755_000
    assert portfolio.exposure.gross == 755_000


def test_cash_and_future_share_an_underlying() -> None:
    portfolio = Portfolio(UNIVERSE)
    portfolio.on_fill(Fill("1", "c", "NSE:RELIANCE", Side.BUY, 500, 150_000, 1))
    portfolio.on_fill(Fill("2", "c", "NFO:RELIANCE:2026-12-29:FUT", Side.SELL, 500, 151_000, 2))
    group = portfolio.underlying_exposure("RELIANCE")
    assert group.net == 500 * 150_000 - 500 * 151_000
    assert group.gross == 500 * 150_000 + 500 * 151_000


def test_late_tick_ignored_and_unknown_instrument_fill_kept() -> None:
    portfolio = Portfolio(UNIVERSE)
    key = "NSE:TCS"
    portfolio.on_fill(Fill("1", "c", key, Side.BUY, 1, 400_000, 1))
    portfolio.on_tick(Tick(key, 410_000, 10))
    portfolio.on_tick(Tick(key, 300_000, 5))
    assert portfolio.mark(key) == 410_000
    portfolio.on_fill(Fill("2", "c", "NSE:UNLISTED", Side.BUY, 3, 1_000, 11))
    assert portfolio.underlying_exposure("NSE:UNLISTED").net == 3_000
