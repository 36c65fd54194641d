"""The typed client (``app.api.client``) against the API served for real on loopback (``conftest``).

The blocking ``Bulwark`` runs in a worker thread (``asyncio.to_thread``): the server shares the test's loop.
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from decimal import Decimal
from pathlib import Path

import httpx
import pytest

from app.api.client import (
    ApiError,
    AsyncBulwark,
    Bulwark,
    ConnectionFailed,
    Forbidden,
    InvalidRequest,
    NotFound,
    PayloadTooLarge,
    RateLimited,
    RetryPolicy,
    ServerError,
    StreamRefused,
    Unauthenticated,
)
from app.api.client.errors import error_from_response
from app.api.models import IDEMPOTENCY_HEADER, OrderIn, StreamEvent
from app.domain.orders import OrderSource, OrderStatus, Side
from app.domain.trading_state import TradingState
from app.engine.engine import Engine
from app.settings import ApiSettings
from app.store.audit_writer import AuditWriter
from tests.api.conftest import committed, until
from tests.engine.ticket_desk import REL
from tests.engine.ticket_desk import settle as loop_settle

TCS = "NSE:TCS"
QUICK = RetryPolicy(attempts=2, backoff_s=0.01)
FORBIDDEN_MODULES = ("app.engine", "app.desk", "app.store", "app.security", "fastapi", "starlette", "uvicorn",
                     "PySide6", "sqlalchemy", "qasync")


@pytest.fixture
def sync(base_url: str, tokens: dict[str, str]) -> Iterator[Bulwark]:
    with Bulwark(base_url, tokens["bot"]) as client:
        yield client


@pytest.fixture
async def aio(base_url: str, tokens: dict[str, str]) -> AsyncIterator[AsyncBulwark]:
    async with AsyncBulwark(base_url, tokens["bot"]) as client:
        yield client


@pytest.fixture(autouse=True)
def no_token_in_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("BULWARK_API_TOKEN", raising=False)


def closed_port_url() -> str:
    """The URL of a loopback port nothing listens on."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{probe.getsockname()[1]}"


def is_open(engine: Engine, client_order_id: str | None) -> bool:
    """Whether the broker has acknowledged the order (only then may it be modified)."""
    order = engine.oms.get(client_order_id or "")
    return order is not None and order.status is OrderStatus.OPEN


# -- every method once ------------------------------------------------------------------------------


async def test_sync_client_every_method(sync: Bulwark, base_url: str, tokens: dict[str, str], engine: Engine) -> None:
    run = asyncio.to_thread
    assert (await run(sync.health)).status == "ok"
    assert (await run(sync.ready)).trading_state is TradingState.ACTIVE
    assert (await run(sync.status)).trading_state is TradingState.ACTIVE
    assert REL in [i.key for i in await run(sync.instruments, "RELIANCE")]
    assert [q.key for q in await run(sync.quotes, REL, TCS)] == [REL, TCS]
    assert (await run(sync.quote, REL)).last == Decimal("1500.00")
    assert await run(sync.positions) == []
    assert (await run(sync.limits)).document
    assert isinstance(await run(sync.alerts, 0), list)
    preview = await run(sync.preview, OrderIn(instrument=REL, side=Side.BUY, quantity=1, price=Decimal(1500)))
    assert preview.would_pass, preview.problems

    bought = await run(sync.buy, REL, 1, "1500")
    assert bought.accepted and bought.client_order_id is not None
    oid = bought.client_order_id
    await until(lambda: is_open(engine, oid))
    order = await run(sync.order, oid)
    assert (order.actor, order.source, order.quantity) == ("api:bot", OrderSource.API, 1)
    assert [o.client_order_id for o in await run(sync.orders)] == [oid]
    assert [o.client_order_id for o in await run(lambda: sync.orders(working=False, mine=True))] == [oid]
    modified = await run(lambda: sync.modify(oid, price="1499.5"))
    assert modified.ok, modified
    assert (await run(sync.cancel, oid)).client_order_id == oid

    sold = await run(lambda: sync.sell(REL, 1, 1501.5))  # a float price goes through its shortest text
    assert sold.accepted
    await until(lambda: is_open(engine, sold.client_order_id))
    assert [c.client_order_id for c in await run(sync.cancel_all_mine)] == [sold.client_order_id]

    with Bulwark(base_url, tokens["stopper"]) as stopper:
        killed = await run(stopper.kill, "client test")
    assert killed.trading_state is TradingState.HALTED
    refused = await run(sync.buy, REL, 1, "1500")  # the gate's decision is data, not an exception
    assert not refused.accepted and refused.rejection is not None
    assert refused.rejection.code == "TRADING_HALTED"


