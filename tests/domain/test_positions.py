"""Net positions: average cost, realized and unrealized P&L in exact integer paise."""

from __future__ import annotations

from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.domain.fills import Fill
from app.domain.orders import Side
from app.domain.positions import Position

KEY = "NSE:RELIANCE"

prices = st.integers(min_value=1, max_value=5_000_000)  # 1 paisa .. ₹50,000
signed_qtys = st.integers(min_value=-2_000, max_value=2_000).filter(lambda q: q != 0)
fills_st = st.lists(st.tuples(signed_qtys, prices), min_size=1, max_size=30)


def _fill(n: int, signed_qty: int, price: int) -> Fill:
    side = Side.BUY if signed_qty > 0 else Side.SELL
    return Fill(f"F{n}", f"C{n}", KEY, side, abs(signed_qty), price, n)


# --------------------------------------------------------------------------- hand-computed examples


def test_new_position_is_flat() -> None:
    pos = Position(KEY)
    assert pos.quantity == 0 and pos.cost == 0 and pos.realized == 0
    assert pos.average_price is None
    assert pos.unrealized(12_345) == 0
    assert pos.market_value(12_345) == 0


def test_zero_fill_changes_nothing() -> None:
    pos = Position(KEY)
    pos.apply(10, 100)
    assert pos.apply(0, 999) == 0
    assert (pos.quantity, pos.cost, pos.realized) == (10, 1_000, 0)


def test_buys_average_up() -> None:
    pos = Position(KEY)
    assert pos.apply(10, 10_000) == 0
    assert pos.apply(30, 10_400) == 0
    assert pos.quantity == 40
    assert pos.cost == 10 * 10_000 + 30 * 10_400
    assert pos.average_price == Fraction(10 * 10_000 + 30 * 10_400, 40) == 10_300
    assert pos.unrealized(10_500) == 40 * 10_500 - 412_000 == 8_000
    assert pos.market_value(10_500) == 420_000


def test_long_partial_then_full_close() -> None:
    pos = Position(KEY)
    pos.apply(1, 100)
    pos.apply(2, 101)  # cost 302, average 100.67
    # Close 1: removes round(302 / 3) = 101 of cost; realized 110 - 101.
    assert pos.apply(-1, 110) == 9
    assert (pos.quantity, pos.cost, pos.realized) == (2, 201, 9)
    assert pos.average_price == Fraction(201, 2)
    # Close the rest: the last close removes everything left.
    assert pos.apply(-2, 90) == 180 - 201 == -21
    assert (pos.quantity, pos.cost, pos.realized) == (0, 0, -12)
    assert pos.average_price is None
    # Cash flow: -100 - 202 + 110 + 180 = -12.
    assert pos.realized == -100 - 202 + 110 + 180


def test_partial_close_rounds_half_to_even() -> None:
    pos = Position(KEY)
    pos.apply(1, 2)
    pos.apply(1, 3)  # cost 5 over 2 units: each unit carries 2.5
    assert pos.apply(-1, 10) == 10 - 2  # 2.5 rounds to 2 (even)
    assert pos.cost == 3
    assert pos.apply(-1, 10) == 10 - 3
    assert pos.realized == 15 == -2 - 3 + 10 + 10


def test_flip_long_to_short() -> None:
    pos = Position(KEY)
    pos.apply(10, 100)
    assert pos.apply(-15, 110) == 100
    assert pos.realized == 100
    assert pos.quantity == -5
    assert pos.average_price == 110
    assert pos.cost == -550
    # A short gains when the price falls.
    assert pos.unrealized(100) == 50
    assert pos.unrealized(120) == -50


def test_flip_long_to_short_in_rupees() -> None:
    pos = Position(KEY)
    pos.apply(10, 10_000)  # ₹100
    assert pos.apply(-15, 11_000) == 10_000  # ₹100 realized
    assert pos.quantity == -5
    assert pos.average_price == 11_000


def test_flip_short_to_long() -> None:
    pos = Position(KEY)
    pos.apply(-4, 250)
    assert pos.apply(10, 200) == 4 * 50
    assert pos.quantity == 6
    assert pos.average_price == 200
    assert pos.cost == 1_200


def test_short_position() -> None:
    pos = Position(KEY)
    pos.apply(-10, 100)
    pos.apply(-10, 120)
    assert pos.quantity == -20
    assert pos.cost == -2_200
    assert pos.average_price == 110  # positive price for a short too
    assert pos.market_value(100) == -2_000
    assert pos.unrealized(100) == 200
    assert pos.apply(5, 90) == 5 * (110 - 90)
    assert pos.quantity == -15
    assert pos.average_price == 110
    assert pos.apply(15, 130) == 15 * (110 - 130)
    assert pos.quantity == 0 and pos.cost == 0
    assert pos.average_price is None
    assert pos.realized == 100 - 300


def test_exact_close_leaves_flat_with_no_residual_cost() -> None:
    pos = Position(KEY)
    pos.apply(3, 100)
    pos.apply(3, 101)
    pos.apply(-1, 100)
    pos.apply(-1, 100)
    pos.apply(-1, 100)
    pos.apply(-3, 100)
    assert pos.quantity == 0
    assert pos.cost == 0  # rounding residue never survives a flat position
    assert pos.realized == 6 * 100 - 603


