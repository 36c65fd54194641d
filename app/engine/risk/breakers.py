"""Automatic breakers: conditions that engage the kill switch without waiting for a person.

A watchdog task samples the desk a few times a second: today's loss against the daily and the
trailing loss limits, how long the broker has been disconnected, how old the last price is for
every instrument the desk holds or has a working order in (a feed that says "connected" but is
silent is stale all the same), and how many broker errors arrived lately. Task crashes engage the
switch from the supervisor directly. Each limit also raises a warning alert as it passes 80 % and
90 % (the fractions are part of the limits); a warning is raised once per level and day.

The conditions are pure: ``first_trip`` and ``WarningLadder`` look at one ``BreakerReadings``
snapshot the desk takes (``BreakerOps.breaker_readings``). ``Breakers`` is the thin timed part: it
samples, checks, and hands a trip to the desk's ``breaker_tripped``, which engages the kill switch.
"""

from __future__ import annotations

import asyncio
import enum
import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from app.domain.events import AlertLevel
from app.domain.india_time import ist_day_number
from app.domain.money import format_inr

from .limits import BreakerLimits, DeskLimits

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


@dataclass(frozen=True, slots=True)
class PriceReading:
    """How fresh one exposed instrument's price is."""

    instrument_key: str
    # In its exchange's session now (always, when the desk does not enforce trading hours):
    # after the close a silent feed is not a fault.
    in_session: bool
    last_price_ns: int | None


@dataclass(frozen=True, slots=True)
class BreakerReadings:
    """Everything the breakers look at, sampled at one instant (money in paise)."""

    now_ns: int
    desk: DeskLimits
    limits: BreakerLimits
    halted: bool
    pnl: int
    peak_pnl: int
    broker_down_since_ns: int | None
    started_ns: int | None
    # Every instrument the desk holds or has a working order in (and knows), in no set order.
    prices: tuple[PriceReading, ...]
    # Broker errors within the storm window (``limits.error_storm_seconds``) up to ``now_ns``.
    recent_errors: int
    gross_exposure: int
    net_exposure: int  # its size: the signed net exposure's absolute value
    orders_today: int
    open_orders: int


@dataclass(frozen=True, slots=True)
class Trip:
    """A breaker's condition holds: which, why, and the value against its limit (as shown)."""

    breaker: Breaker
    detail: str
    value: str
    limit: str


class BreakerOps(Protocol):
    """What the breakers need of the desk."""

    def clock_ns(self) -> int:
        """The desk's clock, epoch nanoseconds."""
        ...

    def breaker_readings(self) -> BreakerReadings:
        """Sample the desk now (this also rolls today's P&L and its peak at IST midnight)."""
        ...

    def breaker_tripped(self, event: BreakerTripped) -> None:
        """A breaker tripped: engage the kill switch (synchronously, so the desk is HALTED on return),
        audit the trip and publish ``event``."""
        ...

    def alert(self, level: AlertLevel, component: str, message: str) -> None:
        """Raise an alert for the operator."""
        ...


def first_trip(readings: BreakerReadings) -> Trip | None:
    """The first breaker whose condition holds in ``readings``, in a fixed order: daily loss,
    trailing loss, broker disconnected, stale market data, error storm."""
    now, pnl, desk, limits = readings.now_ns, readings.pnl, readings.desk, readings.limits
    if pnl <= -desk.daily_loss_limit:
        return Trip(Breaker.DAILY_LOSS, "today's loss reached the daily loss limit", format_inr(pnl), format_inr(-desk.daily_loss_limit))
    trailing = desk.trailing_loss_limit
    if trailing is not None and readings.peak_pnl - pnl >= trailing:
        drop = pnl - readings.peak_pnl
        return Trip(Breaker.TRAILING_LOSS, "today's P&L fell from its peak by the trailing loss limit", format_inr(drop), format_inr(-trailing))
    down_since = readings.broker_down_since_ns
    if down_since is not None and now - down_since > limits.broker_disconnect_seconds * _NS:
        seconds = (now - down_since) / _NS
        return Trip(Breaker.BROKER_DISCONNECTED, f"broker disconnected for {seconds:.1f} s", f"{seconds:.1f} s",
                    f"{limits.broker_disconnect_seconds:g} s")
    stale = _stale(readings)
    if stale is not None:
        return stale
    if readings.recent_errors >= limits.error_storm_count:
        return Trip(Breaker.ERROR_STORM, f"{readings.recent_errors} broker errors in {limits.error_storm_seconds:g} s",
                    str(readings.recent_errors), str(limits.error_storm_count))
    return None


