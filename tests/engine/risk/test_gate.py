"""The risk gate, check by check, on the real OMS/portfolio/market-data wiring (no broker)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from app.domain.india_time import IST
from app.domain.orders import OrderSource, Product, Side
from app.domain.rejections import REASON_TEXT, Rejection, RejectReason
from app.domain.trading_state import TradingState
from app.engine.risk.gate import CHECKS, marketable_price
from tests.engine.conftest import cash, future
from tests.support.limits import wide_limits

from .desk import Desk

REL = cash("RELIANCE")
TCS = cash("TCS")
NIFTY = future("NIFTY")
ALL = [REL, TCS, NIFTY]
NS = 1_000_000_000


def desk(**limits: Any) -> Desk:
    d = Desk(ALL, wide_limits(ALL, **limits))
    d.tick(REL.key, 100_000)  # ₹1,000.00
    d.tick(TCS.key, 300_000)
    d.tick(NIFTY.key, 2_600_000)
    return d


def reason(outcome: object) -> RejectReason | None:
    return outcome.reason if isinstance(outcome, Rejection) else None


def test_every_reason_is_documented() -> None:
    assert set(REASON_TEXT) == set(RejectReason)
    assert all(text.strip() for text in REASON_TEXT.values())


def test_a_plain_order_passes_and_its_price_is_returned() -> None:
    d = desk()
    assert d.gate.check(d.order(REL.key, Side.BUY, 10, 100_000), d.now) == 100_000


def test_default_deny_an_instrument_without_limits() -> None:
    d = Desk(ALL, wide_limits([REL]))
    d.tick(TCS.key, 300_000)
    out = d.gate.check(d.order(TCS.key, Side.BUY, 1, 300_000), d.now)
    assert reason(out) is RejectReason.NO_LIMIT


def test_missing_and_stale_reference_price_are_refused_never_skipped() -> None:
    d = Desk(ALL, wide_limits(ALL, desk={"reference_max_age_seconds": 5}))
    assert reason(d.gate.check(d.order(REL.key, Side.BUY, 1, 100_000), d.now)) is RejectReason.STALE_PRICE
    d.tick(REL.key, 100_000)
    d.now += 5 * NS
    assert d.gate.check(d.order(REL.key, Side.BUY, 1, 100_000), d.now) == 100_000
    d.now += 1
    out = d.gate.check(d.order(REL.key, Side.BUY, 1, 100_000), d.now)
    assert reason(out) is RejectReason.STALE_PRICE and isinstance(out, Rejection) and out.limit == "5 s"
    assert reason(d.gate.check(d.order(REL.key, Side.BUY, 1, None), d.now)) is RejectReason.STALE_PRICE


def test_trading_state_halted_refuses_everything_reducing_only_reduces() -> None:
    d = desk()
    long = d.submit(d.order(REL.key, Side.BUY, 10, 100_000))
    assert not isinstance(long, Rejection)
    d.fill(long)
    d.state = TradingState.HALTED
    assert reason(d.gate.check(d.order(REL.key, Side.SELL, 1, 100_000), d.now)) is RejectReason.TRADING_HALTED
    d.state = TradingState.REDUCING
    assert reason(d.gate.check(d.order(REL.key, Side.BUY, 1, 100_000), d.now)) is RejectReason.NOT_RISK_REDUCING
    assert reason(d.gate.check(d.order(REL.key, Side.SELL, 11, 100_000), d.now)) is RejectReason.NOT_RISK_REDUCING
    working = d.submit(d.order(REL.key, Side.SELL, 6, 100_000))
    assert not isinstance(working, Rejection)
    # 6 of the 10 are already being sold: only 4 more reduce.
    assert reason(d.gate.check(d.order(REL.key, Side.SELL, 5, 100_000), d.now)) is RejectReason.NOT_RISK_REDUCING
    assert d.gate.check(d.order(REL.key, Side.SELL, 4, 100_000), d.now) == 100_000


def test_restricted_types_products_and_hours() -> None:
    d = desk(desk={"restricted": [TCS.key], "allowed_order_types": ["LIMIT"], "allowed_products": ["INTRADAY"],
                   "enforce_trading_hours": True})
    assert reason(d.gate.check(d.order(TCS.key, Side.BUY, 1, 300_000), d.now)) is RejectReason.RESTRICTED_INSTRUMENT
    # Flatten may still close a restricted position.
    assert d.gate.check(d.order(TCS.key, Side.BUY, 1, 300_000, source=OrderSource.FLATTEN), d.now) == 300_000
    assert reason(d.gate.check(d.order(REL.key, Side.BUY, 1, None), d.now)) is RejectReason.ORDER_TYPE_NOT_ALLOWED
    out = d.gate.check(d.order(REL.key, Side.BUY, 1, 100_000, product=Product.DELIVERY), d.now)
    assert reason(out) is RejectReason.PRODUCT_NOT_ALLOWED
    saturday = int(dt.datetime(2026, 11, 28, 11, 0, tzinfo=IST).timestamp()) * NS
    d.now = saturday
    d.tick(REL.key, 100_000)
    out = d.gate.check(d.order(REL.key, Side.BUY, 1, 100_000), d.now)
    assert reason(out) is RejectReason.MARKET_CLOSED and isinstance(out, Rejection) and "Saturday" in out.message


def test_order_quantity_value_and_collar() -> None:
    d = desk(per_instrument={REL.key: {"max_order_lots": 50, "max_order_value_inr": 40_000, "price_collar_pct": 5},
                             NIFTY.key: {"max_order_lots": 100}})
    assert reason(d.gate.check(d.order(REL.key, Side.BUY, 51, 100_000), d.now)) is RejectReason.ORDER_QUANTITY_LIMIT
    # The freeze quantity caps the limit: 100 lots of 65 is above NIFTY's 1,755.
    out = d.gate.check(d.order(NIFTY.key, Side.BUY, 1_820, 2_600_000), d.now)
    assert reason(out) is RejectReason.ORDER_QUANTITY_LIMIT and isinstance(out, Rejection) and out.limit == "1755"
    assert reason(d.gate.check(d.order(REL.key, Side.BUY, 41, 100_000), d.now)) is RejectReason.ORDER_VALUE_LIMIT
    assert d.gate.check(d.order(REL.key, Side.BUY, 40, 100_000), d.now) == 100_000
    assert d.gate.check(d.order(REL.key, Side.BUY, 1, 105_000), d.now) == 105_000
    assert reason(d.gate.check(d.order(REL.key, Side.BUY, 1, 105_005), d.now)) is RejectReason.PRICE_COLLAR
    assert reason(d.gate.check(d.order(REL.key, Side.SELL, 1, 94_995), d.now)) is RejectReason.PRICE_COLLAR


def test_market_orders_are_priced_with_protection_and_checked_at_that_price() -> None:
    d = desk(per_instrument={REL.key: {"max_order_value_inr": 10_200}})
    price = d.gate.check(d.order(REL.key, Side.BUY, 10, None), d.now)
    assert price == marketable_price(REL, Side.BUY, 100_000, 200) == 102_000
    assert reason(d.gate.check(d.order(REL.key, Side.BUY, 11, None), d.now)) is RejectReason.ORDER_VALUE_LIMIT


def test_position_limit_counts_working_orders() -> None:
    d = desk(per_instrument={REL.key: {"max_order_lots": 100, "max_position_lots": 100}})
    first = d.submit(d.order(REL.key, Side.BUY, 60, 100_000))
    assert not isinstance(first, Rejection)
    d.fill(first, 30)
    # 30 held + 30 still working + 41 new = 101 > 100.
    out = d.gate.check(d.order(REL.key, Side.BUY, 41, 100_000), d.now)
    assert reason(out) is RejectReason.POSITION_QUANTITY_LIMIT and isinstance(out, Rejection) and out.value == "101"
    assert d.gate.check(d.order(REL.key, Side.BUY, 40, 100_000), d.now) == 100_000
    # Selling is not held back by a long that is at its limit.
    assert d.gate.check(d.order(REL.key, Side.SELL, 100, 100_000), d.now) == 100_000
    d.cancel(first)
    assert d.gate.check(d.order(REL.key, Side.BUY, 70, 100_000), d.now) == 100_000


def test_position_value_limit() -> None:
    d = desk(per_instrument={REL.key: {"max_position_value_inr": 50_000, "max_order_value_inr": 50_000}})
    held = d.submit(d.order(REL.key, Side.SELL, 45, 100_000))
    assert not isinstance(held, Rejection)
    d.fill(held)
    assert reason(d.gate.check(d.order(REL.key, Side.SELL, 6, 100_000), d.now)) is RejectReason.POSITION_VALUE_LIMIT
    assert d.gate.check(d.order(REL.key, Side.SELL, 5, 100_000), d.now) == 100_000


def test_gross_and_net_exposure_caps_desk_and_underlying() -> None:
    d = desk(desk={"max_gross_exposure_inr": 100_000, "max_net_exposure_inr": 60_000},
             underlyings={"RELIANCE": {"max_gross_exposure_inr": 70_000, "max_net_exposure_inr": 50_000}})
    buy = d.submit(d.order(REL.key, Side.BUY, 50, 100_000))
    assert not isinstance(buy, Rejection)
    out = d.gate.check(d.order(REL.key, Side.BUY, 1, 100_000), d.now)
    assert reason(out) is RejectReason.UNDERLYING_NET_LIMIT
    d.fill(buy)
    # TCS: gross 50k (RELIANCE) + 51k > 100k.
    out = d.gate.check(d.order(TCS.key, Side.SELL, 17, 300_000), d.now)
    assert reason(out) is RejectReason.GROSS_EXPOSURE_LIMIT
    assert d.gate.check(d.order(TCS.key, Side.SELL, 16, 300_000), d.now) == 300_000
    # Net: a 12k buy of TCS would take net to 62k > 60k.
    out = d.gate.check(d.order(TCS.key, Side.BUY, 4, 300_000), d.now)
    assert reason(out) is RejectReason.NET_EXPOSURE_LIMIT


def test_daily_and_trailing_loss_stop_only_risk_increasing_orders() -> None:
    d = desk(desk={"daily_loss_limit_inr": 1_000, "trailing_loss_limit_inr": 600})
    long = d.submit(d.order(REL.key, Side.BUY, 100, 100_000))
    assert not isinstance(long, Rejection)
    d.fill(long)
    d.tick(REL.key, 100_700)
    assert d.gate.check(d.order(TCS.key, Side.BUY, 1, 300_000), d.now) == 300_000  # P&L peak +₹700
    d.tick(REL.key, 100_050)  # +₹50: ₹650 off the peak
    out = d.gate.check(d.order(TCS.key, Side.BUY, 1, 300_000), d.now)
    assert reason(out) is RejectReason.TRAILING_LOSS_LIMIT and isinstance(out, Rejection) and out.value == "-₹650.00"
    d.tick(REL.key, 99_000)  # -₹1,000
    assert reason(d.gate.check(d.order(TCS.key, Side.BUY, 1, 300_000), d.now)) is RejectReason.DAILY_LOSS_LIMIT
    assert d.gate.check(d.order(REL.key, Side.SELL, 100, 99_000), d.now) == 99_000


def test_counts_duplicates_and_source_rate() -> None:
    d = desk(desk={"max_open_orders": 2, "max_orders_per_day": 4, "duplicate_window_seconds": 2}, rates={"api": 2, "ticket": 10})
    a = d.submit(d.order(REL.key, Side.BUY, 1, 100_000))
    assert not isinstance(a, Rejection)
    assert reason(d.gate.check(d.order(REL.key, Side.BUY, 1, 100_000), d.now)) is RejectReason.DUPLICATE_ORDER
    b = d.submit(d.order(REL.key, Side.BUY, 2, 100_000))
    assert not isinstance(b, Rejection)
    # Two api orders in this second: a third from api is refused for its rate, one from the ticket for the open-order count.
    assert reason(d.gate.check(d.order(REL.key, Side.BUY, 3, 100_000), d.now)) is RejectReason.SOURCE_RATE_LIMIT
    assert reason(d.gate.check(d.order(REL.key, Side.BUY, 3, 100_000, source=OrderSource.TICKET), d.now)) is RejectReason.MAX_OPEN_ORDERS
    d.now += 2 * NS
    d.tick(REL.key, 100_000)
    d.cancel(a)
    assert d.gate.check(d.order(REL.key, Side.BUY, 1, 100_000), d.now) == 100_000  # the duplicate window has passed
    c = d.submit(d.order(REL.key, Side.BUY, 3, 100_000, source=OrderSource.TICKET))
    d.cancel(b)
    assert not isinstance(c, Rejection)
    e = d.submit(d.order(REL.key, Side.BUY, 4, 100_000, source=OrderSource.TICKET))
    assert not isinstance(e, Rejection)
    d.cancel(c)
    out = d.gate.check(d.order(REL.key, Side.BUY, 5, 100_000, source=OrderSource.TICKET), d.now)
    assert reason(out) is RejectReason.MAX_ORDERS_PER_DAY
    # Flatten is never stopped by the day's count; the count starts again on the next IST day.
    assert d.gate.check(d.order(REL.key, Side.BUY, 5, 100_000, source=OrderSource.FLATTEN), d.now) == 100_000
    d.now += 86_400 * NS
    d.tick(REL.key, 100_000)
    assert d.gate.check(d.order(REL.key, Side.BUY, 5, 100_000, source=OrderSource.TICKET), d.now) == 100_000


def test_preview_reports_every_failing_check_without_counting() -> None:
    d = desk(per_instrument={REL.key: {"max_order_lots": 5, "max_order_value_inr": 1_000, "price_collar_pct": 1}},
             desk={"allowed_products": ["INTRADAY"]})
    new = d.order(REL.key, Side.BUY, 6, 110_000, product=Product.DELIVERY)
    found = {r.reason for r in d.gate.preview(new, d.now)}
    assert found == {RejectReason.PRODUCT_NOT_ALLOWED, RejectReason.ORDER_QUANTITY_LIMIT, RejectReason.PRICE_COLLAR,
                     RejectReason.ORDER_VALUE_LIMIT}
    assert d.book.orders_today == 0
    assert [r.reason for r in d.gate.preview(d.order(REL.key, Side.BUY, 1, 100_000), d.now)] == []


def test_checks_run_in_a_fixed_documented_order() -> None:
    names = [check.__name__ for check, _, _ in CHECKS]
    assert names[0] == "check_trading_state" and names[1] == "check_limit_exists"
    assert len(set(names)) == len(names)


@settings(max_examples=80, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["buy", "sell", "fill", "cancel"]), st.booleans(), st.integers(1, 20), st.integers(-30, 30)), max_size=40))
def test_accepted_orders_never_let_the_worst_case_exceed_the_limits(steps: list[tuple[str, bool, int, int]]) -> None:
    """Whatever sequence of orders, fills and cancels in two names: the worst case (every working
    order filling) stays within the position cap and the gross cap for anything the gate accepted."""
    d = desk(per_instrument={REL.key: {"max_order_lots": 20, "max_position_lots": 30}},
             desk={"max_gross_exposure_inr": 90_000, "max_net_exposure_inr": 90_000})
    working: list[Any] = []
    for action, in_tcs, quantity, offset in steps:
        instrument, base = (TCS, 300_000) if in_tcs else (REL, 100_000)
        price = base + offset * 5
        if action in ("buy", "sell"):
            out = d.submit(d.order(instrument.key, Side.BUY if action == "buy" else Side.SELL, quantity, price))
            if not isinstance(out, Rejection):
                working.append(out)
        elif working:
            order = working.pop(quantity % len(working))
            if order.status.is_working:
                d.fill(order) if action == "fill" else d.cancel(order)
        worst = {}
        for key in (REL.key, TCS.key):
            position = d.portfolio.position(key)
            buys = sum(o.quantity - o.filled_quantity for o in d.oms.working() if o.side is Side.BUY and o.instrument_key == key)
            sells = sum(o.quantity - o.filled_quantity for o in d.oms.working() if o.side is Side.SELL and o.instrument_key == key)
            worst[key] = max(abs(position + buys), abs(position - sells))
        assert worst[REL.key] <= 30
        # Marks and order prices are never below these, so the worst case's gross is at least this.
        assert worst[REL.key] * 99_850 + worst[TCS.key] * 299_850 <= 90_000_00
