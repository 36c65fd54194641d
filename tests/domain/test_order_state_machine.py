"""The order state machine: every (from, to) pair against an explicit table, and fills."""

from __future__ import annotations

import itertools

import pytest

from app.domain.orders import (
    TERMINAL_STATUSES,
    IllegalTransition,
    Order,
    OrderSource,
    OrderStatus,
    OrderType,
    OverFill,
    Product,
    Side,
    Validity,
    can_transition,
)

S = OrderStatus
NEW, SENT, OPEN, PART, FILLED, CANCELLED, REJECTED, EXPIRED, UNKNOWN = (
    S.NEW,
    S.SENT,
    S.OPEN,
    S.PARTIALLY_FILLED,
    S.FILLED,
    S.CANCELLED,
    S.REJECTED,
    S.EXPIRED,
    S.UNKNOWN,
)

# The expected table, written out by hand (rows: from; columns: to). 1 = legal, . = illegal.
# UNKNOWN: the broker's row for a working order could not be read; whatever it says next readably wins.
#
#                 NEW SENT OPEN PART FILLED CANCELLED REJECTED EXPIRED UNKNOWN
_TABLE = """
NEW               .   1    .    .    .      .         1        .       .
SENT              .   .    1    1    1      1         1        1       1
OPEN              .   .    1    1    1      1         1        1       1
PARTIALLY_FILLED  .   .    .    1    1      1         .        1       1
FILLED            .   .    .    .    .      .         .        .       .
CANCELLED         .   .    .    .    .      .         .        .       .
REJECTED          .   .    .    .    .      .         .        .       .
EXPIRED           .   .    .    .    .      .         .        .       .
UNKNOWN           .   .    1    1    1      1         1        1       1
"""
_COLUMNS = [NEW, SENT, OPEN, PART, FILLED, CANCELLED, REJECTED, EXPIRED, UNKNOWN]


def _parse_table() -> dict[tuple[OrderStatus, OrderStatus], bool]:
    table: dict[tuple[OrderStatus, OrderStatus], bool] = {}
    for line in _TABLE.strip().splitlines():
        name, *cells = line.split()
        assert len(cells) == len(_COLUMNS)
        for target, cell in zip(_COLUMNS, cells, strict=True):
            table[(OrderStatus(name), target)] = cell == "1"
    return table


EXPECTED = _parse_table()
ALL_PAIRS = list(itertools.product(list(OrderStatus), repeat=2))


def test_table_covers_every_pair() -> None:
    assert len(OrderStatus) == 9
    assert set(EXPECTED) == set(ALL_PAIRS)
    assert len(EXPECTED) == 81
    assert sum(EXPECTED.values()) == 28


def make_order(status: OrderStatus = NEW, *, quantity: int = 100, filled: int = 0, price: int = 10_000) -> Order:
    order = Order(
        client_order_id="C-1",
        instrument_key="NSE:RELIANCE",
        side=Side.BUY,
        quantity=quantity,
        price=price,
        order_type=OrderType.LIMIT,
        product=Product.INTRADAY,
        validity=Validity.DAY,
        source=OrderSource.TICKET,
        actor="trader",
        created_ns=1_000,
        updated_ns=1_000,
    )
    order.status = status
    order.filled_quantity = filled
    order.fill_value = filled * price
    return order


def _state(order: Order) -> tuple[object, ...]:
    return (
        order.status,
        order.updated_ns,
        order.filled_quantity,
        order.fill_value,
        order.quantity,
        order.broker_order_id,
        order.reject_reason,
        frozenset(order.fill_ids),
    )


@pytest.mark.parametrize(("current", "target"), ALL_PAIRS, ids=[f"{a}->{b}" for a, b in ALL_PAIRS])
def test_transition_pair(current: OrderStatus, target: OrderStatus) -> None:
    order = make_order(current)
    before = _state(order)
    assert can_transition(current, target) is EXPECTED[(current, target)]
    if EXPECTED[(current, target)]:
        order.transition(target, 2_000)
        assert order.status is target
        assert order.updated_ns == 2_000
        # Nothing else moves on a bare transition.
        assert _state(order)[2:] == before[2:]
    else:
        with pytest.raises(IllegalTransition) as info:
            order.transition(target, 2_000)
        assert info.value.client_order_id == "C-1"
        assert info.value.current is current
        assert info.value.target is target
        assert str(current) in str(info.value) and str(target) in str(info.value)
        assert _state(order) == before


@pytest.mark.parametrize("status", sorted(TERMINAL_STATUSES))
def test_terminal_states_have_no_exits(status: OrderStatus) -> None:
    assert status.is_terminal
    assert not status.is_working
    assert not any(can_transition(status, target) for target in OrderStatus)


def test_terminal_and_working_sets() -> None:
    assert {s for s in OrderStatus if s.is_terminal} == {FILLED, CANCELLED, REJECTED, EXPIRED}
    # UNKNOWN may still fill: it counts as exposure and the kill switch cancels it.
    assert {s for s in OrderStatus if s.is_working} == {SENT, OPEN, PART, UNKNOWN}
    assert not NEW.is_terminal and not NEW.is_working


def test_every_non_terminal_state_can_reach_a_terminal_state() -> None:
    for status in OrderStatus:
        if not status.is_terminal:
            assert any(can_transition(status, t) for t in TERMINAL_STATUSES), status