async def test_async_client_every_method_and_the_stream(aio: AsyncBulwark, base_url: str, tokens: dict[str, str],
                                                        engine: Engine) -> None:
    events: list[StreamEvent] = []
    hello = asyncio.Event()

    async def listen() -> None:
        async for event in aio.stream(types={"order", "state"}):
            events.append(event)
            hello.set()
            if event.type == "state" and event.data["trading_state"] == "HALTED":
                return

    listener = asyncio.create_task(listen())
    await asyncio.wait_for(hello.wait(), 5)
    assert events[0].type == "hello" and events[0].data["types"] == ["order", "state"]

    assert (await aio.health()).status == "ok"
    assert (await aio.ready()).ready
    assert (await aio.status()).open_orders == 0
    assert [i.key for i in await aio.instruments("TCS")] == [TCS]
    assert len(await aio.quotes(REL, TCS)) == 2
    assert (await aio.quote(TCS)).key == TCS
    assert await aio.positions() == []
    assert (await aio.limits()).source
    assert all(a.seq > 0 for a in await aio.alerts(after=0, limit=10))
    assert (await aio.preview(OrderIn(instrument=REL, side=Side.SELL, quantity=1, price=Decimal(1500)))).would_pass

    bought = await aio.buy(REL, 1, Decimal(1500))
    assert bought.accepted and bought.client_order_id
    oid = bought.client_order_id
    await until(lambda: is_open(engine, oid))
    assert (await aio.order(oid)).actor == "api:bot"
    assert [o.client_order_id for o in await aio.orders(mine=True)] == [oid]
    assert (await aio.modify(oid, quantity=2)).ok
    assert (await aio.cancel(oid)).ok
    sold = await aio.sell(REL, 1, "1500.5")
    assert sold.accepted
    await until(lambda: is_open(engine, sold.client_order_id))
    assert len(await aio.cancel_all_mine()) == 1
    submitted = await aio.submit(OrderIn(instrument=REL, side=Side.BUY, quantity=1, price=Decimal(1499)))
    assert submitted.accepted

    async with AsyncBulwark(base_url, tokens["stopper"]) as stopper:
        assert (await stopper.kill()).trading_state is TradingState.HALTED
    await asyncio.wait_for(listener, 5)
    kinds = [e.type for e in events]
    assert "order" in kinds and kinds[-1] == "state"
    assert {e.data["client_order_id"] for e in events if e.type == "order"} >= {oid, sold.client_order_id}


# -- errors ---------------------------------------------------------------------------------------


