"""A desk whose PostgreSQL server stops mid-run: it halts with one alert, keeps every record (the halt, the
kill switch's cancels, the fills that arrive) in its spool, writes them to the chain in order when the server is
back, and its next start is HALTED. Found: the records of a 23 s outage were dropped, `audit verify` passed over
the gap, and the restart came up ACTIVE with 2 orders that no longer existed. A private server, really stopped."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import text

from app.brokers.paper import PaperBroker, PaperConfig
from app.desk import Desk, DeskOptions
from app.domain.audit import AuditSource
from app.domain.events import Alert, AlertLevel
from app.domain.fills import Fill
from app.domain.orders import OrderStatus, Side
from app.domain.requests import OrderRequest
from app.domain.trading_state import TradingState
from app.engine.engine import Engine
from app.engine.risk.calendar_data import load_effective
from app.store.migrate import open_store
from app.store.spool import Spool, SpooledRecord, spool_file
from app.store.verify import verify_chain
from tests.conftest import NO_PG_REASON
from tests.pg_server import (
    PgCluster,
    PgUnavailable,
    find_bin_dir,
    in_ci,
    psycopg_conninfo,
)
from tests.support.calendar import cover_today

pytestmark = pytest.mark.slow

KEYS = ("NSE:RELIANCE", "NSE:TCS", "NSE:INFY")


class StoppableCluster(PgCluster):
    """A private server the test stops and starts again on the same port and data."""

    def halt(self) -> None:
        done = self._run("pg_ctl", "stop", "-D", str(self.data), "-m", "fast", "-w", timeout=30)
        assert done.returncode == 0, done.stderr

    def resume(self) -> None:
        done = self._run("pg_ctl", "start", "-D", str(self.data), "-l", str(self.log), "-w", "-t", "30",
                         "-o", f"-p {self.port}", timeout=40)
        assert done.returncode == 0, done.stderr


@pytest.fixture
def cluster() -> Iterator[StoppableCluster]:
    bin_dir = find_bin_dir()
    if bin_dir is None:
        if in_ci():
            raise PgUnavailable("CI: no PostgreSQL server binaries for the outage test")
        pytest.skip(NO_PG_REASON)
    server = StoppableCluster(bin_dir)
    try:
        server.start()
        yield server
    finally:
        server.stop()


async def until(condition: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


async def resting_orders(engine: Engine, broker: PaperBroker) -> list[str]:
    """Buy orders a tick or two under the bid on each instrument: resting now, filled by a small fall."""
    broker.step()
    await until(lambda: all(engine.market_data.last_price(k) is not None for k in KEYS), "prices")
    ids = []
    # Four: the desk lets a source send five a second.
    for n, key in enumerate((*KEYS, KEYS[0])):
        instrument = engine.instruments[key]
        bid, _ = broker._market.touch(key)
        price = bid - (1 + n // len(KEYS)) * instrument.tick_size
        result = await engine.submit(OrderRequest(key, Side.BUY, instrument.lot_size, Decimal(price) / 100, actor="tom"))
        assert result.accepted, result.rejection
        assert result.client_order_id is not None
        ids.append(result.client_order_id)
    await until(lambda: all(engine.oms.get(i).status is OrderStatus.OPEN for i in ids), "the acks")  # type: ignore[union-attr]
    return ids


async def test_a_database_outage_loses_no_record_and_the_next_start_is_halted(
    cluster: StoppableCluster, tmp_path: Path,
) -> None:
    with psycopg.connect(psycopg_conninfo(cluster.url), autocommit=True) as connection:
        connection.execute("CREATE DATABASE desk")
    url = cluster.url.rsplit("/", 1)[0] + "/desk"
    home = cover_today(tmp_path / "home")
    options = DeskOptions(
        command="desk", database_url=url, home=home, limits_path=home / "limits.toml",
        paper=PaperConfig(seed=5, tick_interval_ms=None, latency_ms=1, reject_rate=0.0),
        calendar=load_effective(home),
    )
    desk = Desk(options)
    engine = await desk.start()
    broker, writer = desk.broker, desk.writer
    assert isinstance(broker, PaperBroker) and writer is not None
    alerts: list[Alert] = []
    fills: list[Fill] = []
    engine.bus.subscribe(Alert, alerts.append, name="test.alerts")
    engine.bus.subscribe(Fill, fills.append, name="test.fills")
    try:
        ids = await resting_orders(engine, broker)
        assert engine.trading_state is TradingState.ACTIVE

        await asyncio.to_thread(cluster.halt)
        # The market moves on without the database: the first fill's records meet the outage, and the desk halts.
        while not fills:
            broker.step()
            await asyncio.sleep(0.01)
        await until(lambda: engine.trading_state is TradingState.HALTED, "the halt")
        assert writer.outage is not None
        assert "audit store is unreachable" in engine.halt_reason
        # An operator's kill switch still cancels what is working; its records are kept too.
        engine.engage_kill_switch("database down", "tom", AuditSource.OPERATOR)
        await engine.kill_switch.wait()
        assert not engine.oms.working()
        for _ in range(20):
            broker.step()  # nothing left to fill: the book is empty
        await until(lambda: writer.pending == 0, "the spool to take every write")
        spooled = Spool(spool_file(home)).read().records
        assert {"fill", "trading_state.changed", "cancel.requested", "order.cancelled"} <= {r.event_type for r in spooled}

        await asyncio.to_thread(cluster.resume)
        await until(lambda: writer.outage is None, "the replay")
        assert not spool_file(home).exists()
        assert engine.trading_state is TradingState.HALTED  # re-arming is the operator's
    finally:
        await desk.stop()
        await desk.close()

    store = open_store(url)
    result = verify_chain(store)
    assert result.ok, result.reason
    [outage] = result.outages
    with store.connect() as connection:
        chain = connection.execute(text(
            "SELECT seq, ts_ns, actor, event_type, payload FROM audit_log ORDER BY seq")).all()
        stored_fills = connection.execute(text("SELECT fill_id FROM fills ORDER BY fill_id")).scalars().all()
        statuses = dict(connection.execute(text("SELECT client_order_id, status FROM orders")).all())  # type: ignore[arg-type]
    # The store.outage record, then every record the spool held, in its order: no gap, nothing twice.
    at = outage.seq
    assert chain[at - 1].event_type == "store.outage"
    replayed = [SpooledRecord(0, r.ts_ns, r.actor, "", r.event_type, r.payload) for r in chain[at:at + len(spooled)]]
    assert [(r.ts_ns, r.event_type, r.payload) for r in replayed] == [(r.ts_ns, r.event_type, r.payload) for r in spooled]
    assert outage.records >= len(spooled) and outage.began_ns <= spooled[0].ts_ns < outage.ended_ns
    fill_records = [json.loads(r.payload)["fill_id"] for r in chain if r.event_type == "fill"]
    assert sorted(fill_records) == list(stored_fills) and len(fills) == len(stored_fills) >= 1
    assert all(statuses[i] in ("FILLED", "CANCELLED") for i in ids)
    store_alerts = [a for a in alerts if a.component == "store"]
    assert [a.level for a in store_alerts] == [AlertLevel.CRITICAL, AlertLevel.WARNING]
    [stop] = [json.loads(r.payload) for r in chain if r.event_type == "app.stop"]
    assert stop["store_outages"] == 1

    again = Desk(options)
    try:
        restarted = await again.start()
        assert restarted.trading_state is TradingState.HALTED
        assert "lost its database for a while" in restarted.halt_reason
    finally:
        await again.stop()
        await again.close()
