"""BreezeBroker on its own against the emulator: timeouts, sessions, secrets, market orders, sockets."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.brokers.base import BrokerError, BrokerErrorCode, PlaceRequest
from app.brokers.breeze.master import MASTER_FILE
from app.brokers.breeze.sdk import ERROR_HOOK, ERROR_TEXT_LIMIT, load_sdk
from app.domain.broker_messages import BrokerOrder, UnreadableOrder
from app.domain.orders import OrderStatus, OrderType, Side
from tests.breeze_emulator import BreezeEmulator

from .harness import NIFTY_FUT, endpoints, make_broker, wait_for

pytestmark = pytest.mark.slow


@pytest.fixture
def emulator() -> Iterator[BreezeEmulator]:
    with BreezeEmulator(tick_interval_s=0.05) as emu:
        yield emu


async def test_a_hung_request_times_out_in_http_and_frees_its_thread(emulator: BreezeEmulator, tmp_path: Path) -> None:
    broker = make_broker(emulator, tmp_path, read_timeout_s=0.5, workers=2)
    await broker.connect()
    try:
        emulator.faults.timeout(endpoint="funds", method="GET", seconds=30.0, count=4)
        # Twice the pool's size. The emulator holds every answer for 30 s, so the last two requests can
        # reach it only on threads the first two freed at their HTTP timeout; were a stuck request to
        # hold its thread, they would give up in the pool's queue without ever being sent.
        outcomes = await asyncio.gather(*(broker.funds() for _ in range(4)), return_exceptions=True)
        assert all(isinstance(o, BrokerError) and o.code is BrokerErrorCode.TIMEOUT for o in outcomes), outcomes
        assert emulator.call_count("funds", "GET") == 4, "every request was sent: no thread stayed stuck"
        assert emulator.faults.armed() == 0
        funds = await broker.funds()
        assert funds.available > 0, "the pool's threads are free again, while the held answers are not yet due"
    finally:
        await broker.disconnect()


async def test_a_market_order_is_sent_as_the_desks_limit_without_the_sdks_quote_call(
    emulator: BreezeEmulator, tmp_path: Path,
) -> None:
    broker = make_broker(emulator, tmp_path)
    await broker.connect()
    try:
        instrument = broker.contracts[0].instrument
        request = PlaceRequest("BW-MKT-1", instrument, Side.BUY, instrument.lot_size, 150_500, order_type=OrderType.MARKET)
        await broker.place(request)
        posted = [c for c in emulator.calls if c.method == "POST"]
        assert len(posted) == 1 and posted[0].body is not None
        assert posted[0].body["order_type"] == "limit" and posted[0].body["price"] == "1505.00"
        assert emulator.call_count("quotes") == 0
    finally:
        await broker.disconnect()


async def test_connect_without_a_session_token_fails_and_reports_the_lost_session(
    emulator: BreezeEmulator, tmp_path: Path,
) -> None:
    broker = make_broker(emulator, tmp_path, token=None)
    heard: list[str] = []
    broker.on_session_lost(heard.append)
    with pytest.raises(BrokerError) as caught:
        await broker.connect()
    assert caught.value.code is BrokerErrorCode.SESSION_EXPIRED
    assert heard == [caught.value.message]
    await broker.disconnect()


async def test_a_wrong_secret_is_an_auth_failure_that_names_no_secret(emulator: BreezeEmulator, tmp_path: Path) -> None:
    broker = make_broker(emulator, tmp_path, secret="wrong-secret-Zq8")
    heard: list[str] = []
    broker.on_session_lost(heard.append)
    await broker.connect()
    try:
        with pytest.raises(BrokerError) as caught:
            await broker.funds()
        assert caught.value.code is BrokerErrorCode.AUTH_FAILED
        assert heard and "wrong-secret-Zq8" not in caught.value.message
        with pytest.raises(BrokerError) as again:
            await broker.funds()
        assert again.value.code is BrokerErrorCode.SESSION_EXPIRED, "a lost session fails fast, without a call"
    finally:
        await broker.disconnect()


async def test_broker_messages_never_carry_a_secret(emulator: BreezeEmulator, tmp_path: Path) -> None:
    broker = make_broker(emulator, tmp_path)
    await broker.connect()
    try:
        emulator.faults.reject(f"bad request from {emulator.api_key} token 48213577", endpoint="funds")
        with pytest.raises(BrokerError) as caught:
            await broker.funds()
        assert emulator.api_key not in caught.value.message and "48213577" not in caught.value.message
        assert "[REDACTED]" in caught.value.message
    finally:
        await broker.disconnect()


async def test_empty_books_read_as_empty_lists(emulator: BreezeEmulator, tmp_path: Path) -> None:
    broker = make_broker(emulator, tmp_path)
    await broker.connect()
    try:
        assert await broker.order_book() == []
        assert await broker.trade_book() == []
        assert await broker.positions() == []
    finally:
        await broker.disconnect()


async def test_quotes_and_funds_read_in_paise(emulator: BreezeEmulator, tmp_path: Path) -> None:
    broker = make_broker(emulator, tmp_path, keys=["BSE:TCS", "NSE:TCS"])
    await broker.connect()
    try:
        # Found: on a loaded machine the walk moved the price between set_price and the read.
        emulator.freeze_walk()
        emulator.set_price("BSE:TCS", 309_995)
        tick = await broker.quote("BSE:TCS")
        assert tick.instrument_key == "BSE:TCS" and tick.price == 309_995
    finally:
        await broker.disconnect()


async def test_disconnect_really_closes_both_sockets(emulator: BreezeEmulator, tmp_path: Path) -> None:
    broker = make_broker(emulator, tmp_path)
    await broker.connect()
    await wait_for(lambda: emulator.connected_clients == {"stream": 1, "feeds": 1}, what="both sockets")
    await broker.disconnect()
    await wait_for(lambda: emulator.connected_clients == {"stream": 0, "feeds": 0}, what="both sockets closed")


async def test_a_cancel_for_an_order_never_seen_is_refused_before_any_call(emulator: BreezeEmulator, tmp_path: Path) -> None:
    broker = make_broker(emulator, tmp_path)
    await broker.connect()
    try:
        before = len(emulator.calls)
        with pytest.raises(BrokerError) as caught:
            await broker.cancel("20261123N300009999")
        assert caught.value.code is BrokerErrorCode.UNKNOWN_ORDER
        assert len(emulator.calls) == before
    finally:
        await broker.disconnect()


async def test_an_unreadable_order_row_costs_only_its_own_order(emulator: BreezeEmulator, tmp_path: Path) -> None:
    """Found: one row with ``expiry_date = None`` made the whole book unreadable (MALFORMED)."""
    cash = [emulator.add_order("NSE:RELIANCE", "buy", 1, 100_000 - 5 * n) for n in range(2)]
    future = emulator.add_order(NIFTY_FUT, "sell", 65, 3_000_000)
    emulator.faults.bad_value("expiry_date", None, endpoint="order", method="GET", order_id=future, count=100)
    broker = make_broker(emulator, tmp_path)
    await broker.connect()
    try:
        rows = {row.broker_order_id: row for row in await broker.order_book()}
        assert set(rows) == {*cash, future}
        assert all(isinstance(rows[i], BrokerOrder) and rows[i].status is OrderStatus.OPEN for i in cash)
        bad = rows[future]
        assert isinstance(bad, UnreadableOrder) and bad.status is OrderStatus.OPEN and bad.may_be_working
        assert "expiry_date" in bad.problem
        assert broker.stats.unreadable_orders == 1
        await broker.cancel(future)  # its exchange is still known, so it can be cancelled
        assert emulator.working_count() == 2
        # Still unreadable, but how it ended and what it executed still read: enough to close it.
        cancelled = next(row for row in await broker.order_book() if row.broker_order_id == future)
        assert isinstance(cancelled, UnreadableOrder) and cancelled.status is OrderStatus.CANCELLED
        assert cancelled.filled_quantity == 0 and cancelled.average_price is None
    finally:
        await broker.disconnect()


async def test_an_order_every_exchange_lists_is_one_order(emulator: BreezeEmulator, tmp_path: Path) -> None:
    """Found: against a server that listed every order under each exchange, panic "cancelled 24 working
    orders" for 6 (and sent the cancels to the last exchange that listed each)."""
    emulator.faults.books_ignore_exchange = True
    cash = emulator.add_order("NSE:RELIANCE", "buy", 1, 100_000)
    future = emulator.add_order(NIFTY_FUT, "sell", 65, 3_000_000)
    broker = make_broker(emulator, tmp_path, book_exchanges=["NSE", "BSE", "NFO", "BFO"])
    await broker.connect()
    try:
        book = await broker.order_book()
        assert sorted(row.broker_order_id or "" for row in book) == sorted([cash, future])
        emulator.fill(cash)
        assert [t.broker_order_id for t in await broker.trade_book()] == [cash]
        await broker.cancel(future)
        assert emulator.working_count() == 0
    finally:
        await broker.disconnect()