async def test_errors_map_to_their_exceptions_with_code_and_fields(
    base_url: str, tokens: dict[str, str], sync: Bulwark,
) -> None:
    def refused(call: Callable[..., object], *args: object) -> ApiError:
        with pytest.raises(ApiError) as caught:
            call(*args)
        return caught.value

    with Bulwark(base_url) as anonymous, Bulwark(base_url, "bwk_wrong") as wrong, \
            Bulwark(base_url, tokens["off"]) as off, Bulwark(base_url, tokens["viewer"]) as viewer:
        for client in (anonymous, wrong, off):
            error = await asyncio.to_thread(refused, client.status)
            assert type(error) is Unauthenticated and (error.status, error.code) == (401, "UNAUTHENTICATED")
        error = await asyncio.to_thread(refused, viewer.buy, REL, 1, "1500")
        assert type(error) is Forbidden and (error.status, error.code) == (403, "FORBIDDEN")
        assert (await asyncio.to_thread(viewer.status)).trading_state is TradingState.ACTIVE

    error = await asyncio.to_thread(refused, sync.order, "no-such-order")
    assert type(error) is NotFound and error.status == 404

    # The server's own 422: a body the client's copy of the contract would have refused (built unvalidated).
    bad = OrderIn.model_construct(instrument=REL, side=Side.BUY, quantity=0, price=Decimal(1500))
    error = await asyncio.to_thread(refused, sync.submit, bad)
    assert type(error) is InvalidRequest and (error.status, error.code) == (422, "VALIDATION")
    assert [f.field for f in error.fields] == ["body.quantity"]

    # The same mistake caught before sending: the same exception and field.
    error = refused(sync.buy, REL, 0, "1500")
    assert type(error) is InvalidRequest and [f.field for f in error.fields] == ["body.quantity"]

    huge = OrderIn.model_construct(instrument=REL, side=Side.BUY, quantity=1, price=Decimal(1500), tag="x" * 20_000)
    error = await asyncio.to_thread(refused, sync.submit, huge)
    assert type(error) is PayloadTooLarge and (error.status, error.code) == (413, "BODY_TOO_LARGE")


def test_error_answers_without_our_body_still_map() -> None:
    crashed = error_from_response(500, b'{"code":"INTERNAL","message":"the desk failed to answer"}', {})
    assert type(crashed) is ServerError and (crashed.code, crashed.message) == ("INTERNAL", "the desk failed to answer")
    proxy = error_from_response(502, b"<html>Bad Gateway</html>", {})
    assert type(proxy) is ServerError and proxy.code == "HTTP_502"
    limited = error_from_response(429, b'{"code":"RATE_LIMITED","message":"slow down"}', {"retry-after": "3"})
    assert type(limited) is RateLimited and limited.retry_after == 3.0


async def test_stream_refusal_raises(base_url: str, tokens: dict[str, str]) -> None:
    async with AsyncBulwark(base_url, tokens["stopper"]) as stopper:  # kill scope only: no read
        with pytest.raises(StreamRefused):
            async for _ in stopper.stream():
                pass


# -- retries --------------------------------------------------------------------------------------


@pytest.mark.parametrize("api_settings", [ApiSettings(port=0, burst=2, per_minute=60)])
@pytest.mark.parametrize("mono", [time.monotonic])  # the limiter refills in real time: the client really waits
async def test_429_is_retried_after_retry_after(base_url: str, tokens: dict[str, str]) -> None:
    with Bulwark(base_url, tokens["viewer"], retry=RetryPolicy(attempts=1)) as impatient, \
            Bulwark(base_url, tokens["viewer"]) as patient:
        await asyncio.to_thread(impatient.status)
        await asyncio.to_thread(impatient.status)
        with pytest.raises(RateLimited) as caught:
            await asyncio.to_thread(impatient.status)
        assert caught.value.retry_after == 1.0 and caught.value.code == "RATE_LIMITED"

        started = time.monotonic()
        status = await asyncio.to_thread(patient.status)  # 429 first, then after Retry-After the answer
        assert status.trading_state is TradingState.ACTIVE
        assert time.monotonic() - started >= 0.9


class DropsFirstSubmitAnswer(httpx.HTTPTransport):
    """Real HTTP, but the first submit's answer is lost after the server acted on it, as on a dropped connection."""

    def __init__(self) -> None:
        super().__init__()
        self.keys: list[str] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = super().handle_request(request)
        if request.method == "POST" and request.url.path == "/v1/orders":
            self.keys.append(request.headers[IDEMPOTENCY_HEADER])
            if len(self.keys) == 1:
                response.read()
                response.close()
                raise httpx.ReadError("connection dropped", request=request)
        return response


