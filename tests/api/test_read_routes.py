"""The read routes over real HTTP against a real engine on the paper broker at a frozen instant: each
answer's shape and values checked against the engine's own state after a fill; no token is 401 and a
kill-only token is 403 on every one of them."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from pathlib import Path

import httpx
import pytest

from app.api.alert_log import AlertLog
from app.api.convert import ist_time
from app.api.routes.market import InstrumentIndex, limits_in_force
from app.brokers.paper import PaperBroker, load_universe
from app.domain.events import Alert, AlertLevel
from app.domain.india_time import IST
from app.domain.market import Tick
from app.domain.orders import OrderStatus
from app.engine.bus import EventBus
from app.engine.engine import Engine
from app.store.canonical import canonical_json
from tests.api.conftest import order_body, until
from tests.engine.ticket_desk import (
    DESK,
    INSTRUMENTS,
    NOW,
    REL,
    REL_FUT,
    RELIANCE_CAPS,
    RISK,
    UNDERLYINGS,
)
from tests.support.limits import limits_text

READ_ROUTES = ["/v1/status", "/v1/instruments", f"/v1/quotes?keys={REL}", "/v1/positions", "/v1/limits", "/v1/alerts"]
# NOW is a whole second, so its IST datetime is exact.
AT_NOW = dt.datetime.fromtimestamp(NOW // 1_000_000_000, IST)


def fill_at_broker(broker: PaperBroker, client_order_id: str, price: int) -> None:
    """The exchange fills the whole order at ``price`` and the broker says so, as its matching would (the
    paper market never moves in these tests, so it never matches by itself)."""
    order = next(o for o in broker._orders.values() if o.client_order_id == client_order_id)
    order.fill_value += (order.quantity - order.filled_quantity) * price
    order.filled_quantity = order.quantity
    order.status = OrderStatus.FILLED
    broker._publish(order, NOW)


async def bought(bot: httpx.AsyncClient, engine: Engine, quantity: int, price: int) -> str:
    """Buy ``quantity`` RELIANCE over the API, filled at ``price`` paise; the engine's portfolio holds it."""
    answer = await bot.post("/v1/orders", json=order_body(quantity=quantity))
    assert answer.status_code == 200 and answer.json()["accepted"], answer.text
    client_order_id: str = answer.json()["client_order_id"]
    await until(lambda: engine.oms.get(client_order_id) is not None and engine.oms.get(client_order_id).broker_order_id is not None)  # type: ignore[union-attr]
    assert isinstance(engine.broker, PaperBroker)
    fill_at_broker(engine.broker, client_order_id, price)
    await until(lambda: engine.portfolio.position(REL) == quantity)
    return client_order_id


# -- auth on every read route ------------------------------------------------------------------


async def test_read_routes_need_a_read_token(http: httpx.AsyncClient, stopper: httpx.AsyncClient) -> None:
    for path in READ_ROUTES:
        missing = await http.get(path)
        assert missing.status_code == 401 and missing.json()["code"] == "UNAUTHENTICATED", path
        assert missing.headers["WWW-Authenticate"] == "Bearer"
        kill_only = await stopper.get(path)
        assert kill_only.status_code == 403 and kill_only.json()["code"] == "FORBIDDEN", path


# -- status and positions after a fill ---------------------------------------------------------


