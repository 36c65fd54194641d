"""The desk on the real breeze-connect SDK, end to end against the local Breeze emulator.

Each test starts an emulator and a desk (engine + audit store + adapter); on exit the harness checks
that the audit chain verifies, so no fault may cost a record.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path

import pytest

from app.brokers.base import BrokerCall
from app.domain.actors import Actor, Permission
from app.domain.audit import AuditEventType
from app.domain.events import AlertLevel
from app.domain.orders import OrderSource, OrderStatus, Side
from app.domain.rejections import RejectReason
from app.domain.requests import OrderRequest
from app.domain.trading_state import TradingState
from app.engine.config import EngineConfig
from tests.breeze_emulator import BreezeEmulator

from .harness import NIFTY_FUT, Desk, running_desk, wait_for

pytestmark = pytest.mark.slow

RELIANCE = "NSE:RELIANCE"
OPS = Actor("ops", frozenset({Permission.TRADE, Permission.REARM, Permission.FLATTEN}))


@pytest.fixture
def emulator() -> Iterator[BreezeEmulator]:
    with BreezeEmulator(tick_interval_s=0.05) as emu:
        yield emu


async def hold_price(desk: Desk, emulator: BreezeEmulator, key: str) -> int:
    """Freeze the emulator's walk and wait until the desk has seen ``key``'s price: an order priced
    off it then rests or crosses as the test means, however slow the machine."""
    emulator.freeze_walk()
    price = emulator.last_price(key)
    emulator.set_price(key, price)
    await wait_for(lambda: desk.engine.market_data.last_price(key) == price, what=f"the desk to see {key} at {price}")
    return price


def order(desk: Desk, key: str, side: Side, ticks_away: int, lots: int = 1) -> OrderRequest:
    """A limit order ``ticks_away`` ticks on the passive side of the last price (negative: marketable)."""
    instrument = desk.engine.instruments[key]
    last = desk.engine.market_data.last_price(key)
    assert last is not None
    step = ticks_away * instrument.tick_size
    price = last - step if side is Side.BUY else last + step
    price -= price % instrument.tick_size
    return OrderRequest(key, side, lots * instrument.lot_size, Decimal(price) / 100, source=OrderSource.STRATEGY, actor="test")


async def test_place_ack_fill_position(emulator: BreezeEmulator, tmp_path: Path) -> None:
    async with running_desk(emulator, tmp_path) as desk:
        await hold_price(desk, emulator, RELIANCE)
        result = await desk.engine.submit(order(desk, RELIANCE, Side.BUY, -20, lots=3))
        assert result.accepted, result.rejection
        placed = desk.engine.oms.get(result.client_order_id or "")
        assert placed is not None and placed.broker_order_id is not None
        await wait_for(lambda: placed.status is OrderStatus.FILLED, what="the fill from the order feed")
        assert desk.engine.portfolio.position(RELIANCE) == 3
        at_broker = {p.instrument_key: p.quantity for p in await desk.engine.broker_positions()}
        assert at_broker == {RELIANCE: 3}
        trades = await desk.broker.trade_book()
        assert [(t.broker_order_id, t.quantity) for t in trades] == [(placed.broker_order_id, 3)]
        # The client order id travels as Breeze's remark, so the broker's book names the desk's order.
        rows = await desk.broker.order_book()
        assert [(r.client_order_id, r.status) for r in rows] == [(placed.client_order_id, OrderStatus.FILLED)]
        await desk.audited(AuditEventType.BROKER_ACK)


async def test_cancel_a_resting_order(emulator: BreezeEmulator, tmp_path: Path) -> None:
    async with running_desk(emulator, tmp_path) as desk:
        await hold_price(desk, emulator, NIFTY_FUT)
        result = await desk.engine.submit(order(desk, NIFTY_FUT, Side.SELL, 40))
        assert result.accepted, result.rejection
        placed = desk.engine.oms.get(result.client_order_id or "")
        assert placed is not None
        await wait_for(lambda: placed.status is OrderStatus.OPEN, what="the order to rest")
        outcome = await desk.engine.cancel(placed.client_order_id, actor="test")
        assert outcome.ok, outcome.message
        await wait_for(lambda: placed.status is OrderStatus.CANCELLED, what="the cancel from the order feed")
        assert emulator.working_count() == 0


async def test_kill_switch_sweeps_50_working_orders_at_the_brokers_pace(emulator: BreezeEmulator, tmp_path: Path) -> None:
    # Orders placed elsewhere (the broker's website, another session) before the desk started: the
    # desk adopts them from the broker's book and its kill switch must sweep them all the same.
    for n in range(50):
        emulator.add_order(RELIANCE, "buy", 1, 100_000 - 5 * n)
    async with running_desk(emulator, tmp_path) as desk:
        assert len(desk.engine.oms.working()) == 50
        report = desk.engine.engage_kill_switch("test sweep", "ops")
        assert desk.engine.trading_state is TradingState.HALTED
        await desk.engine.kill_switch.wait()
        run = desk.engine.kill_switch.last
        assert run is not None
        summary = run.summary()
        assert summary["cancels"] == 50 and summary["working_after"] == 0, summary
        assert emulator.working_count() == 0
        assert emulator.rate_limit_breaches == 0
        # 50 cancels at 10 per second cannot take less than about 5 s: the pace held. How close to
        # that bound a sweep comes is a timing claim, measured by the benchmarks, not asserted here
        # (a loaded machine only makes it slower).
        cleared_ms = summary["cleared_in_ms"]
        assert isinstance(cleared_ms, (int, float)) and cleared_ms >= 4_900, summary
        assert report.working_at_engage == 50
        cancels = [c for c in emulator.calls if c.endpoint == "order" and c.method == "DELETE"]
        assert len(cancels) == 50
        stamps = sorted(c.ts for c in cancels)
        assert max(sum(1 for t in stamps if s <= t < s + 1.0) for s in stamps) <= 10


@pytest.mark.parametrize("fault", ["http_500", "timeout", "rate_limit"])
async def test_the_kill_switch_sends_failed_cancels_again(emulator: BreezeEmulator, tmp_path: Path, fault: str) -> None:
    for n in range(8):
        emulator.add_order(RELIANCE, "buy", 1, 100_000 - 5 * n)
    async with running_desk(emulator, tmp_path, read_timeout_s=1.5) as desk:
        arm: Callable[[], None] = {
            "http_500": lambda: emulator.faults.http_error(500, endpoint="order", method="DELETE", count=3),
            "timeout": lambda: emulator.faults.timeout(endpoint="order", method="DELETE", seconds=4.0, count=3),
            "rate_limit": lambda: emulator.faults.rate_limit(endpoint="order", method="DELETE", count=3),
        }[fault]
        arm()
        desk.engine.engage_kill_switch("test sweep under faults", "ops")
        report = await desk.engine.kill_switch.wait()
        assert report is not None
        # At least the three refused (a slow machine may time out more); every one is sent again.
        assert len(report.cancel_failures) >= 3, report.cancel_failures
        assert report.working_after == 0 and emulator.working_count() == 0, report.summary()
        await desk.audited(AuditEventType.CANCEL_SWEEP_DONE)


async def test_session_expiry_mid_day_halts_audits_and_asks_for_a_new_login(emulator: BreezeEmulator, tmp_path: Path) -> None:
    async with running_desk(emulator, tmp_path) as desk:
        emulator.expire_session()
        result = await desk.engine.submit(order(desk, RELIANCE, Side.BUY, 10))
        assert not result.accepted
        await wait_for(lambda: desk.engine.trading_state is TradingState.HALTED, what="the halt")
        assert "session expired" in desk.engine.halt_reason
        assert any(a.level is AlertLevel.CRITICAL and "Log in again" in a.message for a in desk.alerts)
        calls_before = len(emulator.calls)
        again = await desk.engine.submit(order(desk, RELIANCE, Side.BUY, 10))
        assert again.rejection is not None and again.rejection.reason is RejectReason.TRADING_HALTED
        assert len(emulator.calls) == calls_before, "a halted desk with a dead session must not call the broker"
        emulator.new_session("99887766")
        await desk.engine.renew_broker_session("99887766", actor="ops")
        assert desk.engine.trading_state is TradingState.HALTED, "a new login does not re-arm by itself"
        await desk.engine.rearm(OPS, "logged in again")
        await wait_for(lambda: desk.engine.market_data.last_price(RELIANCE) is not None)
        after = await desk.engine.submit(order(desk, RELIANCE, Side.BUY, 10))
        assert after.accepted, after.rejection
        await desk.audited(AuditEventType.SESSION_EXPIRED)
        await desk.audited(AuditEventType.SESSION_RENEWED)


async def test_a_silent_socket_is_stale_and_halts_a_desk_holding_a_position(emulator: BreezeEmulator, tmp_path: Path) -> None:
    async with running_desk(emulator, tmp_path, breakers={"stale_data_seconds": 1}, silence_s=1.0,
                            reconnect_min_s=0.2) as desk:
        result = await desk.engine.submit(order(desk, RELIANCE, Side.BUY, -20))
        assert result.accepted, result.rejection
        await wait_for(lambda: desk.engine.portfolio.position(RELIANCE) == 1, what="the fill")
        emulator.silence(True)
        await wait_for(lambda: desk.engine.trading_state is TradingState.HALTED, timeout=15, what="the stale-data halt")
        assert "stale" in desk.engine.halt_reason.lower() or "price" in desk.engine.halt_reason.lower()
        await wait_for(lambda: desk.broker.stats.reconnects >= 1, what="a reconnect of the silent socket")
        await wait_for(lambda: emulator.connected_clients["stream"] >= 1, what="the quote socket back")
        emulator.silence(False)
        before = desk.engine.market_data.ticks
        await wait_for(lambda: desk.engine.market_data.ticks > before, what="ticks after the silence")


async def test_a_dropped_socket_is_reconnected(emulator: BreezeEmulator, tmp_path: Path) -> None:
    async with running_desk(emulator, tmp_path, reconnect_min_s=0.2) as desk:
        emulator.disconnect_streams()
        before = desk.engine.market_data.ticks
        await wait_for(lambda: desk.engine.market_data.ticks > before + 5, timeout=20, what="ticks after the drop")
        result = await desk.engine.submit(order(desk, RELIANCE, Side.BUY, -20))
        assert result.accepted
        placed = desk.engine.oms.get(result.client_order_id or "")
        assert placed is not None
        await wait_for(lambda: placed.status is OrderStatus.FILLED, what="order updates after the drop")


PLACE_FAULTS = {
    "timeout": lambda e: e.faults.timeout(endpoint="order", method="POST", seconds=4.0),
    "http_500": lambda e: e.faults.http_error(500, endpoint="order", method="POST"),
    "http_503": lambda e: e.faults.http_error(503, endpoint="order", method="POST"),
    "malformed_json": lambda e: e.faults.malformed(endpoint="order", method="POST"),
    "missing_order_id": lambda e: e.faults.missing_field("order_id", endpoint="order", method="POST"),
}


@pytest.mark.parametrize("fault", sorted(PLACE_FAULTS))
async def test_a_place_with_an_unknown_outcome_stays_working_and_reconciles(
    emulator: BreezeEmulator, tmp_path: Path, fault: str,
) -> None:
    async with running_desk(emulator, tmp_path, read_timeout_s=1.5) as desk:
        PLACE_FAULTS[fault](emulator)
        result = await desk.engine.submit(order(desk, RELIANCE, Side.BUY, 10))
        assert not result.accepted and result.rejection is not None
        assert result.rejection.reason is RejectReason.BROKER_TIMEOUT, result.rejection
        assert any(a.level is AlertLevel.CRITICAL and "reconciling" in a.message for a in desk.alerts)
        assert desk.engine.trading_state is TradingState.ACTIVE
        await desk.audited(AuditEventType.ORDER_SENT)
        # The desk keeps trading: the next order goes through.
        nxt = await desk.engine.submit(order(desk, RELIANCE, Side.BUY, 12))
        assert nxt.accepted, nxt.rejection


async def test_a_rate_limit_answer_is_a_refusal_with_a_warning(emulator: BreezeEmulator, tmp_path: Path) -> None:
    async with running_desk(emulator, tmp_path) as desk:
        emulator.faults.rate_limit(endpoint="order", method="POST")
        result = await desk.engine.submit(order(desk, RELIANCE, Side.BUY, 10))
        assert result.rejection is not None and result.rejection.reason is RejectReason.BROKER_RATE_LIMITED
        assert any(a.level is AlertLevel.WARNING and "rate limit" in a.message for a in desk.alerts)
        assert desk.engine.trading_state is TradingState.ACTIVE
        await desk.audited(AuditEventType.BROKER_REJECT)


async def test_a_one_off_session_error_halts(emulator: BreezeEmulator, tmp_path: Path) -> None:
    async with running_desk(emulator, tmp_path) as desk:
        emulator.faults.session_expired(endpoint="order", method="POST")
        result = await desk.engine.submit(order(desk, RELIANCE, Side.BUY, 10))
        assert not result.accepted
        await wait_for(lambda: desk.engine.trading_state is TradingState.HALTED)
        await desk.audited(AuditEventType.SESSION_EXPIRED)


async def test_a_broker_refusal_is_audited_and_the_desk_runs_on(emulator: BreezeEmulator, tmp_path: Path) -> None:
    async with running_desk(emulator, tmp_path) as desk:
        emulator.faults.reject("Insufficient margin", endpoint="order", method="POST")
        result = await desk.engine.submit(order(desk, RELIANCE, Side.BUY, 10))
        assert result.rejection is not None and result.rejection.reason is RejectReason.BROKER_REJECTED
        assert "Insufficient margin" in result.rejection.message
        assert desk.engine.trading_state is TradingState.ACTIVE


async def test_malformed_stream_messages_are_counted_not_fatal(emulator: BreezeEmulator, tmp_path: Path) -> None:
    async with running_desk(emulator, tmp_path) as desk:
        contract = desk.broker.contracts[0]
        emulator.emit_raw_stock([contract.stream_symbol, 1.0, "not a price", 2.0] + [0] * 17)
        emulator.emit_raw_order(["1", "", "EMUUSER1"] + [""] * 8 + ["4"] + [""] * 35)
        await wait_for(lambda: desk.broker.stats.malformed_messages >= 1, what="the malformed message to be counted")
        before = desk.engine.market_data.ticks
        await wait_for(lambda: desk.engine.market_data.ticks > before, what="ticks after the bad message")
        assert desk.engine.trading_state is TradingState.ACTIVE


async def test_hidden_sdk_calls_are_counted_by_the_governor(emulator: BreezeEmulator, tmp_path: Path) -> None:
    """Every REST request the SDK makes is in the governor's count: a place, a cancel, the order book
    (one call per exchange) and the positions, as the emulator saw them."""
    async with running_desk(emulator, tmp_path) as desk:
        await hold_price(desk, emulator, RELIANCE)
        result = await desk.engine.submit(order(desk, RELIANCE, Side.BUY, 30))
        assert result.accepted
        placed = desk.engine.oms.get(result.client_order_id or "")
        assert placed is not None
        await wait_for(lambda: placed.status is OrderStatus.OPEN)
        assert (await desk.engine.cancel(placed.client_order_id, actor="test")).ok
        await desk.engine.reconcile()
        await desk.engine.broker_positions()
        made = sum(1 for c in emulator.calls if c.endpoint != "customerdetails")
        assert made == desk.engine.governor.schedule.day_calls, desk.broker.stats.requests


async def test_modify_costs_the_two_requests_it_declares(emulator: BreezeEmulator, tmp_path: Path) -> None:
    """The SDK's modify reads the order before it changes it: the adapter declares 2 calls, and makes 2."""
    async with running_desk(emulator, tmp_path) as desk:
        await hold_price(desk, emulator, RELIANCE)
        result = await desk.engine.submit(order(desk, RELIANCE, Side.BUY, 30))
        placed = desk.engine.oms.get(result.client_order_id or "")
        assert placed is not None and placed.broker_order_id is not None
        before = len(emulator.calls)
        await desk.broker.modify(placed.broker_order_id, price=placed.price - 5)
        assert len(emulator.calls) - before == desk.broker.capabilities.calls(BrokerCall.MODIFY) == 2
        assert [(c.method, c.endpoint) for c in emulator.calls[before:]] == [("GET", "order"), ("PUT", "order")]


