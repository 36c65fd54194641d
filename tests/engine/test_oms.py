"""OMS: client ids, idempotent and order-insensitive broker updates, reconciliation."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.domain.broker_messages import BrokerOrder, BrokerOrderUpdate, UnreadableOrder
from app.domain.events import Alert, OrderEvent
from app.domain.fills import Fill
from app.domain.instruments import Instrument
from app.domain.orders import (
    Order,
    OrderSource,
    OrderStatus,
    OrderType,
    Product,
    Side,
    Validity,
)
from app.domain.requests import NewOrder
from app.engine.bus import EventBus
from app.engine.oms import OrderManager, UpdateOutcome

from .conftest import cash

TCS = cash("TCS")


class Harness:
    def __init__(self) -> None:
        self.bus = EventBus()
        self.fills: list[Fill] = []
        self.events: list[OrderEvent] = []
        self.bus.subscribe(Fill, self.fills.append)
        self.bus.subscribe(OrderEvent, self.events.append)
        clock = itertools.count(1)
        self.oms = OrderManager(self.bus, lambda: next(clock))

    def order(self, quantity: int = 10, price: int = 400_000, instrument: Instrument = TCS) -> Order:
        new = NewOrder(instrument, Side.BUY, quantity, price, OrderType.LIMIT, Product.INTRADAY, Validity.DAY, OrderSource.API, "tester")
        order = self.oms.create(new, price)
        self.oms.mark_sent(order)
        return order


def upd(bid: str | None = "B1", status: OrderStatus | None = None, filled: int | None = None, avg: int | None = None, **kw: object) -> BrokerOrderUpdate:
    return BrokerOrderUpdate(ts_ns=kw.pop("ts", 1), broker_order_id=bid, status=status, filled_quantity=filled, average_price=avg, **kw)  # type: ignore[arg-type]


def test_client_ids_are_unique_and_prefixed() -> None:
    h = Harness()
    ids = {h.order().client_order_id for _ in range(100)}
    assert len(ids) == 100
    assert all(i.startswith("BW") for i in ids)
    other = Harness()
    assert not ids & {other.order().client_order_id for _ in range(100)}


def test_ack_binds_and_opens() -> None:
    h = Harness()
    order = h.order()
    h.oms.bind(order, "B1")
    assert order.status is OrderStatus.OPEN
    assert h.oms.by_broker_id("B1") is order
    assert [e.order.status for e in h.events] == [OrderStatus.NEW, OrderStatus.SENT, OrderStatus.OPEN]


def test_cumulative_fills_produce_exact_fill_events() -> None:
    h = Harness()
    order = h.order(quantity=10)
    h.oms.bind(order, "B1")
    assert h.oms.apply_update(upd(status=OrderStatus.PARTIALLY_FILLED, filled=4, avg=400_000)) is UpdateOutcome.APPLIED
    assert h.oms.apply_update(upd(status=OrderStatus.FILLED, filled=10, avg=400_600)) is UpdateOutcome.APPLIED
    assert [(f.quantity, f.price) for f in h.fills] == [(4, 400_000), (6, 401_000)]
    assert order.status is OrderStatus.FILLED
    assert order.fill_value == 10 * 400_600


def test_duplicates_are_ignored() -> None:
    h = Harness()
    order = h.order(quantity=10)
    h.oms.bind(order, "B1")
    update = upd(status=OrderStatus.PARTIALLY_FILLED, filled=4, avg=400_000)
    assert h.oms.apply_update(update) is UpdateOutcome.APPLIED
    for _ in range(5):
        assert h.oms.apply_update(update) is UpdateOutcome.DUPLICATE
    assert len(h.fills) == 1
    assert h.oms.counters.duplicate == 5


def test_out_of_order_updates_do_not_move_backwards() -> None:
    h = Harness()
    order = h.order(quantity=10)
    h.oms.bind(order, "B1")
    h.oms.apply_update(upd(status=OrderStatus.PARTIALLY_FILLED, filled=6, avg=400_000))
    assert h.oms.apply_update(upd(status=OrderStatus.PARTIALLY_FILLED, filled=3, avg=400_000)) is UpdateOutcome.STALE
    assert h.oms.apply_update(upd(status=OrderStatus.OPEN)) is UpdateOutcome.STALE
    assert order.status is OrderStatus.PARTIALLY_FILLED
    assert order.filled_quantity == 6
    assert sum(f.quantity for f in h.fills) == 6


def test_update_before_ack_is_held_then_applied() -> None:
    h = Harness()
    order = h.order(quantity=10)
    assert h.oms.apply_update(upd(bid="B9", status=OrderStatus.FILLED, filled=10, avg=400_000)) is UpdateOutcome.HELD
    assert h.fills == []
    h.oms.bind(order, "B9")
    assert order.status is OrderStatus.FILLED
    assert sum(f.quantity for f in h.fills) == 10


def test_update_with_client_id_binds_without_ack() -> None:
    h = Harness()
    order = h.order(quantity=5)
    outcome = h.oms.apply_update(upd(bid="B3", client_order_id=order.client_order_id, status=OrderStatus.OPEN))
    assert outcome is UpdateOutcome.APPLIED
    assert h.oms.by_broker_id("B3") is order


def test_malformed_updates_never_raise_and_change_nothing() -> None:
    h = Harness()
    order = h.order(quantity=10)
    h.oms.bind(order, "B1")
    bad = [
        upd(bid=None),  # no id at all
        upd(filled=-1),
        upd(filled=11, avg=400_000),  # more than the order's quantity
        upd(filled="5", avg=400_000),  # type: ignore[arg-type]
        upd(avg=True, filled=2),
        upd(status="FILLED"),  # type: ignore[arg-type]
        upd(bid=""),
        BrokerOrderUpdate(ts_ns="now", broker_order_id="B1", filled_quantity=1, average_price=1),  # type: ignore[arg-type]
    ]
    for update in bad:
        assert h.oms.apply_update(update) in (UpdateOutcome.MALFORMED, UpdateOutcome.UNKNOWN_ORDER)
    assert order.status is OrderStatus.OPEN
    assert order.filled_quantity == 0
    assert h.fills == []


def test_unknown_client_id_only_update_is_counted() -> None:
    h = Harness()
    assert h.oms.apply_update(upd(bid=None, client_order_id="nope")) is UpdateOutcome.UNKNOWN_ORDER
    assert h.oms.counters.unknown_order == 1


def test_fill_after_cancel_still_reaches_the_position() -> None:
    h = Harness()
    order = h.order(quantity=10)
    h.oms.bind(order, "B1")
    h.oms.apply_update(upd(status=OrderStatus.CANCELLED))
    assert h.oms.apply_update(upd(status=OrderStatus.PARTIALLY_FILLED, filled=3, avg=400_000)) is UpdateOutcome.APPLIED
    assert order.status is OrderStatus.CANCELLED
    assert sum(f.quantity for f in h.fills) == 3
    assert h.oms.counters.late_fills == 1


def test_broker_reject_records_reason() -> None:
    h = Harness()
    order = h.order()
    h.oms.bind(order, "B1")
    h.oms.apply_update(upd(status=OrderStatus.REJECTED, reason="RMS: margin shortfall"))
    assert order.status is OrderStatus.REJECTED
    assert order.reject_reason == "RMS: margin shortfall"


@settings(max_examples=150, deadline=None)
@given(
    steps=st.lists(st.integers(1, 5), min_size=1, max_size=6),
    data=st.data(),
)
def test_any_order_or_repetition_of_updates_counts_each_unit_once(steps: list[int], data: st.DataObject) -> None:
    quantity = sum(steps)
    cumulative = list(itertools.accumulate(steps))
    updates = [
        upd(status=OrderStatus.FILLED if c == quantity else OrderStatus.PARTIALLY_FILLED, filled=c, avg=400_000)
        for c in cumulative
    ]
    shuffled = data.draw(st.permutations(updates + data.draw(st.lists(st.sampled_from(updates), max_size=6))))
    h = Harness()
    order = h.order(quantity=quantity)
    h.oms.bind(order, "B1")
    for update in shuffled:
        h.oms.apply_update(update)
    assert sum(f.quantity for f in h.fills) == quantity
    assert order.filled_quantity == quantity
    assert order.status is OrderStatus.FILLED
    assert len({f.fill_id for f in h.fills}) == len(h.fills)


def row(bid: str, cid: str | None, status: OrderStatus, filled: int = 0, avg: int | None = None, qty: int = 10) -> BrokerOrder:
    return BrokerOrder(bid, cid, TCS.key, Side.BUY, qty, 400_000, status, filled, avg)


def test_reconcile_applies_broker_truth_adopts_unknown_and_flags_missing() -> None:
    h = Harness()
    filled_at_broker = h.order()
    h.oms.bind(filled_at_broker, "B1")
    vanished = h.order()
    h.oms.bind(vanished, "B2")
    report = h.oms.reconcile([
        row("B1", filled_at_broker.client_order_id, OrderStatus.FILLED, 10, 400_000),
        row("B7", None, OrderStatus.OPEN),
    ])
    assert filled_at_broker.status is OrderStatus.FILLED
    assert report.updated == [filled_at_broker.client_order_id]
    assert report.adopted == ["EXT-B7"]
    adopted = h.oms.get("EXT-B7")
    assert adopted is not None and adopted.status is OrderStatus.OPEN and adopted.source is OrderSource.SYSTEM
    assert report.missing_at_broker == [vanished.client_order_id]
    assert sum(f.quantity for f in h.fills) == 10


def test_reconcile_twice_is_a_no_op() -> None:
    h = Harness()
    order = h.order()
    h.oms.bind(order, "B1")
    book = [row("B1", order.client_order_id, OrderStatus.PARTIALLY_FILLED, 5, 400_000)]
    h.oms.reconcile(book)
    second = h.oms.reconcile(book)
    assert second.updated == [] and second.adopted == [] and second.problems == []
    assert sum(f.quantity for f in h.fills) == 5


def status_of(order: Order) -> OrderStatus:
    # Read afresh: a status asserted earlier in a test must not narrow what a later reconcile set.
    return order.status


def test_an_unreadable_row_marks_only_its_order_unknown_and_the_others_reconcile() -> None:
    """Found: one malformed row (``expiry_date = None``) made the whole book unreadable, so nothing reconciled."""
    h = Harness()
    garbled = h.order()
    h.oms.bind(garbled, "B1")
    filled = h.order()
    h.oms.bind(filled, "B2")
    report = h.oms.reconcile([
        UnreadableOrder("B1", "Breeze sent order row.expiry_date = None, which the desk cannot read", status=OrderStatus.OPEN),
        row("B2", filled.client_order_id, OrderStatus.FILLED, 10, 400_000),
        UnreadableOrder("B9", "Breeze sent order row.quantity = 'x'"),
    ])
    assert garbled.status is OrderStatus.UNKNOWN and garbled.is_working
    assert report.unknown == [garbled.client_order_id]
    assert filled.status is OrderStatus.FILLED and report.updated == [filled.client_order_id]
    assert report.missing_at_broker == [], "an unreadable row still shows the order is at the broker"
    assert [u.split(":")[0] for u in report.unreadable] == ["B1", "B9"]
    assert any("B9" in p and "does not know" in p for p in report.problems)
    assert [e.order.status for e in h.events if e.order.client_order_id == garbled.client_order_id][-1] is OrderStatus.UNKNOWN
    # Readable again: the broker's word wins.
    again = h.oms.reconcile([row("B1", garbled.client_order_id, OrderStatus.CANCELLED)])
    assert status_of(garbled) is OrderStatus.CANCELLED and again.problems == []


def test_an_unknown_order_takes_a_partial_fill_status_it_already_holds() -> None:
    h = Harness()
    order = h.order()
    h.oms.bind(order, "B1")
    h.oms.reconcile([row("B1", order.client_order_id, OrderStatus.PARTIALLY_FILLED, 4, 400_000)])
    h.oms.reconcile([UnreadableOrder("B1", "garbled")])
    assert order.status is OrderStatus.UNKNOWN
    report = h.oms.reconcile([row("B1", order.client_order_id, OrderStatus.PARTIALLY_FILLED, 4, 400_000)])
    assert status_of(order) is OrderStatus.PARTIALLY_FILLED and report.problems == []
    assert sum(f.quantity for f in h.fills) == 4


@pytest.mark.parametrize("status", [OrderStatus.CANCELLED, OrderStatus.REJECTED, OrderStatus.EXPIRED])
def test_an_unknown_order_closes_when_its_unreadable_row_still_says_it_ended_and_what_it_executed(status: OrderStatus) -> None:
    """Found: an order stayed UNKNOWN for as long as its row stayed unreadable, even when the row's
    status and quantities still read as a rejection or a cancel with nothing executed."""
    h = Harness()
    order = h.order()
    h.oms.bind(order, "B1")
    h.oms.reconcile([UnreadableOrder("B1", "garbled", status=OrderStatus.OPEN)])
    assert order.status is OrderStatus.UNKNOWN
    report = h.oms.reconcile([UnreadableOrder("B1", "garbled expiry", status=status, filled_quantity=0)])
    assert status_of(order) is status and not order.is_working
    assert report.unknown == [] and report.updated == [order.client_order_id]
    assert h.fills == []


def test_an_unreadable_cancelled_row_brings_its_fills_and_closes_a_working_order() -> None:
    h = Harness()
    order = h.order()
    h.oms.bind(order, "B1")
    report = h.oms.reconcile([UnreadableOrder("B1", "garbled", status=OrderStatus.CANCELLED, filled_quantity=4,
                                              average_price=400_500)])
    assert order.status is OrderStatus.CANCELLED and report.unknown == []
    assert [(f.quantity, f.price) for f in h.fills] == [(4, 400_500)]


@pytest.mark.parametrize(
    ("row_", "doubt"),
    [(UnreadableOrder("B1", "garbled quantity", status=OrderStatus.REJECTED), "what it executed cannot be read"),
     (UnreadableOrder("B1", "garbled average", status=OrderStatus.CANCELLED, filled_quantity=6), "price"),
     (UnreadableOrder("B1", "garbled", status=OrderStatus.CANCELLED, filled_quantity=2, average_price=400_000),
      "shows 2 executed where the desk holds 4")],
    ids=["no-quantity", "no-price", "fewer-than-held"],
)
def test_an_unreadable_row_that_says_ended_but_not_what_executed_keeps_the_order_unknown_and_alerts_once(
    row_: UnreadableOrder, doubt: str,
) -> None:
    h = Harness()
    alerts: list[Alert] = []
    h.bus.subscribe(Alert, alerts.append)
    order = h.order()
    h.oms.bind(order, "B1")
    h.oms.reconcile([row("B1", order.client_order_id, OrderStatus.PARTIALLY_FILLED, 4, 400_000)])
    for _ in range(3):
        report = h.oms.reconcile([row_])
        assert status_of(order) is OrderStatus.UNKNOWN and order.is_working and report.unknown == [order.client_order_id]
    assert len(alerts) == 1 and doubt in alerts[0].message and str(row_.status) in alerts[0].message
    assert order.client_order_id in alerts[0].message
    assert sum(f.quantity for f in h.fills) == 4


def test_an_unreadable_row_leaves_a_closed_order_closed() -> None:
    h = Harness()
    order = h.order()
    h.oms.bind(order, "B1")
    h.oms.reconcile([row("B1", order.client_order_id, OrderStatus.CANCELLED)])
    report = h.oms.reconcile([UnreadableOrder("B1", "garbled")])
    assert order.status is OrderStatus.CANCELLED and report.unknown == []
    assert report.problems and "CANCELLED" in report.problems[0]
