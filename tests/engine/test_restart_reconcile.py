"""A restart settles every order the store shows working against the broker's book, and a desk whose
last run did not stop cleanly starts HALTED, saying why and what reconciliation found."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest
from sqlalchemy import Engine as SqlEngine
from sqlalchemy import insert

from app.brokers.base import (
    Broker,
    BrokerCapabilities,
    BrokerError,
    BrokerErrorCode,
    PlaceRequest,
    RateLimits,
)
from app.brokers.paper import PaperBroker, PaperConfig, load_universe
from app.brokers.paper.universe import UniverseEntry
from app.desk import Desk, DeskOptions
from app.domain.audit import AuditEventType, AuditSource
from app.domain.events import Alert, AlertLevel
from app.domain.india_time import ist_day
from app.domain.orders import OrderStatus, Side
from app.domain.rejections import RejectReason
from app.domain.requests import OrderRequest
from app.domain.trading_state import TradingState
from app.engine.engine import Engine, EngineStartError
from app.engine.risk.calendar_data import load_effective
from app.engine.risk.kill_switch import KillSwitch
from app.store.audit_writer import AuditWriter
from app.store.desk_identity import UNFOLDERED_DESK_ID
from app.store.desk_state import DeskScope, unclean_end
from app.store.export import rows
from app.store.migrate import open_store
from app.store.models import OrderRow
from tests.support.calendar import cover_today
from tests.support.limits import wide_limits

RELIANCE = next(e for e in load_universe() if e.instrument.key == "NSE:RELIANCE")
DAY_NS = 86_400 * 1_000_000_000


class LastingPaper(PaperBroker):
    """The paper market standing in for a broker whose book outlives the desk (Breeze): the test hands
    the same instance to the desk's next start, as a real broker keeps its book while a desk restarts."""

    @property
    def capabilities(self) -> BrokerCapabilities:
        return replace(super().capabilities, book_outlives_desk=True)


def store_order(store: SqlEngine, client_id: str, status: OrderStatus, broker_id: str | None, updated_ns: int) -> None:
    """An order as a desk that died left it in the store (the desk these tests run: one without a data folder)."""
    with store.begin() as connection:
        connection.execute(insert(OrderRow.__table__).values(  # type: ignore[arg-type]
            client_order_id=client_id, desk_id=UNFOLDERED_DESK_ID, broker_order_id=broker_id, instrument_key="NSE:RELIANCE", side="BUY", quantity=1,
            price=100_00, order_type="LIMIT", product="INTRADAY", source="ticket", actor="carol", status=str(status),
            filled_quantity=0, fill_value=0, created_ns=updated_ns, updated_ns=updated_ns,
            trading_day=ist_day(updated_ns).isoformat(),
        ))


def payload_of(record: dict[str, object]) -> dict[str, object]:
    payload = record["payload"]
    document = json.loads(payload) if isinstance(payload, str) else payload
    assert isinstance(document, dict)
    return document


def reconciled_at_start(store: SqlEngine) -> dict[str, object]:
    [record] = [r for r in rows(store) if r["event_type"] == "reconciled"][-1:]
    document = payload_of(record)
    assert document["at"] == "start"
    return document


def request(price_paise: int) -> OrderRequest:
    return OrderRequest("NSE:RELIANCE", Side.BUY, 1, str(price_paise / 100), actor="carol")


