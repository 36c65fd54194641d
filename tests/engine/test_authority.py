"""Operator authority in the engine: who may send a ticket order and who may cancel which order."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.domain.actors import Actor, ApiScope, api_actor
from app.domain.audit import AuditSource
from app.domain.events import OrderRejected
from app.domain.orders import OrderSource, OrderStatus, Side
from app.domain.rejections import REASON_TEXT, Rejection, RejectReason
from app.domain.requests import OrderRequest
from tests.engine.ticket_desk import (
    ADMIN,
    ALICE,
    BOB,
    REL,
    RISK,
    VIEWER,
    audit_store,
    audited,
    make_engine,
    settle,
    started,
    ticket,
)


async def test_a_trader_sends_a_ticket_order_in_their_own_name() -> None:
    engine, broker = make_engine()
    await started(engine)
    result = await engine.submit(ticket(actor="alice"), operator=ALICE)
    assert result.accepted
    assert len(await broker.order_book()) == 1
    await engine.stop()


@pytest.mark.parametrize(
    "operator, actor, said",
    [
        (BOB, "alice", "bob may not send an order in the name of alice"),
        (None, "alice", "nobody is signed in"),
        (VIEWER, "vic", "vic (viewer) may not trade"),
        (RISK, "rita", "rita (risk_officer) may not trade"),
        (Actor("ghost"), "ghost", "ghost (no role) may not trade"),
    ],
)
async def test_ticket_orders_need_an_operator_who_may_trade_in_their_own_name(
    operator: Actor | None, actor: str, said: str, tmp_path: Path,
) -> None:
    writer = audit_store(tmp_path)
    engine, broker = make_engine(audit=writer)
    await started(engine)
    published: list[OrderRejected] = []
    engine.bus.subscribe(OrderRejected, published.append)
    result = await engine.submit(ticket(actor=actor), operator=operator)
    assert not result.accepted and result.rejection is not None
    assert result.rejection.reason is RejectReason.NOT_AUTHORISED and said in result.rejection.message
    assert [p.rejection.reason for p in published] == [RejectReason.NOT_AUTHORISED]
    assert await broker.order_book() == [] and engine.oms.orders() == []
    await engine.stop()
    writer.close()
    # Audited like any gate refusal: proposed, then rejected with the code, the value and the limit.
    refused = audited(writer, "gate.rejected")
    assert [(r["reason"], r["source"], r["actor"]) for r in refused] == [("NOT_AUTHORISED", "ticket", actor)]
    assert refused[0]["value"] and refused[0]["limit"]
    assert len(audited(writer, "order.proposed")) == 1


async def test_the_administrator_holds_trade_and_an_api_order_needs_its_clients_trade_scope() -> None:
    engine = await started(make_engine()[0])
    assert (await engine.submit(ticket(actor="ada"), operator=ADMIN)).accepted
    trader = api_actor("script-7", frozenset({ApiScope.READ, ApiScope.TRADE}))
    reader = api_actor("dash", frozenset({ApiScope.READ, ApiScope.KILL}))

    def api(actor: str, price: str) -> OrderRequest:
        return OrderRequest(REL, Side.BUY, 1, price, source=OrderSource.API, actor=actor)

    # Deny by default: an API order with no client's authority, or a client without TRADE, or in another's name.
    refusals = [
        await engine.submit(api("api:script-7", "1500")),
        await engine.submit(api("api:dash", "1500.05"), operator=reader),
        await engine.submit(api("api:someone-else", "1500.10"), operator=trader),
    ]
    assert [r.rejection.reason for r in refusals if r.rejection] == [RejectReason.NOT_AUTHORISED] * 3
    assert "API client's authority" in refusals[0].rejection.message  # type: ignore[union-attr]
    assert (await engine.submit(api("api:script-7", "1500.15"), operator=trader)).accepted
    assert RejectReason.NOT_AUTHORISED in REASON_TEXT
    await engine.stop()


async def test_a_trader_cancels_their_own_order_but_not_anothers(tmp_path: Path) -> None:
    writer = audit_store(tmp_path)
    engine = make_engine(audit=writer)[0]
    await started(engine)
    mine = (await engine.submit(ticket(Side.BUY, 5, "1490", actor="alice"), operator=ALICE)).client_order_id
    theirs = (await engine.submit(ticket(Side.BUY, 5, "1485", actor="bob"), operator=BOB)).client_order_id
    assert mine and theirs
    refused = await engine.cancel(theirs, source=AuditSource.TICKET, operator=ALICE)
    assert not refused.ok and refused.message == f"alice may cancel only their own orders; {theirs} is bob's"
    done = await engine.cancel(mine, source=AuditSource.TICKET, operator=ALICE)
    assert done.ok
    await settle()
    assert engine.oms.get(mine).status is OrderStatus.CANCELLED  # type: ignore[union-attr]
    assert engine.oms.get(theirs).status is OrderStatus.OPEN  # type: ignore[union-attr]
    await engine.stop()
    writer.close()
    requested = audited(writer, "cancel.requested")
    assert [(r["client_order_id"], r["actor"], "refused" in r) for r in requested] == [(theirs, "alice", True), (mine, "alice", False)]


@pytest.mark.parametrize("operator", [RISK, ADMIN])
async def test_cancel_any_cancels_anyones_order(operator: Actor) -> None:
    engine = await started(make_engine()[0])
    order = (await engine.submit(ticket(Side.BUY, 5, "1490", actor="alice"), operator=ALICE)).client_order_id
    assert order
    assert (await engine.cancel(order, source=AuditSource.TICKET, operator=operator)).ok
    await settle()
    assert engine.oms.get(order).status is OrderStatus.CANCELLED  # type: ignore[union-attr]
    await engine.stop()


async def test_a_viewer_cancels_nothing_and_the_desk_itself_cancels_anything() -> None:
    engine = await started(make_engine()[0])
    order = (await engine.submit(ticket(Side.BUY, 5, "1490", actor="alice"), operator=ALICE)).client_order_id
    assert order
    refused = await engine.cancel(order, source=AuditSource.TICKET, operator=VIEWER)
    assert not refused.ok and refused.message == "vic (viewer) may not cancel orders"
    assert engine.oms.get(order).status is OrderStatus.OPEN  # type: ignore[union-attr]
    # Without an operator (the kill switch, flatten, the system): unchanged, never asked for authority.
    assert (await engine.cancel(order)).ok
    await settle()
    assert engine.oms.get(order).status is OrderStatus.CANCELLED  # type: ignore[union-attr]
    await engine.stop()


async def test_each_api_client_has_the_api_sources_rate_to_itself() -> None:
    # The clock is frozen, so every order falls in the same second: the cap is reached for certain.
    engine = await started(make_engine(rates={"api": 2})[0])
    alpha = api_actor("alpha", frozenset({ApiScope.TRADE}))
    beta = api_actor("beta", frozenset({ApiScope.TRADE}))

    async def send(actor: Actor, price: str) -> Rejection | None:
        request = OrderRequest(REL, Side.BUY, 1, price, source=OrderSource.API, actor=actor.name)
        return (await engine.submit(request, operator=actor)).rejection

    assert [await send(alpha, p) for p in ("1500", "1500.05")] == [None, None]
    refused = await send(alpha, "1500.10")
    assert refused is not None and refused.reason is RejectReason.SOURCE_RATE_LIMIT
    assert refused.message == "API client api:alpha already sent 2 orders in the last second"
    assert (refused.value, refused.limit) == ("3", "2")
    # The busy script does not starve the other one.
    assert [await send(beta, p) for p in ("1500.15", "1500.20")] == [None, None]
    third = await send(beta, "1500.25")
    assert third is not None and third.reason is RejectReason.SOURCE_RATE_LIMIT
    await engine.stop()
