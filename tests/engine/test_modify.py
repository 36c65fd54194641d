"""``Engine.modify``: a working order re-priced or resized through the risk gate, on a real engine over the paper broker."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path

import pytest

from app.brokers.base import BrokerError, BrokerErrorCode
from app.brokers.paper import PaperBroker
from app.domain.actors import Actor
from app.domain.broker_messages import BrokerOrder, BrokerOrderUpdate
from app.domain.orders import OrderStatus, PendingModify, Side
from app.domain.rejections import RejectReason
from app.engine.config import EngineConfig
from app.engine.engine import Engine
from app.engine.governor import CallKind
from tests.engine.ticket_desk import (
    ADMIN,
    ALICE,
    BOB,
    INSTRUMENTS,
    NOW,
    REL,
    REL_FUT,
    RISK,
    VIEWER,
    audit_store,
    audited,
    limits,
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
        seen_at_call.append(sum(1 for r in audited(writer, "order.modify") if r["client_order_id"] == cid))
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
    assert [(r["actor"], r["source"], r["quantity_to"], r["price_paise_to"]) for r in records] == [
        ("alice", "ticket", 30, 149_000),
        ("alice", "ticket", 30, 148_500),
    ]
    # A refusal is its own event, never mistaken for a modify that went out.
    refusals = [r for r in audited(writer, "order.modify_refused") if r["client_order_id"] == cid]
    assert [(r["actor"], r["source"], r["reason"], r["order_actor"]) for r in refusals] == [("bob", "ticket", "NOT_AUTHORISED", "alice")]
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


# -- a modify in flight, refused, or without an answer -------------------------------------------


class _HeldModify(PaperBroker):
    """A broker whose answer to a modify waits for the test.

    ``applies``: the exchange takes the new terms at once (its book shows them) whatever the answer;
    ``answer``: what the broker then says (``None``: accepted). ``book_open`` holds reads of the order
    book, so a test sees the desk between a modify without an answer and the book that settles it.
    """

    applies = True
    answer: BrokerError | None = None
    reached: asyncio.Event
    release: asyncio.Event
    book_open: asyncio.Event

    async def modify(self, broker_order_id: str, *, quantity: int | None = None, price: int | None = None) -> None:
        if self.applies:
            await super().modify(broker_order_id, quantity=quantity, price=price)
        self.reached.set()
        await self.release.wait()
        if self.answer is not None:
            raise self.answer

    async def order_book(self) -> list[BrokerOrder]:
        await self.book_open.wait()
        return await super().order_book()


def held_broker(*, applies: bool, answer: BrokerError | None = None) -> _HeldModify:
    broker = paper_broker(_HeldModify)
    assert isinstance(broker, _HeldModify)
    broker.applies, broker.answer = applies, answer
    broker.reached, broker.release, broker.book_open = asyncio.Event(), asyncio.Event(), asyncio.Event()
    broker.book_open.set()
    return broker


def fill_at_broker(broker: PaperBroker, client_order_id: str, filled: int, price: int = 149_000) -> None:
    """The exchange fills the order up to ``filled`` (cumulative) and the broker sends its update, as its
    matching would (the paper market does not move in these tests, so it never matches by itself)."""
    order = next(o for o in broker._orders.values() if o.client_order_id == client_order_id)
    order.fill_value += (filled - order.filled_quantity) * price
    order.filled_quantity = filled
    order.status = OrderStatus.FILLED if filled == order.quantity else OrderStatus.PARTIALLY_FILLED
    broker._publish(order, NOW)


async def until(condition: Callable[[], bool]) -> None:
    """Let the engine's tasks run until ``condition`` holds (a bounded number of loop turns, no timer)."""
    for _ in range(500):
        if condition():
            return
        await asyncio.sleep(0)
    raise AssertionError("the engine never got there")


def working_buys(engine: Engine) -> tuple[int, int]:
    """The quantity and value the risk book counts as working buys of RELIANCE."""
    pending = engine.risk_book.pending(REL)
    assert pending is not None
    return pending.buy_quantity, pending.buy_value