async def first_run(url: str, broker: PaperBroker) -> tuple[str, str]:
    """A desk that leaves one order resting and one about to fill at the broker; their client ids."""
    writer = AuditWriter(open_store(url))
    writer.start()
    engine = Engine(broker, [RELIANCE.instrument], audit=writer, limits=wide_limits([RELIANCE.instrument]))
    await engine.start()
    broker.step()
    await asyncio.sleep(0.01)
    last = engine.market_data.last_price("NSE:RELIANCE")
    assert last is not None
    resting = await engine.submit(request(last * 6 // 10 // 5 * 5))
    crossing = await engine.submit(request((last + 500) // 5 * 5))
    assert resting.client_order_id is not None and crossing.client_order_id is not None
    await asyncio.sleep(0.05)
    await engine.stop()
    writer.close()
    return resting.client_order_id, crossing.client_order_id


async def second_run(url: str, broker: PaperBroker, *, unclean: str | None = None,
                     max_open_orders: int = 10_000) -> tuple[Engine, AuditWriter, list[Alert]]:
    writer = AuditWriter(open_store(url))
    writer.start()
    limits = wide_limits([RELIANCE.instrument], desk={"max_open_orders": max_open_orders})
    engine = Engine(broker, [RELIANCE.instrument], audit=writer, limits=limits)
    alerts: list[Alert] = []
    engine.bus.subscribe(Alert, alerts.append, name="test.alerts")
    await engine.start(unclean=unclean)
    broker.step()
    await asyncio.sleep(0.05)
    return engine, writer, alerts


async def crashed_desk_picture(url: str, broker: PaperBroker) -> dict[str, str]:
    """What a desk that died mid-flow leaves: orders the store shows working, in every kind of trouble."""
    resting, crossing = await first_run(url, broker)
    store = open_store(url)
    now = time.time_ns()
    await broker.connect()
    # Sent, acknowledged by the broker, and the desk died before it stored the ack.
    echoed = "BWDEAD-000001"
    await broker.place(PlaceRequest(echoed, RELIANCE.instrument, Side.BUY, 1, 100_00))
    store_order(store, echoed, OrderStatus.SENT, None, now)
    # Sent, and the broker never got it.
    store_order(store, "BWDEAD-000002", OrderStatus.SENT, None, now)
    # Acknowledged, yet today's book does not list it.
    store_order(store, "BWDEAD-000003", OrderStatus.OPEN, "PB77777777", now)
    # Left working yesterday: a DAY order does not outlive its session.
    store_order(store, "BWDEAD-000004", OrderStatus.OPEN, "PB66666666", now - DAY_NS)
    # Queued for the rate governor when the desk died: one never went out, one went out before its row said so.
    store_order(store, "BWDEAD-000005", OrderStatus.NEW, None, now)
    await broker.place(PlaceRequest("BWDEAD-000006", RELIANCE.instrument, Side.BUY, 1, 100_00))
    store_order(store, "BWDEAD-000006", OrderStatus.NEW, None, now)
    store.dispose()
    broker.step()  # the crossing order fills while no desk watches
    return {"resting": resting, "crossing": crossing, "echoed": echoed, "lost": "BWDEAD-000002",
            "gone": "BWDEAD-000003", "yesterday": "BWDEAD-000004", "queued": "BWDEAD-000005", "went_out": "BWDEAD-000006"}


def paper(cls: type[PaperBroker]) -> PaperBroker:
    config = PaperConfig(seed=3, tick_interval_ms=None, partial_fill=False, rate_limits=RateLimits(1_000, 100_000, 1_000_000))
    return cls(config, universe=[RELIANCE])


async def test_every_stored_working_order_is_settled_against_a_lasting_book(tmp_path: Path) -> None:
    """Found: orders missing at the broker stayed working forever; one sent but not acked was not even listed."""
    url = f"sqlite:///{tmp_path / 'desk.db'}"
    broker = paper(LastingPaper)
    ids = await crashed_desk_picture(url, broker)
    engine, writer, alerts = await second_run(url, broker, max_open_orders=5)
    try:
        status = {name: engine.oms.get(cid).status for name, cid in ids.items()}  # type: ignore[union-attr]
        assert status == {
            "resting": OrderStatus.OPEN, "crossing": OrderStatus.FILLED, "echoed": OrderStatus.OPEN,
            "lost": OrderStatus.UNKNOWN, "gone": OrderStatus.UNKNOWN, "yesterday": OrderStatus.EXPIRED,
            "queued": OrderStatus.REJECTED, "went_out": OrderStatus.OPEN,
        }
        echoed = engine.oms.get(ids["echoed"])
        assert echoed is not None and echoed.broker_order_id is not None
        assert engine.portfolio.position("NSE:RELIANCE") == 1, "the fill made while no desk watched is recorded"
        # UNKNOWN counts as working, against the open-orders limit, until the broker or an operator says otherwise.
        working = {o.client_order_id for o in engine.oms.working()}
        assert working == {ids[k] for k in ("resting", "echoed", "lost", "gone", "went_out")}
        refused = await engine.submit(request(100_00))
        assert refused.rejection is not None and refused.rejection.reason is RejectReason.MAX_OPEN_ORDERS
        [critical] = [a for a in alerts if a.level is AlertLevel.CRITICAL and a.component == "reconcile"]
        assert "2 orders the store shows working are not in the broker's order book" in critical.message
        assert ids["lost"] in critical.message and ids["gone"] in critical.message
        assert engine.trading_state is TradingState.ACTIVE, "a clean history starts in its stored state"
        # The kill switch's sweep still tries to cancel an UNKNOWN order with a broker id.
        engine.kill_switch = KillSwitch(engine.ports, engine.ports, reconcile_attempts=1, settle_s=0.01)
        report = engine.engage_kill_switch("test", "carol")
        await engine.kill_switch.wait()
        assert any(f.startswith(ids["gone"]) and "No order with id PB77777777" in f for f in report.cancel_failures)
    finally:
        await engine.stop()
        writer.close()
    found = reconciled_at_start(writer.engine)
    assert found["unknown"] == [ids["lost"], ids["gone"]]
    assert list(found["closed"]) == [ids["yesterday"]]  # type: ignore[call-overload]
    assert found["never_sent"] == [ids["queued"]]
    assert "unclean_end" not in found
    updates = [payload_of(r) for r in rows(writer.engine) if r["event_type"] == "order.update"]
    assert {u["client_order_id"] for u in updates if u["to"] == "UNKNOWN"} == {ids["lost"], ids["gone"]}
    assert {u["client_order_id"] for u in updates if u["to"] == "EXPIRED"} == {ids["yesterday"]}


async def test_orders_of_a_broker_that_lives_inside_the_desk_end_with_it(tmp_path: Path) -> None:
    """Found: after a disk-full halt the restart came up with 4 phantom working orders."""
    url = f"sqlite:///{tmp_path / 'desk.db'}"
    ids = await crashed_desk_picture(url, paper(PaperBroker))
    engine, writer, alerts = await second_run(url, paper(PaperBroker))
    try:
        assert engine.oms.working() == []
        for name in ("resting", "echoed", "lost", "gone", "yesterday"):
            order = engine.oms.get(ids[name])
            assert order is not None and order.status is OrderStatus.EXPIRED, name
        for name in ("queued", "went_out"):
            order = engine.oms.get(ids[name])
            assert order is not None and order.status is OrderStatus.REJECTED, name
        assert any(a.level is AlertLevel.WARNING and "closed as EXPIRED" in a.message for a in alerts)
    finally:
        await engine.stop()
        writer.close()
    closed = reconciled_at_start(writer.engine)["closed"]
    assert isinstance(closed, dict) and closed[ids["gone"]] == "the broker's book ended with the desk process that placed it"


async def test_a_start_after_an_unclean_end_is_halted_saying_why_and_what_reconciliation_found(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'desk.db'}"
    broker = paper(LastingPaper)
    ids = await crashed_desk_picture(url, broker)
    engine, writer, alerts = await second_run(url, broker, unclean="the run started at 09:20 recorded no stop")
    try:
        assert engine.trading_state is TradingState.HALTED
        reason = engine.halt_reason
        assert reason.startswith("the last run ended without a clean stop (the run started at 09:20 recorded no stop); "
                                 "reconciliation at start: ")
        assert f"2 orders UNKNOWN ({ids['lost']}, {ids['gone']})" in reason and "closed as EXPIRED" in reason
        assert any(a.level is AlertLevel.CRITICAL and a.component == "restart" and a.message == reason for a in alerts)
        refused = await engine.submit(request(100_00))
        assert refused.rejection is not None and refused.rejection.reason is RejectReason.TRADING_HALTED
    finally:
        await engine.stop()
        writer.close()
    assert reconciled_at_start(writer.engine)["unclean_end"] == "the run started at 09:20 recorded no stop"
    states = [r for r in rows(writer.engine) if r["event_type"] == "trading_state.changed"]
    assert reason in str(states[-1]["payload"])


@pytest.mark.parametrize("chain, unclean", [
    ([], None),
    ([(AuditEventType.APP_START, {})], "recorded no stop: it was killed, crashed or its store failed"),
    ([(AuditEventType.APP_START, {}), (AuditEventType.APP_STOP, {})], None),
    ([(AuditEventType.APP_START, {}), (AuditEventType.APP_STOP, {"store_failed": False})], None),
    ([(AuditEventType.APP_START, {}), (AuditEventType.APP_STOP, {"store_failed": True})], "had lost its store"),
    ([(AuditEventType.APP_START, {}), (AuditEventType.APP_STOP, {}), (AuditEventType.APP_START, {}),
      (AuditEventType.RECONCILED, {"at": "start"})], "recorded no stop"),
    ([(AuditEventType.APP_START, {}), (AuditEventType.APP_STOP, {"unclean_end": "killed at 09:20"})], "killed at 09:20"),
])
def test_unclean_end_reads_the_last_runs_start_and_stop(
    tmp_path: Path, chain: list[tuple[AuditEventType, dict[str, object]]], unclean: str | None,
) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'desk.db'}")
    writer, other = AuditWriter(store, desk_id="AAAAAA"), AuditWriter(store, desk_id="BBBBBB")
    writer.start()
    other.start()
    try:
        for kind, payload in chain:
            writer.append_blocking(kind, payload, actor="system", source=AuditSource.SYSTEM)
        # Another desk on the same chain, started and never stopped: nothing to do with this desk's end.
        other.append_blocking(AuditEventType.APP_START, {}, actor="system", source=AuditSource.SYSTEM)
        found = unclean_end(store, DeskScope("AAAAAA"))
    finally:
        writer.close()
        other.close()
    if unclean is None:
        assert found is None
    else:
        assert found is not None and unclean in found


class NoConnect(PaperBroker):
    async def connect(self) -> None:
        raise BrokerError(BrokerErrorCode.UNAVAILABLE, "the broker is down")


async def test_a_start_that_never_read_the_book_leaves_the_unclean_end_unsettled(tmp_path: Path) -> None:
    home = cover_today(tmp_path / "home")
    url = f"sqlite:///{home / 'bulwark.db'}"
    writer = AuditWriter(open_store(url))
    writer.start()
    writer.append_blocking(AuditEventType.APP_START, {"command": "simulate"}, actor="system", source=AuditSource.SYSTEM)
    writer.close()
    # The desk without a data folder below is the first on the store: the records naming no desk are its own.
    scope = DeskScope(UNFOLDERED_DESK_ID, legacy=True)
    before = unclean_end(writer.engine, scope)
    assert before is not None

    async def down(entries: list[UniverseEntry], clock: Callable[[], int]) -> tuple[Broker, list[UniverseEntry]]:
        return NoConnect(PaperConfig(tick_interval_ms=None), universe=entries), entries

    options = DeskOptions(command="simulate", database_url=url, limits_path=home / "limits.toml", instruments=3,
                          broker_factory=down, calendar=load_effective(home))
    with pytest.raises(EngineStartError, match="the broker is down"):
        async with Desk(options):
            pass
    # The failed start recorded its stop, and with it the earlier end it could not settle.
    [stop] = [r for r in rows(writer.engine) if r["event_type"] == "app.stop"]
    assert payload_of(stop)["via"] == "close"
    assert unclean_end(writer.engine, scope) == before
