"""The local API served for real on loopback, over a real engine, store and API client directory.

Fixtures (all function-scoped; async ones run on the test's loop):

- ``mono``: ``MonoClock``, the monotonic seconds the API's rate limiter, idempotency store and refusal
  coalescing read; frozen, moved only by ``mono.advance(seconds)``.
- ``engine_rates``: the gate's ``[desk.max_orders_per_second]`` overrides (default none: 10,000 a second
  for every source). Override per test with ``@pytest.mark.parametrize("engine_rates", [{"api": 2}])``.
- ``writer``: a running ``AuditWriter`` on a SQLite file in ``tmp_path`` (closed at the end).
- ``engine``: a started ``Engine`` on the ``PaperBroker`` at a frozen instant (``tests.engine.ticket_desk``:
  ``NOW``, instruments ``REL`` = "NSE:RELIANCE" priced ₹1,500, ``REL_FUT``, "NSE:TCS"; no random walk,
  trading hours not enforced), audited to ``writer``. Stopped at the end.
- ``directory``: an ``ApiClientDirectory`` on the writer's store holding the clients of ``CLIENTS``:
  "bot" (read+trade), "viewer" (read), "stopper" (kill), "off" (read+trade, disabled).
- ``tokens``: ``{name: token}`` for those clients (the disabled one's too).
- ``api_settings``: ``ApiSettings(port=0, burst=10_000, per_minute=1_000_000)``: rate limits out of the way;
  override the fixture in a module to test them.
- ``server``: a started ``ApiServer`` bound to 127.0.0.1 on a free port (``server.port``, ``server.url``,
  ``server.context``); stopped at the end.
- ``base_url``: ``server.url``.
- ``http``: an ``httpx.AsyncClient`` on ``base_url`` with no token; ``bearer(token)`` makes the header.
- ``bot``, ``viewer``, ``stopper``: ``httpx.AsyncClient``s on ``base_url`` carrying that client's token.

Helpers: ``bearer(token)``; ``await until(condition)`` (lets the loop run until ``condition()`` holds, failing
after ``timeout`` seconds of wall time, not a count of turns: a condition may wait on the audit writer's thread);
``await committed(writer, "api.refused")`` (the audit records of one type once
the writer's queue is empty, payload decoded with ``actor`` and ``source``); ``order_body(**overrides)`` (a
LIMIT BUY of 1 RELIANCE at ₹1,500 as JSON).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.api.server import ApiServer
from app.domain.actors import ApiScope
from app.engine.engine import Engine
from app.security.api_clients import ApiClientDirectory
from app.settings import ApiSettings
from app.store.audit_writer import AuditWriter
from tests.engine.ticket_desk import (
    ADMIN,
    REL,
    audit_store,
    audited,
    make_engine,
    started,
)

CLIENTS: Mapping[str, frozenset[ApiScope]] = {
    "bot": frozenset({ApiScope.READ, ApiScope.TRADE}),
    "viewer": frozenset({ApiScope.READ}),
    "stopper": frozenset({ApiScope.KILL}),
    "off": frozenset({ApiScope.READ, ApiScope.TRADE}),
}
DIRECTORY_NS = 1_800_000_000 * 1_000_000_000  # the directory's creation stamps: a fixed instant


@dataclass
class MonoClock:
    """Monotonic seconds that move only when told to."""

    now: float = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def order_body(**overrides: Any) -> dict[str, Any]:
    return {"instrument": REL, "side": "BUY", "quantity": 1, "price": "1500", **overrides}


async def until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    """Let the loop run until ``condition()`` holds; an AssertionError after ``timeout`` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        assert loop.time() < deadline, f"not so after {timeout} s"
        await asyncio.sleep(0.001)


async def committed(writer: AuditWriter, event_type: str, timeout: float = 5.0) -> list[dict[str, Any]]:
    """The committed audit records of ``event_type`` once everything queued so far is written."""
    deadline = asyncio.get_running_loop().time() + timeout
    while writer.pending and asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(0.005)
    return await asyncio.to_thread(audited, writer, event_type)


@pytest.fixture
def mono() -> MonoClock:
    return MonoClock()


@pytest.fixture
def engine_rates() -> Mapping[str, object] | None:
    return None


@pytest.fixture
def writer(tmp_path: Path) -> Iterator[AuditWriter]:
    writer = audit_store(tmp_path)
    yield writer
    writer.close()


@pytest.fixture
async def engine(writer: AuditWriter, engine_rates: Mapping[str, object] | None) -> AsyncIterator[Engine]:
    built, _ = make_engine(audit=writer, rates=engine_rates)
    await started(built)
    yield built
    await built.stop()


@pytest.fixture
async def _clients(writer: AuditWriter, engine: Engine) -> tuple[ApiClientDirectory, dict[str, str]]:
    directory = ApiClientDirectory(writer.engine, engine.record, clock_ns=lambda: DIRECTORY_NS)
    tokens = {name: directory.add(name, scopes, by=ADMIN)[1] for name, scopes in CLIENTS.items()}
    directory.disable("off", by=ADMIN)
    return directory, tokens


@pytest.fixture
def directory(_clients: tuple[ApiClientDirectory, dict[str, str]]) -> ApiClientDirectory:
    return _clients[0]


@pytest.fixture
def tokens(_clients: tuple[ApiClientDirectory, dict[str, str]]) -> dict[str, str]:
    return _clients[1]


@pytest.fixture
def api_settings() -> ApiSettings:
    return ApiSettings(port=0, burst=10_000, per_minute=1_000_000)


@pytest.fixture
async def server(
    api_settings: ApiSettings, engine: Engine, directory: ApiClientDirectory, mono: MonoClock,
) -> AsyncIterator[ApiServer]:
    served = ApiServer(api_settings, engine=engine, clients=directory, clock=mono)
    await served.start()
    yield served
    await served.stop()


@pytest.fixture
def base_url(server: ApiServer) -> str:
    return server.url


@pytest.fixture
async def http(base_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=base_url, timeout=10) as client:
        yield client


@pytest.fixture
async def bot(base_url: str, tokens: dict[str, str]) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=base_url, headers=bearer(tokens["bot"]), timeout=10) as client:
        yield client


@pytest.fixture
async def viewer(base_url: str, tokens: dict[str, str]) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=base_url, headers=bearer(tokens["viewer"]), timeout=10) as client:
        yield client


@pytest.fixture
async def stopper(base_url: str, tokens: dict[str, str]) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=base_url, headers=bearer(tokens["stopper"]), timeout=10) as client:
        yield client