async def test_status_shows_exposure_pnl_and_budgets_as_the_engine_holds_them(
    bot: httpx.AsyncClient, viewer: httpx.AsyncClient, engine: Engine,
) -> None:
    await bought(bot, engine, 2, 149_900)
    engine.bus.publish(Tick(REL, 150_500, NOW))  # marked at ₹1,505: 2 x ₹1,505 = ₹3,010 gross and net
    answer = await viewer.get("/v1/status")
    assert answer.status_code == 200, answer.text
    status = answer.json()
    assert status["trading_state"] == "ACTIVE"
    assert status["gross"] == {"used": "3010.00", "limit": "1000000.00", "share": pytest.approx(3010 / 1_000_000)}
    assert status["net"] == {"used": "3010.00", "limit": "600000.00", "share": pytest.approx(3010 / 600_000)}
    assert Decimal(status["day_pnl"]) == Decimal(engine.day_pnl.current(NOW)) / 100
    assert status["daily_loss_limit"] == "100000000000.00"
    assert status["open_orders"] == engine.risk_book.open_orders == 0
    budget = engine.governor.remaining()
    assert status["governor"] == {
        "actions_per_second": budget.actions_per_second,
        "actions_used_last_second": budget.actions_per_second - budget.actions_left,
        "calls_per_minute": budget.calls_per_minute,
        "calls_used_last_minute": budget.calls_per_minute - budget.minute_left,
        "calls_per_day": budget.calls_per_day,
        "calls_used_today": budget.calls_per_day - budget.day_left,
    }
    # The place and the start's reads were spent: the day's count shows them.
    assert status["governor"]["calls_used_today"] > 0


async def test_status_after_a_halt_names_reason_actor_and_time(viewer: httpx.AsyncClient, engine: Engine) -> None:
    engine.halt("desk closed for the test", "rita")
    status = (await viewer.get("/v1/status")).json()
    assert status["trading_state"] == "HALTED"
    assert status["reason"] == "desk closed for the test" and status["by"] == "rita"
    assert dt.datetime.fromisoformat(status["since"]) == AT_NOW
    assert status["since"].endswith("+05:30")


async def test_positions_carry_exact_average_mark_and_pnl(
    bot: httpx.AsyncClient, viewer: httpx.AsyncClient, engine: Engine,
) -> None:
    await bought(bot, engine, 3, 149_950)
    engine.bus.publish(Tick(REL, 150_000, NOW))
    answer = await viewer.get("/v1/positions")
    assert answer.status_code == 200, answer.text
    [position] = answer.json()
    # Bought 3 at ₹1,499.50, marked at ₹1,500: ₹1.50 unrealised.
    assert position == {
        "key": REL, "quantity": 3, "average_price": "1499.50", "last": "1500.00",
        "realised_pnl": "0.00", "unrealised_pnl": "1.50",
    }
    [view] = engine.portfolio.views()
    assert Decimal(position["unrealised_pnl"]) * 100 == view.unrealized


async def test_positions_are_empty_before_any_fill(viewer: httpx.AsyncClient) -> None:
    answer = await viewer.get("/v1/positions")
    assert answer.status_code == 200 and answer.json() == []


# -- quotes ------------------------------------------------------------------------------------


async def test_quotes_give_last_price_time_and_age(viewer: httpx.AsyncClient, engine: Engine) -> None:
    answer = await viewer.get("/v1/quotes", params={"keys": f"{REL},{REL_FUT},NSE:TCS"})
    assert answer.status_code == 200, answer.text
    rel, fut, tcs = answer.json()
    assert rel == {"key": REL, "last": "1500.00", "at": rel["at"], "age_s": 0.0}
    assert dt.datetime.fromisoformat(rel["at"]) == AT_NOW
    assert fut["key"] == REL_FUT and fut["last"] == "1510.00"
    # TCS never ticked in these tests: listed, with no price yet.
    assert tcs == {"key": "NSE:TCS", "last": None, "at": None, "age_s": None}


async def test_an_unknown_quote_key_is_404_naming_it(viewer: httpx.AsyncClient) -> None:
    answer = await viewer.get("/v1/quotes", params={"keys": f"{REL},NSE:NOPE,NSE:ALSO_NOPE"})
    assert answer.status_code == 404
    body = answer.json()
    assert body["code"] == "NOT_FOUND"
    assert "NSE:NOPE" in body["message"] and "NSE:ALSO_NOPE" in body["message"] and REL not in body["message"]


