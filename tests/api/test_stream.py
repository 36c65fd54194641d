"""WS /v1/stream over a real server on loopback: the events in order, the filter, the refusals, and the
slow client that is dropped (told so with 1013) while the engine and the other clients carry on."""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from app.api.routes import stream
from app.api.routes.stream import (
    MAX_STREAMS_PER_CLIENT,
    STREAM_QUEUE_PREFIX,
    TOO_SLOW_CODE,
    stream_stats,
)
from app.api.server import ApiServer
from app.domain.events import AlertLevel, OrderRejected
from app.domain.orders import OrderSource
from app.domain.rejections import Rejection, RejectReason
from app.engine.engine import Engine
from app.security.api_clients import ApiClientDirectory
from app.settings import ApiSettings
from app.store.audit_writer import AuditWriter
from tests.api.conftest import bearer, committed, order_body
from tests.engine.ticket_desk import ADMIN, REL

QUEUE = 10  # the smallest stream_queue the settings allow: a client is "behind" after ten events


@pytest.fixture
def api_settings() -> ApiSettings:
    return ApiSettings(port=0, burst=10_000, per_minute=1_000_000, stream_queue=QUEUE)


def ws_url(server: ApiServer, query: str = "") -> str:
    return server.url.replace("http", "ws", 1) + "/v1/stream" + (f"?{query}" if query else "")


@asynccontextmanager
async def opened(server: ApiServer, token: str, query: str = "", **options: Any) -> AsyncIterator[ClientConnection]:
    async with connect(
        ws_url(server, query), additional_headers=bearer(token), proxy=None, open_timeout=5, close_timeout=2, **options,
    ) as ws:
        yield ws


async def message(ws: ClientConnection) -> dict[str, Any]:
    event: dict[str, Any] = json.loads(await asyncio.wait_for(ws.recv(), 5))
    return event


async def until(ws: ClientConnection, kind: str, **data: object) -> list[dict[str, Any]]:
    """Messages up to and including the first of ``kind`` whose data holds ``data``."""
    seen = []
    while True:
        event = await message(ws)
        seen.append(event)
        if event["type"] == kind and all(event["data"].get(k) == v for k, v in data.items()):
            return seen


def stream_queues(engine: Engine) -> list[str]:
    return [name for name in engine.bus.queue_stats() if name.startswith(STREAM_QUEUE_PREFIX)]


async def eventually(condition: Any, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.005)


def refusal(engine: Engine, n: int, message: str = "synthetic") -> OrderRejected:
    return OrderRejected(REL, OrderSource.STRATEGY, "strategy", Rejection(RejectReason.THROTTLED, f"{message} {n}"))


async def test_hello_then_order_fill_state_and_alert_in_order(
    server: ApiServer, engine: Engine, tokens: dict[str, str], bot: httpx.AsyncClient, stopper: httpx.AsyncClient,
) -> None:
    async with opened(server, tokens["viewer"]) as ws:
        hello = await message(ws)
        assert hello["type"] == "hello" and hello["seq"] == 0
        assert hello["data"]["client"] == "viewer" and hello["data"]["trading_state"] == "ACTIVE"
        assert hello["data"]["types"] == ["order", "fill", "state", "alert", "rejected"]
        assert hello["at"].endswith("+05:30")

        # A marketable buy (the paper market stands at ₹1,500): it rests, then fills at the next market step.
        answer = (await bot.post("/v1/orders", json=order_body(price="1510"))).json()
        assert answer["accepted"], answer
        cid = answer["client_order_id"]
        opened_events = await until(ws, "order", client_order_id=cid, status="OPEN")
        engine.broker.step()  # type: ignore[attr-defined]
        filled = await until(ws, "order", client_order_id=cid, status="FILLED")
        assert (await stopper.post("/v1/kill", json={"reason": "stream test"})).status_code == 200
        halted = await until(ws, "state", trading_state="HALTED")
        engine.alert(AlertLevel.WARNING, "test", "after the halt")
        alerted = await until(ws, "alert", message="after the halt")

    events = [hello, *opened_events, *filled, *halted, *alerted]
    assert [e["seq"] for e in events] == list(range(len(events))), "the stream skipped or reordered a message"
    ours = [e for e in events if e["data"].get("client_order_id") == cid]
    assert [e["type"] for e in ours][-2:] == ["fill", "order"], "the fill comes before the order's FILLED update"
    order = ours[-1]["data"]
    assert order["instrument"] == REL and order["side"] == "BUY" and order["quantity"] == 1
    assert order["price"] == "1510.00" and order["actor"] == "api:bot" and order["source"] == "api"
    assert order["filled_quantity"] == 1 and order["previous"] in ("OPEN", "PARTIALLY_FILLED")
    fill = ours[-2]["data"]
    assert fill["quantity"] == 1 and fill["price"] == order["average_fill_price"]
    assert halted[-1]["data"]["reason"] == "kill switch: stream test" and halted[-1]["data"]["by"] == "api:stopper" and halted[-1]["data"]["previous"] == "ACTIVE"
    assert alerted[-1]["data"] == {"level": "WARNING", "component": "test", "message": "after the halt"}