async def test_only_order_notifications_the_desk_loses_are_reported_as_order_feed_gaps(
    emulator: BreezeEmulator, tmp_path: Path,
) -> None:
    """Found: the SDK handles ``stock`` and ``order`` events with one ``on_message``, so its failure on an
    order notification (a fill, say) was counted like a lost tick, and nothing read the order book."""
    broker = make_broker(emulator, tmp_path)
    gaps: list[str] = []
    broker.on_order_feed_gap(gaps.append)
    await broker.connect()
    try:
        await broker.subscribe([broker.contracts[0].instrument.key])
        emulator.emit_raw_stock([broker.contracts[0].stream_symbol, 1.0, 2.0])
        await wait_for(lambda: broker.stats.malformed_messages == 1, what="the broken tick counted")
        assert gaps == [] and broker.stats.handler_errors == {"IndexError in parse_data": 1}
        # Cut after the message type, as the emulator garbles order events: parse_data fails on the order path.
        emulator.emit_raw_order(["1", "", emulator.user_id, "", "", "", "7", "", "", "", "", "4"])
        await wait_for(lambda: len(gaps) == 1, what="the lost order notification reported")
        assert "IndexError in parse_data" in gaps[0]
        assert broker.stats.handler_errors == {"IndexError in parse_data": 2}
        # Read by the SDK but not by the desk (no order reference): lost all the same.
        unreadable = [""] * 47
        unreadable[0], unreadable[11] = "1", "4"
        emulator.emit_raw_order(unreadable)
        await wait_for(lambda: len(gaps) == 2, what="the unreadable order notification reported")
        assert "orderReference" in gaps[1] and broker.stats.malformed_messages == 3
    finally:
        await broker.disconnect()