@pytest.mark.parametrize(("keys", "reason"), [(",,", "no instrument key"), (",".join([REL] + [f"K{i}" for i in range(100)]), "more than 100")])
async def test_too_few_or_too_many_quote_keys_are_422(viewer: httpx.AsyncClient, keys: str, reason: str) -> None:
    answer = await viewer.get("/v1/quotes", params={"keys": keys})
    assert answer.status_code == 422
    [problem] = answer.json()["fields"]
    assert problem["field"] == "query.keys" and reason in problem["reason"]


# -- instruments -------------------------------------------------------------------------------


async def test_instruments_search_by_tokens_cash_first(viewer: httpx.AsyncClient) -> None:
    everything = (await viewer.get("/v1/instruments")).json()
    assert {i["key"] for i in everything} == set(INSTRUMENTS)
    found = (await viewer.get("/v1/instruments", params={"q": "reliance"})).json()
    assert [i["key"] for i in found] == [REL, REL_FUT]
    rel = found[0]
    instrument = INSTRUMENTS[REL]
    assert rel == {
        "key": REL, "symbol": instrument.symbol, "underlying": instrument.underlying, "exchange": "NSE",
        "segment": "CASH", "expiry": None, "strike": None, "right": None, "lot_size": instrument.lot_size,
        "tick_size": str(Decimal(instrument.tick_size) / 100), "freeze_quantity": instrument.freeze_quantity,
    }
    assert found[1]["expiry"] == "2026-12-29" and found[1]["segment"] == "FUTURES"
    # Tokens in any order, each a prefix; a pasted key works too.
    assert [i["key"] for i in (await viewer.get("/v1/instruments", params={"q": "fut rel"})).json()] == [REL_FUT]
    assert [i["key"] for i in (await viewer.get("/v1/instruments", params={"q": REL_FUT})).json()] == [REL_FUT]
    assert (await viewer.get("/v1/instruments", params={"q": "reliance", "limit": 1})).json()[0]["key"] == REL
    assert (await viewer.get("/v1/instruments", params={"q": "nothing like it"})).json() == []


async def test_instruments_limit_is_bounded(viewer: httpx.AsyncClient) -> None:
    for limit in (0, 501):
        answer = await viewer.get("/v1/instruments", params={"limit": limit})
        assert answer.status_code == 422
        assert answer.json()["fields"][0]["field"] == "query.limit"


def test_the_index_answers_options_by_strike_and_right() -> None:
    universe = [e.instrument for e in load_universe(session_day=dt.date(2026, 12, 1))]
    index = InstrumentIndex(universe)
    assert [i.key for i in index.search("nifty 26000 ce", 10)] == ["NFO:NIFTY:2026-12-29:26000:CE"]
    nifty = [i.key for i in index.search("nifty", 50)]
    # Futures before options, options by strike then right.
    assert nifty[:3] == ["NFO:NIFTY:2026-12-29:FUT", "NFO:NIFTY:2026-12-29:25800:CE", "NFO:NIFTY:2026-12-29:25800:PE"]
    assert [i.key for i in index.search("2026-12 nifty fut", 10)] == ["NFO:NIFTY:2026-12-29:FUT"]
    assert len(index.search("", 5)) == 5


# -- limits ------------------------------------------------------------------------------------


async def test_limits_in_force_are_served_with_their_version(viewer: httpx.AsyncClient, engine: Engine) -> None:
    # Built with limits handed to the gate directly: in force, never stored as a version.
    unstored = (await viewer.get("/v1/limits")).json()
    assert unstored["version"] is None
    assert json.loads(unstored["document"]) == engine.gate.limits.document()
    text = limits_text(INSTRUMENTS.values(), desk={**DESK, "max_open_orders": 7}, per_instrument={REL: RELIANCE_CAPS},
                       underlyings=UNDERLYINGS)
    version = await engine.set_limits(text, actor=RISK, reason="fewer open orders")
    answer = (await viewer.get("/v1/limits")).json()
    assert answer["version"] == version == engine.limits.version
    assert answer["document"] == canonical_json(engine.gate.limits.document())
    assert json.loads(answer["document"])["desk"]["max_open_orders"] == 7
    assert f"stored version {version}" in answer["source"]


