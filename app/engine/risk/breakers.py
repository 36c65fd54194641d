"""Automatic breakers: conditions that engage the kill switch without waiting for a person.

A watchdog task samples the desk a few times a second: today's loss against the daily and the
trailing loss limits, how long the broker has been disconnected, how old the last price is for
every instrument the desk holds or has a working order in (a feed that says "connected" but is
silent is stale all the same), and how many broker errors arrived lately. Task crashes engage the
switch from the supervisor directly. Each limit also raises a warning alert as it passes 80 % and
90 % (the fractions are part of the limits); a warning is raised once per level and day.
"""

from __future__ import annotations

import asyncio
import enum
import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from app.domain.audit import AuditEventType, AuditSource
from app.domain.events import AlertLevel
from app.domain.india_time import ist_day_number
from app.domain.money import format_inr
from app.domain.trading_state import TradingState

if TYPE_CHECKING:
    from ..engine import Engine

log = logging.getLogger(__name__)

_NS = 1_000_000_000


class Breaker(enum.StrEnum):
    """Stable names of the automatic breakers, used in the audit trail."""

    DAILY_LOSS = "daily_loss"
    TRAILING_LOSS = "trailing_loss"
    BROKER_DISCONNECTED = "broker_disconnected"
    STALE_MARKET_DATA = "stale_market_data"
    ERROR_STORM = "error_storm"
    TASK_CRASHED = "task_crashed"


@dataclass(frozen=True, slots=True)
class BreakerTripped:
    """A breaker engaged the kill switch."""

    breaker: Breaker
    detail: str
    value: str
    limit: str
    ts_ns: int


class ErrorWindow:
    """Timestamps of recent broker errors, for the storm breaker."""

    def __init__(self) -> None:
        self._times: deque[int] = deque(maxlen=10_000)

    def add(self, ts_ns: int) -> None:
        self._times.append(ts_ns)

    def count_since(self, since_ns: int) -> int:
        times = self._times
        while times and times[0] < since_ns:
            times.popleft()
        return len(times)


class Breakers:
    """The watchdog: ``check`` runs every ``interval`` seconds inside the supervised ``run`` task."""

    def __init__(self, engine: Engine, *, interval: float = 0.1) -> None:
        self._engine = engine
        self.interval = interval
        self.errors = ErrorWindow()
        self.tripped: list[BreakerTripped] = []
        self._warned: dict[str, float] = {}
        self._warn_day = -1

    async def run(self) -> None:
        while True:
            self.check()
            await asyncio.sleep(self.interval)

    def check(self) -> None:
        """One sample: trip whichever breaker's condition holds, then raise the due warnings."""
        engine = self._engine
        now = engine.clock_ns()
        limits = engine.gate.limits
        pnl = engine.day_pnl.current(now)
        if engine.trading_state is not TradingState.HALTED:
            trip = self._first_condition(now, pnl)
            if trip is not None:
                self.trip(*trip)
        self._warnings(now, pnl, limits.breakers.warn_fractions)

    def _first_condition(self, now: int, pnl: int) -> tuple[Breaker, str, str, str] | None:
        engine = self._engine
        limits = engine.gate.limits
        desk, breakers = limits.desk, limits.breakers
        if pnl <= -desk.daily_loss_limit:
            return Breaker.DAILY_LOSS, "today's loss reached the daily loss limit", format_inr(pnl), format_inr(-desk.daily_loss_limit)
        trailing = desk.trailing_loss_limit
        if trailing is not None and engine.day_pnl.peak - pnl >= trailing:
            drop = pnl - engine.day_pnl.peak
            return Breaker.TRAILING_LOSS, "today's P&L fell from its peak by the trailing loss limit", format_inr(drop), format_inr(-trailing)
        down_since = engine.broker_down_since_ns
        if down_since is not None and now - down_since > breakers.broker_disconnect_seconds * _NS:
            seconds = (now - down_since) / _NS
            return Breaker.BROKER_DISCONNECTED, f"broker disconnected for {seconds:.1f} s", f"{seconds:.1f} s", f"{breakers.broker_disconnect_seconds:g} s"
        stale = self._stale(now, breakers.stale_data_seconds)
        if stale is not None:
            return stale
        window = breakers.error_storm_seconds
        errors = self.errors.count_since(now - int(window * _NS))
        if errors >= breakers.error_storm_count:
            return Breaker.ERROR_STORM, f"{errors} broker errors in {window:g} s", str(errors), str(breakers.error_storm_count)
        return None

    def _stale(self, now: int, limit_s: float) -> tuple[Breaker, str, str, str] | None:
        engine = self._engine
        limit_ns = int(limit_s * _NS)
        hours = engine.gate.limits.desk.enforce_trading_hours
        for key in engine.exposed_instruments():
            instrument = engine.instruments.get(key)
            if instrument is None or (hours and not engine.gate.calendar.is_open(instrument.exchange, now)):
                # No session, no ticks: silence after the close is not a fault.
                continue
            last = engine.market_data.last(key)
            if last is None:
                # Resumed with a position but no price yet: give the feed the same grace from start.
                age = now - engine.started_ns if engine.started_ns is not None else 0
            else:
                age = now - last.ts_ns
            if age > limit_ns:
                seconds = age / _NS
                return Breaker.STALE_MARKET_DATA, f"no price for {key} in {seconds:.1f} s", f"{seconds:.1f} s", f"{limit_s:g} s"
        return None

    def trip(self, breaker: Breaker, detail: str, value: str, limit: str) -> None:
        engine = self._engine
        event = BreakerTripped(breaker, detail, value, limit, engine.clock_ns())
        self.tripped.append(event)
        log.critical("breaker %s tripped: %s (%s against %s)", breaker, detail, value, limit)
        engine.kill_switch.engage(f"breaker {breaker}: {detail}", "system", AuditSource.BREAKER)
        engine.record(
            AuditEventType.BREAKER_TRIPPED, {"breaker": breaker, "detail": detail, "value": value, "limit": limit},
            "system", AuditSource.BREAKER,
        )
        engine.bus.publish(event)

    def _warnings(self, now: int, pnl: int, fractions: tuple[float, ...]) -> None:
        day = ist_day_number(now)
        if day != self._warn_day:
            self._warn_day = day
            self._warned.clear()
        engine = self._engine
        limits = engine.gate.limits.desk
        usage: dict[str, tuple[int, int, Callable[[int], str]]] = {
            "daily loss": (max(0, -pnl), limits.daily_loss_limit, format_inr),
            "gross exposure": (engine.portfolio.exposure.gross, limits.max_gross_exposure, format_inr),
            "net exposure": (abs(engine.portfolio.exposure.net), limits.max_net_exposure, format_inr),
            "orders today": (engine.risk_book.orders_on(now), limits.max_orders_per_day, str),
            "open orders": (engine.risk_book.open_orders, limits.max_open_orders, str),
        }
        for name, (value, limit, show) in usage.items():
            if limit <= 0:
                continue
            used = value / limit
            level = max((f for f in fractions if used >= f), default=0.0)
            if level > self._warned.get(name, 0.0):
                self._warned[name] = level
                engine.alert(
                    AlertLevel.WARNING, "limits",
                    f"{name} at {used:.0%} of its limit ({show(value)} of {show(limit)})",
                )
