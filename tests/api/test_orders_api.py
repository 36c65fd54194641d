"""Orders over real HTTP: submit through the gate (accepted, refused with code, value and limit), scope
checked before the engine, preview sends nothing, modify and cancel only one's own, idempotency keys, and
the gate's per-source rate counted per client."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from decimal import Decimal

import httpx
import pytest

from app.api.convert import average_price, ist_time
from app.api.idempotency import KEEP_SECONDS, IdempotencyStore, fingerprint
from app.api.models import IDEMPOTENCY_HEADER, OrderIn, SubmitOut
from app.api.routes.orders import order_out
from app.api.server import ApiServer
from app.domain.events import OrderSnapshot
from app.domain.orders import (
    Order,
    OrderSource,
    OrderStatus,
    OrderType,
    Product,
    Side,
    Validity,
)
from app.engine.engine import Engine
from app.security.api_clients import ApiClientDirectory
from app.store.audit_writer import AuditWriter
from tests.api.conftest import MonoClock, bearer, committed, order_body
from tests.engine.ticket_desk import ADMIN, REL, RISK


async def test_submit_accepted_is_audited_with_the_client_as_actor(
    bot: httpx.AsyncClient, engine: Engine, writer: AuditWriter,
) -> None:
    answer = await bot.post("/v1/orders", json=order_body())
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["accepted"] is True and body["rejection"] is None and body["replayed"] is False
    order = engine.oms.get(body["client_order_id"])
    assert order is not None and order.source is OrderSource.API and order.actor == "api:bot"
    sent = [r for r in await committed(writer, "order.sent") if r["client_order_id"] == body["client_order_id"]]
    assert sent and sent[0]["actor"] == "api:bot" and sent[0]["source"] == "api"


async def test_submit_refused_carries_code_value_and_limit(bot: httpx.AsyncClient, engine: Engine) -> None:
    # 200 lots of RELIANCE, over its cap of 100 lots an order.
    answer = await bot.post("/v1/orders", json=order_body(quantity=200))
    assert answer.status_code == 200
    body = answer.json()
    assert body["accepted"] is False
    rejection = body["rejection"]
    assert rejection["code"] == "ORDER_QUANTITY_LIMIT"
    assert "200" in rejection["value"] and "100" in rejection["limit"]
    assert engine.oms.working() == []


async def test_a_client_without_trade_scope_is_refused_before_the_engine(
    viewer: httpx.AsyncClient, engine: Engine,
) -> None:
    before = engine.submitted
    answer = await viewer.post("/v1/orders", json=order_body())
    assert answer.status_code == 403
    assert answer.json()["code"] == "FORBIDDEN"
    assert engine.submitted == before


async def test_preview_sends_nothing(bot: httpx.AsyncClient, viewer: httpx.AsyncClient, engine: Engine) -> None:
    before = engine.submitted
    good = await viewer.post("/v1/orders/preview", json=order_body(quantity=2))
    assert good.status_code == 200, good.text
    body = good.json()
    assert body["would_pass"] is True and body["problems"] == []
    assert body["price"] == "1500.00" and body["value"] == "3000.00"
    assert body["headroom"]
    bad = (await bot.post("/v1/orders/preview", json=order_body(quantity=200, price="1500.03"))).json()
    assert bad["would_pass"] is False
    assert any(p["code"] == "PRICE_OFF_TICK" and p["field"] == "price" for p in bad["problems"])
    assert engine.submitted == before and engine.oms.orders() == []


async def test_list_and_get_orders(bot: httpx.AsyncClient, viewer: httpx.AsyncClient) -> None:
    placed = (await bot.post("/v1/orders", json=order_body())).json()["client_order_id"]
    listed = (await viewer.get("/v1/orders")).json()
    assert [o["client_order_id"] for o in listed] == [placed]
    assert listed[0]["actor"] == "api:bot" and listed[0]["price"] == "1500.00" and listed[0]["instrument"] == REL
    assert (await viewer.get("/v1/orders", params={"mine": "true"})).json() == []
    assert (await viewer.get("/v1/orders", params={"status": "all"})).json()[0]["client_order_id"] == placed
    one = await viewer.get(f"/v1/orders/{placed}")
    assert one.status_code == 200 and one.json()["client_order_id"] == placed
    missing = await viewer.get("/v1/orders/NOPE-1")
    assert missing.status_code == 404 and missing.json()["code"] == "NOT_FOUND"


async def test_modify_and_cancel_own_order_but_not_anothers(
    bot: httpx.AsyncClient, engine: Engine, directory: ApiClientDirectory, base_url: str,
) -> None:
    placed = (await bot.post("/v1/orders", json=order_body())).json()["client_order_id"]
    _, other_token = directory.add("bot2", ["read", "trade"], by=ADMIN)
    async with httpx.AsyncClient(base_url=base_url, headers=bearer(other_token)) as other:
        refused = await other.delete(f"/v1/orders/{placed}")
        assert refused.status_code == 200 and refused.json()["ok"] is False
        not_modified = (await other.patch(f"/v1/orders/{placed}", json={"price": "1499"})).json()
        assert not_modified["ok"] is False
        assert not_modified["rejection"]["code"] == "NOT_AUTHORISED"
    order = engine.oms.get(placed)
    assert order is not None and order.is_working and not order.cancel_requested
    modified = (await bot.patch(f"/v1/orders/{placed}", json={"price": "1499"})).json()
    assert modified["ok"] is True, modified
    cancelled = (await bot.delete(f"/v1/orders/{placed}")).json()
    assert cancelled["ok"] is True, cancelled
    assert (await bot.delete("/v1/orders/NOPE-1")).status_code == 404


async def test_a_retried_idempotency_key_places_once(bot: httpx.AsyncClient, engine: Engine) -> None:
    headers = {IDEMPOTENCY_HEADER: "strategy-7-order-1"}
    first = (await bot.post("/v1/orders", json=order_body(), headers=headers)).json()
    again = (await bot.post("/v1/orders", json=order_body(), headers=headers)).json()
    assert first["accepted"] and first["replayed"] is False
    assert again["replayed"] is True and again["client_order_id"] == first["client_order_id"]
    assert len(engine.oms.orders()) == 1


async def test_concurrent_requests_with_one_key_place_once(bot: httpx.AsyncClient, engine: Engine) -> None:
    headers = {IDEMPOTENCY_HEADER: "same-key"}
    answers = await asyncio.gather(*(bot.post("/v1/orders", json=order_body(), headers=headers) for _ in range(5)))
    bodies = [a.json() for a in answers]
    assert {b["client_order_id"] for b in bodies} == {bodies[0]["client_order_id"]}
    assert sorted(b["replayed"] for b in bodies) == [False, True, True, True, True]
    assert len(engine.oms.orders()) == 1


async def test_one_key_with_another_body_is_422_naming_the_header(bot: httpx.AsyncClient, engine: Engine) -> None:
    headers = {IDEMPOTENCY_HEADER: "k1"}
    assert (await bot.post("/v1/orders", json=order_body(), headers=headers)).status_code == 200
    clash = await bot.post("/v1/orders", json=order_body(quantity=2), headers=headers)
    assert clash.status_code == 422
    assert clash.json()["fields"][0]["field"] == f"header.{IDEMPOTENCY_HEADER}"
    bad_key = await bot.post("/v1/orders", json=order_body(), headers={IDEMPOTENCY_HEADER: "x" * 129})
    assert bad_key.status_code == 422
    assert IDEMPOTENCY_HEADER in bad_key.json()["fields"][0]["field"]
    assert len(engine.oms.orders()) == 1


@pytest.mark.parametrize("engine_rates", [{"api": 2}])
async def test_the_gates_source_rate_is_per_client(
    bot: httpx.AsyncClient, engine: Engine, directory: ApiClientDirectory, base_url: str, server: ApiServer,
) -> None:
    _, other_token = directory.add("bot2", ["read", "trade"], by=ADMIN)
    codes = []
    for quantity in (1, 2, 3):
        body = (await bot.post("/v1/orders", json=order_body(quantity=quantity))).json()
        codes.append(body["rejection"]["code"] if body["rejection"] else "OK")
    assert codes == ["OK", "OK", "SOURCE_RATE_LIMIT"]
    async with httpx.AsyncClient(base_url=base_url, headers=bearer(other_token)) as other:
        body = (await other.post("/v1/orders", json=order_body(quantity=4))).json()
    assert body["accepted"] is True, body


async def test_the_idempotency_store_is_bounded_and_forgets_after_a_day() -> None:
    clock = MonoClock()
    store = IdempotencyStore(keys_per_client=2, keep_seconds=KEEP_SECONDS, clock=clock)
    placed: list[str] = []

    def placing(name: str) -> Callable[[], Awaitable[SubmitOut]]:
        async def place() -> SubmitOut:
            placed.append(name)
            return SubmitOut(accepted=True, client_order_id=name, status=None, rejection=None)
        return place

    assert (await store.submit_once("bot", "a", "f", placing("A"))).replayed is False
    assert (await store.submit_once("bot", "a", "f", placing("A2"))).replayed is True
    assert (await store.submit_once("other", "a", "f", placing("B"))).client_order_id == "B"  # per client
    await store.submit_once("bot", "b", "f", placing("C"))
    await store.submit_once("bot", "c", "f", placing("D"))  # over the bound: "a" is dropped
    assert (await store.submit_once("bot", "a", "f", placing("E"))).replayed is False
    clock.advance(KEEP_SECONDS)
    assert (await store.submit_once("bot", "c", "f", placing("F"))).replayed is False  # a day on: forgotten
    assert placed == ["A", "B", "C", "D", "E", "F"]


async def test_a_failed_submit_is_not_kept_for_the_key() -> None:
    store = IdempotencyStore()

    async def broken() -> SubmitOut:
        raise RuntimeError("engine fault")

    with pytest.raises(RuntimeError):
        await store.submit_once("bot", "k", "f", broken)
    assert len(store) == 0


async def test_a_refused_submit_is_not_kept_so_its_retry_tries_again(bot: httpx.AsyncClient, engine: Engine) -> None:
    headers = {IDEMPOTENCY_HEADER: "after-the-halt"}
    engine.halt("a test halts the desk", "test")
    refused = (await bot.post("/v1/orders", json=order_body(), headers=headers)).json()
    assert refused["accepted"] is False and refused["rejection"]["code"] == "TRADING_HALTED"
    await engine.rearm(RISK, "the test re-arms")
    retried = (await bot.post("/v1/orders", json=order_body(), headers=headers)).json()
    assert retried["accepted"] is True and retried["replayed"] is False, retried
    again = (await bot.post("/v1/orders", json=order_body(), headers=headers)).json()
    assert again["replayed"] is True and again["client_order_id"] == retried["client_order_id"]
    assert len(engine.oms.orders()) == 1


async def test_a_retry_is_matched_by_its_order_not_by_how_it_was_written(bot: httpx.AsyncClient, engine: Engine) -> None:
    headers = {IDEMPOTENCY_HEADER: "rewritten"}
    first = (await bot.post("/v1/orders", json=order_body(price="1500"), headers=headers)).json()
    assert first["accepted"] is True, first
    for price in ("1500.00", "1500.0", "1.5E+3", 1500):
        written = json.dumps(dict(reversed(order_body(price=price).items())), indent=2)  # other key order, spacing
        again = await bot.post("/v1/orders", content=written, headers={**headers, "Content-Type": "application/json"})
        assert again.status_code == 200, again.text
        assert again.json()["replayed"] is True and again.json()["client_order_id"] == first["client_order_id"]
    other = await bot.post("/v1/orders", json=order_body(price="1500.05"), headers=headers)
    assert other.status_code == 422 and other.json()["code"] == "IDEMPOTENCY_KEY_REUSED"
    assert len(engine.oms.orders()) == 1


def test_the_fingerprint_is_of_the_order() -> None:
    order = OrderIn.model_validate(order_body(price="1500"))
    assert fingerprint(order) == fingerprint(OrderIn.model_validate(order_body(price="1500.00")))
    assert fingerprint(order) != fingerprint(OrderIn.model_validate(order_body(price="1500.05")))
    assert fingerprint(order) != fingerprint(OrderIn.model_validate(order_body(tag="another")))
    market = OrderIn.model_validate(order_body(price=None, order_type="MARKET"))
    assert fingerprint(market) != fingerprint(order)


@pytest.mark.parametrize("key", [b"caf\xe9", b"", b"x" * 129])
async def test_a_malformed_idempotency_key_is_422_naming_the_header(
    bot: httpx.AsyncClient, engine: Engine, key: bytes,
) -> None:
    answer = await bot.post("/v1/orders", json=order_body(), headers={IDEMPOTENCY_HEADER.encode(): key})
    assert answer.status_code == 422, answer.text
    assert answer.json()["fields"][0]["field"] == f"header.{IDEMPOTENCY_HEADER}"
    assert engine.oms.orders() == []


@pytest.mark.parametrize(("field", "value"), [
    ("price", "-1500"), ("price", "0"), ("price", "1E+30"), ("price", "99999999999999999999"),
    ("price", "1500.001"), ("price", "NaN"), ("price", "Infinity"),
    ("quantity", -1), ("quantity", 0), ("quantity", 10**13), ("quantity", 10**400), ("quantity", 1.5),
])
async def test_absurd_numbers_are_422_naming_the_field(
    bot: httpx.AsyncClient, engine: Engine, field: str, value: object,
) -> None:
    for path in ("/v1/orders", "/v1/orders/preview"):
        answer = await bot.post(path, content=json.dumps(order_body(**{field: value})),
                                headers={"Content-Type": "application/json"})
        assert answer.status_code == 422, (path, answer.text)
        assert answer.json()["fields"][0]["field"] == f"body.{field}"
    assert engine.oms.orders() == []


@pytest.mark.parametrize(("price", "quantity"), [
    ("999999999999999999.99", 1), ("999999999999999.99", 10**12), ("1500", 10**12), ("0.01", 1),
])
async def test_huge_numbers_the_model_allows_get_a_clean_refusal(
    bot: httpx.AsyncClient, engine: Engine, price: str, quantity: int,
) -> None:
    body = order_body(price=price, quantity=quantity)
    submitted = await bot.post("/v1/orders", json=body)
    assert submitted.status_code == 200, submitted.text
    assert submitted.json()["accepted"] is False and submitted.json()["rejection"]["code"]
    previewed = await bot.post("/v1/orders/preview", json=body)
    assert previewed.status_code == 200, previewed.text
    assert previewed.json()["would_pass"] is False and previewed.json()["problems"]
    assert engine.oms.orders() == []


async def test_absurd_modifications_are_422_or_refused(bot: httpx.AsyncClient, engine: Engine) -> None:
    placed = (await bot.post("/v1/orders", json=order_body())).json()["client_order_id"]
    for change in ({"price": "-1"}, {"quantity": 0}, {"quantity": 10**13}, {"price": "1E+30"}):
        answer = await bot.patch(f"/v1/orders/{placed}", json=change)
        assert answer.status_code == 422, (change, answer.text)
    for change in ({"price": "999999999999999999.99"}, {"quantity": 10**12}):
        answer = await bot.patch(f"/v1/orders/{placed}", json=change)
        assert answer.status_code == 200 and answer.json()["ok"] is False, (change, answer.text)


def test_order_times_and_averages_convert_as_the_stream_and_market_routes_do() -> None:
    # A float of epoch seconds cannot hold nanoseconds: 1_767_000_000.9999997 rounds up a whole second.
    updated_ns = 1_767_000_000_999_999_700
    order = Order(
        client_order_id="BW-1", instrument_key=REL, side=Side.BUY, quantity=3, price=150_000,
        order_type=OrderType.LIMIT, product=Product.INTRADAY, validity=Validity.DAY, source=OrderSource.API,
        actor="api:bot", created_ns=0, status=OrderStatus.FILLED, filled_quantity=3,
        fill_value=150_000 + 150_001 + 150_001,
        updated_ns=updated_ns,
    )
    shown = order_out(order)
    assert shown.updated == ist_time(updated_ns)
    assert shown.updated is not None and shown.updated.second == 0 and shown.updated.microsecond == 999_999
    assert shown.average_fill_price == Decimal("1500.01")  # 1500.00666... to the paisa
    snapshot = OrderSnapshot(
        client_order_id="BW-1", broker_order_id=None, instrument_key=REL, side=Side.BUY, quantity=3, price=150_000,
        order_type=OrderType.LIMIT, product=Product.INTRADAY, source=OrderSource.API, actor="api:bot",
        status=OrderStatus.FILLED, filled_quantity=3, fill_value=order.fill_value, ts_ns=updated_ns,
    )
    assert order_out(snapshot) == shown
    # Exact for amounts a float would round: 10**12 units at about a crore of rupees each.
    assert average_price(10**12 * 10**9 + 1, 10**12) == Decimal("10000000.00")
    assert average_price(-300_000, -2) == Decimal("1500.00") and average_price(5, 0) is None