async def test_noisy_float_prices_are_read_to_the_paisa(tmp_path: Path) -> None:
    """Every stream price one unit in the last place off (``1000.4000000000001``): each is its paisa.

    Found: such ticks were refused as unreadable, so most ticks were thrown away and prices went stale.
    """
    with BreezeEmulator(tick_interval_s=0.05, price_noise=1.0) as noisy:
        async with running_desk(noisy, tmp_path) as desk:
            price = await hold_price(desk, noisy, RELIANCE)
            noisy.set_price(RELIANCE, price + 5)
            await wait_for(lambda: desk.engine.market_data.last_price(RELIANCE) == price + 5, what="the exact paisa")
            assert desk.broker.stats.refused_prices == 0 and desk.broker.stats.malformed_messages == 0


async def test_exceptions_in_the_sdks_socket_handlers_are_contained_counted_and_a_storm_reconnects(
    emulator: BreezeEmulator, tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A short tick list makes the SDK's own ``parse_data`` raise IndexError on its socket thread.

    Found: thousands of tracebacks reached stderr, none reached the desk's log, and
    ``malformed_messages`` stayed 0.
    """
    escaped: list[str] = []
    monkeypatch.setattr(threading, "excepthook", lambda args: escaped.append(repr(args.exc_value)))
    caplog.set_level(logging.WARNING, logger="app.brokers.breeze.broker")
    async with running_desk(emulator, tmp_path, storm_messages=20, reconnect_min_s=0.2) as desk:
        symbol = desk.broker.contracts[0].stream_symbol
        # Exactly a storm's worth: the reconnect it causes cannot come before all of them are counted.
        for _ in range(20):
            emulator.emit_raw_stock([symbol, 1.0, 2.0])
        kind = "IndexError in parse_data"
        await wait_for(lambda: desk.broker.stats.handler_errors.get(kind, 0) == 20, what="20 contained handler errors")
        assert desk.broker.stats.malformed_messages == 20
        await wait_for(lambda: desk.broker.stats.reconnects >= 1, what="the storm to count as a dead feed")
        before = desk.engine.market_data.ticks
        await wait_for(lambda: desk.engine.market_data.ticks > before, what="ticks after the reconnect")
        assert escaped == [], "no exception may end an SDK thread"
        lines = [r.getMessage() for r in caplog.records if kind in r.getMessage()]
        assert len(lines) == 1, lines  # one line per kind, then at most one a minute
        assert any("20 unreadable messages in" in r.getMessage() for r in caplog.records)
        assert desk.engine.trading_state is TradingState.ACTIVE


async def test_a_fill_whose_notification_the_sdk_cannot_read_reaches_the_desk_through_the_book(
    emulator: BreezeEmulator, tmp_path: Path,
) -> None:
    """Found: the SDK's order handler failing on a notification (``IndexError in parse_data``) was
    counted like a lost tick, and the fill it carried stayed unknown to the desk."""
    async with running_desk(emulator, tmp_path) as desk:
        await hold_price(desk, emulator, RELIANCE)
        result = await desk.engine.submit(order(desk, RELIANCE, Side.BUY, 5))
        placed = desk.engine.oms.get(result.client_order_id or "")
        assert placed is not None and placed.broker_order_id is not None
        reads = emulator.call_count("order", "GET")
        emulator.garble_order_events(1)
        emulator.fill(placed.broker_order_id)
        await wait_for(lambda: placed.status is OrderStatus.FILLED, what="the fill, read from the order book")
        assert emulator.call_count("order", "GET") > reads
        assert desk.broker.stats.handler_errors == {"IndexError in parse_data": 1}
        assert desk.engine.portfolio.position(RELIANCE) == desk.engine.instruments[RELIANCE].lot_size
        assert desk.engine.trading_state is TradingState.ACTIVE


async def test_a_malformed_order_row_marks_only_that_order_unknown(emulator: BreezeEmulator, tmp_path: Path) -> None:
    """Found: ``final reconcile failed: MALFORMED: ... row.expiry_date = None``: one bad row made the
    whole book unreadable. Now that order is UNKNOWN (still working), the others reconcile, the
    desk runs, and the kill switch still cancels all of them."""
    cash = [emulator.add_order(RELIANCE, "buy", 1, 100_000 - 5 * n) for n in range(2)]
    async with running_desk(emulator, tmp_path) as desk:
        key = NIFTY_FUT
        await hold_price(desk, emulator, key)
        placed = await desk.engine.submit(order(desk, key, Side.SELL, 40))
        assert placed.accepted, placed.rejection
        mine = desk.engine.oms.get(placed.client_order_id or "")
        assert mine is not None and mine.broker_order_id is not None
        emulator.faults.bad_value("expiry_date", None, endpoint="order", method="GET", order_id=mine.broker_order_id,
                                  count=1000)
        reconciled = await desk.engine.reconcile()
        assert reconciled.unknown == [mine.client_order_id] and mine.status is OrderStatus.UNKNOWN and mine.is_working
        by_id = {o.broker_order_id: o for o in desk.engine.oms.orders()}
        assert all(by_id[i].status is OrderStatus.OPEN for i in cash)
        assert desk.engine.trading_state is TradingState.ACTIVE
        assert any(a.level is AlertLevel.WARNING and "unreadable" in a.message for a in desk.alerts)
        desk.engine.engage_kill_switch("test sweep", "ops")
        swept = await desk.engine.kill_switch.wait()
        assert swept is not None
        assert swept.working_after == 0, swept.summary()
        assert emulator.working_count() == 0
        final = desk.engine.oms.get(mine.client_order_id)
        assert final is not None and final.status is OrderStatus.CANCELLED
        emulator.faults.clear()


def book_read_fails(emulator: BreezeEmulator, count: int) -> None:
    emulator.faults.http_error(502, endpoint="order", method="GET", count=count)


START_RETRY = EngineConfig(start_book_retry_s=3.0, start_book_backoff_s=0.05)


async def test_a_transient_502_on_the_first_book_read_is_retried(emulator: BreezeEmulator, tmp_path: Path) -> None:
    """Found: one 502 from the order book at start halted the desk at once."""
    book_read_fails(emulator, 1)
    async with running_desk(emulator, tmp_path, engine_config=START_RETRY) as desk:
        assert desk.engine.trading_state is TradingState.ACTIVE, desk.engine.halt_reason
        reads = [c.status for c in emulator.calls if c.endpoint == "order" and c.method == "GET"]
        assert reads[0] == 502 and 200 in reads[1:]


async def test_a_book_that_stays_unreadable_at_start_halts_with_the_reason(emulator: BreezeEmulator, tmp_path: Path) -> None:
    book_read_fails(emulator, 1000)
    async with running_desk(emulator, tmp_path, engine_config=START_RETRY) as desk:
        assert desk.engine.trading_state is TradingState.HALTED
        reason = desk.engine.halt_reason
        assert "could not read the broker's order book at start" in reason and "HTTP 502" in reason
        assert "attempts" in reason
        reads = [c.status for c in emulator.calls if c.endpoint == "order" and c.method == "GET"]
        assert len(reads) >= 3 and set(reads) == {502}
        emulator.faults.clear()


async def test_a_refused_book_read_at_start_is_not_retried(emulator: BreezeEmulator, tmp_path: Path) -> None:
    emulator.faults.reject("Invalid exchange code", endpoint="order", method="GET", count=1000)
    async with running_desk(emulator, tmp_path, engine_config=START_RETRY) as desk:
        assert desk.engine.trading_state is TradingState.HALTED
        assert "Invalid exchange code" in desk.engine.halt_reason and "attempts" not in desk.engine.halt_reason
        assert sum(1 for c in emulator.calls if c.endpoint == "order" and c.method == "GET") == 1
        emulator.faults.clear()


async def test_a_cancel_of_an_order_that_already_filled_is_its_answer_not_a_broker_error(
    emulator: BreezeEmulator, tmp_path: Path,
) -> None:
    """Found: such refusals were counted as broker errors (an error storm at 50 orders/s) and audited nowhere."""
    async with running_desk(emulator, tmp_path) as desk:
        await hold_price(desk, emulator, RELIANCE)
        result = await desk.engine.submit(order(desk, RELIANCE, Side.BUY, 20))
        placed = desk.engine.oms.get(result.client_order_id or "")
        assert result.accepted and placed is not None and placed.broker_order_id is not None
        # Filled at the exchange before the desk's cancel gets there; the desk may not have heard yet.
        emulator.fill(placed.broker_order_id)
        answer = await desk.engine.cancel(placed.client_order_id, actor="ops")
        assert answer.ok, answer
        assert "already ended at the broker" in answer.message and "Executed" in answer.message
        await desk.audited(AuditEventType.CANCEL_ALREADY_FINAL)
        assert placed.status is OrderStatus.FILLED and desk.engine.portfolio.position(RELIANCE) == placed.quantity
        assert desk.engine.breakers.errors.count_since(0) == 0
        assert desk.engine.trading_state is TradingState.ACTIVE
