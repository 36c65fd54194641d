"""A desk on the real breeze-connect SDK against the local Breeze emulator: engine, audit store, adapter."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from sqlalchemy import Engine as SqlEngine
from sqlalchemy import select

from app.brokers.breeze import (
    BreezeBroker,
    BreezeConfig,
    BreezeCredentials,
    Endpoints,
    MasterCache,
)
from app.desk import session_clock
from app.domain.audit import AuditEventType
from app.domain.events import Alert
from app.engine.config import EngineConfig
from app.engine.engine import Engine
from app.store.audit_writer import AuditWriter
from app.store.migrate import open_store
from app.store.models import AuditRecord
from app.store.verify import verify_chain
from tests.breeze_emulator import BreezeEmulator, default_contracts
from tests.support.calendar import calendar_covering_now
from tests.support.limits import wide_limits

# The NIFTY future the emulator lists today: contracts roll, so the key is not a constant.
NIFTY_FUT = next(c.key for c in default_contracts() if c.key.startswith("NFO:NIFTY:") and c.key.endswith(":FUT"))
KEYS = ["NSE:RELIANCE", "NSE:TCS", NIFTY_FUT]


def endpoints(emulator: BreezeEmulator) -> Endpoints:
    return Endpoints(
        emulator.api_url, emulator.api_v2_url, emulator.stream_url, emulator.feeds_url, emulator.ohlc_url
    )


def make_broker(
    emulator: BreezeEmulator,
    cache: Path,
    keys: list[str] = KEYS,
    *,
    token: str | None = "48213577",
    secret: str | None = None,
    clock_ns: Callable[[], int] = time.time_ns,
    book_exchanges: list[str] | None = None,
    **config: Any,
) -> BreezeBroker:
    loaded = MasterCache(cache, emulator.master_url).load()
    settings = BreezeConfig(cache_dir=cache, endpoints=endpoints(emulator), **config)
    return BreezeBroker(
        settings,
        BreezeCredentials(emulator.api_key, secret or emulator.api_secret),
        loaded.master,
        loaded.master.resolve(keys),
        session_token=token,
        clock_ns=clock_ns,
        book_exchanges=book_exchanges,
    )


@dataclass
class Desk:
    """A running engine on the Breeze adapter, with its audit store and the alerts it raised."""

    engine: Engine
    broker: BreezeBroker
    store: SqlEngine
    alerts: list[Alert]

    def audit_events(self) -> list[str]:
        with self.store.connect() as connection:
            return list(
                connection.execute(select(AuditRecord.event_type).order_by(AuditRecord.seq)).scalars()
            )

    def count(self, event: AuditEventType) -> int:
        return self.audit_events().count(str(event))

    async def audited(self, event: AuditEventType, times: int = 1) -> None:
        """Wait until the audit store holds ``times`` records of ``event`` (records are written behind)."""
        await wait_for(lambda: self.count(event) >= times, what=f"{times} {event} audit records")
        assert self.count(event) == times


async def wait_for(condition: Callable[[], bool], timeout: float = 10.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.02)


@asynccontextmanager
async def running_desk(
    emulator: BreezeEmulator,
    tmp_path: Path,
    keys: list[str] = KEYS,
    *,
    breakers: Mapping[str, object] | None = None,
    engine_config: EngineConfig | None = None,
    **broker_config: Any,
) -> AsyncIterator[Desk]:
    """Start a desk on the emulator; on exit stop it and check that the audit chain verifies."""
    calendar = calendar_covering_now()
    clock = session_clock(calendar, time.time_ns(), 600)
    broker = make_broker(emulator, tmp_path / "cache", keys, clock_ns=clock, **broker_config)
    store = open_store(f"sqlite:///{tmp_path / 'desk.db'}")
    writer = AuditWriter(store)
    writer.start()
    instruments = [contract.instrument for contract in broker.contracts]
    limits = wide_limits(instruments, breakers=breakers or {})
    config = engine_config or EngineConfig()
    engine = Engine(
        broker, instruments, replace(config), audit=writer, clock_ns=clock, limits=limits, calendar=calendar
    )
    alerts: list[Alert] = []
    engine.bus.subscribe(Alert, alerts.append, name="test.alerts")
    desk = Desk(engine, broker, store, alerts)
    try:
        await engine.start()
        await wait_for(
            lambda: all(engine.market_data.last_price(k) is not None for k in keys), what="first prices"
        )
        yield desk
    finally:
        await engine.stop()
        await asyncio.to_thread(writer.close)
        checked = verify_chain(store)
        store.dispose()
        assert checked.ok, f"audit chain does not verify: {checked}"
