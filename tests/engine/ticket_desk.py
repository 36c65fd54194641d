"""A real engine over the paper broker for the order ticket's tests: frozen clock, no random walk.

The market never moves on its own (no tick timer, no ``step``): reference prices are ticks the test
publishes at the frozen instant, so every number a test asserts can be worked out by hand.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from app.brokers.paper import PaperBroker, PaperConfig, UniverseEntry, load_universe
from app.domain.actors import Actor, Role
from app.domain.instruments import Instrument
from app.domain.market import Tick
from app.domain.orders import OrderSource, OrderType, Side
from app.domain.requests import OrderRequest
from app.engine.config import EngineConfig
from app.engine.engine import Engine
from app.store.audit_writer import AuditWriter
from app.store.export import rows
from app.store.migrate import open_store
from tests.support.limits import wide_limits

# A fixed session day: the universe's monthly contracts roll with the day, and these tests name the
# December 2026 future (CI also runs them with the clock in 2027 and 2030).
UNIVERSE = load_universe(session_day=dt.date(2026, 12, 1))
ENTRIES: list[UniverseEntry] = [
    e for e in UNIVERSE if e.instrument.key in ("NSE:RELIANCE", "NSE:TCS", "NFO:RELIANCE:2026-12-29:FUT")
]
INSTRUMENTS: dict[str, Instrument] = {e.instrument.key: e.instrument for e in ENTRIES}
REL = "NSE:RELIANCE"
REL_FUT = "NFO:RELIANCE:2026-12-29:FUT"
# 2026-09-21 around 09:43 IST: a fixed instant, before the future's expiry; trading hours are not enforced.
NOW = 1_790_000_000_000_000_000
REL_PRICE = 150_000  # paise: ₹1,500

ALICE = Actor.with_role("alice", Role.TRADER)
BOB = Actor.with_role("bob", Role.TRADER)
RISK = Actor.with_role("rita", Role.RISK_OFFICER)
VIEWER = Actor.with_role("vic", Role.VIEWER)
ADMIN = Actor.with_role("ada", Role.ADMIN)

# Caps chosen so the tests' numbers are easy to follow (rupees; the engine holds paise).
DESK = {"max_gross_exposure_inr": 1_000_000, "max_net_exposure_inr": 600_000}
RELIANCE_CAPS = {
    "max_order_lots": 100,
    "max_order_value_inr": 200_000,
    "max_position_lots": 300,
    "max_position_value_inr": 500_000,
    "price_collar_pct": 5,
}
UNDERLYINGS = {"RELIANCE": {"max_gross_exposure_inr": 800_000, "max_net_exposure_inr": 700_000}}


def limits(desk: Mapping[str, object] | None = None, rates: Mapping[str, object] | None = None) -> object:
    return wide_limits(
        INSTRUMENTS.values(), desk={**DESK, **(desk or {})}, rates=rates, per_instrument={REL: RELIANCE_CAPS},
        underlyings=UNDERLYINGS,
    )


def make_engine(
    *,
    desk: Mapping[str, object] | None = None,
    rates: Mapping[str, object] | None = None,
    audit: AuditWriter | None = None,
    broker: PaperBroker | None = None,
) -> tuple[Engine, PaperBroker]:
    broker = broker or paper_broker()
    engine = Engine(
        broker, INSTRUMENTS.values(), EngineConfig(market_protection_bps=100),
        audit=audit, clock_ns=lambda: NOW, limits=limits(desk, rates),  # type: ignore[arg-type]
    )
    return engine, broker


def paper_broker(cls: type[PaperBroker] = PaperBroker) -> PaperBroker:
    # The broker's limiter counts on the loop's clock, as the governor does.
    config = PaperConfig(seed=7, tick_interval_ms=None, clock=asyncio.get_running_loop().time, wall_clock_ns=lambda: NOW)
    return cls(config, universe=ENTRIES)


async def started(engine: Engine) -> Engine:
    """Start the engine and give RELIANCE (and its future) a reference price at the frozen instant."""
    await engine.start()
    price(engine, REL, REL_PRICE)
    price(engine, REL_FUT, 151_000)
    return engine


def price(engine: Engine, key: str, paise: int) -> None:
    engine.bus.publish(Tick(key, paise, NOW))


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


def ticket(
    side: object = Side.BUY, quantity: object = 1, rupees: object = "1500", *, key: str = REL, actor: str = "alice",
    order_type: object = OrderType.LIMIT, **kw: object,
) -> OrderRequest:
    """A ticket order in ``actor``'s name (price in rupees, as typed)."""
    return OrderRequest(key, side, quantity, rupees, order_type=order_type, source=OrderSource.TICKET, actor=actor, **kw)  # type: ignore[arg-type]


def audit_store(path: Path) -> AuditWriter:
    """A real audit chain in a SQLite file under ``path`` (the writer runs; close it at the end)."""
    writer = AuditWriter(open_store(f"sqlite:///{path}/bulwark.db"))
    writer.start()
    return writer


def audited(writer: AuditWriter, event_type: str) -> list[dict[str, Any]]:
    """The committed records of one type, payload decoded, with actor and source."""
    return [
        {"actor": r["actor"], "source": r["source"], **json.loads(str(r["payload"]))}
        for r in rows(writer.engine) if r["event_type"] == event_type
    ]
