"""HTTP limits: 413 for a body over the limit (declared or streamed), 422 naming the field and the reason,
429 with Retry-After past a client's burst, refilled as the (injected) clock moves."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import httpx
import pytest

from app.api.rate_limit import ClientRateLimiter
from app.api.server import ApiServer
from app.engine.engine import Engine
from app.settings import ApiSettings
from tests.api.conftest import MonoClock, bearer, order_body

LIMIT = 1024


@pytest.fixture
def api_settings() -> ApiSettings:
    return ApiSettings(port=0, burst=3, per_minute=60, max_body_bytes=LIMIT)


async def test_413_by_content_length(bot: httpx.AsyncClient, engine: Engine) -> None:
    padded = json.dumps(order_body(tag="x" * 10)) + " " * LIMIT
    answer = await bot.post("/v1/orders", content=padded, headers={"Content-Type": "application/json"})
    assert answer.status_code == 413
    assert answer.json()["code"] == "BODY_TOO_LARGE"
    assert engine.oms.orders() == []


async def test_413_at_once_for_a_declared_length_without_sending_the_body(server: ApiServer, tokens: dict[str, str]) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(
        b"POST /v1/orders HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100000000\r\n"
        + f"Authorization: Bearer {tokens['bot']}\r\n\r\n".encode()
    )
    await writer.drain()
    status = await asyncio.wait_for(reader.readline(), 2)
    assert status.startswith(b"HTTP/1.1 413")
    writer.close()


async def test_413_for_a_chunked_body_cut_at_the_limit(bot: httpx.AsyncClient, engine: Engine) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"instrument": "NSE:RELIANCE", "tag": "'
        for _ in range(40):
            yield b"x" * 100

    answer = await bot.post("/v1/orders", content=chunks(), headers={"Content-Type": "application/json"})
    assert answer.status_code == 413
    assert answer.json()["code"] == "BODY_TOO_LARGE"
    assert engine.oms.orders() == []


@pytest.mark.parametrize(
    ("content", "field", "reason"),
    [
        ('{"instrument": "NSE:RELIANCE", "side": "BUY", "quantity": 1, "price": "15', "body.", "JSON decode error"),
        (json.dumps(order_body(quantity="many")), "body.quantity", "valid integer"),
        (json.dumps(order_body(side="SIDEWAYS")), "body.side", "Input should be"),
        (json.dumps(order_body(colour="red")), "body.colour", "Extra inputs are not permitted"),
        (json.dumps(order_body(quantity=0)), "body.quantity", "greater than 0"),
        (json.dumps({"side": "BUY", "quantity": 1}), "body.instrument", "Field required"),
    ],
    ids=["malformed", "wrong-type", "bad-enum", "extra-field", "out-of-range", "missing"],
)
async def test_422_names_the_field_and_the_reason(
    bot: httpx.AsyncClient, engine: Engine, content: str, field: str, reason: str,
) -> None:
    answer = await bot.post("/v1/orders", content=content, headers={"Content-Type": "application/json"})
    assert answer.status_code == 422
    body = answer.json()
    assert body["code"] == "VALIDATION"
    assert any(p["field"].startswith(field) and reason in p["reason"] for p in body["fields"]), body
    assert engine.oms.orders() == []


async def test_422_for_a_bad_query_parameter(viewer: httpx.AsyncClient) -> None:
    answer = await viewer.get("/v1/orders", params={"status": "sometimes"})
    assert answer.status_code == 422
    assert answer.json()["fields"][0]["field"] == "query.status"


async def test_404_and_405_are_error_bodies(viewer: httpx.AsyncClient) -> None:
    missing = await viewer.get("/v1/nowhere")
    assert missing.status_code == 404 and missing.json()["code"] == "NOT_FOUND"
    wrong = await viewer.put("/v1/orders")
    assert wrong.status_code == 405 and wrong.json()["code"] == "METHOD_NOT_ALLOWED"


async def test_429_after_the_burst_with_retry_after_then_refilled(
    viewer: httpx.AsyncClient, bot: httpx.AsyncClient, mono: MonoClock,
) -> None:
    for _ in range(3):
        assert (await viewer.get("/v1/orders")).status_code == 200
    limited = await viewer.get("/v1/orders")
    assert limited.status_code == 429
    assert limited.headers["Retry-After"] == "1"
    assert limited.json()["code"] == "RATE_LIMITED"
    # Another client has its own bucket.
    assert (await bot.get("/v1/orders")).status_code == 200
    mono.advance(1.0)
    assert (await viewer.get("/v1/orders")).status_code == 200
    assert (await viewer.get("/v1/orders")).status_code == 429


def test_retry_after_counts_whole_seconds_to_one_token() -> None:
    clock = MonoClock()
    limiter = ClientRateLimiter(1, 12, clock=clock)  # one token every 5 s
    assert limiter.take("a") is None
    assert limiter.take("a") == 5
    clock.advance(3.5)
    assert limiter.take("a") == 2
    clock.advance(1.5)
    assert limiter.take("a") is None
    clock.advance(1000)
    assert limiter.take("a") is None
    assert limiter.take("a") == 5  # refilled to the burst, no further


async def test_unauthenticated_requests_are_not_rate_counted_against_a_client(
    http: httpx.AsyncClient, viewer: httpx.AsyncClient,
) -> None:
    for _ in range(5):
        assert (await http.get("/v1/orders", headers=bearer("bwk_wrong"))).status_code == 401
    assert (await viewer.get("/v1/orders")).status_code == 200


async def test_a_body_that_is_not_utf8_is_422(bot: httpx.AsyncClient, engine: Engine) -> None:
    answer = await bot.post("/v1/orders", content=b"{\"instrument\": \"\xc3\x28\"}", headers={"Content-Type": "application/json"})
    assert answer.status_code == 422
    assert answer.json()["fields"] == [
        {"field": "body", "reason": "the body could not be read as JSON: UnicodeDecodeError"},
    ]
    assert engine.oms.orders() == []