async def test_a_refused_order_is_streamed_with_its_code(server: ApiServer, tokens: dict[str, str], bot: httpx.AsyncClient) -> None:
    async with opened(server, tokens["viewer"], "types=rejected") as ws:
        hello = await message(ws)
        assert hello["data"]["types"] == ["rejected"]
        answer = (await bot.post("/v1/orders", json=order_body(quantity=100_000))).json()
        assert not answer["accepted"]
        rejected = await message(ws)
    assert rejected["type"] == "rejected" and rejected["seq"] == 1
    assert rejected["data"]["actor"] == "api:bot" and rejected["data"]["instrument"] == REL
    assert rejected["data"]["rejection"]["code"] == answer["rejection"]["code"]


async def test_types_filter_keeps_only_those_kinds(server: ApiServer, engine: Engine, tokens: dict[str, str]) -> None:
    async with opened(server, tokens["viewer"], "types=state") as ws:
        await message(ws)
        engine.alert(AlertLevel.INFO, "test", "not for this client")
        engine.engage_kill_switch("filtered", "tester")
        state = await message(ws)
    assert state["type"] == "state" and state["seq"] == 1


async def test_unknown_type_is_refused_naming_it(server: ApiServer, tokens: dict[str, str]) -> None:
    async with opened(server, tokens["viewer"], "types=order,trades") as ws:
        with pytest.raises(ConnectionClosed) as closed:
            await message(ws)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1008
    assert "trades" in closed.value.rcvd.reason


@pytest.mark.parametrize("who", ["none", "wrong", "disabled", "kill-only"])
async def test_no_token_wrong_token_or_scope_is_refused(
    server: ApiServer, engine: Engine, writer: AuditWriter, tokens: dict[str, str], who: str,
) -> None:
    token = {"none": "", "wrong": "bwk_" + "x" * 43, "disabled": tokens["off"], "kill-only": tokens["stopper"]}[who]
    headers = bearer(token) if token else {}
    async with connect(ws_url(server), additional_headers=headers, proxy=None, open_timeout=5) as ws:
        with pytest.raises(ConnectionClosed) as refused:
            await message(ws)
    assert refused.value.rcvd is not None and refused.value.rcvd.code == 1008
    assert ("scope" in refused.value.rcvd.reason) == (who == "kill-only")
    assert stream_queues(engine) == []
    records = await committed(writer, "api.refused")
    assert [r["path"] for r in records] == ["/v1/stream"]
    if token:
        assert token not in json.dumps(records), "a token reached the audit trail"


async def test_token_in_the_query_is_accepted(server: ApiServer, tokens: dict[str, str]) -> None:
    async with connect(ws_url(server, f"token={tokens['viewer']}"), proxy=None, open_timeout=5) as ws:
        assert (await message(ws))["data"]["client"] == "viewer"


async def test_the_bus_queue_is_released_when_the_client_leaves(server: ApiServer, engine: Engine, tokens: dict[str, str]) -> None:
    async with opened(server, tokens["viewer"]) as ws:
        await message(ws)
        assert stream_queues(engine) == [f"{STREAM_QUEUE_PREFIX}viewer"]
        assert server.app is not None and stream_stats(server.app).open == 1
    await eventually(lambda: not stream_queues(engine))
    assert stream_stats(server.app).open == 0