async def test_the_desks_limits_file_is_served_as_written_when_it_holds_the_limits_in_force(
    engine: Engine, tmp_path: Path,
) -> None:
    path = tmp_path / "limits.toml"
    text = "# the risk officer's own words\n" + limits_text(
        INSTRUMENTS.values(), desk=DESK, per_instrument={REL: RELIANCE_CAPS}, underlyings=UNDERLYINGS,
    )
    version = await engine.set_limits(text, actor=RISK, reason="the desk's file", path=path)
    served = await limits_in_force(engine, path)
    assert served.version == version and served.document == text and served.source == f"file {path}"
    # Edited since (not in force): the version in force is served instead, as the gate holds it.
    path.write_text(text.replace("max_open_orders = 10000", "max_open_orders = 3"), encoding="utf-8")
    edited = await limits_in_force(engine, path)
    assert edited.document == canonical_json(engine.gate.limits.document())
    assert edited.source == f"stored version {version} (normalised, JSON)"


# -- alerts ------------------------------------------------------------------------------------


async def test_alerts_after_a_seq(viewer: httpx.AsyncClient, engine: Engine) -> None:
    engine.alert(AlertLevel.WARNING, "test", "first")
    engine.alert(AlertLevel.CRITICAL, "test", "second")
    every = (await viewer.get("/v1/alerts")).json()
    assert [(a["level"], a["message"]) for a in every[-2:]] == [("WARNING", "first"), ("CRITICAL", "second")]
    first, second = every[-2:]
    assert second["seq"] == first["seq"] + 1 and first["component"] == "test"
    assert dt.datetime.fromisoformat(first["at"]) == AT_NOW
    after = (await viewer.get("/v1/alerts", params={"after": first["seq"]})).json()
    assert [a["message"] for a in after] == ["second"]
    assert (await viewer.get("/v1/alerts", params={"after": second["seq"]})).json() == []
    limited = (await viewer.get("/v1/alerts", params={"limit": 1})).json()
    assert [a["seq"] for a in limited] == [every[0]["seq"]]


def test_the_alert_log_keeps_the_newest_and_numbers_on() -> None:
    bus = EventBus()
    log = AlertLog(bus, keep=3)
    for n in range(5):
        bus.publish(Alert(AlertLevel.INFO, "c", f"m{n}", NOW))
    assert [(e.seq, e.alert.message) for e in log.since(0, 10)] == [(3, "m2"), (4, "m3"), (5, "m4")]
    assert [e.seq for e in log.since(3, 10)] == [4, 5]
    assert [e.seq for e in log.since(3, 1)] == [4]
    assert log.since(5, 10) == [] and log.since(99, 10) == []


def test_times_are_ist_with_their_offset() -> None:
    at = ist_time(NOW + 123_456_789)
    assert at.utcoffset() == dt.timedelta(hours=5, minutes=30)
    assert at == dt.datetime.fromtimestamp(NOW // 1_000_000_000, dt.UTC) + dt.timedelta(microseconds=123_456)


async def test_every_read_route_declares_its_errors(http: httpx.AsyncClient) -> None:
    paths = (await http.get("/openapi.json")).json()["paths"]
    for route in READ_ROUTES:
        responses = paths[route.split("?")[0]]["get"]["responses"]
        assert {"401", "403", "422", "429"} <= responses.keys(), route
        assert all(responses[s]["content"]["application/json"]["schema"]["$ref"].endswith("/ApiErrorBody")
                   for s in ("401", "403", "422", "429")), route
    assert "does not list" in paths["/v1/quotes"]["get"]["responses"]["404"]["description"]
