"""Kill switch, breakers, flatten and re-arm on the real engine and paper broker."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from pathlib import Path

import pytest

from app.brokers.base import (
    BrokerError,
    BrokerErrorCode,
    PlaceAck,
    PlaceRequest,
    RateLimits,
)
from app.brokers.paper import PaperBroker, PaperConfig, load_universe
from app.domain.actors import Actor, Permission
from app.domain.audit import AuditEventType, AuditSource
from app.domain.broker_messages import BrokerOrderUpdate
from app.domain.events import Alert, AlertLevel
from app.domain.market import Tick
from app.domain.orders import OrderSource, OrderStatus, Side
from app.domain.rejections import RejectReason
from app.domain.requests import OrderRequest
from app.domain.trading_state import TradingState
from app.engine.config import EngineConfig
from app.engine.engine import Engine
from app.engine.governor import Governor, GovernorConfig
from app.engine.recorder import ResumeState
from app.engine.risk.breakers import Breaker
from app.engine.risk.flatten import slices
from app.engine.risk.kill_switch import CancelOutcome
from app.store.audit_writer import AuditWriter
from app.store.export import rows
from app.store.migrate import open_store
from tests.support.book_faults import BookReadFails
from tests.support.limits import wide_limits
from tests.support.virtual_time import loop_wall_ns, on_virtual_time

ENTRIES = load_universe()[:4]
INSTRUMENTS = [e.instrument for e in ENTRIES]
RISK = Actor("rita", frozenset({Permission.REARM, Permission.FLATTEN}))
TRADER = Actor("tom", frozenset({Permission.TRADE}))


def paper(cap: int = 50, latency_ms: float = 5.0) -> PaperConfig:
    # Every clock of the desk and the broker runs on the loop's: on virtual time the breakers, the
    # governor and the broker's limiter see exactly the schedule, whatever the machine's load.
    loop = asyncio.get_running_loop()
    return PaperConfig(seed=5, latency_ms=latency_ms, tick_interval_ms=None, rate_limits=RateLimits(cap, 100_000, 1_000_000),
                       clock=loop.time, wall_clock_ns=loop_wall_ns(loop))


def engine_on(broker: PaperBroker, writer: AuditWriter | None = None, **limits: object) -> Engine:
    return Engine(broker, INSTRUMENTS, audit=writer, clock_ns=loop_wall_ns(asyncio.get_running_loop()),
                  limits=wide_limits(INSTRUMENTS, **limits))


def state_of(engine: Engine) -> TradingState:
    # Read through a call: the type checker would carry an earlier assert's narrowing past the await.
    return engine.trading_state


async def started(cap: int = 50, latency_ms: float = 5.0, writer: AuditWriter | None = None, **limits: object) -> tuple[Engine, PaperBroker]:
    broker = PaperBroker(paper(cap, latency_ms), universe=ENTRIES)
    engine = engine_on(broker, writer, **limits)
    await engine.start()
    broker.step()
    await asyncio.sleep(0.01)
    return engine, broker


async def resting(engine: Engine, n: int) -> list[str]:
    ids = []
    for i in range(n):
        inst = INSTRUMENTS[i % len(INSTRUMENTS)]
        last = engine.market_data.last_price(inst.key)
        assert last is not None
        price = last * 90 // 100 // inst.tick_size * inst.tick_size
        result = await engine.submit(OrderRequest(inst.key, Side.BUY, inst.lot_size, Decimal(price) / 100, actor="tom"))
        assert result.accepted, result.rejection
        assert result.client_order_id is not None
        ids.append(result.client_order_id)
    return ids


@on_virtual_time
async def test_engage_halts_before_returning_then_cancels_everything_at_the_brokers_pace() -> None:
    loop = asyncio.get_running_loop()
    latency = 0.005
    engine, broker = await started(cap=20, latency_ms=latency * 1000)
    await resting(engine, 30)
    engaged = loop.time()
    report = engine.engage_kill_switch("test", "rita")
    # Synchronous: HALTED before any await, and new orders are refused at once.
    assert engine.trading_state is TradingState.HALTED
    # 30 cancels at 20 actions/s, one spacing apart (the first may wait up to one spacing for the
    # last place's slot), plus a round trip: the bound the desk announced at once.
    spacing = (1 + GovernorConfig().margin) / 20
    assert 29 * spacing <= report.expected_clear_s - engine.round_trip_s() <= 30 * spacing
    refused = await engine.submit(OrderRequest(INSTRUMENTS[0].key, Side.BUY, 1, "100", actor="tom"))
    assert refused.rejection is not None and refused.rejection.reason is RejectReason.TRADING_HALTED
    final = await engine.kill_switch.wait()
    assert final is report and report.done
    assert report.cancels_sent == 30 and report.working_after == 0
    assert set(report.outcomes.values()) == {CancelOutcome.CANCELLED}
    assert report.cleared_in_ms is not None
    # On the desk's clock the sweep kept the broker's pace and the bound: no faster than 30 cancels
    # allow, no later than the bound plus the settle wait and the round trips of the last cancel and
    # of the order-book read. (Wall-clock time to clear is tests/bench/kill_switch.py's claim.)
    swept = loop.time() - engaged
    assert 29 * spacing < swept <= report.expected_clear_s + 0.05 + 2 * latency + 1e-9
    assert not [o for o in (await broker.order_book()) if o.status.is_working]
    await engine.stop()


@on_virtual_time
async def test_an_order_that_fills_before_the_sweep_reaches_it_still_has_an_outcome() -> None:
    engine, _ = await started()
    first, second = await resting(engine, 2)
    await asyncio.sleep(0.05)
    report = engine.engage_kill_switch("test", "rita")
    # The fill arrives after the press and before the sweep's first round: the sweep never tries it.
    order = engine.oms.get(first)
    assert order is not None and order.broker_order_id is not None
    engine.oms.apply_update(BrokerOrderUpdate(
        engine.clock_ns(), order.broker_order_id, first, OrderStatus.FILLED, order.quantity, order.price,
    ))
    await engine.kill_switch.wait()
    assert report.working_at_engage == 2 and report.cancels_sent == 1
    assert report.outcomes == {first: CancelOutcome.FILLED, second: CancelOutcome.CANCELLED}
    await engine.stop()


@on_virtual_time
async def test_places_queued_behind_the_governor_never_leak_out_after_the_halt() -> None:
    engine, broker = await started(cap=5)
    inst = INSTRUMENTS[0]
    last = engine.market_data.last_price(inst.key)
    assert last is not None
    price = Decimal(last * 90 // 100 // inst.tick_size * inst.tick_size) / 100
    burst = [asyncio.ensure_future(engine.submit(OrderRequest(inst.key, Side.BUY, 1, price + i, actor="tom"))) for i in range(8)]
    await asyncio.sleep(0.05)
    engine.engage_kill_switch("stop the burst", "rita")
    results = await asyncio.gather(*burst)
    held_back = [r for r in results if not r.accepted]
    assert held_back and all(r.rejection is not None and r.rejection.reason in (RejectReason.THROTTLED, RejectReason.TRADING_HALTED)
                             for r in held_back)
    await engine.kill_switch.wait()
    assert not [o for o in (await broker.order_book()) if o.status.is_working]
    assert len(await broker.order_book()) == sum(r.accepted for r in results)
    await engine.stop()


async def test_halted_survives_a_restart_and_only_an_authorised_rearm_with_a_reason_lifts_it(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'desk.db'}"
    writer = AuditWriter(open_store(url))
    writer.start()
    engine, _ = await started(writer=writer)
    engine.engage_kill_switch("end of test day", "rita", AuditSource.OPERATOR)
    await engine.kill_switch.wait()
    await engine.stop()
    writer.close()

    writer = AuditWriter(open_store(url))
    writer.start()
    engine, _ = await started(writer=writer)
    assert engine.trading_state is TradingState.HALTED
    with pytest.raises(PermissionError):
        await engine.rearm(TRADER, "I want to trade")
    with pytest.raises(ValueError, match="reason"):
        await engine.rearm(RISK, "  ")
    assert engine.trading_state is TradingState.HALTED
    await engine.rearm(RISK, "checked the book with the broker")
    assert state_of(engine) is TradingState.ACTIVE
    await engine.stop()
    writer.close()
    kinds = [r["event_type"] for r in rows(writer.engine)]
    assert "kill_switch.engaged" in kinds and "kill_switch.sweep_done" in kinds
    rearms = [r for r in rows(writer.engine) if r["event_type"] == "rearmed"]
    assert len(rearms) == 2 and "refused" in str(rearms[0]["payload"]) and "checked the book" in str(rearms[1]["payload"])


@on_virtual_time
async def test_flatten_is_a_separate_confirmed_action_that_ends_halted_and_flat() -> None:
    engine, broker = await started()
    inst = INSTRUMENTS[0]
    last = engine.market_data.last_price(inst.key)
    assert last is not None
    bought = await engine.submit(OrderRequest(inst.key, Side.BUY, 3 * inst.lot_size, None, order_type="MARKET", actor="tom"))
    assert bought.accepted
    for _ in range(20):
        broker.step()
        await asyncio.sleep(0.01)
    assert engine.portfolio.position(inst.key) == 3 * inst.lot_size
    engine.engage_kill_switch("stop", "rita")
    await engine.kill_switch.wait()
    # The kill switch never flattens on its own.
    assert engine.portfolio.position(inst.key) == 3 * inst.lot_size
    with pytest.raises(ValueError, match="confirmed"):
        await engine.flatten(RISK, confirmed=False)
    with pytest.raises(PermissionError):
        await engine.flatten(TRADER, confirmed=True)

    async def market() -> None:
        while True:
            broker.step()
            await asyncio.sleep(0.01)

    ticking = asyncio.ensure_future(market())
    report = await engine.flatten(RISK, confirmed=True)
    ticking.cancel()
    assert report.verified_flat, report.summary()
    assert engine.portfolio.position(inst.key) == 0
    assert engine.trading_state is TradingState.HALTED
    flatten_orders = [o for o in engine.oms.orders() if o.source is OrderSource.FLATTEN]
    assert flatten_orders and all(o.side is Side.SELL for o in flatten_orders)
    await engine.stop()


def test_flatten_slices_at_the_freeze_quantity_in_whole_lots() -> None:
    assert slices(4_000, 65, 1_755) == [1_755, 1_755, 490]
    assert slices(130, 65, 1_755) == [130]
    assert slices(1_000, 1, 300) == [300, 300, 300, 100]


@on_virtual_time
async def test_daily_loss_breaker_engages_the_kill_switch() -> None:
    engine, broker = await started(desk={"daily_loss_limit_inr": 100})
    inst = INSTRUMENTS[0]
    await engine.submit(OrderRequest(inst.key, Side.BUY, inst.lot_size * 5, None, order_type="MARKET", actor="tom"))
    for _ in range(10):
        broker.step()
        await asyncio.sleep(0.01)
    assert engine.portfolio.position(inst.key) == inst.lot_size * 5
    assert engine.trading_state is TradingState.ACTIVE
    last = engine.market_data.last_price(inst.key)
    assert last is not None
    # The feed prints 10 % lower: five lots lose far more than ₹100.
    engine.bus.publish(Tick(inst.key, last * 90 // 100, engine.clock_ns()))
    await asyncio.sleep(0.3)
    assert state_of(engine) is TradingState.HALTED
    assert engine.breakers.tripped and engine.breakers.tripped[0].breaker is Breaker.DAILY_LOSS
    assert engine.kill_switch.last is not None and engine.kill_switch.last.source is AuditSource.BREAKER
    await engine.stop()


@on_virtual_time
async def test_stale_market_data_breaker_for_an_instrument_with_a_working_order() -> None:
    # Trading hours off: staleness counts at any hour (with hours on, only inside the session).
    engine, _ = await started(breakers={"stale_data_seconds": 0.3}, desk={"enforce_trading_hours": False})
    await resting(engine, 1)
    # The feed says nothing more (no step): a silent feed is a stale feed.
    await asyncio.sleep(0.6)
    assert engine.trading_state is TradingState.HALTED
    assert engine.breakers.tripped[0].breaker is Breaker.STALE_MARKET_DATA
    await engine.kill_switch.wait()
    assert engine.oms.working() == []
    await engine.stop()


class _FlakyBroker(PaperBroker):
    async def place(self, request: PlaceRequest) -> PlaceAck:
        raise BrokerError(BrokerErrorCode.UNAVAILABLE, "HTTP 503")


@on_virtual_time
async def test_error_storm_breaker() -> None:
    broker = _FlakyBroker(paper(), universe=ENTRIES)
    engine = engine_on(broker, breakers={"error_storm_count": 3, "error_storm_seconds": 10})
    await engine.start()
    broker.step()
    await asyncio.sleep(0.01)
    inst = INSTRUMENTS[0]
    last = engine.market_data.last_price(inst.key)
    assert last is not None
    for i in range(3):
        await engine.submit(OrderRequest(inst.key, Side.BUY, inst.lot_size, Decimal(last - 5 * i) / 100, actor="tom"))
    await asyncio.sleep(0.3)
    assert engine.trading_state is TradingState.HALTED
    assert engine.breakers.tripped[0].breaker is Breaker.ERROR_STORM
    await engine.stop()


@on_virtual_time
async def test_broker_disconnect_breaker_and_task_crash_breaker() -> None:
    engine, broker = await started(breakers={"broker_disconnect_seconds": 0.2})
    await broker.disconnect()
    await asyncio.sleep(0.5)
    assert engine.trading_state is TradingState.HALTED
    assert engine.breakers.tripped[0].breaker is Breaker.BROKER_DISCONNECTED
    await engine.stop()

    engine, broker = await started()

    async def boom() -> None:
        raise RuntimeError("strategy bug")

    engine.supervisor.spawn("strategy", boom())
    await asyncio.sleep(0.05)
    assert engine.trading_state is TradingState.HALTED
    assert engine.breakers.tripped[0].breaker is Breaker.TASK_CRASHED
    await engine.stop()


@on_virtual_time
async def test_warnings_at_80_and_90_percent_are_raised_once_each() -> None:
    engine, _ = await started(desk={"max_open_orders": 10})
    alerts: list[Alert] = []
    engine.bus.subscribe(Alert, alerts.append)
    await resting(engine, 8)
    engine.breakers.check()
    await resting(engine, 1)
    for _ in range(3):
        engine.breakers.check()
    warnings = [a.message for a in alerts if a.level is AlertLevel.WARNING and "open orders" in a.message]
    assert len(warnings) == 2 and "80%" in warnings[0] and "90%" in warnings[1]
    await engine.stop()


# -- engaged while the desk starts (a panic that reaches the desk before its start is over) ---------------


@on_virtual_time
async def test_engaged_while_the_start_retries_the_book_it_sweeps_what_the_start_then_finds() -> None:
    """Found: a sweep engaged during the start ran at once against a book that could not be read,
    used up its attempts and ended, leaving the orders the start then adopted working."""
    loop = asyncio.get_running_loop()
    broker = BookReadFails(paper(), ENTRIES, BrokerError(BrokerErrorCode.UNAVAILABLE, "HTTP 502"))
    await broker.connect()
    inst = INSTRUMENTS[0]
    below = ENTRIES[0].start_price * 9 // 10 // inst.tick_size * inst.tick_size
    await broker.place(PlaceRequest("WEB-1", inst, Side.BUY, inst.lot_size, below))  # placed on the broker's site
    engine = Engine(broker, INSTRUMENTS, EngineConfig(start_book_retry_s=3_600, start_book_backoff_s=0.01),
                    clock_ns=loop_wall_ns(loop), limits=wide_limits(INSTRUMENTS))
    start = loop.create_task(engine.start())
    await broker.failed.wait()
    report = engine.engage_kill_switch("panic at start", "ops", AuditSource.PANIC)
    assert state_of(engine) is TradingState.HALTED
    # A minute on the loop's clock: the start retries the book all along, far past the sweep's own
    # attempts (20 reads over about 10 s), had it not waited for the start.
    await asyncio.sleep(60)
    assert not start.done() and not report.done and report.reconciles == 0
    broker.heal()
    await start
    swept = await engine.kill_switch.wait()
    assert swept is report and report.done and report.reconciles >= 1
    assert report.outcomes == {"WEB-1": CancelOutcome.CANCELLED} and report.working_after == 0
    assert state_of(engine) is TradingState.HALTED
    await engine.stop()


async def test_a_panic_while_the_start_reads_the_store_outranks_a_stored_reducing_state(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    writer = AuditWriter(open_store(f"sqlite:///{tmp_path / 'desk.db'}"))
    writer.start()
    try:
        engine, _ = await started(writer=writer)
        engine.reduce_only("closing out", "rita")
        await engine.stop()
        # Durable in order: the REDUCING row queued before it is committed too.
        await writer.append(AuditEventType.APP_STOP, {}, actor="system", source=AuditSource.SYSTEM)
        engine = engine_on(PaperBroker(paper(), universe=ENTRIES), writer)
        assert engine.recorder is not None
        loop, read = asyncio.get_running_loop(), engine.recorder.load

        def read_then_panic(trading_day: str, broker: str) -> ResumeState:
            # The panic lands once the store has been read (REDUCING) and before the start applies it.
            saved = read(trading_day, broker)
            loop.call_soon_threadsafe(engine.engage_kill_switch, "panic at start", "ops", AuditSource.PANIC)
            return saved

        monkeypatch.setattr(engine.recorder, "load", read_then_panic)
        await engine.start()
        assert state_of(engine) is TradingState.HALTED and engine.halt_reason == "kill switch: panic at start"
        report = await engine.kill_switch.wait()
        assert report is not None and report.done and report.working_after == 0
        await engine.stop()
    finally:
        writer.close()


@on_virtual_time
async def test_the_kill_switch_drops_what_waits_in_the_governor_the_engine_has_now() -> None:
    # The engine replaces its governor when it resumes today's counts; the kill switch's pacer must
    # be that one, or places queued in it would still go out after the halt.
    engine, broker = await started(cap=50)
    engine.governor = Governor(RateLimits(2, 1_000, 100_000), GovernorConfig(action_reserve=0, max_wait=30.0), wall_ns=engine.clock_ns)
    inst = INSTRUMENTS[0]
    last = engine.market_data.last_price(inst.key)
    assert last is not None
    prices = [(last * (80 + i)) // 100 // inst.tick_size * inst.tick_size for i in range(5)]
    submits = [asyncio.create_task(engine.submit(OrderRequest(inst.key, Side.BUY, inst.lot_size, Decimal(p) / 100, actor="tom")))
               for p in prices]
    await asyncio.sleep(0)
    queued = engine.governor.queued
    assert queued >= 3, queued  # one or two went at once; the rest wait for slots at 2 a second
    report = engine.engage_kill_switch("test", "rita")
    assert report.dropped_queued == queued and engine.governor.queued == 0
    results = await asyncio.gather(*submits)
    refused = [r for r in results if not r.accepted]
    assert len(refused) == queued
    await engine.kill_switch.wait()
    assert not [row for row in await broker.order_book() if row.status.is_working]
    await engine.stop()