async def test_a_refused_modify_restores_the_old_terms_and_a_fill_while_it_was_out_keeps_the_worst_case() -> None:
    broker = held_broker(applies=False, answer=BrokerError(BrokerErrorCode.REJECTED, "RMS: quantity above the client's limit"))
    engine, _ = make_engine(broker=broker)
    await started(engine)
    cid = await working(engine)
    out = asyncio.ensure_future(engine.modify(cid, quantity=80, price="1495", operator=ALICE))
    await broker.reached.wait()
    # Out at the broker: the larger quantity at the larger price.
    assert working_buys(engine) == (80, 80 * 149_500)
    fill_at_broker(broker, cid, 20)
    await until(lambda: engine.portfolio.position(REL) == 20)
    # The fill's order event keeps the worst case (80 - 20 at ₹1,495), never the old terms alone.
    assert working_buys(engine) == (60, 60 * 149_500)
    second = await engine.modify(cid, quantity=40, operator=ALICE)
    assert reason(second) is RejectReason.NOT_MODIFIABLE and "under way" in second.message
    broker.release.set()
    result = await out
    assert not result.ok and reason(result) is RejectReason.BROKER_REJECTED
    order = engine.oms.get(cid)
    assert order is not None and order.pending_modify is None
    assert (order.quantity, order.price, order.filled_quantity, order.status) == (50, 149_000, 20, OrderStatus.PARTIALLY_FILLED)
    assert working_buys(engine) == (30, 30 * 149_000)
    assert engine.oms.counters.malformed == 0
    # Nothing is left pending: the order takes the next modify.
    broker.applies, broker.answer = True, None
    assert (await engine.modify(cid, quantity=40, operator=ALICE)).ok
    assert working_buys(engine) == (20, 20 * 149_000)
    await engine.stop()


async def test_the_old_quantity_filled_while_a_raise_is_out_stays_working_until_the_refusal_closes_it() -> None:
    broker = held_broker(applies=False, answer=BrokerError(BrokerErrorCode.REJECTED, "RMS: quantity above the client's limit"))
    engine, _ = make_engine(broker=broker)
    await started(engine)
    cid = await working(engine)
    out = asyncio.ensure_future(engine.modify(cid, quantity=80, operator=ALICE))
    await broker.reached.wait()
    fill_at_broker(broker, cid, 50)
    await until(lambda: engine.portfolio.position(REL) == 50)
    order = engine.oms.get(cid)
    assert order is not None
    # The broker may work the raised 80: 30 may still fill, so the order is not FILLED yet.
    assert order.status is OrderStatus.PARTIALLY_FILLED
    assert working_buys(engine) == (30, 30 * 149_000)
    broker.release.set()
    assert not (await out).ok
    assert order.status is OrderStatus.FILLED and (order.quantity, order.filled_quantity) == (50, 50)
    assert working_buys(engine) == (0, 0)
    await engine.stop()


async def test_a_fill_beyond_the_old_quantity_while_the_raise_is_out_is_applied() -> None:
    broker = held_broker(applies=True)
    engine, _ = make_engine(broker=broker)
    await started(engine)
    cid = await working(engine)
    out = asyncio.ensure_future(engine.modify(cid, quantity=80, operator=ALICE))
    await broker.reached.wait()
    # The broker took the raise and filled 70 before its answer to the modify reached the desk.
    fill_at_broker(broker, cid, 70)
    await until(lambda: engine.portfolio.position(REL) == 70)
    order = engine.oms.get(cid)
    assert order is not None and (order.filled_quantity, order.status) == (70, OrderStatus.PARTIALLY_FILLED)
    assert engine.oms.counters.malformed == 0
    assert working_buys(engine) == (10, 10 * 149_000)
    broker.release.set()
    assert (await out).ok
    assert (order.quantity, order.filled_quantity, order.pending_modify) == (80, 70, None)
    assert working_buys(engine) == (10, 10 * 149_000)
    await engine.stop()