async def test_submit_retried_after_a_dropped_connection_places_once(
    base_url: str, tokens: dict[str, str], engine: Engine,
) -> None:
    transport = DropsFirstSubmitAnswer()
    with Bulwark(base_url, tokens["bot"], transport=transport, retry=QUICK) as client:
        decision = await asyncio.to_thread(client.buy, REL, 1, "1500")
    assert decision.accepted and decision.replayed
    assert len(transport.keys) == 2 and transport.keys[0] == transport.keys[1]
    await loop_settle()
    mine = [o for o in engine.oms.orders() if o.actor == "api:bot"]
    assert [o.client_order_id for o in mine] == [decision.client_order_id]


async def test_a_cancel_is_not_resent_after_a_dropped_connection_and_nothing_listening_fails_clearly(
    base_url: str, tokens: dict[str, str],
) -> None:
    class DropsCancel(httpx.HTTPTransport):
        sent = 0

        def handle_request(self, request: httpx.Request) -> httpx.Response:
            response = super().handle_request(request)
            if request.method == "DELETE":
                DropsCancel.sent += 1
                response.read()
                raise httpx.ReadError("connection dropped", request=request)
            return response

    with Bulwark(base_url, tokens["bot"], transport=DropsCancel(), retry=QUICK) as client, \
            pytest.raises(ConnectionFailed):
        await asyncio.to_thread(client.cancel, "any-order")
    assert DropsCancel.sent == 1

    with Bulwark(closed_port_url(), tokens["bot"], retry=QUICK) as nowhere, \
            pytest.raises(ConnectionFailed) as caught:
        nowhere.health()
    assert caught.value.status == 0 and caught.value.code == "CONNECTION"


# -- secrets and imports ------------------------------------------------------------------------


async def test_the_token_is_never_in_repr_str_or_exception_text(
    base_url: str, tokens: dict[str, str], monkeypatch: pytest.MonkeyPatch, writer: AuditWriter,
) -> None:
    token = tokens["bot"]
    wrong = token[:-4] + "abcd"
    monkeypatch.setenv("BULWARK_API_TOKEN", token)
    texts: list[str] = []
    with Bulwark(base_url) as from_env, Bulwark(base_url, wrong) as bad:
        async with AsyncBulwark(base_url, token) as aio_client:
            texts += [repr(from_env), str(from_env), repr(vars(from_env)), repr(aio_client), repr(vars(aio_client))]
        assert (await asyncio.to_thread(from_env.status)).trading_state is TradingState.ACTIVE  # the env token works
        with pytest.raises(Unauthenticated) as caught:
            await asyncio.to_thread(bad.status)
        texts += [str(caught.value), repr(caught.value), repr(caught.value.args)]
    with Bulwark(closed_port_url(), token, retry=RetryPolicy(attempts=1)) as nowhere, \
            pytest.raises(ConnectionFailed) as unreachable:
        nowhere.status()
        texts += [str(unreachable.value), repr(unreachable.value)]
    for text in texts:
        assert token not in text and wrong not in text and token[4:20] not in text
    refusals = await committed(writer, "api.refused")
    assert refusals and all(wrong not in str(r) and wrong[4:20] not in str(r) for r in refusals)


def test_the_client_imports_nothing_of_the_desk() -> None:
    code = (
        "import sys, app.api.client, app.api.example_strategy\n"
        f"bad = [m for m in sys.modules if m.startswith({FORBIDDEN_MODULES!r})]\n"
        "print(','.join(bad))"
    )
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=root, capture_output=True, text=True, timeout=60, check=False,
        env={**os.environ, "PYTHONPATH": str(root)},
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == ""