def test_nothing_goes_back_to_new() -> None:
    assert not any(can_transition(s, NEW) for s in OrderStatus)


def test_typical_lifecycle() -> None:
    order = make_order()
    for ts, target in enumerate([SENT, OPEN, OPEN, PART, PART, CANCELLED], start=10):
        order.transition(target, ts)
    assert order.status is CANCELLED
    assert order.updated_ns == 15


# --------------------------------------------------------------------------- fills


def test_partial_then_full_fill() -> None:
    order = make_order(OPEN, quantity=100)
    assert order.remaining_quantity == 100

    order.apply_fill(30, 10_000, 2_000)
    assert order.status is PART
    assert order.filled_quantity == 30
    assert order.fill_value == 30 * 10_000
    assert order.remaining_quantity == 70
    assert order.updated_ns == 2_000
    assert order.is_working

    order.apply_fill(50, 10_010, 3_000)
    assert order.status is PART
    assert order.filled_quantity == 80
    assert order.fill_value == 30 * 10_000 + 50 * 10_010

    order.apply_fill(20, 9_990, 4_000)
    assert order.status is FILLED
    assert order.filled_quantity == 100
    assert order.fill_value == 30 * 10_000 + 50 * 10_010 + 20 * 9_990
    assert order.remaining_quantity == 0
    assert order.updated_ns == 4_000
    assert not order.is_working


def test_single_full_fill_from_open() -> None:
    order = make_order(OPEN, quantity=65)
    order.apply_fill(65, 2_450_000, 5)
    assert order.status is FILLED
    assert order.fill_value == 65 * 2_450_000


def test_an_unknown_order_fills_and_keeps_its_earlier_fills() -> None:
    order = make_order(PART, quantity=100, filled=30)
    order.transition(UNKNOWN, 2_000)
    assert order.is_working and order.remaining_quantity == 70
    order.apply_fill(70, 10_000, 3_000)
    assert order.status is FILLED and order.filled_quantity == 100


def test_fill_straight_from_sent_before_the_ack() -> None:
    order = make_order(SENT, quantity=10)
    order.apply_fill(4, 100, 5)
    assert order.status is PART
    order.apply_fill(6, 100, 6)
    assert order.status is FILLED


def test_fill_on_new_order_is_illegal() -> None:
    order = make_order(NEW, quantity=10)
    before = _state(order)
    with pytest.raises(IllegalTransition):
        order.apply_fill(5, 100, 5)
    assert _state(order) == before


@pytest.mark.parametrize("status", [OPEN, PART, SENT])
@pytest.mark.parametrize("excess", [1, 50])
def test_overfill_raises_and_leaves_order_unchanged(status: OrderStatus, excess: int) -> None:
    filled = 40 if status is PART else 0
    order = make_order(status, quantity=100, filled=filled)
    before = _state(order)
    with pytest.raises(OverFill):
        order.apply_fill(100 - filled + excess, 10_000, 9_999)
    assert _state(order) == before


@pytest.mark.parametrize("quantity", [0, -1, -100])
@pytest.mark.parametrize("status", [OPEN, PART])
def test_non_positive_fill_raises(status: OrderStatus, quantity: int) -> None:
    order = make_order(status, quantity=100, filled=40 if status is PART else 0)
    before = _state(order)
    with pytest.raises(OverFill, match="positive"):
        order.apply_fill(quantity, 10_000, 9_999)
    assert _state(order) == before


@pytest.mark.parametrize("status", [CANCELLED, REJECTED, EXPIRED])
def test_fill_on_terminal_order_with_quantity_left_is_illegal(status: OrderStatus) -> None:
    order = make_order(status, quantity=100, filled=40)
    before = _state(order)
    with pytest.raises(IllegalTransition) as info:
        order.apply_fill(10, 10_000, 9_999)
    assert info.value.current is status
    assert _state(order) == before
    assert order.remaining_quantity == 0


def test_fill_on_filled_order_is_refused() -> None:
    # Nothing is left, so any positive fill would overfill; the order must not move either way.
    order = make_order(FILLED, quantity=100, filled=100)
    before = _state(order)
    with pytest.raises((OverFill, IllegalTransition)):
        order.apply_fill(1, 10_000, 9_999)
    assert _state(order) == before


@pytest.mark.parametrize("status", list(OrderStatus))
def test_remaining_quantity_is_zero_once_terminal(status: OrderStatus) -> None:
    order = make_order(status, quantity=100, filled=30)
    expected = 0 if status.is_terminal else 70
    assert order.remaining_quantity == expected


def test_illegal_transition_error_is_a_value_error() -> None:
    # Callers that guard with ``except ValueError`` must catch both domain errors.
    assert issubclass(IllegalTransition, ValueError)
    assert issubclass(OverFill, ValueError)


def test_side_sign_and_opposite() -> None:
    assert Side.BUY.sign == 1 and Side.SELL.sign == -1
    assert Side.BUY.opposite is Side.SELL and Side.SELL.opposite is Side.BUY


def test_orders_do_not_share_fill_ids() -> None:
    a = make_order()
    b = make_order()
    a.fill_ids.add("F1")
    assert b.fill_ids == set()
