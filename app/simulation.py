"""`main.py simulate`: the headless engine on the paper broker under a generated order flow.

The flow mixes buys and sells around the last price (some marketable, some resting), cancels a
share of working orders, sends a share of malformed orders that validation must refuse and a share
of well-formed orders the risk gate must refuse (too large, off the collar, repeated at once).
``kill_at`` engages the kill switch mid-run.

The run keeps a session clock: trading hours come from the desk's trading calendar (the shipped
file with the data folder's override), so when the market is closed the engine's clock (and the
paper market's) starts at the next session's open and runs in real time from there. The audit
chain keeps real time. The paper derivatives roll to the contracts trading on that session's day.

Past the instruments file the paper universe is synthetic (``synthetic_universe``); those
instruments exist only in this market, so the run trades them under the shipped limits with
their ``[defaults]`` for each synthetic underlying (``synthetic_limits``), and its report says so.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import math
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from app.brokers.base import Broker
from app.brokers.breeze import BreezeBroker
from app.brokers.paper import PaperConfig
from app.desk import (
    MAX_INSTRUMENTS,
    BrokerFactory,
    Desk,
    DeskError,
    DeskOptions,
    DeskService,
)
from app.domain.audit import AuditSource
from app.domain.orders import OrderStatus
from app.engine.config import EngineConfig
from app.engine.engine import Engine
from app.engine.risk.calendar_data import CalendarLoad
from app.order_flow import ACTOR, FlowOptions, OrderFlow

log = logging.getLogger(__name__)


class SimulationError(DeskError):
    """The simulation cannot run with these options."""


@dataclass(frozen=True, slots=True)
class SimulationOptions:
    """What to simulate. ``bad_share`` and ``cancel_share`` are fractions of flow actions."""

    seconds: float
    seed: int = 1
    orders_per_sec: float = 1.5
    instruments: int = 10
    bad_share: float = 0.08
    gate_share: float = 0.08
    cancel_share: float = 0.15
    kill_at: float | None = None
    limits_path: Path | None = None
    control_home: Path | None = None
    paper: PaperConfig = field(default_factory=PaperConfig)
    engine: EngineConfig = field(default_factory=EngineConfig)
    database_url: str | None = None
    secrets: tuple[str, ...] = ()
    backups_dir: Path | None = None
    backup_time: dt.time = dt.time(16, 0)
    settings_summary: dict[str, Any] = field(default_factory=dict)
    broker_factory: BrokerFactory | None = None
    # The calendar in force (default: the shipped file alone).
    calendar: CalendarLoad | None = None
    # Run beside the engine (``simulate --api``: the local API).
    services: tuple[DeskService, ...] = ()
    # How many desks may share the broker account (firm.desks_per_account).
    desks_per_account: int = 1

    def __post_init__(self) -> None:
        if not math.isfinite(self.seconds) or self.seconds <= 0:
            raise SimulationError(f"--seconds must be a positive number, got {self.seconds}")
        if not math.isfinite(self.orders_per_sec) or not 0 < self.orders_per_sec <= 1_000:
            raise SimulationError(f"--orders-per-sec must be in (0, 1000], got {self.orders_per_sec}")
        if self.instruments < 1:
            raise SimulationError(f"--instruments must be at least 1, got {self.instruments}")
        if self.instruments > MAX_INSTRUMENTS:
            raise SimulationError(f"--instruments must be at most {MAX_INSTRUMENTS}, got {self.instruments}")
        if self.kill_at is not None and (not math.isfinite(self.kill_at) or not 0 <= self.kill_at <= self.seconds):
            raise SimulationError(f"--kill-at must be between 0 and --seconds ({self.seconds}), got {self.kill_at}")

    def flow_options(self) -> FlowOptions:
        return FlowOptions(
            seed=self.seed, orders_per_sec=self.orders_per_sec, bad_share=self.bad_share, gate_share=self.gate_share,
            cancel_share=self.cancel_share,
        )

    def desk_options(self) -> DeskOptions:
        """The desk this run drives: its clock must stay in session for the whole run."""
        return DeskOptions(
            command="simulate", database_url=self.database_url, home=self.control_home, limits_path=self.limits_path,
            instruments=self.instruments, seed=self.seed, paper=self.paper, engine=self.engine, secrets=self.secrets,
            backups_dir=self.backups_dir, backup_time=self.backup_time, settings_summary=self.settings_summary,
            broker_factory=self.broker_factory, calendar=self.calendar, session_horizon_s=self.seconds,
            start_details={"seconds": self.seconds}, services=self.services, desks_per_account=self.desks_per_account,
        )


async def _await_prices(engine: Engine, keys: list[str], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if all(engine.market_data.last_price(k) is not None for k in keys):
            return
        await asyncio.sleep(0.01)


def report(engine: Engine, flow: OrderFlow, started: float) -> dict[str, Any]:
    orders = engine.oms.orders()
    statuses = Counter(o.status for o in orders)
    positions = {
        v.instrument_key: {
            "quantity": v.quantity,
            "average_price_paise": round(v.average_price, 2) if v.average_price is not None else None,
            "mark_paise": v.mark,
            "realized_paise": v.realized,
            "unrealized_paise": v.unrealized,
        }
        for v in engine.portfolio.views()
        if v.quantity != 0 or v.realized != 0
    }
    return {
        "seconds": round(time.monotonic() - started, 3),
        "ticks": engine.market_data.ticks,
        "orders": {
            "submitted": engine.submitted,
            "accepted": engine.accepted,
            "rejected": sum(engine.rejections.values()),
            "filled": statuses[OrderStatus.FILLED],
            "cancelled": statuses[OrderStatus.CANCELLED],
            "working": sum(1 for o in orders if o.status.is_working),
        },
        "cancels_sent": flow.cancels_sent,
        "bad_orders_sent": flow.bad_sent,
        "rejections": dict(sorted((r.value, n) for r, n in engine.rejections.items())),
        "fills": engine.portfolio.fills,
        "positions": positions,
        "exposure": {"gross": engine.portfolio.exposure.gross, "net": engine.portfolio.exposure.net},
        "pnl": {"realized": engine.portfolio.realized, "unrealized": engine.portfolio.unrealized},
        "loop_lag_ms": {
            "p50": round(engine.loop_lag.percentile(50), 3),
            "p99": round(engine.loop_lag.percentile(99), 3),
            "max": round(engine.loop_lag.percentile(100), 3),
        },
        "trading_state": str(engine.trading_state),
        "kill_switch": _kill_switch_report(engine, started),
        "governor": {
            "released": {str(kind): n for kind, n in engine.governor.stats.released.items()},
            "throttled": engine.governor.stats.throttled,
            "dropped": engine.governor.stats.dropped,
            "max_wait_ms": round(engine.governor.stats.max_wait * 1000, 1),
        },
        "oms": {
            "duplicate_updates": engine.oms.counters.duplicate,
            "stale_updates": engine.oms.counters.stale,
            "unknown_updates": engine.oms.counters.unknown_order,
            "malformed_updates": engine.oms.counters.malformed,
        },
        "bus": {"published": engine.bus.published, "handler_errors": engine.bus.handler_errors},
    }


def _kill_switch_report(engine: Engine, started: float) -> dict[str, Any] | None:
    run = engine.kill_switch.last
    if run is None:
        return None
    summary = run.summary()
    return {
        "engaged_at": round((run.engaged_at_ns - engine.started_ns) / 1e9, 3) if engine.started_ns is not None else None,
        "halted_in_us": summary["halted_in_us"],
        "cancels": summary["cancels"],
        "cleared_in_ms": summary["cleared_in_ms"],
        "working_after": summary["working_after"],
        "working_at_engage": summary["working_at_engage"],
        "expected_clear_s": summary["expected_clear_s"],
        "outcomes": summary["outcomes"],
        "reason": run.reason,
    }


async def run_simulation(options: SimulationOptions) -> dict[str, Any]:
    """Run the desk on the paper broker for ``options.seconds`` under the generated flow and return the JSON report.

    With ``database_url`` every decision goes to the audit chain there (``StoreError`` if the
    store cannot be opened: the desk does not trade without it), and the report says how many
    records the chain holds and whether it verifies.
    """
    desk = Desk(options.desk_options())
    kill_task: asyncio.Task[None] | None = None
    async with desk:
        engine = desk.running_engine
        entries = desk.entries
        flow = OrderFlow(engine, entries, options.flow_options())
        started = time.monotonic()
        try:
            await _await_prices(engine, [e.instrument.key for e in entries], timeout=5.0)
            if options.kill_at is not None:
                kill_task = asyncio.get_running_loop().create_task(_kill_at(engine, options.kill_at, started))
            await flow.run(options.seconds)
            if kill_task is not None:
                await kill_task
            await engine.kill_switch.wait()
            # Let the last acks and fills arrive before the picture is taken.
            await asyncio.sleep(max(0.05, 2 * options.paper.latency_ms / 1000))
            try:
                await engine.reconcile()
            except Exception as exc:  # noqa: BLE001 - a failed final check is reported, not fatal
                log.error("final reconcile failed: %s", exc)
            result = report(engine, flow, started)
            calendar = desk.calendar
            result["calendar"] = {
                "label": calendar.label,
                "version": desk.calendar_version.version if desk.calendar_version is not None else None,
                "override": str(desk.calendar_load.override) if desk.calendar_load.override is not None else None,
                "last_covered_day": calendar.last_covered_day.isoformat(),
                "notice": calendar.cover_notice(desk.clock_ns()),
            }
            result["broker"] = _broker_report(engine.broker)
            result["universe"] = {
                "instruments": len(entries),
                "synthetic_underlyings": len(desk.synthetic),
                "priced": sum(1 for e in entries if engine.market_data.last_price(e.instrument.key) is not None),
                "without_limits": sum(1 for e in entries if engine.gate.limits.for_instrument(e.instrument) is None),
                "limits": desk.limits_source,
            }
        finally:
            if kill_task is not None and not kill_task.done():
                kill_task.cancel()
        await desk.stop()
        checked = await desk.verify()
        if checked is not None:
            result["audit"] = {"records": checked.records, "verified": checked.ok, "last_hash": checked.last_hash}
            result["trading_state"] = str(engine.trading_state)
    log.info("simulation done: %s", {k: result[k] for k in ("ticks", "orders", "trading_state")})
    return result


def _broker_report(broker: Broker) -> dict[str, Any]:
    summary: dict[str, Any] = {"name": broker.capabilities.name}
    if isinstance(broker, BreezeBroker):
        stats = broker.stats
        summary.update(
            requests=dict(sorted(stats.requests.items())), total_requests=stats.total_requests,
            reconnects=stats.reconnects, malformed_messages=stats.malformed_messages,
            refused_prices=stats.refused_prices, handler_errors=dict(sorted(stats.handler_errors.items())),
            unreadable_orders=stats.unreadable_orders,
        )
    return summary


async def _kill_at(engine: Engine, seconds: float, started: float) -> None:
    await asyncio.sleep(max(0.0, started + seconds - time.monotonic()))
    engine.engage_kill_switch(f"simulate --kill-at {seconds:g}", ACTOR, AuditSource.SIMULATION)
