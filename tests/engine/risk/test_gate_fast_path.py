"""The gate's fast path against its checks: it may pass an order only when the checks pass it, at the same price.

The checks (``RiskGate._first_refusal``) are the reference; the fast path (``RiskGate._passes``)
reads precomputed per-instrument records instead. Random desks under tight limits reach every
refusal: sizes, collar, position and exposure caps with working orders, loss limits after price
moves, open-order and daily counts, duplicates, rates, trading state, hours and staleness.
"""

from __future__ import annotations

import collections
import datetime as dt
import random

from hypothesis import given, settings
from hypothesis import strategies as st

from app.domain.india_time import IST
from app.domain.instruments import Exchange
from app.domain.orders import Order, OrderSource, OrderType, Side
from app.domain.rejections import Rejection, RejectReason
from app.domain.requests import NewOrder
from app.domain.trading_state import TradingState
from app.engine.risk.gate import CHECKS
from app.engine.risk.records import NEVER_EXPIRES, expired_from_ns
from tests.engine.conftest import cash, future
from tests.support.limits import wide_limits

from .desk import Desk

REL = cash("RELIANCE")
TCS = cash("TCS")
NIFTY = future("NIFTY", lot=1, freeze=1_000)
ALL = [REL, TCS, NIFTY]
START = {REL.key: 100_000, TCS.key: 300_000, NIFTY.key: 60_000}
NS = 1_000_000_000

TIGHT = {
    "desk": {
        "max_gross_exposure_inr": 24_000, "max_net_exposure_inr": 20_000, "daily_loss_limit_inr": 600,
        "trailing_loss_limit_inr": 400, "max_open_orders": 5, "max_orders_per_day": 12, "duplicate_window_seconds": 2,
        "reference_max_age_seconds": 30, "enforce_trading_hours": True, "restricted": [TCS.key],
    },
    "rates": {"default": 4},
    "defaults": {"max_order_lots": 15, "max_order_value_inr": 15_000, "price_collar_pct": 2, "max_position_lots": 25,
                 "max_position_value_inr": 35_000},
    "per_instrument": {REL.key: {"max_position_value_inr": 20_000}},
    "underlyings": {"RELIANCE": {"max_gross_exposure_inr": 18_000, "max_net_exposure_inr": 12_000}},
}

WAITS_S = (0, 0, 0.2, 0.2, 1.1, 1.1, 1.1, 40, 1_800, 6 * 3_600)
PICKS = (REL, REL, REL, NIFTY, NIFTY, NIFTY, TCS)  # TCS is restricted: only flatten orders pass


def _fresh_desk() -> Desk:
    d = Desk(ALL, wide_limits(ALL, **TIGHT))
    for key, price in START.items():
        d.tick(key, price)
    return d


def _compare(d: Desk, new: NewOrder) -> bool:
    """Hold the fast path to the checks for ``new``; True when the fast path decided it (passed or refused)."""
    gate = d.gate
    fast = gate._passes(new, d.now)
    reference = gate._first_refusal(new, d.now)
    if fast is not None:
        assert reference == fast, f"fast path said {fast} for {new}; the checks say {reference}"
        return True
    if not isinstance(reference, Rejection):
        # The fast path may only defer orders the checks let through by an exemption it does not model.
        decision = gate._decision(new, d.now)
        limits = decision.instrument_limits
        flatten_restricted = limits is not None and limits.restricted and new.source is OrderSource.FLATTEN
        assert decision.reducing or flatten_restricted, f"fast path deferred {new}, which the checks pass plainly"
    return False


def _walk(seed: int, steps: int) -> collections.Counter[str]:
    """A random desk session of ``steps`` actions, every order compared; what the checks said, counted."""
    rng = random.Random(seed)
    d = _fresh_desk()
    marks = dict(START)
    working: list[Order] = []
    seen: collections.Counter[str] = collections.Counter()
    previous: NewOrder | None = None
    for _ in range(steps):
        roll = rng.random()
        if roll < 0.55:
            if previous is not None and rng.random() < 0.1:
                new = previous  # the same order again: the duplicate window
            else:
                instrument = rng.choice(PICKS)
                kind = OrderType.MARKET if rng.random() < 0.2 else OrderType.LIMIT
                mark, tick = marks[instrument.key], instrument.tick_size
                price = None if kind is OrderType.MARKET else mark + mark * rng.randint(-250, 250) // 10_000 // tick * tick
                source = rng.choice((OrderSource.STRATEGY, OrderSource.STRATEGY, OrderSource.TICKET, OrderSource.FLATTEN))
                new = d.order(instrument.key, rng.choice((Side.BUY, Side.SELL)), rng.randint(1, 18), price,
                              source=source, order_type=kind)
            previous = new
            fast = _compare(d, new)
            placed = d.submit(new)
            seen[f"{'fast' if fast else 'checks'}:{placed.reason if isinstance(placed, Rejection) else 'pass'}"] += 1
            if not isinstance(placed, Rejection):
                working.append(placed)
        elif roll < 0.67 and working:
            order = working.pop(rng.randrange(len(working)))
            if order.status.is_working:
                d.fill(order)
        elif roll < 0.75 and working:
            order = working.pop(rng.randrange(len(working)))
            if order.status.is_working:
                d.cancel(order)
        elif roll < 0.90:
            instrument = rng.choice(ALL)
            marks[instrument.key] = max(1_000, marks[instrument.key] + rng.randint(-150, 150) * instrument.tick_size)
            d.tick(instrument.key, marks[instrument.key])
        elif roll < 0.92:
            d.state = rng.choice((TradingState.ACTIVE,) * 8 + (TradingState.REDUCING, TradingState.HALTED))
        elif roll < 0.98:
            d.now += int(rng.choice(WAITS_S) * NS)
        else:
            # Into the next session (within its first hour), prices fresh: a new trading day.
            opens = d.gate.calendar.next_open_ns(Exchange.NSE, d.now)
            assert opens is not None
            d.now = opens + rng.randrange(3_600) * NS
            for key, price in marks.items():
                d.tick(key, price)
    return seen


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 2**32 - 1))
def test_the_fast_path_never_passes_what_the_checks_refuse(seed: int) -> None:
    _walk(seed, 150)