def test_fill_signed_quantity_and_cash_flow() -> None:
    buy = Fill("F1", "C1", KEY, Side.BUY, 10, 12_345, 1)
    sell = Fill("F2", "C2", KEY, Side.SELL, 4, 12_400, 2)
    assert buy.signed_quantity == 10 and buy.cash_flow == -123_450
    assert sell.signed_quantity == -4 and sell.cash_flow == 49_600


# --------------------------------------------------------------------------- properties


@st.composite
def round_trips(draw: st.DrawFn) -> list[tuple[int, int]]:
    fills = draw(fills_st)
    total = sum(q for q, _ in fills)
    if total:
        fills.append((-total, draw(prices)))
    return fills


@settings(max_examples=300)
@given(round_trips())
def test_round_trip_realized_equals_cash_flow(fills: list[tuple[int, int]]) -> None:
    pos = Position(KEY)
    returned = 0
    cash = 0
    for n, (q, p) in enumerate(fills):
        returned += pos.apply(q, p)
        cash += _fill(n, q, p).cash_flow
    assert pos.quantity == 0
    assert pos.cost == 0
    assert pos.average_price is None
    assert pos.realized == cash
    assert returned == pos.realized


@settings(max_examples=300)
@given(fills_st, st.lists(prices, min_size=1, max_size=3))
def test_mark_to_market_identity_holds_after_every_fill(fills: list[tuple[int, int]], marks: list[int]) -> None:
    pos = Position(KEY)
    cash = 0
    quantity = 0
    for q, p in fills:
        pos.apply(q, p)
        cash += -q * p
        quantity += q
        assert pos.quantity == quantity
        for mark in marks:
            assert pos.realized + pos.unrealized(mark) == cash + quantity * mark
            assert pos.market_value(mark) == quantity * mark
        if quantity == 0:
            assert pos.average_price is None
            assert pos.cost == 0
        else:
            # The average is a price: positive and, for a short, still positive.
            assert pos.average_price is not None and pos.average_price > 0
            assert (pos.cost > 0) == (pos.quantity > 0)


@settings(max_examples=300)
@given(
    st.sampled_from([1, -1]),
    st.lists(st.tuples(st.integers(1, 500), prices), min_size=1, max_size=5),
    st.lists(st.tuples(st.integers(1, 10_000), prices), min_size=1, max_size=10),
)
def test_partial_closes_keep_the_average_of_the_remainder(
    direction: int, opens: list[tuple[int, int]], closes: list[tuple[int, int]]
) -> None:
    pos = Position(KEY)
    for q, p in opens:
        pos.apply(direction * q, p)
    start_average = pos.average_price
    assert start_average == Fraction(sum(q * p for q, p in opens), sum(q for q, _ in opens))

    n_closes = 0
    for raw, price in closes:
        held = abs(pos.quantity)
        if held <= 1:
            break
        closing = 1 + raw % (held - 1)  # strictly partial: 1 .. held-1
        before = pos.average_price
        assert before is not None
        realized = pos.apply(-direction * closing, price)
        n_closes += 1
        after = pos.average_price
        assert after is not None
        assert abs(pos.quantity) == held - closing
        # The cost removed is the proportional share rounded to the paisa: the remainder's cost is
        # within half a paisa of (its quantity x the old average) ...
        assert abs(pos.cost - before * pos.quantity) <= Fraction(1, 2)
        # ... so the average moves by at most one paisa per close.
        assert abs(after - before) <= 1
        assert abs(after - start_average) <= n_closes
        # Realized P&L is the closed quantity times the move from the average, to within half a paisa.
        assert abs(realized - direction * closing * (price - before)) <= Fraction(1, 2)


@settings(max_examples=200)
@given(st.integers(1, 10_000), prices, st.integers(1, 10_000), prices)
def test_flip_realizes_the_whole_old_position_and_opens_the_rest_at_the_fill_price(
    held: int, entry: int, extra: int, exit_price: int
) -> None:
    for direction in (1, -1):
        pos = Position(KEY)
        pos.apply(direction * held, entry)
        realized = pos.apply(-direction * (held + extra), exit_price)
        assert realized == direction * held * (exit_price - entry)
        assert pos.quantity == -direction * extra
        assert pos.average_price == exit_price
        assert pos.cost == -direction * extra * exit_price
        assert pos.unrealized(exit_price) == 0


@settings(max_examples=200)
@given(fills_st)
def test_position_is_independent_of_how_same_price_fills_are_split(fills: list[tuple[int, int]]) -> None:
    # Opening in one fill or in unit fills at the same price gives the same position.
    q, p = fills[0]
    whole = Position(KEY)
    whole.apply(q, p)
    pieces = Position(KEY)
    step = 1 if q > 0 else -1
    for _ in range(abs(q)):
        pieces.apply(step, p)
    assert (whole.quantity, whole.cost, whole.realized) == (pieces.quantity, pieces.cost, pieces.realized)
    assert whole.average_price == p


@pytest.mark.parametrize("direction", [1, -1])
def test_average_price_none_only_when_flat(direction: int) -> None:
    pos = Position(KEY)
    pos.apply(direction * 7, 333)
    assert pos.average_price == 333
    pos.apply(-direction * 7, 100)
    assert pos.average_price is None
    pos.apply(-direction * 2, 50)
    assert pos.average_price == 50
    assert pos.quantity == -direction * 2
