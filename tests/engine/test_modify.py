"""``Engine.modify``: a working order re-priced or resized through the risk gate, on a real engine over the paper broker."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from app.brokers.base import BrokerError, BrokerErrorCode
from app.brokers.paper import PaperBroker
from app.domain.actors import Actor
from app.domain.broker_messages import BrokerOrder, BrokerOrderUpdate
from app.domain.orders import OrderStatus, Side
from app.domain.rejections import RejectReason
from app.engine.engine import Engine
from app.engine.governor import CallKind
from tests.engine.ticket_desk import (
    ADMIN,
    ALICE,
    BOB,
    NOW,
    REL,
    REL_FUT,
    RISK,
    VIEWER,
    audit_store,
    audited,
    make_engine,
    paper_broker,
    settle,
    started,
    ticket,
)

# The desk's gross and net caps are exactly one working buy of 50 @ ₹1,490.
AT_CAP = {"max_gross_exposure_inr": 74_500, "max_net_exposure_inr": 74_500}


async def working(engine: Engine, quantity: int = 50, rupees: str = "1490", key: str = REL) -> str:
    result = await engine.submit(ticket(Side.BUY, quantity, rupees, key=key), operator=ALICE)
    assert result.accepted and result.client_order_id, result.rejection
    return result.client_order_id


async def at_broker(broker: PaperBroker, client_order_id: str) -> BrokerOrder:
    return next(r for r in await broker.order_book() if isinstance(r, BrokerOrder) and r.client_order_id == client_order_id)


def reason(result: object) -> RejectReason | None:
    rejection = result.rejection  # type: ignore[attr-defined]
    return rejection.reason if rejection is not None else None


async def test_raising_past_the_gross_cap_is_refused_lowering_passes_and_exposure_follows() -> None:
    engine, broker = make_engine(desk=AT_CAP)
    await started(engine)
    cid = await working(engine)
    assert engine.risk_book.desk.growth_value == 50 * 149_000  # at the cap, not over it
    up = await engine.modify(cid, quantity=51, operator=ALICE)
    assert not up.ok and reason(up) is RejectReason.GROSS_EXPOSURE_LIMIT
    assert up.rejection is not None and up.rejection.value is not None and "75,990" in up.rejection.value
    assert (await at_broker(broker, cid)).quantity == 50
    down = await engine.modify(cid, quantity=30, operator=ALICE)
    assert down.ok, down.message
    assert (await at_broker(broker, cid)).quantity == 30
    order = engine.oms.get(cid)
    assert order is not None and (order.quantity, order.price, order.status) == (30, 149_000, OrderStatus.OPEN)
    # The book counts the new terms only: room for 20 more at the cap, and a new order takes it.
    assert engine.risk_book.desk.growth_value == 30 * 149_000
    assert engine.preview(ticket(Side.BUY, 20, "1490")).ok
    assert not engine.preview(ticket(Side.BUY, 21, "1490")).ok
    # Back up to 50: the old contribution is replaced, not added to, so the cap still holds it.
    assert (await engine.modify(cid, quantity=50, operator=ALICE)).ok
    assert engine.risk_book.desk.growth_value == 50 * 149_000
    assert engine.governor.stats.released[CallKind.MODIFY] == 2
    await engine.stop()


async def test_a_new_price_goes_to_the_broker_and_into_the_book() -> None:
    engine, broker = make_engine()
    await started(engine)
    cid = await working(engine)
    result = await engine.modify(cid, price=Decimal("1480.50"), operator=ALICE)
    assert result.ok and "1,480.50" in result.message
    assert (await at_broker(broker, cid)).price == 148_050
    assert engine.oms.get(cid).price == 148_050  # type: ignore[union-attr]
    pending = engine.risk_book.pending(REL)
    assert pending is not None and (pending.buy_quantity, pending.buy_value) == (50, 50 * 148_050)
    # Price and quantity at once, the price as typed.
    assert (await engine.modify(cid, quantity=40, price="1,495", operator=ALICE)).rejection.reason is RejectReason.INVALID_PRICE  # type: ignore[union-attr]
    assert (await engine.modify(cid, quantity=40, price="1495", operator=ALICE)).ok
    assert engine.risk_book.desk.buy_value == 40 * 149_500
    # Out of the collar (5% around ₹1,500): the gate's own code.
    assert reason(await engine.modify(cid, price="1600", operator=ALICE)) is RejectReason.PRICE_COLLAR
    await engine.stop()


@pytest.mark.parametrize(
    "quantity, price, expected",
    [
        (None, "1490.03", RejectReason.PRICE_OFF_TICK),
        (None, "-5", RejectReason.INVALID_PRICE),
        (None, "NaN", RejectReason.INVALID_PRICE),
        (0, None, RejectReason.INVALID_QUANTITY),
        (-10, None, RejectReason.INVALID_QUANTITY),
        (10**30, None, RejectReason.ABOVE_FREEZE_QUANTITY),
        (101, None, RejectReason.ORDER_QUANTITY_LIMIT),
        (50, "1490", RejectReason.NOT_MODIFIABLE),  # changes nothing
        (None, None, RejectReason.NOT_MODIFIABLE),
    ],
)
async def test_bad_terms_are_refused_and_nothing_reaches_the_broker(
    quantity: int | None, price: str | None, expected: RejectReason,
) -> None:
    engine, broker = make_engine()
    await started(engine)
    cid = await working(engine)
    result = await engine.modify(cid, quantity=quantity, price=price, operator=ALICE)
    assert not result.ok and reason(result) is expected and result.message
    row = await at_broker(broker, cid)
    assert (row.quantity, row.price) == (50, 149_000)
    assert engine.governor.stats.released[CallKind.MODIFY] == 0
    await engine.stop()


async def test_the_quantity_stays_a_lot_multiple() -> None:
    engine = await started(make_engine()[0])
    cid = await working(engine, 500, "1000", key=REL_FUT)  # one lot of 500
    for quantity in (750, 250):
        refused = await engine.modify(cid, quantity=quantity, operator=ALICE)
        assert reason(refused) is RejectReason.NOT_LOT_MULTIPLE
        assert refused.rejection is not None and (refused.rejection.value, refused.rejection.limit) == (str(quantity), "500")
    # Two lots at ₹1,000 (₹10 L) pass the lot check but not the RELIANCE gross cap of ₹8 L.
    assert reason(await engine.modify(cid, quantity=1000, operator=ALICE)) is RejectReason.UNDERLYING_GROSS_LIMIT
    assert (await engine.modify(cid, price="1005", operator=ALICE)).ok
    await engine.stop()


async def test_the_quantity_stays_above_what_has_filled() -> None:
    engine = await started(make_engine()[0])
    cid = await working(engine)
    order = engine.oms.get(cid)
    assert order is not None and order.broker_order_id is not None
    engine.oms.apply_update(BrokerOrderUpdate(
        ts_ns=NOW, broker_order_id=order.broker_order_id, client_order_id=cid,
        status=OrderStatus.PARTIALLY_FILLED, filled_quantity=40, average_price=149_000,
    ))
    for quantity in (40, 30):
        refused = await engine.modify(cid, quantity=quantity, operator=ALICE)
        assert reason(refused) is RejectReason.INVALID_QUANTITY and "40 already filled" in refused.message
    assert (await engine.modify(cid, quantity=45, operator=ALICE)).ok
    # Only what is left to fill counts as working: 5 of the 45.
    pending = engine.risk_book.pending(REL)
    assert pending is not None and pending.buy_quantity == 5
    await engine.stop()


async def test_unknown_and_finished_orders_are_refused() -> None:
    engine = await started(make_engine()[0])
    unknown = await engine.modify("BW-NOPE", quantity=10, operator=ALICE)
    assert reason(unknown) is RejectReason.NOT_MODIFIABLE and unknown.message == "no such order"
    cid = await working(engine)
    assert (await engine.cancel(cid, operator=ALICE)).ok
    await settle()
    finished = await engine.modify(cid, quantity=10, operator=ALICE)
    assert reason(finished) is RejectReason.NOT_MODIFIABLE and "CANCELLED" in finished.message
    await engine.stop()


class _EndedAtBroker(PaperBroker):
    """The order filled at the broker a moment ago; the desk has not heard yet."""

    async def modify(self, broker_order_id: str, *, quantity: int | None = None, price: int | None = None) -> None:
        raise BrokerError(BrokerErrorCode.ALREADY_FINAL, f"Order {broker_order_id} is already FILLED and cannot be changed")


async def test_an_order_that_already_ended_at_the_broker_is_answered_plainly() -> None:
    engine, _ = make_engine(broker=paper_broker(_EndedAtBroker))
    await started(engine)
    cid = await working(engine)
    result = await engine.modify(cid, quantity=80, operator=ALICE)
    assert not result.ok and reason(result) is RejectReason.NOT_MODIFIABLE
    assert result.message.startswith("nothing to modify: the order already ended at the broker")
    # Not a broker fault (the error-storm breaker does not count it), and the book is back to the old terms.
    assert engine.breakers.errors.count_since(0) == 0
    assert engine.risk_book.desk.buy_value == 50 * 149_000
    assert engine.oms.get(cid).quantity == 50  # type: ignore[union-attr]
    await engine.stop()


async def test_halted_refuses_every_modify_even_one_that_lowers_the_quantity() -> None:
    engine, broker = make_engine()
    await started(engine)
    cid = await working(engine)
    engine.halt("test halt", "rita")
    for quantity in (80, 20):
        refused = await engine.modify(cid, quantity=quantity, operator=ALICE)
        assert reason(refused) is RejectReason.TRADING_HALTED
    assert (await at_broker(broker, cid)).quantity == 50
    await engine.stop()


async def test_reducing_lets_a_modify_through_only_when_it_reduces() -> None:
    engine, broker = make_engine()
    await started(engine)
    cid = await working(engine)
    engine.reduce_only("test", "rita")
    assert reason(await engine.modify(cid, quantity=80, operator=ALICE)) is RejectReason.NOT_RISK_REDUCING
    assert reason(await engine.modify(cid, price="1495", operator=ALICE)) is RejectReason.NOT_RISK_REDUCING
    assert (await engine.modify(cid, quantity=20, operator=ALICE)).ok
    assert (await at_broker(broker, cid)).quantity == 20
    await engine.stop()


@pytest.mark.parametrize("operator", [BOB, RISK, ADMIN, VIEWER, Actor("alice")])
async def test_only_the_orders_own_trader_modifies_it(operator: Actor) -> None:
    engine, broker = make_engine()
    await started(engine)
    cid = await working(engine)
    refused = await engine.modify(cid, quantity=20, operator=operator)
    assert reason(refused) is RejectReason.NOT_AUTHORISED and operator.name in refused.message
    assert (await at_broker(broker, cid)).quantity == 50
    await engine.stop()


async def test_the_modify_record_is_durable_before_the_broker_sees_the_modify(tmp_path: Path) -> None:
    writer = audit_store(tmp_path)
    engine, broker = make_engine(audit=writer)
    await started(engine)
    cid = await working(engine)
    seen_at_call: list[int] = []
    original = broker.modify

    async def modify(broker_order_id: str, *, quantity: int | None = None, price: int | None = None) -> None:
        # At the moment the broker is called the order.modify record must already be committed.
        seen_at_call.append(sum(1 for r in audited(writer, "order.modify") if r["client_order_id"] == cid and "refused" not in r))
        await original(broker_order_id, quantity=quantity, price=price)

    broker.modify = modify  # type: ignore[method-assign]
    assert (await engine.modify(cid, quantity=30, operator=ALICE)).ok
    assert (await engine.modify(cid, price="1485", operator=ALICE)).ok
    refused = await engine.modify(cid, quantity=20, operator=BOB)
    assert not refused.ok
    await engine.stop()
    writer.close()
    assert seen_at_call == [1, 2]
    records = [r for r in audited(writer, "order.modify") if r["client_order_id"] == cid]
    assert [(r["actor"], r["source"], r.get("quantity_to"), r.get("price_paise_to"), r.get("reason")) for r in records] == [
        ("alice", "ticket", 30, 149_000, None),
        ("alice", "ticket", 30, 148_500, None),
        ("bob", "ticket", None, None, "NOT_AUTHORISED"),
    ]
    acks = [r for r in audited(writer, "broker.ack") if r.get("modify")]
    assert [(r["quantity"], r["price_paise"]) for r in acks] == [(30, 149_000), (30, 148_500)]
    # The store's copy of the order has its new terms (what a restart picks up).
    updates = [r for r in audited(writer, "order.update") if r["client_order_id"] == cid]
    assert updates, "the modified order was not written back"


async def test_preview_modify_shows_what_modify_will_meet_with_the_headroom_after_the_replacement() -> None:
    engine, broker = make_engine(desk=AT_CAP)
    await started(engine)
    cid = await working(engine)
    up = engine.preview_modify(cid, quantity=51, price="1600")
    assert [r.reason for r in up.rejections] == [RejectReason.PRICE_COLLAR, RejectReason.GROSS_EXPOSURE_LIMIT]
    desk = {h.name: h for h in up.headroom}["desk gross"]
    assert (desk.after, desk.limit) == (51 * 160_000, 74_500 * 100)
    assert up.price == 160_000 and up.order_value == 51 * 160_000
    down = engine.preview_modify(cid, quantity=30)
    assert down.ok and {h.name: h for h in down.headroom}["desk gross"].after == 30 * 149_000
    # It sends nothing, counts nothing and leaves the book as it was.
    assert engine.governor.stats.released[CallKind.MODIFY] == 0
    assert engine.risk_book.desk.growth_value == 50 * 149_000
    assert (await at_broker(broker, cid)).quantity == 50
    # Its first refusal is the one modify gives.
    refused = await engine.modify(cid, quantity=51, price="1600", operator=ALICE)
    assert refused.rejection == up.rejections[0]
    assert [r.reason for r in engine.preview_modify(cid, quantity=20, operator=BOB).rejections] == [RejectReason.NOT_AUTHORISED]
    assert [r.reason for r in engine.preview_modify(cid, price="1490.03").rejections] == [RejectReason.PRICE_OFF_TICK]
    assert [r.reason for r in engine.preview_modify("BW-NOPE", quantity=20).rejections] == [RejectReason.NOT_MODIFIABLE]
    await engine.stop()