def test_the_walks_reach_every_refusal_the_fast_path_must_see() -> None:
    # Without this the property above could pass by never meeting a limit.
    seen: collections.Counter[str] = collections.Counter()
    for seed in range(25):
        seen += _walk(seed, 150)
    # The fast path names these refusals itself; every other comes from the ordered checks.
    fast = {"fast:pass", "fast:ORDER_QUANTITY_LIMIT", "fast:PRICE_COLLAR", "fast:ORDER_VALUE_LIMIT"}
    expected = fast | {
        "checks:pass", "checks:TRADING_HALTED", "checks:NOT_RISK_REDUCING", "checks:RESTRICTED_INSTRUMENT",
        "checks:MARKET_CLOSED", "checks:SOURCE_RATE_LIMIT", "checks:MAX_OPEN_ORDERS", "checks:MAX_ORDERS_PER_DAY",
        "checks:DUPLICATE_ORDER", "checks:STALE_PRICE", "checks:POSITION_QUANTITY_LIMIT", "checks:POSITION_VALUE_LIMIT",
        "checks:UNDERLYING_GROSS_LIMIT", "checks:UNDERLYING_NET_LIMIT", "checks:GROSS_EXPOSURE_LIMIT",
        "checks:NET_EXPOSURE_LIMIT", "checks:DAILY_LOSS_LIMIT", "checks:TRAILING_LOSS_LIMIT",
    }
    assert expected <= set(seen), f"never reached: {sorted(expected - set(seen))}"


def test_a_contract_counts_as_expired_from_ist_midnight_after_its_expiry_day() -> None:
    limits = wide_limits(ALL)
    d = Desk(ALL, limits)
    midnight = int(dt.datetime(2026, 12, 30, tzinfo=IST).timestamp()) * NS
    assert expired_from_ns(NIFTY) == midnight
    assert expired_from_ns(REL) == NEVER_EXPIRES
    d.now = midnight - 1
    d.tick(NIFTY.key, 26_000)
    assert d.gate.check(d.order(NIFTY.key, Side.BUY, 1, 26_000), d.now) == 26_000
    d.now = midnight
    d.tick(NIFTY.key, 26_000)
    out = d.gate.check(d.order(NIFTY.key, Side.BUY, 1, 26_000), d.now)
    assert isinstance(out, Rejection) and out.reason is RejectReason.CONTRACT_EXPIRED


def test_new_limits_take_effect_on_the_next_decision() -> None:
    d = _fresh_desk()
    d.state = TradingState.ACTIVE
    assert d.gate.check(d.order(REL.key, Side.BUY, 10, 100_000), d.now) == 100_000
    d.gate.set_limits(wide_limits(ALL, defaults={"max_order_lots": 5}))
    out = d.gate.check(d.order(REL.key, Side.BUY, 10, 100_000), d.now)
    assert isinstance(out, Rejection) and out.reason is RejectReason.ORDER_QUANTITY_LIMIT
    # Assigned directly, too: the per-instrument records never outlive the limits they came from.
    d.gate.limits = wide_limits(ALL)
    assert d.gate.check(d.order(REL.key, Side.SELL, 10, 100_000), d.now) == 100_000


def test_a_limit_order_without_a_price_is_refused_not_raised() -> None:
    # Validation never lets one through; if one reached the gate, the checks must refuse it, under -O too.
    d = _fresh_desk()
    new = d.order(REL.key, Side.BUY, 1, None, order_type=OrderType.LIMIT)
    out = d.gate.check(new, d.now)
    assert isinstance(out, Rejection) and out.reason is RejectReason.STALE_PRICE


def test_the_fast_path_was_written_for_exactly_these_checks() -> None:
    # A check added to CHECKS (or one removed) is not known to RiskGate._passes, which would then
    # pass orders the new check refuses: this fails first, so the fast path and the walks' expected
    # refusals are brought up to date in the same change.
    assert [check.__name__ for check, _needs_limits, _needs_price in CHECKS] == [
        "check_trading_state", "check_limit_exists", "check_restricted", "check_order_type", "check_product",
        "check_trading_hours", "check_contract_expiry", "check_daily_loss", "check_source_rate", "check_open_orders",
        "check_orders_per_day", "check_duplicate", "check_order_quantity", "check_reference_price", "check_collar",
        "check_order_value", "check_position_quantity", "check_position_value", "check_underlying_exposure",
        "check_desk_exposure",
    ]