async def test_without_an_answer_the_order_is_not_modified_again_until_the_broker_book_settles_its_terms(tmp_path: Path) -> None:
    writer = audit_store(tmp_path)
    broker = held_broker(applies=True, answer=BrokerError(BrokerErrorCode.TIMEOUT, "Breeze did not answer within 5s"))
    engine, _ = make_engine(broker=broker, audit=writer)
    await started(engine)
    cid = await working(engine)
    broker.book_open.clear()
    broker.release.set()
    result = await engine.modify(cid, quantity=80, price="1495", operator=ALICE)
    assert not result.ok and reason(result) is RejectReason.BROKER_TIMEOUT and "may or may not" in result.message
    order = engine.oms.get(cid)
    assert order is not None and order.pending_modify == PendingModify(80, 149_500, unknown=True)
    assert working_buys(engine) == (80, 80 * 149_500)
    # Not modifiable again while its terms are unknown, however the modify is asked.
    again = await engine.modify(cid, quantity=60, operator=ALICE)
    assert reason(again) is RejectReason.NOT_MODIFIABLE and "no clear answer" in again.message
    assert [r.reason for r in engine.preview_modify(cid, quantity=60).rejections] == [RejectReason.NOT_MODIFIABLE]
    # A fill beyond the old quantity (the broker did take the raise) is applied, not dropped for good.
    fill_at_broker(broker, cid, 70, 149_500)
    await until(lambda: engine.portfolio.position(REL) == 70)
    assert engine.oms.counters.malformed == 0
    assert working_buys(engine) == (10, 10 * 149_500)
    # The broker's book settles it: its quantity and price become the order's, and the book counts them only.
    broker.book_open.set()
    await until(lambda: order.pending_modify is None)
    assert (order.quantity, order.price, order.filled_quantity, order.status) == (80, 149_500, 70, OrderStatus.PARTIALLY_FILLED)
    assert working_buys(engine) == (10, 10 * 149_500)
    broker.answer = None
    assert (await engine.modify(cid, quantity=90, operator=ALICE)).ok
    assert working_buys(engine) == (20, 20 * 149_500)
    await engine.stop()
    writer.close()
    # Two modifies went out; the one asked while the terms were unknown was refused at the desk.
    assert [r["quantity_to"] for r in audited(writer, "order.modify")] == [80, 90]
    assert [r["reason"] for r in audited(writer, "order.modify_refused")] == ["NOT_MODIFIABLE"]


async def test_a_modify_that_timed_out_and_never_reached_the_exchange_settles_on_the_old_terms() -> None:
    broker = held_broker(applies=False)  # the answer never comes: the engine's own timeout ends the call
    engine = Engine(
        broker, INSTRUMENTS.values(), EngineConfig(market_protection_bps=100, broker_call_timeout=0.05),
        clock_ns=lambda: NOW, limits=limits(),  # type: ignore[arg-type]
    )
    await started(engine)
    cid = await working(engine)
    broker.book_open.clear()
    result = await engine.modify(cid, quantity=80, price="1495", operator=ALICE)
    assert reason(result) is RejectReason.BROKER_TIMEOUT and "within 0.05s" in result.message
    assert working_buys(engine) == (80, 80 * 149_500)
    broker.book_open.set()
    order = engine.oms.get(cid)
    assert order is not None
    await until(lambda: order.pending_modify is None)
    # The exchange still has 50 @ ₹1,490: so does the desk, and the book counts exactly that.
    assert (order.quantity, order.price) == (50, 149_000)
    assert working_buys(engine) == (50, 50 * 149_000)
    assert engine.risk_book.desk.growth_value == 50 * 149_000
    await engine.stop()


async def test_reconcile_takes_the_broker_terms_of_an_order_the_desk_knows() -> None:
    engine, broker = make_engine()
    await started(engine)
    cid = await working(engine)
    order = engine.oms.get(cid)
    assert order is not None and order.broker_order_id is not None
    # Changed at the broker's own website: no order update tells the desk the new terms.
    await broker.modify(order.broker_order_id, quantity=70, price=148_000)
    await settle()
    assert (order.quantity, order.price) == (50, 149_000)
    report = await engine.reconcile()
    assert cid in report.updated and not report.problems
    assert (order.quantity, order.price) == (70, 148_000)
    assert working_buys(engine) == (70, 70 * 148_000)
    await engine.stop()
