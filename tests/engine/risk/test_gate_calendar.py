"""The gate on days the calendar does not cover, on assumed years, and for expired contracts."""

from __future__ import annotations

import datetime as dt

import pytest

from app.domain.instruments import Exchange, Instrument, Segment
from app.domain.orders import Side
from app.domain.rejections import Rejection, RejectReason
from app.engine.risk.calendar import TradingCalendar
from tests.engine.conftest import cash
from tests.support.calendar import ist_ns, synthetic_calendar
from tests.support.limits import wide_limits

from .desk import Desk

REL = cash("RELIANCE")
FUT = Instrument(
    key="NFO:RELIANCE:2027-01-26:FUT", exchange=Exchange.NFO, symbol="RELIANCE", underlying="RELIANCE",
    segment=Segment.FUTURES, lot_size=500, tick_size=10, freeze_quantity=20_000, expiry=dt.date(2027, 1, 26),
)
ALL = [REL, FUT]


def desk(calendar: TradingCalendar, now: int) -> Desk:
    d = Desk(ALL, wide_limits(ALL, desk={"enforce_trading_hours": True}), calendar=calendar)
    d.now = now
    d.tick(REL.key, 100_000)
    d.tick(FUT.key, 101_000)
    return d


def reason(outcome: object) -> RejectReason | None:
    return outcome.reason if isinstance(outcome, Rejection) else None


def long_position(d: Desk, quantity: int) -> None:
    order = d.submit(d.order(REL.key, Side.BUY, quantity, 100_000))
    assert not isinstance(order, Rejection)
    d.fill(order)


def test_an_uncovered_year_refuses_new_risk_and_says_why() -> None:
    # A calendar that ends with 2026: Monday 2027-01-04 at 10:00 is not known to be a session.
    d = desk(TradingCalendar(synthetic_calendar({2026: []})), ist_ns(2027, 1, 4, 10, 0))
    out = d.gate.check(d.order(REL.key, Side.BUY, 1, 100_000), d.now)
    assert reason(out) is RejectReason.CALENDAR_UNPUBLISHED
    assert isinstance(out, Rejection) and "2027 trading holidays are not in the desk's calendar" in out.message
    assert out.value == "2027-01-04"


def test_an_uncovered_year_lets_risk_reducing_orders_through_in_weekday_hours() -> None:
    shipped_then_uncovered = synthetic_calendar({2026: []})
    d = desk(TradingCalendar(shipped_then_uncovered), ist_ns(2026, 12, 31, 10, 0))
    long_position(d, 10)
    d.now = ist_ns(2027, 1, 4, 10, 0)
    d.tick(REL.key, 100_000)
    assert d.gate.check(d.order(REL.key, Side.SELL, 10, 100_000), d.now) == 100_000
    # Growing the position is new risk; and at the weekend even a reducing order is refused.
    assert reason(d.gate.check(d.order(REL.key, Side.BUY, 1, 100_000), d.now)) is RejectReason.CALENDAR_UNPUBLISHED
    d.now = ist_ns(2027, 1, 2, 10, 0)
    d.tick(REL.key, 100_000)
    assert reason(d.gate.check(d.order(REL.key, Side.SELL, 10, 100_000), d.now)) is RejectReason.CALENDAR_UNPUBLISHED


def test_an_accepted_weekday_assumption_trades_weekdays_and_not_weekends() -> None:
    assumed = TradingCalendar(synthetic_calendar({2026: [], 2027: None}))
    d = desk(assumed, ist_ns(2027, 1, 4, 10, 0))
    assert d.gate.check(d.order(REL.key, Side.BUY, 1, 100_000), d.now) == 100_000
    d.now = ist_ns(2027, 1, 2, 10, 0)
    d.tick(REL.key, 100_000)
    assert reason(d.gate.check(d.order(REL.key, Side.BUY, 1, 100_000), d.now)) is RejectReason.MARKET_CLOSED


@pytest.mark.parametrize(("day", "expected"), [(25, None), (26, None), (27, RejectReason.CONTRACT_EXPIRED)])
def test_a_contract_trades_through_its_expiry_day_and_is_refused_after(day: int, expected: RejectReason | None) -> None:
    d = desk(TradingCalendar(synthetic_calendar({2027: []})), ist_ns(2027, 1, day, 10, 0))
    out = d.gate.check(d.order(FUT.key, Side.BUY, 500, 101_000), d.now)
    assert reason(out) is expected
    if expected is not None:
        assert isinstance(out, Rejection) and out.limit == "2027-01-26" and "expired on 2027-01-26" in out.message


def test_an_expired_contract_is_refused_even_to_close() -> None:
    d = desk(TradingCalendar(synthetic_calendar({2027: []})), ist_ns(2027, 1, 25, 10, 0))
    order = d.submit(d.order(FUT.key, Side.BUY, 500, 101_000))
    assert not isinstance(order, Rejection)
    d.fill(order)
    d.now = ist_ns(2027, 1, 27, 10, 0)
    d.tick(FUT.key, 101_000)
    assert reason(d.gate.check(d.order(FUT.key, Side.SELL, 500, 101_000), d.now)) is RejectReason.CONTRACT_EXPIRED