def _stale(readings: BreakerReadings) -> Trip | None:
    now, limit_s = readings.now_ns, readings.limits.stale_data_seconds
    limit_ns = int(limit_s * _NS)
    for price in readings.prices:
        if not price.in_session:
            continue
        if price.last_price_ns is None:
            # Resumed with a position but no price yet: give the feed the same grace from start.
            age = now - readings.started_ns if readings.started_ns is not None else 0
        else:
            age = now - price.last_price_ns
        if age > limit_ns:
            seconds = age / _NS
            return Trip(Breaker.STALE_MARKET_DATA, f"no price for {price.instrument_key} in {seconds:.1f} s",
                        f"{seconds:.1f} s", f"{limit_s:g} s")
    return None


class WarningLadder:
    """The 80 %/90 % warnings: each limit's use is announced once per level and IST day."""

    def __init__(self) -> None:
        self._warned: dict[str, float] = {}
        self._day = -1

    def due(self, readings: BreakerReadings) -> list[str]:
        """The warnings ``readings`` raise that were not raised yet today (and marks them raised)."""
        day = ist_day_number(readings.now_ns)
        if day != self._day:
            self._day = day
            self._warned.clear()
        desk = readings.desk
        usage: dict[str, tuple[int, int, Callable[[int], str]]] = {
            "daily loss": (max(0, -readings.pnl), desk.daily_loss_limit, format_inr),
            "gross exposure": (readings.gross_exposure, desk.max_gross_exposure, format_inr),
            "net exposure": (readings.net_exposure, desk.max_net_exposure, format_inr),
            "orders today": (readings.orders_today, desk.max_orders_per_day, str),
            "open orders": (readings.open_orders, desk.max_open_orders, str),
        }
        due: list[str] = []
        for name, (value, limit, show) in usage.items():
            if limit <= 0:
                continue
            used = value / limit
            level = max((f for f in readings.limits.warn_fractions if used >= f), default=0.0)
            if level > self._warned.get(name, 0.0):
                self._warned[name] = level
                due.append(f"{name} at {used:.0%} of its limit ({show(value)} of {show(limit)})")
        return due


class Breakers:
    """The watchdog: ``check`` runs every ``interval`` seconds inside the supervised ``run`` task."""

    def __init__(self, desk: BreakerOps, *, interval: float = 0.1) -> None:
        self._desk = desk
        self.interval = interval
        self.errors = ErrorWindow()
        self.tripped: list[BreakerTripped] = []
        self._warnings = WarningLadder()

    async def run(self) -> None:
        while True:
            self.check()
            await asyncio.sleep(self.interval)

    def check(self) -> None:
        """One sample: trip whichever breaker's condition holds, then raise the due warnings."""
        readings = self._desk.breaker_readings()
        if not readings.halted:
            trip = first_trip(readings)
            if trip is not None:
                self.trip(trip.breaker, trip.detail, trip.value, trip.limit)
        for message in self._warnings.due(readings):
            self._desk.alert(AlertLevel.WARNING, "limits", message)

    def trip(self, breaker: Breaker, detail: str, value: str, limit: str) -> None:
        """Trip ``breaker`` now (also for a crash the supervisor reports): the desk engages the kill switch."""
        event = BreakerTripped(breaker, detail, value, limit, self._desk.clock_ns())
        self.tripped.append(event)
        log.critical("breaker %s tripped: %s (%s against %s)", breaker, detail, value, limit)
        self._desk.breaker_tripped(event)
