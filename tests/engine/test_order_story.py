"""What the audit chain says of each order is what happened at the broker: queued, then sent or refused;
a cancel that finds the order already ended is an answer, audited and reconciled, not a broker error."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from pathlib import Path
from typing import ClassVar

import pytest

from app.brokers.base import PlaceAck, PlaceRequest, RateLimits
from app.brokers.paper import PaperBroker, PaperConfig, load_universe
from app.domain.orders import OrderStatus, Side
from app.domain.rejections import RejectReason
from app.domain.requests import OrderRequest
from app.domain.trading_state import TradingState
from app.engine.config import EngineConfig
from app.engine.engine import Engine
from app.engine.governor import GovernorConfig
from app.store.audit_writer import AuditWriter
from app.store.db import make_engine
from app.store.export import rows
from app.store.migrate import open_store
from app.store.verify import verify_chain
from tests.support.desk_process import run_main, url_of
from tests.support.limits import wide_limits

RELIANCE = next(e for e in load_universe() if e.instrument.key == "NSE:RELIANCE")


def records(writer: AuditWriter) -> list[dict[str, object]]:
    return list(rows(writer.engine))


def audit_records_of(home: Path) -> list[dict[str, object]]:
    store = make_engine(url_of(home))
    try:
        return list(rows(store))
    finally:
        store.dispose()


def payload_of(record: dict[str, object]) -> dict[str, object]:
    payload = record["payload"]
    document = json.loads(payload) if isinstance(payload, str) else payload
    assert isinstance(document, dict)
    return document


def of_order(record: dict[str, object]) -> str | None:
    found = payload_of(record).get("client_order_id")
    return found if isinstance(found, str) else None


async def started(tmp_path: Path, paper: PaperConfig, engine_config: EngineConfig | None = None,
                  breakers: dict[str, object] | None = None) -> tuple[Engine, PaperBroker, AuditWriter]:
    writer = AuditWriter(open_store(f"sqlite:///{tmp_path / 'desk.db'}"))
    writer.start()
    broker = PaperBroker(paper, universe=[RELIANCE])
    engine = Engine(broker, [RELIANCE.instrument], engine_config, audit=writer,
                    limits=wide_limits([RELIANCE.instrument], breakers=breakers or {}))
    await engine.start()
    broker.step()
    await asyncio.sleep(0.01)
    return engine, broker, writer


def buy(engine: Engine, ticks: int) -> OrderRequest:
    """A buy ``ticks`` ticks above the last price (marketable: it fills at the next market step)."""
    last = engine.market_data.last_price("NSE:RELIANCE")
    assert last is not None
    price = last + ticks * RELIANCE.instrument.tick_size
    return OrderRequest("NSE:RELIANCE", Side.BUY, 1, str(price / 100), actor="carol")


async def test_order_sent_is_written_only_for_orders_the_broker_received(tmp_path: Path) -> None:
    """Found: 46 order.sent records for 8 orders that reached the broker; the rest were THROTTLED."""
    journal = tmp_path / "paper-journal.jsonl"
    # Three order actions a second, and a governor that refuses what it cannot release within 0.3 s.
    paper = PaperConfig(seed=3, tick_interval_ms=None, journal_path=journal, rate_limits=RateLimits(3, 1_000, 100_000))
    config = EngineConfig(governor=GovernorConfig(max_wait=0.3, action_reserve=0))
    engine, _broker, writer = await started(tmp_path, paper, config)
    results = await asyncio.gather(*(engine.submit(buy(engine, -40 - n)) for n in range(12)))
    await engine.stop()
    writer.close()

    throttled = [r for r in results if r.rejection is not None and r.rejection.reason is RejectReason.THROTTLED]
    assert throttled and any(r.accepted for r in results)
    received = [json.loads(line)["client_order_id"] for line in journal.read_text().splitlines()]
    chain = records(writer)
    sent = [of_order(r) or "" for r in chain if r["event_type"] == "order.sent"]
    assert sorted(sent) == sorted(received), "order.sent for an order the broker never received, or the other way"
    # Each order's story: queued, then exactly one of sent or refused.
    story: dict[str, list[str]] = {}
    for record in chain:
        kind = str(record["event_type"])
        cid = of_order(record)
        if cid is not None and kind in ("order.queued", "order.sent", "order.throttled"):
            story.setdefault(cid, []).append(kind)
    assert len(story) == 12
    for result in results:
        assert result.client_order_id is not None
        expected = "order.sent" if result.accepted else "order.throttled"
        assert story[result.client_order_id] == ["order.queued", expected], story[result.client_order_id]
    assert verify_chain(writer.engine).ok


class StoreReadingPaper(PaperBroker):
    """Reads its order's stored row at the moment the broker receives it, on a connection of its own."""

    store_url = ""
    seen: ClassVar[dict[str, str]] = {}

    async def place(self, request: PlaceRequest) -> PlaceAck:
        reader = make_engine(self.store_url)
        try:
            with reader.connect() as connection:
                self.seen[request.client_order_id] = connection.exec_driver_sql(
                    "SELECT status FROM orders WHERE client_order_id = ?", (request.client_order_id,)).scalar_one()
        finally:
            reader.dispose()
        return await super().place(request)


