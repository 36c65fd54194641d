"""The kill switch over HTTP: a kill token halts the desk before the answer arrives, the sweep cancels
every working order and the engagement is audited with the client as actor and ``api`` as source; a
token without the kill scope is refused and halts nothing; no route re-arms."""

from __future__ import annotations

import httpx
import pytest

from app.domain.actors import ApiScope
from app.domain.orders import OrderStatus
from app.domain.trading_state import TradingState
from app.engine.engine import Engine
from app.security.api_clients import ApiClientDirectory
from app.settings import ApiSettings
from app.store.audit_writer import AuditWriter
from tests.api.conftest import bearer, committed, order_body, until
from tests.engine.ticket_desk import ADMIN


async def working_order(bot: httpx.AsyncClient, engine: Engine, price: str) -> str:
    """A LIMIT BUY resting at the paper broker (its market never moves here, so it never fills)."""
    answer = await bot.post("/v1/orders", json=order_body(price=price))
    assert answer.status_code == 200 and answer.json()["accepted"], answer.text
    client_order_id: str = answer.json()["client_order_id"]
    await until(lambda: (order := engine.oms.get(client_order_id)) is not None and order.status is OrderStatus.OPEN)
    return client_order_id


async def test_kill_halts_before_the_answer_and_sweeps_the_working_orders(
    bot: httpx.AsyncClient, stopper: httpx.AsyncClient, engine: Engine, writer: AuditWriter,
) -> None:
    orders = [await working_order(bot, engine, price) for price in ("1490", "1480")]
    states: list[TradingState] = []

    async def seen(response: httpx.Response) -> None:
        # The moment the answer has arrived, before anything else on this loop runs.
        states.append(engine.trading_state)

    stopper.event_hooks = {"request": [], "response": [seen]}
    answer = await stopper.post("/v1/kill", json={"reason": "runaway strategy"})
    assert answer.status_code == 200, answer.text
    assert states == [TradingState.HALTED]
    body = answer.json()
    assert body["trading_state"] == "HALTED"
    assert body["working_orders"] == 2 and body["expected_seconds"] > 0
    assert body["halted_at"].endswith("+05:30")
    assert engine.trading_state_actor == "api:stopper" and "runaway strategy" in engine.halt_reason

    report = await engine.kill_switch.wait()
    assert report is not None and report.done and report.working_after == 0
    assert all(engine.oms.get(cid).status is OrderStatus.CANCELLED for cid in orders)  # type: ignore[union-attr]
    [engaged] = await committed(writer, "kill_switch.engaged")
    assert engaged["actor"] == "api:stopper" and engaged["source"] == "api"
    assert engaged["reason"] == "runaway strategy" and engaged["working"] == 2

    # The next submit is refused: the desk is halted.
    refused = (await bot.post("/v1/orders", json=order_body())).json()
    assert refused["accepted"] is False and refused["rejection"]["code"] == "TRADING_HALTED"


async def test_kill_without_a_body_uses_the_default_reason(stopper: httpx.AsyncClient, engine: Engine) -> None:
    answer = await stopper.post("/v1/kill")
    assert answer.status_code == 200, answer.text
    assert engine.trading_state is TradingState.HALTED
    assert "kill switch over the local API" in engine.halt_reason
    assert answer.json()["working_orders"] == 0
    await engine.kill_switch.wait()


async def test_tokens_without_the_kill_scope_halt_nothing(
    http: httpx.AsyncClient, bot: httpx.AsyncClient, viewer: httpx.AsyncClient, engine: Engine,
) -> None:
    for client in (bot, viewer):
        answer = await client.post("/v1/kill", json={"reason": "not mine to press"})
        assert answer.status_code == 403 and answer.json()["code"] == "FORBIDDEN"
    missing = await http.post("/v1/kill", json={"reason": "who am I"})
    assert missing.status_code == 401
    assert engine.trading_state is TradingState.ACTIVE
    assert engine.kill_switch.last is None


async def test_a_bad_reason_is_422_naming_the_field(stopper: httpx.AsyncClient, engine: Engine) -> None:
    answer = await stopper.post("/v1/kill", json={"reason": "   "})
    assert answer.status_code == 422
    assert answer.json()["fields"][0]["field"] == "body.reason"
    assert engine.trading_state is TradingState.ACTIVE


@pytest.mark.parametrize("api_settings", [ApiSettings(port=0, burst=1, per_minute=1)])
async def test_the_rate_limit_never_stands_between_a_client_and_the_halt(
    base_url: str, directory: ApiClientDirectory, engine: Engine,
) -> None:
    _, token = directory.add("watchdog", {ApiScope.READ, ApiScope.KILL}, by=ADMIN)
    async with httpx.AsyncClient(base_url=base_url, headers=bearer(token), timeout=10) as watchdog:
        assert (await watchdog.get("/v1/status")).status_code == 200
        assert (await watchdog.get("/v1/status")).status_code == 429
        # Past its rate, yet the desk is not halted: the kill goes through.
        answer = await watchdog.post("/v1/kill", json={"reason": "watchdog fired"})
        assert answer.status_code == 200 and engine.trading_state is TradingState.HALTED
        # Already HALTED: a repeat past the rate is refused, with when to retry.
        again = await watchdog.post("/v1/kill", json={"reason": "and again"})
        assert again.status_code == 429 and int(again.headers["Retry-After"]) >= 1
    await engine.kill_switch.wait()


async def test_no_route_re_arms(http: httpx.AsyncClient, server: object) -> None:
    schema = (await http.get("/openapi.json")).json()
    for path, operations in schema["paths"].items():
        assert "arm" not in path.lower(), path
        for operation in operations.values():
            assert "arm" not in operation.get("operationId", "").lower(), path
    app = server.app  # type: ignore[attr-defined]
    assert not [route.path for route in app.routes if "arm" in getattr(route, "path", "").lower()]
    assert schema["paths"]["/v1/kill"].keys() == {"post"}


async def test_the_schema_says_when_a_kill_is_refused(http: httpx.AsyncClient) -> None:
    responses = (await http.get("/openapi.json")).json()["paths"]["/v1/kill"]["post"]["responses"]
    assert {"200", "401", "403", "413", "422", "429"} <= responses.keys()
    assert "HALTED" in responses["429"]["description"]
    assert responses["401"]["content"]["application/json"]["schema"]["$ref"].endswith("/ApiErrorBody")
