"""Liveness and readiness without a token: ready on a running desk, and 503 with the failing part named
when the desk is halted, the feed is stale (the engine's clock moved on, never slept), the broker is
down or the database check fails."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import pytest

from app.api.server import ApiServer
from app.domain.events import BrokerStatus
from app.engine.config import EngineConfig
from app.engine.engine import Engine
from app.security.api_clients import ApiClientDirectory
from app.settings import ApiSettings
from app.store.audit_writer import AuditWriter
from tests.api.conftest import MonoClock
from tests.engine.ticket_desk import INSTRUMENTS, NOW, limits, paper_broker, started

REFERENCE_MAX_AGE_S = 15


@dataclass
class Clock:
    """The engine's clock: frozen at NOW, moved only by ``advance``."""

    now_ns: int = NOW

    def __call__(self) -> int:
        return self.now_ns

    def advance(self, seconds: float) -> None:
        self.now_ns += int(seconds * 1_000_000_000)


@dataclass
class Database:
    ok: bool = True


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def database() -> Database:
    return Database()


@pytest.fixture
async def engine(writer: AuditWriter, clock: Clock) -> AsyncIterator[Engine]:
    built = Engine(
        paper_broker(), INSTRUMENTS.values(), EngineConfig(market_protection_bps=100), audit=writer, clock_ns=clock,
        limits=limits({"reference_max_age_seconds": REFERENCE_MAX_AGE_S}),  # type: ignore[arg-type]
    )
    await started(built)
    yield built
    await built.stop()


@pytest.fixture
async def server(
    api_settings: ApiSettings, engine: Engine, directory: ApiClientDirectory, mono: MonoClock, database: Database,
) -> AsyncIterator[ApiServer]:
    served = ApiServer(api_settings, engine=engine, clients=directory, clock=mono, database_ok=lambda: database.ok)
    await served.start()
    yield served
    await served.stop()


def parts(body: dict[str, object]) -> dict[str, object]:
    return {name: body[name] for name in ("ready", "broker_connected", "feed_fresh", "database_ok", "trading_state", "engine")}


READY = {"ready": True, "broker_connected": True, "feed_fresh": True, "database_ok": True, "trading_state": "ACTIVE",
         "engine": "running"}


async def test_live_answers_without_a_token(http: httpx.AsyncClient) -> None:
    answer = await http.get("/v1/health/live")
    assert answer.status_code == 200 and answer.json() == {"status": "ok"}


async def test_ready_on_a_running_desk(http: httpx.AsyncClient) -> None:
    answer = await http.get("/v1/health/ready")
    assert answer.status_code == 200, answer.text
    assert parts(answer.json()) == READY
    assert answer.json()["feed_age_s"] == 0.0


async def test_halted_is_not_ready(http: httpx.AsyncClient, engine: Engine) -> None:
    engine.halt("test halt", "rita")
    answer = await http.get("/v1/health/ready")
    assert answer.status_code == 503
    assert parts(answer.json()) == {**READY, "ready": False, "trading_state": "HALTED"}


async def test_a_stale_feed_is_not_ready(http: httpx.AsyncClient, clock: Clock) -> None:
    clock.advance(REFERENCE_MAX_AGE_S)
    still = await http.get("/v1/health/ready")
    assert still.status_code == 200 and still.json()["feed_age_s"] == REFERENCE_MAX_AGE_S
    clock.advance(1)
    answer = await http.get("/v1/health/ready")
    assert answer.status_code == 503
    body = answer.json()
    assert parts(body) == {**READY, "ready": False, "feed_fresh": False}
    assert body["feed_age_s"] == REFERENCE_MAX_AGE_S + 1


async def test_a_failing_database_is_not_ready(http: httpx.AsyncClient, database: Database) -> None:
    database.ok = False
    answer = await http.get("/v1/health/ready")
    assert answer.status_code == 503
    assert parts(answer.json()) == {**READY, "ready": False, "database_ok": False}
    database.ok = True
    assert (await http.get("/v1/health/ready")).status_code == 200


async def test_a_disconnected_broker_is_not_ready(http: httpx.AsyncClient, engine: Engine) -> None:
    engine.bus.publish(BrokerStatus(engine.broker.capabilities.name, False, "link lost", NOW))
    answer = await http.get("/v1/health/ready")
    assert answer.status_code == 503
    assert parts(answer.json()) == {**READY, "ready": False, "broker_connected": False}


async def test_ready_needs_no_token_and_reveals_no_position(http: httpx.AsyncClient) -> None:
    schema = (await http.get("/openapi.json")).json()
    for path in ("/v1/health/live", "/v1/health/ready"):
        assert "security" not in schema["paths"][path]["get"]
    ready = schema["paths"]["/v1/health/ready"]["get"]["responses"]
    assert set(ready) >= {"200", "503"}
    assert set((await http.get("/v1/health/ready")).json()) == {
        "ready", "broker_connected", "feed_age_s", "feed_fresh", "database_ok", "trading_state", "engine",
    }