async def test_a_client_more_than_stream_queue_events_behind_gets_bye_and_1013(
    server: ApiServer, engine: Engine, tokens: dict[str, str],
) -> None:
    async with opened(server, tokens["viewer"], "types=rejected") as ws:
        await message(ws)
        # More than QUEUE events with no await between: the connection's queue drops its oldest.
        for n in range(QUEUE + 5):
            engine.bus.publish(refusal(engine, n))
        bye = await message(ws)
        with pytest.raises(ConnectionClosed) as closed:
            await message(ws)
    # Not the events after a gap: the client is told it missed some, and why.
    assert bye["type"] == "bye" and bye["seq"] == 1 and bye["data"]["code"] == TOO_SLOW_CODE
    assert closed.value.rcvd is not None and closed.value.rcvd.code == TOO_SLOW_CODE
    assert "re-read /v1/orders" in closed.value.rcvd.reason
    assert not stream_queues(engine)
    assert server.app is not None and stream_stats(server.app).too_slow == 1


async def _tiny_window_socket(server: ApiServer) -> socket.socket:
    """A client socket with a small receive buffer (set before connecting, so the window stays small)."""
    assert server.port is not None
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", server.port))
    return sock


# A queue the reading client never outruns on a loaded test machine; the stuck one is dropped by its socket.
@pytest.mark.parametrize("api_settings", [ApiSettings(port=0, burst=10_000, per_minute=1_000_000, stream_queue=1000)])
async def test_a_client_that_never_reads_is_dropped_without_slowing_the_engine_or_the_others(
    server: ApiServer, engine: Engine, tokens: dict[str, str], monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A stuck socket counts as too slow after 0.2 s here (2 s in service); its goodbye may wait until the
    # test reads it, so the close code it gets does not race a timer.
    monkeypatch.setattr(stream, "SEND_TIMEOUT_S", 0.2)
    monkeypatch.setattr(stream, "GOODBYE_TIMEOUT_S", 30.0)
    assert server.app is not None
    stats = stream_stats(server.app)
    padding = "x" * 2000  # big messages fill the stuck socket's buffers sooner
    async with (
        opened(server, tokens["viewer"], "types=rejected") as reader,
        opened(server, tokens["bot"], "types=rejected", sock=await _tiny_window_socket(server),
               compression=None, max_queue=1) as sleeper,
    ):
        await message(reader)
        received: list[dict[str, Any]] = []

        async def read_all() -> None:
            while True:
                received.append(await message(reader))

        reading = asyncio.create_task(read_all())
        lag_samples = len(engine.loop_lag.samples_ms)
        publish_s: list[float] = []
        published = 0
        while stats.too_slow == 0:
            assert published < 50_000, "the stuck client was never dropped"
            for _ in range(5):
                started = time.perf_counter()
                engine.bus.publish(refusal(engine, published, padding))
                publish_s.append(time.perf_counter() - started)
                published += 1
            await asyncio.sleep(0.001)
        assert stream_queues(engine) == [f"{STREAM_QUEUE_PREFIX}viewer"], "the stuck client's queue is still subscribed"
        assert stats.too_slow == 1
        for _ in range(20):  # the others carry on
            engine.bus.publish(refusal(engine, published, padding))
            published += 1
        await eventually(lambda: len(received) == published)
        reading.cancel()
        lag = list(engine.loop_lag.samples_ms)[lag_samples:]

        # The reader saw every event, in order; the sleeper, once it reads, what it was sent, then bye and 1013.
        assert [e["seq"] for e in received] == list(range(1, published + 1))
        slept: list[dict[str, Any]] = []
        with pytest.raises(ConnectionClosed) as closed:
            while True:
                slept.append(await message(sleeper))
        assert [e["seq"] for e in slept] == list(range(len(slept))), "the stuck client was sent a gap"
        assert slept[-1]["type"] == "bye" and 1 < len(slept) < published
        assert closed.value.rcvd is not None and closed.value.rcvd.code == TOO_SLOW_CODE

    # Percentiles, not maxima: on a loaded CI machine the OS or a garbage collection may stall any one
    # moment. A stuck client that held up the engine would hold up most of them (for SEND_TIMEOUT_S each).
    publish_p99 = sorted(publish_s)[len(publish_s) * 99 // 100]
    assert publish_p99 < 0.020, f"publish took {publish_p99 * 1000:.1f} ms (p99)"
    lag = sorted(lag)
    assert lag[len(lag) // 2] < 50, f"the loop lagged {lag[len(lag) // 2]:.0f} ms (median; worst {lag[-1]:.0f} ms)"


async def closed_code(ws: ClientConnection) -> tuple[int, str]:
    """The close code and reason the server ends ``ws`` with (messages before it are skipped)."""
    with pytest.raises(ConnectionClosed) as closed:
        while True:
            await message(ws)
    assert closed.value.rcvd is not None, "the server did not close the connection"
    return closed.value.rcvd.code, closed.value.rcvd.reason


@pytest.mark.parametrize("change", ["disable", "rotate"])
async def test_an_open_stream_ends_when_its_client_is_disabled_or_rotated(
    server: ApiServer, engine: Engine, directory: ApiClientDirectory, writer: AuditWriter, tokens: dict[str, str],
    change: str,
) -> None:
    async with opened(server, tokens["viewer"], "types=alert") as ws:
        await message(ws)
        engine.alert(AlertLevel.INFO, "test", "still allowed")
        assert (await message(ws))["data"]["message"] == "still allowed"
        if change == "disable":
            directory.disable("viewer", by=ADMIN)
        else:
            directory.rotate("viewer", by=ADMIN)
        engine.alert(AlertLevel.INFO, "test", "not for a revoked token")
        code, reason = await closed_code(ws)
    assert code == 1008 and ("disabled" if change == "disable" else "not valid") in reason
    await eventually(lambda: not stream_queues(engine))
    records = await committed(writer, "api.refused")
    assert [(r["reason"], r["path"]) for r in records] == [("disabled" if change == "disable" else "unknown", "/v1/stream")]


async def test_a_frame_over_the_body_limit_closes_the_stream_with_1009(server: ApiServer, tokens: dict[str, str]) -> None:
    async with opened(server, tokens["viewer"], "types=alert") as ws:
        await message(ws)
        await ws.send("x" * (server.settings.max_body_bytes + 1))
        code, _ = await closed_code(ws)
    assert code == 1009


@pytest.mark.parametrize("api_settings", [ApiSettings(port=0, burst=2, per_minute=1, stream_queue=QUEUE)])
async def test_connecting_past_the_clients_rate_is_refused(server: ApiServer, engine: Engine, tokens: dict[str, str]) -> None:
    # The same bucket as the client's HTTP calls; the monotonic clock is frozen, so nothing refills.
    async with opened(server, tokens["viewer"]) as first, opened(server, tokens["viewer"]) as second:
        await message(first)
        await message(second)
        async with opened(server, tokens["viewer"]) as third:
            code, reason = await closed_code(third)
    assert code == 1008 and "rate limit" in reason
    await eventually(lambda: not stream_queues(engine))


async def test_a_client_holds_at_most_max_streams(server: ApiServer, tokens: dict[str, str]) -> None:
    assert server.app is not None
    stats = stream_stats(server.app)
    async with AsyncExitStack() as stack:
        streams = [await stack.enter_async_context(opened(server, tokens["viewer"])) for _ in range(MAX_STREAMS_PER_CLIENT)]
        for ws in streams:
            assert (await message(ws))["type"] == "hello"
        async with opened(server, tokens["viewer"]) as extra:
            code, reason = await closed_code(extra)
        assert code == 1008 and "too many streams" in reason
        async with opened(server, tokens["bot"]) as other:  # another client has its own allowance
            assert (await message(other))["type"] == "hello"
        await streams[0].close()
        await eventually(lambda: stats.by_client["viewer"] == MAX_STREAMS_PER_CLIENT - 1)
        async with opened(server, tokens["viewer"]) as again:
            assert (await message(again))["type"] == "hello"
