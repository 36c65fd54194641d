"""Flatten alone, against an in-memory desk behind its port (fake_desk.py): the order of its steps,
how it sizes and sides the closing orders, and when it may call the desk flat. On the real engine
and paper broker it is test_kill_switch.py's."""

from __future__ import annotations

import pytest

from app.domain.actors import Actor, Permission
from app.domain.audit import AuditEventType
from app.domain.orders import OrderSource, OrderStatus, OrderType, Product
from app.domain.trading_state import TradingState
from app.engine.risk.flatten import Flattener
from tests.engine.risk.fake_desk import NIFTY_FUT, RELIANCE, FakeDesk, resting
from tests.support.virtual_time import on_virtual_time

RISK = Actor("rita", frozenset({Permission.FLATTEN}))


@on_virtual_time
async def test_flatten_reduces_cancels_closes_in_slices_verifies_and_ends_halted() -> None:
    # Long 40 lots of a future with a freeze quantity of 24 lots and an order-size limit of 1,000
    # (13 lots and change: 13 lots it is); short 7 shares of a cash stock.
    desk = FakeDesk([resting("W1")], positions={NIFTY_FUT.key: 3_000, RELIANCE.key: -7})
    desk.order_caps[NIFTY_FUT.key] = 1_000
    report = await Flattener(desk).run(RISK, confirmed=True)
    assert report.verified_flat and report.rounds == 1 and report.orders_sent == 5, report.summary()
    assert desk.calls == [
        f"durable {AuditEventType.FLATTEN_REQUESTED}", "reduce_only", "cancel W1", "read_book",
        f"submit {NIFTY_FUT.key} SELL 975", f"submit {NIFTY_FUT.key} SELL 975", f"submit {NIFTY_FUT.key} SELL 975",
        f"submit {NIFTY_FUT.key} SELL 75", f"submit {RELIANCE.key} BUY 7",
        "broker_positions", "halt", f"record {AuditEventType.FLATTEN_DONE}",
    ]
    assert desk.orders["W1"].status is OrderStatus.CANCELLED
    assert desk.records[0][1] == {"positions": {NIFTY_FUT.key: 3_000, RELIANCE.key: -7}}
    assert desk.records[-1][1] == report.summary()
    flatten_orders = [o for o in desk.orders.values() if o.source is OrderSource.FLATTEN]
    assert {(o.order_type, o.product) for o in flatten_orders} == {(OrderType.MARKET, Product.INTRADAY)}
    assert desk.state is TradingState.HALTED and desk.halts == [("flatten by rita finished", "rita", False)]


@on_virtual_time
async def test_what_does_not_fill_is_cancelled_and_tried_again_then_reported() -> None:
    desk = FakeDesk(positions={RELIANCE.key: 5})
    desk.fills = False
    report = await Flattener(desk, rounds=2, wait_s=0.2).run(RISK, confirmed=True)
    assert report.rounds == 2 and report.orders_sent == 2
    assert desk.calls.count(f"submit {RELIANCE.key} SELL 5") == 2
    # Each unfilled order is cancelled before the next round is priced.
    assert [o.status for o in desk.orders.values()] == [OrderStatus.CANCELLED, OrderStatus.CANCELLED]
    assert report.remaining_at_desk == {RELIANCE.key: 5} and report.remaining_at_broker == {RELIANCE.key: 5}
    assert not report.verified_flat and desk.state is TradingState.HALTED


@on_virtual_time
async def test_flat_at_the_desk_is_not_flat_until_the_broker_says_so() -> None:
    desk = FakeDesk(positions={RELIANCE.key: 5})
    desk.broker_extra = {"NSE:SBIN": 10}
    report = await Flattener(desk).run(RISK, confirmed=True)
    assert report.remaining_at_desk == {} and report.remaining_at_broker == {"NSE:SBIN": 10}
    assert not report.verified_flat

    desk = FakeDesk(positions={RELIANCE.key: 5})
    desk.positions_unreadable = True
    report = await Flattener(desk).run(RISK, confirmed=True)
    assert report.remaining_at_desk == {} and not report.verified_flat
    assert report.refused == ["could not read the broker's positions: flatness is not verified"]


@on_virtual_time
async def test_what_flatten_cannot_close_is_named_and_the_desk_still_ends_halted() -> None:
    desk = FakeDesk(positions={"NSE:UNLISTED": 3, NIFTY_FUT.key: 75})
    desk.gate_refuses = {NIFTY_FUT.key}
    report = await Flattener(desk, rounds=1).run(RISK, confirmed=True)
    assert report.refused == [
        f"{NIFTY_FUT.key} SELL 75: STALE_PRICE: no fresh price",
        "NSE:UNLISTED: not in the desk's instrument list; close it at the broker",
    ]
    assert report.orders_sent == 0 and not report.verified_flat
    assert desk.state is TradingState.HALTED


async def test_flatten_needs_the_permission_a_confirmation_and_no_other_flatten_running() -> None:
    desk = FakeDesk(positions={RELIANCE.key: 5})
    flattener = Flattener(desk)
    with pytest.raises(PermissionError, match="may not flatten"):
        await flattener.run(Actor("tom", frozenset({Permission.TRADE})), confirmed=True)
    with pytest.raises(ValueError, match="confirmed"):
        await flattener.run(RISK, confirmed=False)
    flattener.running = True
    with pytest.raises(ValueError, match="already running"):
        await flattener.run(RISK, confirmed=True)
    assert desk.calls == [] and desk.state is TradingState.ACTIVE