async def test_an_order_reaching_the_broker_is_already_stored_as_sent(tmp_path: Path) -> None:
    """A desk killed between order.sent and the call must not leave the order stored NEW: a restart
    closes a NEW order as never sent, though the chain says it was sent (and the broker may hold it)."""
    url = f"sqlite:///{tmp_path / 'desk.db'}"
    writer = AuditWriter(open_store(url))
    writer.start()
    broker = StoreReadingPaper(PaperConfig(seed=3, tick_interval_ms=None), universe=[RELIANCE])
    broker.store_url = url
    broker.seen.clear()
    engine = Engine(broker, [RELIANCE.instrument], audit=writer, limits=wide_limits([RELIANCE.instrument]))
    await engine.start()
    broker.step()
    await asyncio.sleep(0.01)
    result = await engine.submit(buy(engine, -40))
    await engine.stop()
    writer.close()
    assert result.accepted and result.client_order_id is not None
    assert broker.seen == {result.client_order_id: str(OrderStatus.SENT)}


async def test_a_cancel_that_finds_the_order_already_filled_is_audited_and_no_broker_error(tmp_path: Path) -> None:
    """Found: at 50 orders/s the paper desk halted on error_storm made only of such refusals, audited nowhere."""
    paper = PaperConfig(seed=3, tick_interval_ms=None, partial_fill=False, rate_limits=RateLimits(1_000, 100_000, 1_000_000))
    engine, broker, writer = await started(tmp_path, paper, breakers={"error_storm_count": 3, "error_storm_seconds": 60})
    results = [await engine.submit(buy(engine, 40)) for _ in range(8)]
    ids = [r.client_order_id for r in results if r.accepted and r.client_order_id is not None]
    assert len(ids) == 8
    # Each cancel has found its order working at the desk and waits for its cancel.requested record
    # when the market fills them all: every cancel then reaches a broker whose order has ended.
    cancels = [asyncio.create_task(engine.cancel(cid, actor="carol")) for cid in ids]
    await asyncio.sleep(0)
    broker.step()
    answers = await asyncio.gather(*cancels)
    assert all(a.ok and "already ended at the broker" in a.message for a in answers), answers
    assert engine.breakers.errors.count_since(0) == 0

    def settled() -> list[dict[str, object]]:
        return [r for r in records(writer) if r["event_type"] == "cancel.already_final"]

    for _ in range(200):
        if len(settled()) == 8:
            break
        await asyncio.sleep(0.02)
    finals = settled()
    assert sorted(of_order(r) or "" for r in finals) == sorted(ids)
    for record in finals:
        payload = payload_of(record)
        assert payload["status"] == "FILLED" and payload["filled_quantity"] == 1
        assert "already FILLED" in str(payload["broker_message"])
    assert all(o.status is OrderStatus.FILLED for o in (engine.oms.get(cid) for cid in ids) if o is not None)
    await asyncio.sleep(0.3)  # several breaker checks
    assert engine.trading_state is TradingState.ACTIVE, engine.halt_reason
    await engine.stop()
    writer.close()
    assert Counter(r["event_type"] for r in records(writer))["breaker.tripped"] == 0


@pytest.mark.slow
def test_a_paper_desk_at_50_orders_a_second_does_not_halt_on_cancels_of_ended_orders(tmp_path: Path) -> None:
    """Found: the paper desk at 50 orders/s halted on an error storm made only of cancels of ended orders."""
    home = tmp_path / "home"
    proc = run_main(home, "simulate", "--seconds", "6", "--orders-per-sec", "50", "--seed", "4", "--json")
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["trading_state"] == "ACTIVE", report
    kinds = Counter(str(r["event_type"]) for r in audit_records_of(home))
    assert kinds["breaker.tripped"] == 0
    assert kinds["order.queued"] == kinds["order.sent"] + kinds["order.throttled"]
    assert kinds["order.sent"] == report["orders"]["accepted"] + kinds["broker.reject"]