async def test_a_secret_across_the_cut_of_an_sdk_handler_error_never_reaches_the_log(
    emulator: BreezeEmulator, tmp_path: Path, caplog: pytest.LogCaptureFixture,
) -> None:
    """Found: the adapter cut a handler error's text to 200 characters before scrubbing it, so a secret
    across the cut kept its first part; with no hook set, the SDK wrapper logged the exception raw."""
    caplog.set_level(logging.WARNING)
    secret = emulator.api_secret
    # The secret starts before the 200th character and ends after it, whatever prefix the text gets.
    straddling = "y" * (ERROR_TEXT_LIMIT - 20) + secret
    broker = make_broker(emulator, tmp_path)
    await broker.connect()
    try:
        # The hook the adapter set on its SDK object, called as the SDK's wrapped socket handler calls it.
        getattr(broker._breeze, ERROR_HOOK)("on_message", ValueError(straddling))
        assert broker.stats.malformed_messages == 1
        # An SDK object without the hook: the wrapper logs on its own, scrubbing what the object holds.
        sdk = load_sdk(endpoints(emulator), tmp_path / MASTER_FILE, tmp_path / "sdk")
        bare = sdk.BreezeConnect(api_key=emulator.api_key)
        bare.secret_key = secret  # as generate_session keeps it

        def leak(data: object) -> None:
            raise ValueError(straddling)

        bare.on_ticks = leak
        sdk.SocketEventBreeze("/", bare).on_message([broker.contracts[0].stream_symbol, 1.0, 2.0, 3.0, 4.0, 5.0,
                                                     6.0, 7.0, 8.0, 9.0, 10.0, 11.0])
    finally:
        await broker.disconnect()
    logged = [r.getMessage() for r in caplog.records if "yyyy" in r.getMessage()]
    assert len(logged) == 2, logged
    assert all(secret[:4] not in line and "[REDACTED]" in line for line in logged), logged
