"""The engine with a real store: audit before broker, fail closed when the store fails, resume after restart."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from sqlalchemy import event

from app.brokers.paper import PaperBroker, PaperConfig, load_universe
from app.domain.events import Alert, AlertLevel
from app.domain.fills import Fill
from app.domain.orders import OrderStatus, Side
from app.domain.rejections import RejectReason
from app.domain.requests import OrderRequest
from app.domain.trading_state import TradingState
from app.engine.engine import Engine
from app.store.audit_writer import AuditWriter
from app.store.export import rows
from app.store.migrate import open_store
from app.store.verify import verify_chain
from tests.support.limits import wide_limits

RELIANCE = next(e for e in load_universe() if e.instrument.key == "NSE:RELIANCE")
LIMITS = wide_limits([RELIANCE.instrument])


def order(price: str = "1000", qty: int = 1, side: Side = Side.BUY) -> OrderRequest:
    return OrderRequest("NSE:RELIANCE", side, qty, price, actor="carol")


async def desk(url: str, journal: Path | None = None) -> tuple[Engine, PaperBroker, AuditWriter]:
    writer = AuditWriter(open_store(url))
    writer.start()
    broker = PaperBroker(PaperConfig(seed=3, tick_interval_ms=None, journal_path=journal), universe=[RELIANCE])
    engine = Engine(broker, [RELIANCE.instrument], audit=writer, limits=LIMITS)
    await engine.start()
    broker.step()
    await asyncio.sleep(0)
    return engine, broker, writer


async def test_every_order_the_broker_received_was_audited_first(db_url: str, tmp_path: Path) -> None:
    journal = tmp_path / "journal.jsonl"
    engine, broker, writer = await desk(db_url, journal)
    seen_at_send: list[int] = []
    original_place = broker.place

    async def place(request):  # type: ignore[no-untyped-def]
        # at the moment the broker is called, the order.sent record must already be committed
        sent = [r for r in rows(writer.engine) if r["event_type"] == "order.sent" and request.client_order_id in str(r["payload"])]
        seen_at_send.append(len(sent))
        return await original_place(request)

    broker.place = place  # type: ignore[method-assign]
    results = [await engine.submit(order()) for _ in range(5)]
    await engine.submit(order(qty=0))
    await engine.stop()
    writer.close()
    assert all(r.accepted for r in results)
    assert seen_at_send == [1] * 5
    events = [r["event_type"] for r in rows(writer.engine)]
    assert events.count("order.proposed") == 6
    assert events.count("gate.accepted") == 5 and events.count("gate.rejected") == 1
    assert events.count("broker.ack") == 5
    assert verify_chain(writer.engine).ok


async def test_store_failure_halts_and_sends_nothing(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/bulwark.db"
    engine, broker, writer = await desk(url)
    with writer.engine.connect() as c:
        pages = c.exec_driver_sql("PRAGMA page_count").scalar()

    def cap(dbapi_conn, _rec):  # type: ignore[no-untyped-def]
        dbapi_conn.execute(f"PRAGMA max_page_count = {pages}")

    def cap_the_store(connection):  # type: ignore[no-untyped-def]
        # On the writer's thread, between its batches: SQLAlchemy's listener lists and its pool are not
        # safe to change while another thread uses them (found: "deque mutated during iteration" when
        # the listener was added from the test's thread while the writer committed a record).
        event.listen(writer.engine, "connect", cap)
        # The writer keeps this connection for its thread's life: cap it, then drop the pool's idle
        # ones so any other connection (the writer's after a failure) is a new, capped one.
        connection.exec_driver_sql(f"PRAGMA max_page_count = {pages}")
        writer.engine.dispose()

    await writer.execute(cap_the_store)
    big = OrderRequest("NSE:RELIANCE", Side.BUY, 1, "1000", actor="x" * 100, tag="t" * 100_000)
    result = await engine.submit(big)
    assert not result.accepted
    assert result.rejection is not None and result.rejection.reason is RejectReason.AUDIT_UNAVAILABLE
    assert engine.trading_state is TradingState.HALTED
    assert await broker.order_book() == []
    await engine.stop()
    writer.close()


async def test_restart_resumes_halt_positions_and_settles_working_orders(db_url: str) -> None:
    engine, broker, writer = await desk(db_url)
    broker.step()
    await asyncio.sleep(0)
    last = engine.market_data.last_price("NSE:RELIANCE")
    assert last is not None
    filled = await engine.submit(order(str((last + 500) / 100), 3))
    resting = await engine.submit(order(str(last * 6 // 10 // 5 * 5 / 100), 1))
    for _ in range(8):
        broker.step()
        await asyncio.sleep(0.01)
    assert engine.portfolio.position("NSE:RELIANCE") == 3
    engine.halt("risk officer says stop", "dana")
    await asyncio.sleep(0.05)
    await engine.stop()
    writer.close()

    writer2 = AuditWriter(open_store(db_url))
    writer2.start()
    broker2 = PaperBroker(PaperConfig(seed=3, tick_interval_ms=None), universe=[RELIANCE])
    engine2 = Engine(broker2, [RELIANCE.instrument], audit=writer2, limits=LIMITS)
    await engine2.start()
    assert engine2.trading_state is TradingState.HALTED
    assert "risk officer says stop" in engine2.halt_reason
    assert engine2.portfolio.position("NSE:RELIANCE") == 3
    assert engine2.portfolio.realized == engine.portfolio.realized
    assert resting.client_order_id is not None and filled.accepted
    # The paper market ended with the first desk: its resting order can never fill, so it is closed, not left working.
    restored = engine2.oms.get(resting.client_order_id)
    assert restored is not None and restored.status is OrderStatus.EXPIRED
    assert engine2.oms.working() == []
    refused = await engine2.submit(order())
    assert refused.rejection is not None and refused.rejection.reason is RejectReason.TRADING_HALTED
    await engine2.stop()
    writer2.close()
    assert verify_chain(writer2.engine).ok


async def desk_named(url: str, desk_id: str) -> tuple[Engine, PaperBroker, AuditWriter]:
    writer = AuditWriter(open_store(url), desk_id=desk_id)
    writer.start()
    broker = PaperBroker(PaperConfig(seed=3, tick_interval_ms=None), universe=[RELIANCE])
    engine = Engine(broker, [RELIANCE.instrument], audit=writer, limits=LIMITS, desk_id=desk_id,
                    order_id_stem=f"BW{desk_id}001")
    await engine.start()
    broker.step()
    await asyncio.sleep(0)
    return engine, broker, writer


async def trade_and_stop(engine: Engine, broker: PaperBroker, writer: AuditWriter) -> tuple[str, int]:
    last = engine.market_data.last_price("NSE:RELIANCE")
    assert last is not None
    filled = await engine.submit(order(str((last + 500) / 100), 2))
    resting = await engine.submit(order(str(last * 6 // 10 // 5 * 5 / 100), 1))
    for _ in range(8):
        broker.step()
        await asyncio.sleep(0.01)
    assert filled.accepted and resting.client_order_id is not None
    await engine.stop()
    writer.close()
    return resting.client_order_id, engine.portfolio.position("NSE:RELIANCE")


async def test_desks_sharing_a_store_resume_only_their_own_orders_and_fills(db_url: str) -> None:
    # Both paper markets number their orders and fills alike (PB00000001...): ids that collide across desks.
    first, second = await desk_named(db_url, "AAAAAA"), await desk_named(db_url, "BBBBBB")
    resting_a, position_a = await trade_and_stop(*first)
    resting_b, position_b = await trade_and_stop(*second)
    assert position_a == position_b == 2 and resting_a != resting_b
    with first[2].engine.connect() as connection:
        stored = dict(connection.exec_driver_sql("SELECT desk_id, count(*) FROM fills GROUP BY desk_id").all())
    assert stored["AAAAAA"] == stored["BBBBBB"] > 0

    engine, _, writer = await desk_named(db_url, "AAAAAA")
    try:
        assert engine.portfolio.position("NSE:RELIANCE") == position_a
        assert engine.oms.get(resting_a) is not None and engine.oms.get(resting_b) is None
        # Only its own resting order was looked for at the broker, and settled; none is left working.
        assert engine.oms.working() == []
    finally:
        await engine.stop()
        writer.close()
    fills = [r for r in rows(writer.engine) if r["event_type"] == "fill"]
    assert {json.loads(str(r["payload"]))["desk"] for r in fills} == {"AAAAAA", "BBBBBB"}
    assert verify_chain(writer.engine).ok


async def test_a_fill_colliding_with_a_different_stored_fill_halts_and_alerts(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/bulwark.db"
    engine, broker, writer = await desk_named(url, "AAAAAA")
    alerts: list[Alert] = []
    engine.bus.subscribe(Alert, alerts.append, name="test.alerts")
    last = engine.market_data.last_price("NSE:RELIANCE")
    assert last is not None
    placed = await engine.submit(order(str((last + 500) / 100), 2))
    for _ in range(8):
        broker.step()
        await asyncio.sleep(0.01)
    stored = json.loads(str(next(r for r in rows(writer.engine) if r["event_type"] == "fill")["payload"]))
    fill_id, quantity, price = stored["fill_id"], stored["quantity"], stored["price_paise"]
    assert placed.client_order_id is not None and engine.trading_state is TradingState.ACTIVE

    # The broker reports another execution under an id already stored for a different one.
    engine.bus.publish(Fill(fill_id, placed.client_order_id, "NSE:RELIANCE", Side.BUY, quantity + 5, price, engine.clock_ns()))
    await writer.execute(lambda connection: None)
    await asyncio.sleep(0)
    assert engine.trading_state is TradingState.HALTED
    assert any(a.level is AlertLevel.CRITICAL and fill_id in a.message and "not stored" in a.message for a in alerts)
    with writer.engine.connect() as connection:
        quantities = connection.exec_driver_sql(f"SELECT quantity FROM fills WHERE fill_id = '{fill_id}'").scalars().all()
    assert quantities == [quantity]

    # The same fill again (a replay) is no conflict and changes nothing.
    engine.bus.publish(Fill(fill_id, placed.client_order_id, "NSE:RELIANCE", Side.BUY, quantity, price, engine.clock_ns()))
    before = len(alerts)
    await writer.execute(lambda connection: None)
    await asyncio.sleep(0)
    assert len([a for a in alerts[before:] if a.level is AlertLevel.CRITICAL]) == 0
    await engine.stop()
    writer.close()
