"""The Engine: composition root and lifecycle of the headless desk.

Every order source calls ``Engine.submit``; nothing else talks to the broker about orders. An
order is validated, passes the risk gate, is made durable in the audit chain, waits for the rate
governor and only then reaches the broker. Every broker call (cancels and reads too) passes the
governor, so the desk never bursts past the broker's limits.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from app.brokers.account import account_of
from app.brokers.base import (
    Broker,
    BrokerCall,
    BrokerError,
    BrokerErrorCode,
    LossyOrderFeed,
    PlaceRequest,
    SessionBroker,
)
from app.domain.actors import Actor, Permission
from app.domain.audit import RECONCILED_AT_START, AuditEventType, AuditSource
from app.domain.broker_messages import BookRow, BrokerPosition, UnreadableOrder
from app.domain.events import (
    Alert,
    AlertLevel,
    BrokerStatus,
    OrderEvent,
    OrderRejected,
    TaskCrashed,
    TradingStateChanged,
)
from app.domain.fills import Fill
from app.domain.india_time import IST_OFFSET_S, ist_day, ist_day_number
from app.domain.instruments import Instrument
from app.domain.market import Tick
from app.domain.orders import Order, OrderSource
from app.domain.rejections import Rejection, RejectReason
from app.domain.requests import OrderRequest, validate_request
from app.domain.trading_state import TradingState
from app.store.audit_writer import StoreOutage
from app.store.desk_identity import UNFOLDERED_DESK_ID

from .budget import AccountShare, share_config, share_limits
from .bus import EventBus
from .call_stats import BrokerCallStats, LatencyHistogram
from .config import EngineConfig
from .governor import CallKind, Governor, Throttled
from .loop_lag import LoopLagMonitor
from .market_data import MarketData
from .modify import OrderModifier
from .oms import OrderManager, ReconcileReport
from .outcomes import BROKER_REASONS, UNKNOWN_OUTCOME, order_payload, rejection_payload
from .portfolio import Portfolio
from .recorder import Recorder, audit_source
from .request_problems import request_problems
from .results import CancelResult, ModifyResult, OrderPreview, SubmitResult
from .risk.book import RiskBook
from .risk.breakers import (
    Breaker,
    BreakerReadings,
    Breakers,
    BreakerTripped,
    PriceReading,
)
from .risk.calendar import TradingCalendar
from .risk.calendar_data import CalendarLoad
from .risk.calendar_registry import CalendarVersion, record_version
from .risk.day_pnl import DayPnl
from .risk.flatten import Flattener, FlattenReport
from .risk.gate import RiskGate
from .risk.kill_switch import KillSwitch, KillSwitchReport
from .risk.limits import RiskLimits
from .risk.limits_registry import LimitsLoad, LimitsRegistry
from .round_trips import RoundTrips
from .supervisor import Supervisor

if TYPE_CHECKING:
    from app.store.audit_writer import AuditWriter

log = logging.getLogger(__name__)

T = TypeVar("T")

# Worth another try at start: the broker may answer the next read (a 502 from its gateway, a timeout).
_TRANSIENT = frozenset({BrokerErrorCode.UNAVAILABLE, BrokerErrorCode.TIMEOUT})

# How long a cancel refused as already final waits for the broker's own update before the book is read.
_FINAL_SETTLE_S = 0.25


@dataclass(frozen=True, slots=True)
class _FinalAnswer:
    """A cancel the broker refused because the order already ended: its message, and who asked."""

    message: str
    actor: str
    source: AuditSource


class Lifecycle(enum.StrEnum):
    """Where the engine is in its life: orders pass only while RUNNING, cancels also while STOPPING."""

    CREATED = "CREATED"
    STARTING = "STARTING"
    RUNNING = "RUNNING"
    STOPPING = "STOPPING"
    STOPPED = "STOPPED"


class EngineStartError(RuntimeError):
    """The engine could not start (the broker did not connect, say); nothing was traded."""


class Engine:
    """Wires broker, bus, OMS, portfolio and market data together and owns their lifecycle."""

    def __init__(
        self,
        broker: Broker,
        instruments: Iterable[Instrument],
        config: EngineConfig | None = None,
        *,
        audit: AuditWriter | None = None,
        clock_ns: Callable[[], int] = time.time_ns,
        limits: RiskLimits | None = None,
        calendar: TradingCalendar | None = None,
        desk_id: str = UNFOLDERED_DESK_ID,
        order_id_stem: str | None = None,
        account_share: AccountShare | None = None,
    ) -> None:
        """``desk_id`` marks every row the engine stores and limits what it reads back at start to its own;
        ``order_id_stem`` (the desk's, unique on the database) starts every client order id; ``account_share``
        is the part of the broker account's rate budget this desk holds (by default all of it)."""
        self.config = config or EngineConfig()
        self.desk_id = desk_id
        self.broker = broker
        self.account_share = account_share or AccountShare(account_of(broker.capabilities.account, desk_id))
        self.instruments: dict[str, Instrument] = {i.key: i for i in instruments}
        self.clock_ns = clock_ns
        self.bus = EventBus(on_critical_error=self._critical_handler_failed)
        self.market_data = MarketData()
        self.portfolio = Portfolio(self.instruments)
        self.oms = OrderManager(self.bus, clock_ns, self.config.client_id_prefix, id_stem=order_id_stem)
        self.supervisor = Supervisor(self._task_crashed)
        self.loop_lag = LoopLagMonitor(self.config.loop_lag_interval)
        self.risk_book = RiskBook(self.portfolio, self.instruments, self.oms.pending_modifies)
        self.day_pnl = DayPnl(self.portfolio)
        self.bus.subscribe(Tick, self.market_data.on_tick, name="market_data")
        self.bus.subscribe(Tick, self.portfolio.on_tick, name="portfolio.tick")
        self.bus.subscribe(Fill, self.portfolio.on_fill, name="portfolio.fill")
        # After the portfolio: the book reads the position the fill just moved.
        self.bus.subscribe(Fill, self.risk_book.on_fill, name="risk.fill")
        self.bus.subscribe(OrderEvent, self.risk_book.on_order, name="risk.order")
        self.bus.subscribe(BrokerStatus, self._on_broker_status, name="engine.broker_status")
        # Without a store the engine still runs (unit tests, benchmarks); the desk always has one.
        self.recorder = (
            Recorder(audit, self._store_failed, desk_id=desk_id, on_fill_conflict=self._fill_conflict) if audit is not None else None
        )
        if self.recorder is not None:
            self.recorder.attach(self.bus)
        self.trading_state = self.config.initial_state
        self.halt_reason = "" if self.trading_state is TradingState.ACTIVE else "initial state"
        # Who moved the desk to its state, and when (the desk's clock); shown beside the state.
        self.trading_state_actor = ""
        self.trading_state_since_ns: int | None = None
        self.limits = LimitsRegistry(self.recorder, self.instruments, clock_ns=clock_ns)
        self.gate = RiskGate(
            limits=limits if limits is not None else self.limits.current,
            book=self.risk_book,
            portfolio=self.portfolio,
            market_data=self.market_data,
            calendar=calendar if calendar is not None else TradingCalendar(),
            day_pnl=self.day_pnl,
            state=lambda: (self.trading_state, self.halt_reason),
            protection_bps=self.config.market_protection_bps,
        )
        self.limits.subscribe(self.gate.set_limits)
        self.governor = self._make_governor({})
        # The risk components act on the desk only through these ports, never on the engine itself.
        self.ports = EnginePorts(self)
        self.kill_switch = KillSwitch(self.ports, self.ports)
        self.breakers = Breakers(self.ports, interval=self.config.breaker_interval)
        self.flattener = Flattener(self.ports)
        self.lifecycle = Lifecycle.CREATED
        self.rejections: Counter[RejectReason] = Counter()
        self.submitted = 0
        self.accepted = 0
        self.broker_down_since_ns: int | None = None
        self.started_ns: int | None = None
        self._session_down = False
        # More reasons re-arming would be unsafe, from parts beside the engine (the broker account's lease).
        self.rearm_checks: list[Callable[[], str | None]] = []
        # A lost order notification asks for the book to be read again; asks during a read make one more.
        self._book_stale = False
        self._book_reread: asyncio.Task[None] | None = None
        self._rtt = RoundTrips()
        # For the metrics: each broker method's latency and failures, and the gate's own time per order.
        self.call_stats = BrokerCallStats()
        self.gate_latency = LatencyHistogram()
        self._inflight = 0
        self._idle = asyncio.Event()
        self._idle.set()
        # Set once start() has ended, either way: a kill switch engaged earlier waits for it.
        self._start_over = asyncio.Event()
        # What the start's reconciliation with the broker's book found (``None`` until it read the book).
        self.start_report: ReconcileReport | None = None
        # Cancels the broker refused as already final, waiting for the order's real state (see _settle_final).
        self._final_answers: dict[str, _FinalAnswer] = {}
        self._final_settler: asyncio.Task[None] | None = None
        self.modifier = OrderModifier(self)
        # Holds that refuse every re-arm while set, by name, with why (the firm halt's, set by the halt watch).
        self.rearm_holds: dict[str, str] = {}

    def _make_governor(self, counts: dict[str, int]) -> Governor:
        recorder, share = self.recorder, self.account_share
        on_count = None
        if recorder is not None:
            def on_count(day: str, kind: str, count: int) -> None:
                # The store keeps this desk's own calls; the charge is other desks' and already stored.
                recorder.count_calls(day, share.account, kind, count - share.charge(day, kind))
        limits = self.broker.capabilities.rate_limits
        return Governor(
            share_limits(limits, share.slots), share_config(self.config.governor, limits, share.slots),
            wall_ns=self.clock_ns, initial_counts=share.with_charge(ist_day(self.clock_ns()).isoformat(), counts),
            on_count=on_count,
        )

    # -- lifecycle -------------------------------------------------------------------------------

    async def load_limits(self, path: Path, default: Path, *, actor: str = "system") -> LimitsLoad:
        """Bring the limits file into force (a new audited version when it changed); see LimitsRegistry."""
        loaded = await self.limits.load_at_start(path, default, actor=actor)
        for problem in loaded.problems:
            self.alert(AlertLevel.CRITICAL, "limits", f"limits file refused, version {loaded.version} stays in force: {problem}")
        for warning in loaded.warnings:
            self.alert(AlertLevel.WARNING, "limits", warning)
        return loaded

    async def set_limits(self, text: str, *, actor: Actor, reason: str, path: Path | None = None) -> int:
        """Put a new limits document in force (needs SET_LIMITS); a refused one changes nothing."""
        return await self.limits.apply(text, actor=actor, reason=reason, path=path)

    async def record_calendar(self, load: CalendarLoad, *, actor: str = "system") -> CalendarVersion | None:
        """Store the calendar in force as a new audited version when it changed; alert a refused override."""
        for problem in load.problems:
            self.alert(AlertLevel.CRITICAL, "calendar", f"calendar override refused, the shipped calendar is in force: {problem}")
        if self.recorder is None:
            return None
        source = AuditSource.SYSTEM if actor == "system" else AuditSource.OPERATOR
        reason = f"calendar in force at start (override {load.override})" if load.override else "calendar in force at start"
        try:
            return await asyncio.to_thread(
                record_version, self.recorder.writer, load.calendar, actor=actor, source=source, reason=reason,
            )
        except Exception as exc:  # noqa: BLE001 - a calendar in force that is not on record: do not trade on it
            self.halt(f"could not record the trading calendar in force: {type(exc).__name__}: {exc}")
            return None

    def _calendar_notices(self) -> None:
        """Warn of a calendar about to run out or already out, and of contracts that expire today."""
        now = self.clock_ns()
        notice = self.gate.calendar.cover_notice(now)
        if notice is not None:
            self.alert(AlertLevel.WARNING, "calendar", notice)
        today = ist_day(now)
        expiring = sorted(key for key, instrument in self.instruments.items() if instrument.expiry == today)
        if expiring:
            self.alert(AlertLevel.WARNING, "expiry", f"expiring today ({today.isoformat()}): {', '.join(expiring)}")
        expired = sorted(key for key, instrument in self.instruments.items() if instrument.expiry is not None and instrument.expiry < today)
        if expired:
            self.alert(AlertLevel.WARNING, "expiry", f"expired, orders are refused: {', '.join(expired)}")

    async def _notices_each_day(self) -> None:
        """Repeat the calendar and expiry notices just after each IST midnight: a desk left running
        into 1 December, 1 January or an expiry day is told as one started that day would be."""
        while True:
            now = self.clock_ns()
            next_day_ns = ((ist_day_number(now) + 1) * 86_400 - IST_OFFSET_S) * 1_000_000_000
            await asyncio.sleep((next_day_ns - now) / 1e9 + 1.0)
            self._calendar_notices()

    async def start(self, *, unclean: str | None = None) -> None:
        """Connect the broker, start the supervised streams and reconcile with the broker's book.

        ``unclean``: why the desk's last run did not end with a clean stop (killed, crashed, its store
        failed). The engine then starts HALTED, whatever the store says, and says why and what
        reconciliation found; an operator re-arms.
        """
        if self.lifecycle is not Lifecycle.CREATED:
            raise RuntimeError(f"engine cannot start from {self.lifecycle}")
        self.lifecycle = Lifecycle.STARTING
        try:
            await self._start(unclean)
        finally:
            self._start_over.set()

    @property
    def starting(self) -> bool:
        """``start`` is under way: it may still be reading the broker's order book, though RUNNING."""
        return self.lifecycle is not Lifecycle.CREATED and not self._start_over.is_set()

    async def wait_started(self) -> bool:
        """Wait until ``start`` has ended, also one not begun yet; whether the engine then runs.

        A kill switch engaged during the start waits here, so its cancels and book reads go out
        only once the desk's orders are restored and the start's own book read is done (or given
        up): an order the start adopts from the broker's book is then swept too.
        """
        await self._start_over.wait()
        return self.lifecycle in (Lifecycle.RUNNING, Lifecycle.STOPPING)

    async def _start(self, unclean: str | None) -> None:
        name = self.broker.capabilities.name
        if self.recorder is not None:
            self.recorder.writer.watch_outages(self._store_outage, asyncio.get_running_loop())
            await self._resume(self.recorder)
        if unclean is not None:
            # Before anything can trade: the reason is restated once the broker's book is read.
            if self.trading_state is not TradingState.ACTIVE:
                unclean = f"{unclean}; {self.halt_reason}"
            self._set_state(TradingState.HALTED, f"the last run ended without a clean stop ({unclean}); "
                            "reconciling with the broker's order book", "system", restate=True)
        try:
            await asyncio.wait_for(self.broker.connect(), self.config.connect_timeout)
            await self.call_broker(self.broker.subscribe(sorted(self.instruments)), CallKind.READ, BrokerCall.SUBSCRIBE)
        except (BrokerError, TimeoutError) as exc:
            self.lifecycle = Lifecycle.STOPPED
            raise EngineStartError(f"broker {name} did not connect: {exc or type(exc).__name__}") from exc
        self.started_ns = self.clock_ns()
        if isinstance(self.broker, SessionBroker):
            loop = asyncio.get_running_loop()

            def session_lost(reason: str) -> None:
                # The adapter may notice on one of its own threads.
                loop.call_soon_threadsafe(self._session_lost, reason)

            self.broker.on_session_lost(session_lost)
        if isinstance(self.broker, LossyOrderFeed):
            feed_loop = asyncio.get_running_loop()

            def order_feed_gap(reason: str) -> None:
                feed_loop.call_soon_threadsafe(self._order_feed_gap, reason)

            self.broker.on_order_feed_gap(order_feed_gap)
        self.supervisor.spawn("broker.ticks", self._pump_ticks())
        self.supervisor.spawn("broker.order_updates", self._pump_order_updates())
        self.supervisor.spawn("loop_lag", self.loop_lag.run())
        self.supervisor.spawn("breakers", self.breakers.run())
        self.supervisor.spawn("calendar.notices", self._notices_each_day())
        self.lifecycle = Lifecycle.RUNNING
        self.bus.publish(BrokerStatus(name, True, "connected", self.clock_ns()))
        log.info("engine running with broker %s, %d instruments, state %s", name, len(self.instruments), self.trading_state)
        self._calendar_notices()
        outcome = await self._first_reconcile()
        if isinstance(outcome, str):
            problem = outcome
            # Not knowing what is already working at the broker is reason enough not to add to it.
            reason = f"could not read the broker's order book at start: {problem}"
            if unclean is not None:
                reason = f"the last run ended without a clean stop ({unclean}); {reason}"
                self._set_state(TradingState.HALTED, reason, "system", restate=True)
                self.alert(AlertLevel.CRITICAL, "restart", reason)
            else:
                self.halt(reason)
            return
        report = self.start_report = outcome
        self._start_findings(report)
        payload: dict[str, Any] = {"at": RECONCILED_AT_START, "broker": name, "working": len(self.oms.working()), **report.summary()}
        if unclean is not None:
            payload["unclean_end"] = unclean
            # Said in the halt reason (stored and shown), an alert and this record: why, and what the book showed.
            reason = (f"the last run ended without a clean stop ({unclean}); reconciliation at start: {report.findings()}. "
                      "An operator re-arms once the orders are checked")
            self._set_state(TradingState.HALTED, reason, "system", restate=True)
            self.alert(AlertLevel.CRITICAL, "restart", reason)
        # The mark `main.py rearm` looks for: from here this run, not an earlier one, knows the book.
        self.record(AuditEventType.RECONCILED, payload, "system", AuditSource.SYSTEM)

    def _start_findings(self, report: ReconcileReport) -> None:
        """Alert what reconciliation at start settled without the broker's word, so nothing changes silently."""
        if report.unknown:
            self.alert(
                AlertLevel.CRITICAL, "reconcile",
                f"{len(report.unknown)} orders the store shows working are not in the broker's order book (or their rows "
                f"cannot be read): UNKNOWN, counted as working and against the open-orders limit until the book shows "
                f"them or an operator checks them at the broker: {', '.join(report.unknown[:10])}"
                f"{', ...' if len(report.unknown) > 10 else ''}",
            )
        if report.never_sent:
            self.alert(
                AlertLevel.WARNING, "reconcile",
                f"{len(report.never_sent)} orders a stopped desk had queued for the rate governor are not in the broker's "
                f"order book: they never went out, closed as REJECTED: {', '.join(report.never_sent[:10])}"
                f"{', ...' if len(report.never_sent) > 10 else ''}",
            )
        if report.closed:
            why = sorted(set(report.closed.values()))
            self.alert(
                AlertLevel.WARNING, "reconcile",
                f"{len(report.closed)} orders the store showed working are not in the broker's order book and can no "
                f"longer be live: closed as EXPIRED ({'; '.join(why[:3])}): {', '.join(list(report.closed)[:10])}"
                f"{', ...' if len(report.closed) > 10 else ''}",
            )

    async def _first_reconcile(self) -> ReconcileReport | str:
        """Reconcile at start, retrying a transient failure (a 502, a timeout) with exponential backoff
        for at most ``config.start_book_retry_s``; the report once read, else why it could not be."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.config.start_book_retry_s
        delay = self.config.start_book_backoff_s
        attempt = 1
        while True:
            try:
                return await self.reconcile(at_start=True)
            except (BrokerError, TimeoutError) as exc:
                why = f"{exc or type(exc).__name__}"
                transient = not isinstance(exc, BrokerError) or exc.code in _TRANSIENT
                if not transient:
                    return why
                if loop.time() + delay > deadline:
                    return f"{why} (still failing after {attempt} attempts in {self.config.start_book_retry_s:g}s)"
            log.warning("reading the broker's order book at start failed (attempt %d: %s); again in %.2fs", attempt, why, delay)
            await asyncio.sleep(delay)
            delay *= 2
            attempt += 1

    async def _resume(self, recorder: Recorder) -> None:
        """Pick up the stored picture: trading state, working orders, positions, today's counts."""
        now = self.clock_ns()
        today = ist_day(now).isoformat()
        try:
            saved = await asyncio.to_thread(recorder.load, today, self.account_share.account)
        except Exception as exc:  # noqa: BLE001 - an unreadable store means an unknown picture: halt
            self.halt(f"could not read the store at start: {type(exc).__name__}: {exc}")
            return
        if saved.trading_state is not None and saved.trading_state is not TradingState.ACTIVE:
            restored = saved.trading_state
            # A halt made while the store was read (a panic during the start) outranks a stored REDUCING.
            if self.trading_state is not TradingState.HALTED:
                self._set_state(restored, f"restored {restored} from the store: {saved.reason}", "system")
            hint = (f"the desk starts {self.trading_state}; an operator re-arms it, giving a reason, once trading is safe again: "
                    '.venv/bin/python main.py rearm --reason "..." (while the desk runs, or with none running)')
            log.warning(hint)
            self.alert(AlertLevel.WARNING, "trading_state", hint)
        for order in saved.open_orders:
            self.oms.restore(order)
            self.risk_book.track(order)
        day = ist_day_number(now)
        start_of_day: int | None = None
        for fill in saved.fills:
            if start_of_day is None and ist_day_number(fill.ts_ns) >= day:
                start_of_day = self.portfolio.realized
            self.portfolio.on_fill(fill)
            self.risk_book.on_fill(fill)
        self.day_pnl.begin_day(day, self.portfolio.realized if start_of_day is None else start_of_day)
        self.risk_book.roll(now)
        self.risk_book.orders_today = saved.orders_today
        self.governor = self._make_governor(saved.call_counts)
        if saved.open_orders or saved.fills:
            log.info("resumed %d unsettled orders and %d fills from the store", len(saved.open_orders), len(saved.fills))

    async def stop(self) -> None:
        """Stop taking orders, let in-flight broker calls finish (bounded), stop tasks, disconnect."""
        if self.lifecycle in (Lifecycle.CREATED, Lifecycle.STOPPED, Lifecycle.STOPPING):
            if self.lifecycle is not Lifecycle.STOPPING:
                self.lifecycle = Lifecycle.STOPPED
                self._start_over.set()
                # A sweep engaged before a start that never came, or failed, has no broker to work with.
                await self.supervisor.shutdown(self.config.drain_timeout)
            return
        self.lifecycle = Lifecycle.STOPPING
        try:
            await asyncio.wait_for(self._idle.wait(), self.config.drain_timeout)
        except TimeoutError:
            log.error("stop: %d broker calls still in flight after %.1fs", self._inflight, self.config.drain_timeout)
        if self.recorder is not None:
            self.recorder.snapshot_positions(self.portfolio.snapshot_rows())
        stuck = await self.supervisor.shutdown(self.config.drain_timeout)
        if stuck:
            log.error("stop: tasks did not finish: %s", ", ".join(stuck))
        try:
            await asyncio.wait_for(self.broker.disconnect(), self.config.broker_call_timeout)
        except (BrokerError, TimeoutError) as exc:
            log.error("stop: broker disconnect failed: %s", exc or type(exc).__name__)
        self.bus.publish(BrokerStatus(self.broker.capabilities.name, False, "stopped", self.clock_ns()))
        self.lifecycle = Lifecycle.STOPPED
        log.info("engine stopped")

    # -- trading state ---------------------------------------------------------------------------

    def halt(self, reason: str, actor: str = "system", *, restate: bool = False) -> None:
        """Latch HALTED now, synchronously: no new order passes after this returns. Cancels still pass.

        This only stops new orders; ``kill_switch.engage`` halts and also cancels what is working.
        ``restate``: an operator's halt on a desk already HALTED (the kill switch) becomes the reason
        shown and stored, who and when; another halt keeps the first reason.
        """
        self._set_state(TradingState.HALTED, reason, actor, restate=restate)

    def engage_kill_switch(self, reason: str, actor: str, source: AuditSource = AuditSource.OPERATOR) -> KillSwitchReport:
        """HALT now and cancel every working order at the broker's pace; see ``KillSwitch``."""
        return self.kill_switch.engage(reason, actor, source)

    async def flatten(self, actor: Actor, *, confirmed: bool) -> FlattenReport:
        """Close every open position with protected marketable limits (needs FLATTEN and a confirmation)."""
        return await self.flattener.run(actor, confirmed=confirmed)

    async def rearm(self, actor: Actor, reason: str, *, to: TradingState = TradingState.ACTIVE) -> None:
        """Leave HALTED (or REDUCING) for ``to``: an authorised actor with a reason, audited before it happens.

        Raises ``PermissionError`` for an actor without REARM and ``ValueError`` when re-arming now
        would be unsafe (no reason given, a hold such as the firm halt's, a sweep or flatten still running,
        the loss limit breached).
        """
        if not actor.can(Permission.REARM):
            log.warning("re-arm refused: %s lacks the rearm permission", actor.name)
            self.record(AuditEventType.REARMED, {"refused": "no rearm permission", "to": to}, actor.name, AuditSource.OPERATOR)
            raise PermissionError(f"{actor.name} may not re-arm the desk (needs the {Permission.REARM} permission)")
        if not reason.strip():
            raise ValueError("re-arming needs a reason")
        if to is TradingState.HALTED:
            raise ValueError("re-arm goes to ACTIVE or REDUCING; use the kill switch to halt")
        if self.rearm_holds:
            raise ValueError("; ".join(self.rearm_holds.values()))
        if self.starting:
            raise ValueError("the desk is still starting (reading the store and the broker's order book): "
                             "re-arm once it runs")
        if self.trading_state is TradingState.ACTIVE or self.trading_state is to:
            raise ValueError(f"the desk is already {self.trading_state}, not halted: nothing to re-arm")
        if self.kill_switch.sweeping or self.flattener.running:
            raise ValueError("the kill switch sweep or a flatten is still running; wait for its report")
        if self._session_down:
            raise ValueError("the broker session has expired: log in again (paste the new session token) before re-arming")
        for check in self.rearm_checks:
            problem = check()
            if problem is not None:
                raise ValueError(problem)
        if to is TradingState.ACTIVE:
            now = self.clock_ns()
            pnl = self.day_pnl.current(now)
            if pnl <= -self.gate.limits.desk.daily_loss_limit:
                raise ValueError("today's loss is at the daily loss limit: re-arm to REDUCING at most")
        await self.durable_or_log(
            AuditEventType.REARMED, {"from": self.trading_state, "to": to, "reason": reason}, actor.name, AuditSource.OPERATOR,
        )
        self._set_state(to, f"re-armed: {reason}", actor.name)

    def reduce_only(self, reason: str, actor: str) -> None:
        """Move to REDUCING: only risk-reducing orders pass (the flatten action uses it)."""
        self._set_state(TradingState.REDUCING, reason, actor)

    def _set_state(self, state: TradingState, reason: str, actor: str, *, restate: bool = False) -> None:
        previous = self.trading_state
        if previous is state and not (restate and reason != self.halt_reason):
            return
        self.trading_state = state
        self.halt_reason = reason
        self.trading_state_actor = actor
        self.trading_state_since_ns = self.clock_ns()
        if state is TradingState.HALTED:
            self.governor.drop_pending(f"trading halted: {reason}")
        log.warning("trading state %s -> %s by %s: %s", previous, state, actor, reason)
        self.bus.publish(TradingStateChanged(previous, state, reason, actor))

    def _task_crashed(self, name: str, exc: BaseException) -> None:
        now = self.clock_ns()
        detail = f"engine task {name} crashed: {type(exc).__name__}: {exc}"
        self.bus.publish(TaskCrashed(name, f"{type(exc).__name__}: {exc}", now))
        if name.startswith("kill_switch"):
            # The sweep itself died: halt (already so) and say so loudly; re-engaging could loop.
            self.halt(detail)
            self.alert(AlertLevel.CRITICAL, name, f"kill switch sweep crashed ({type(exc).__name__}: {exc}); cancel at the broker")
            return
        self.breakers.trip(Breaker.TASK_CRASHED, detail, type(exc).__name__, "no crash")
        self.alert(AlertLevel.CRITICAL, name, f"task crashed ({type(exc).__name__}: {exc}); trading halted")

    def _critical_handler_failed(self, name: str, exc: BaseException) -> None:
        self.halt(f"event handler {name} failed: {type(exc).__name__}: {exc}")
        self.alert(AlertLevel.CRITICAL, name, f"handler failed ({type(exc).__name__}); trading halted")

    def _store_failed(self, exc: BaseException) -> None:
        self.halt(f"the audit store failed: {exc}")
        self.alert(AlertLevel.CRITICAL, "store", f"audit store failed ({type(exc).__name__}); trading halted")

    def _store_outage(self, outage: StoreOutage) -> None:
        # The records go on (the writer keeps them in its spool), but a desk whose store is away must not trade;
        # it stays HALTED when the store is back: re-arming is the operator's decision.
        if outage.ended_ns is None:
            self.halt(f"the audit store is unreachable ({outage.reason}); records go to the local spool")
            self.alert(AlertLevel.CRITICAL, "store", f"audit store unreachable ({outage.reason}): trading halted, "
                       "records kept in the local spool until it is back")
            return
        self.alert(AlertLevel.WARNING, "store", f"audit store back after {outage.duration_s:.1f} s: the {outage.spooled} "
                   "records and rows kept meanwhile are written; the desk stays HALTED until re-armed")

    def _fill_conflict(self, fill: Fill, why: str) -> None:
        # The stored picture no longer matches what was traded: the next start would rebuild the wrong position.
        self.halt(f"fill {fill.fill_id} conflicts with a stored fill")
        self.alert(AlertLevel.CRITICAL, "store", f"{why}; trading halted")

    def _on_broker_status(self, status: BrokerStatus) -> None:
        if status.connected:
            self.broker_down_since_ns = None
        elif self.broker_down_since_ns is None and self.lifecycle is Lifecycle.RUNNING:
            self.broker_down_since_ns = status.ts_ns

    def alert(self, level: AlertLevel, component: str, message: str) -> None:
        self.bus.publish(Alert(level, component, message, self.clock_ns()))

    def record(self, event: AuditEventType, payload: dict[str, Any], actor: str, source: AuditSource) -> None:
        """Append an audit record without waiting (no-op without a store)."""
        if self.recorder is not None:
            self.recorder.record(event, payload, actor=actor, source=source)

    async def durable_or_log(self, event: AuditEventType, payload: dict[str, Any], actor: str, source: AuditSource) -> None:
        """Append and wait until durable; a store failure is logged (the recorder already halted the desk)."""
        if self.recorder is None:
            return
        try:
            await self.recorder.durable(event, payload, actor=actor, source=source)
        except Exception as exc:  # noqa: BLE001 - the caller goes on (a halt, a cancel) even unrecorded
            log.error("%s could not be recorded: %s", event, exc)

    def round_trip_s(self) -> float:
        """A broker call's round trip as observed (median of recent calls), for the kill switch's bound."""
        return self._rtt.median()

    def exposed_instruments(self) -> set[str]:
        """Instruments the desk holds or has a working order in: their prices must stay fresh."""
        keys = self.portfolio.open_instruments()
        keys.update(o.instrument_key for o in self.oms.working())
        return keys

    # -- broker session --------------------------------------------------------------------------

    @property
    def session_expired(self) -> bool:
        """The broker session ended and no new one has been given yet (the GUI then asks for a login)."""
        return self._session_down

    def broker_login_url(self) -> str | None:
        """Where the trader logs in for today's session token; ``None`` for a broker without one."""
        return self.broker.login_url() if isinstance(self.broker, SessionBroker) else None

    async def renew_broker_session(self, session_token: str, *, actor: str) -> None:
        """Start a new broker session with the token the trader pasted (the GUI's re-login dialog).

        Raises ``BrokerError`` when the broker refuses it. Trading stays as it is: a desk halted by
        the expiry needs an operator's re-arm, as after any halt.
        """
        if not isinstance(self.broker, SessionBroker):
            raise BrokerError(BrokerErrorCode.REJECTED, f"broker {self.broker.capabilities.name} has no session to renew")
        await asyncio.wait_for(self.broker.renew_session(session_token), self.config.connect_timeout)
        self._session_down = False
        await self.durable_or_log(
            AuditEventType.SESSION_RENEWED, {"broker": self.broker.capabilities.name}, actor, AuditSource.OPERATOR
        )
        self.alert(AlertLevel.INFO, "broker", f"broker session renewed; trading state is {self.trading_state}")

    def _session_lost(self, reason: str) -> None:
        """The broker session ended: halt new orders, audit it once, and ask for a new login."""
        if self._session_down:
            return
        self._session_down = True
        self.record(AuditEventType.SESSION_EXPIRED, {"broker": self.broker.capabilities.name, "reason": reason},
                    "broker", AuditSource.BROKER)
        self.halt(f"broker session expired: {reason.rstrip('. ')}; log in again", "broker")
        # The login URL carries the API key, so it is shown by the login dialog, never put in an alert.
        self.alert(
            AlertLevel.CRITICAL, "broker",
            f"the broker session ended ({reason}); new orders are halted. Log in again, "
            "paste the new session token, then re-arm",
        )

    # -- orders ----------------------------------------------------------------------------------

    async def submit(self, request: OrderRequest, *, operator: Actor | None = None) -> SubmitResult:
        """The one path to the broker: validate, risk gate, durable audit, governor, send. Never raises.

        A ticket order needs ``operator``, the signed-in operator, and a local API order its client's
        actor (``app.domain.actors.api_actor``): allowed to TRADE and named as the request's actor;
        without one it is refused (deny by default). Flatten, the kill switch and the simulation
        carry their own authority.
        """
        self.submitted += 1
        self._audit(AuditEventType.ORDER_PROPOSED, _request_payload(request), request)
        if request.source in _NEEDS_AUTHORITY:
            refusal = _order_authority(request, operator)
            if refusal is not None:
                return self._refuse(request, refusal)
        if self.lifecycle is not Lifecycle.RUNNING:
            return self._refuse(request, Rejection(RejectReason.ENGINE_NOT_RUNNING, f"engine is {self.lifecycle}"))
        key = request.instrument_key if isinstance(request.instrument_key, str) else None
        checked = validate_request(request, self.instruments.get(key) if key is not None else None)
        if isinstance(checked, Rejection):
            return self._refuse(request, checked)
        now = self.clock_ns()
        started = time.perf_counter()
        decision = self.gate.check(checked, now)
        self.gate_latency.observe(time.perf_counter() - started)
        if isinstance(decision, Rejection):
            return self._refuse(request, decision)
        self.gate.accepted(checked, now)
        order = self.oms.create(checked, decision)
        self._audit(AuditEventType.GATE_ACCEPTED, {"client_order_id": order.client_order_id, "price_paise": decision}, request)
        # The order's story in the chain: queued (its intent), then either sent (the governor released
        # it to the broker) or throttled (refused before it went out); never sent for an order that waited in vain.
        # The intent need not be awaited: the one writer commits in order, so order.sent's durable
        # commit carries it, and an order that never goes out is settled from its stored row at restart.
        self.record(AuditEventType.ORDER_QUEUED, order_payload(order), order.actor, audit_source(order.source))
        try:
            await self.governor.acquire(CallKind.PLACE, self.broker.capabilities.calls(BrokerCall.PLACE))
        except Throttled as exc:
            return self._not_sent(order, Rejection(RejectReason.THROTTLED, str(exc)))
        if self.trading_state is TradingState.HALTED:
            # Halted while this order waited for its slot: it must not leak out now.
            return self._not_sent(order, self.halted_before_send())
        # SENT first: its row is queued ahead of order.sent, so the record's durable commit carries it
        # too, and a restart never finds an order the chain says was sent stored as NEW (which it
        # would close as never sent); killed before the call, the order settles as UNKNOWN instead.
        self.oms.mark_sent(order)
        # The invariant: nothing reaches the broker before its audit record is durable.
        refused = await self._durable_order(order, AuditEventType.ORDER_SENT)
        if refused is not None:
            return refused
        await self.governor.going()
        if self.halted():
            # Halted while order.sent was being made durable: the call is still not made, and the
            # refusal after order.sent says so.
            return self._not_sent(order, self.halted_before_send())
        return await self._send(order)

    async def _durable_order(self, order: Order, event: AuditEventType) -> SubmitResult | None:
        """Make ``event`` for ``order`` durable; the refusal when the store cannot (it already halted the desk)."""
        if self.recorder is None:
            return None
        try:
            await self.recorder.durable(event, order_payload(order), actor=order.actor, source=audit_source(order.source))
        except Exception as exc:  # noqa: BLE001 - the recorder already halted the desk
            self.oms.mark_rejected(order, "audit store unavailable")
            return self._refused_order(order, Rejection(RejectReason.AUDIT_UNAVAILABLE, f"the audit store failed: {exc}"))
        return None

    @property
    def running(self) -> bool:
        """Orders pass: the engine is RUNNING."""
        return self.lifecycle is Lifecycle.RUNNING

    def halted(self) -> bool:
        """Trading is HALTED now (a method, not the attribute: a halt can land during any await of the caller)."""
        return self.trading_state is TradingState.HALTED

    def halted_before_send(self) -> Rejection:
        """The refusal of a call a halt stopped before it went out."""
        return Rejection(RejectReason.TRADING_HALTED, f"trading halted before the order went out: {self.halt_reason}")

    def preview(self, request: OrderRequest) -> OrderPreview:
        """What ``request`` would meet now, for the order ticket while it is typed; submits nothing.

        Every field problem at once (each one for its field); when the fields are sound, every check
        of the gate that would refuse it (code, value, limit), the price it would go out at (a
        market order's protected limit), its value and the headroom left on each limit it moves.
        Synchronous, no I/O, and nothing is counted: a preview never makes the submit after it a
        duplicate or spends the source's rate. The first refusal listed is the one ``submit`` gives,
        but for the operator's authority, which the ticket checks against the signed-in operator.
        """
        key = request.instrument_key if isinstance(request.instrument_key, str) else None
        problems, checked = request_problems(request, self.instruments.get(key) if key is not None else None)
        if checked is None:
            return OrderPreview(tuple(problems), 0)
        return self.gate.review(checked, self.clock_ns())

    def _not_sent(self, order: Order, rejection: Rejection) -> SubmitResult:
        self.oms.mark_rejected(order, rejection.message)
        self.record(
            AuditEventType.ORDER_THROTTLED, {"client_order_id": order.client_order_id, **rejection_payload(rejection)},
            order.actor, audit_source(order.source),
        )
        return self._refused_order(order, rejection)

    async def _send(self, order: Order) -> SubmitResult:
        instrument = self.instruments[order.instrument_key]
        request = PlaceRequest(
            client_order_id=order.client_order_id,
            instrument=instrument,
            side=order.side,
            quantity=order.quantity,
            price=order.price,
            product=order.product,
            validity=order.validity,
        )
        try:
            ack = await self.call_broker(self.broker.place(request), None, named=BrokerCall.PLACE)
        except BrokerError as exc:
            self.broker_failed(exc)
            if exc.code in UNKNOWN_OUTCOME:
                return self._unknown_outcome(order, exc.message)
            self.oms.mark_rejected(order, exc.message)
            rejection = Rejection(BROKER_REASONS.get(exc.code, RejectReason.BROKER_UNAVAILABLE), exc.message)
            self.record(
                AuditEventType.BROKER_REJECT, {"client_order_id": order.client_order_id, **rejection_payload(rejection)},
                order.actor, AuditSource.BROKER,
            )
            return self._refused_order(order, rejection)
        except TimeoutError:
            return self._unknown_outcome(order, f"no answer from the broker within {self.config.broker_call_timeout}s")
        except Exception as exc:
            log.exception("broker place raised unexpectedly for %s", order.client_order_id)
            self.halt(f"broker adapter failed on place: {type(exc).__name__}")
            return self._unknown_outcome(order, f"broker adapter failed: {type(exc).__name__}")
        self.accepted += 1
        self.record(
            AuditEventType.BROKER_ACK, {"client_order_id": order.client_order_id, "broker_order_id": ack.broker_order_id},
            order.actor, AuditSource.BROKER,
        )
        self.oms.bind(order, ack.broker_order_id)
        if order.cancel_requested and order.status.is_working:
            self.supervisor.spawn(f"cancel.{order.client_order_id}", self.cancel(order.client_order_id))
        return SubmitResult(True, order.client_order_id, None, order.status)

    def broker_failed(self, exc: BrokerError) -> None:
        """Count a failed broker call for the error-storm breaker; an expired session or a rate-limit refusal is said."""
        self.breakers.errors.add(self.clock_ns())
        if exc.code in (BrokerErrorCode.SESSION_EXPIRED, BrokerErrorCode.AUTH_FAILED):
            self._session_lost(exc.message)
        elif exc.code is BrokerErrorCode.RATE_LIMITED:
            # The governor should make this impossible: if the broker still says so, someone else
            # is using the same API key, or the broker's limits changed.
            self.alert(AlertLevel.WARNING, "governor", f"the broker refused a call for its rate limit: {exc.message}")

    def _unknown_outcome(self, order: Order, message: str) -> SubmitResult:
        # The order may be live at the broker: keep it working at the desk and let reconciliation decide.
        self.alert(AlertLevel.CRITICAL, "broker", f"order {order.client_order_id}: {message}; reconciling")
        self.supervisor.spawn(f"reconcile.{order.client_order_id}", self.reconcile())
        rejection = Rejection(RejectReason.BROKER_TIMEOUT, f"{message}; state unknown, reconciling with the broker")
        self.rejections[rejection.reason] += 1
        return SubmitResult(False, order.client_order_id, rejection, order.status)

    def _audit(self, event: AuditEventType, payload: dict[str, Any], request: OrderRequest) -> None:
        self.record(event, payload, str(request.actor), audit_source(request.source))

    def _refuse(self, request: OrderRequest, rejection: Rejection) -> SubmitResult:
        self._audit(AuditEventType.GATE_REJECTED, rejection_payload(rejection), request)
        self.rejections[rejection.reason] += 1
        self.bus.publish(
            OrderRejected(str(request.instrument_key), request.source, request.actor, rejection)
        )
        return SubmitResult(False, None, rejection)

    def _refused_order(self, order: Order, rejection: Rejection) -> SubmitResult:
        self.rejections[rejection.reason] += 1
        self.bus.publish(OrderRejected(order.instrument_key, order.source, order.actor, rejection, order.client_order_id))
        return SubmitResult(False, order.client_order_id, rejection, order.status)

    async def cancel(
        self, client_order_id: str, *, actor: str = "system", source: AuditSource = AuditSource.SYSTEM,
        operator: Actor | None = None,
    ) -> CancelResult:
        """Ask the broker to cancel a working order. Allowed in every trading state; cancels jump the governor's queue.

        With ``operator`` (a person at the desk) the permission table decides: CANCEL_ANY, or
        CANCEL_OWN for the operator's own order; a refusal is audited. Without one (the kill switch,
        flatten, the system) the cancel is not asked for authority: taking risk off is never blocked.
        """
        order = self.oms.get(client_order_id)
        if order is None:
            return CancelResult(False, client_order_id, "no such order")
        if operator is not None:
            actor = operator.name
            refused = _cancel_refusal(operator, order)
            if refused is not None:
                log.warning("cancel of %s refused: %s", client_order_id, refused)
                self.record(
                    AuditEventType.CANCEL_REQUESTED,
                    {"client_order_id": client_order_id, "order_actor": order.actor, "refused": refused}, actor, source,
                )
                return CancelResult(False, client_order_id, refused)
        if not order.status.is_working:
            return CancelResult(False, client_order_id, f"order is {order.status}, not working")
        if self.lifecycle not in (Lifecycle.RUNNING, Lifecycle.STOPPING):
            return CancelResult(False, client_order_id, f"engine is {self.lifecycle}")
        if not order.cancel_requested:
            # A cancel still goes out when the store fails: it only ever reduces risk.
            await self.durable_or_log(
                AuditEventType.CANCEL_REQUESTED,
                {"client_order_id": client_order_id, "broker_order_id": order.broker_order_id}, actor, source,
            )
        order.cancel_requested = True
        if order.broker_order_id is None:
            return CancelResult(True, client_order_id, "cancel will be sent as soon as the broker acknowledges the order")
        try:
            await self.call_broker(self.broker.cancel(order.broker_order_id), CallKind.CANCEL, BrokerCall.CANCEL)
        except BrokerError as exc:
            # Not known to have reached the broker: the next cancel (a kill-switch round) sends it again.
            order.cancel_requested = False
            if exc.code is BrokerErrorCode.ALREADY_FINAL:
                return self._already_final(order, exc.message, actor, source)
            self.broker_failed(exc)
            return CancelResult(False, client_order_id, exc.message)
        except TimeoutError:
            order.cancel_requested = False
            return CancelResult(False, client_order_id, f"no answer from the broker within {self.config.broker_call_timeout}s")
        return CancelResult(True, client_order_id, "cancel sent")

    async def modify(
        self, client_order_id: str, *, quantity: int | None = None, price: Decimal | str | None = None, operator: Actor,
    ) -> ModifyResult:
        """Change a working order's quantity (units, the whole order's, filled part included) or price (rupees).

        Only the order's own trader (TRADE, and the order's actor): a risk officer cancels, never
        re-prices. The order must be acknowledged, not UNKNOWN, not being cancelled or modified, and
        not left with a modify whose outcome is unknown. The new terms pass the risk gate with the
        order's working contribution replaced by the new one (``RiskGate.check_modify``: HALTED
        refuses every modify, REDUCING only one that reduces). Then, as a new order goes: the rate
        governor (MODIFY), the durable ``order.modify`` record, the broker call under a timeout.
        While the call is out the order counts at the larger of its old and new terms; the broker's
        answer, or its order book when the answer is lost, settles them (see ``app.engine.modify``).
        Never raises.
        """
        return await self.modifier.modify(client_order_id, quantity=quantity, price=price, operator=operator)

    def preview_modify(
        self, client_order_id: str, *, quantity: int | None = None, price: Decimal | str | None = None,
        operator: Actor | None = None,
    ) -> OrderPreview:
        """What ``modify`` would meet now, for the modify dialog while it is typed; sends and counts nothing.

        The order's own state and the new terms first (the first problem only); then every check of
        the gate the new terms would fail, with the order's working contribution replaced as
        ``modify`` replaces it, the price, the value of the whole new order and the headroom after it.
        With ``operator`` the permission to modify is checked too.
        """
        return self.modifier.preview(client_order_id, quantity=quantity, price=price, operator=operator)

    def _already_final(self, order: Order, message: str, actor: str, source: AuditSource) -> CancelResult:
        """The broker refused the cancel because the order already ended: the cancel's answer, not a
        broker fault (the error-storm breaker does not count it). The order's real state is read (its
        own update, or the book) and audited with the refusal by ``_settle_final``."""
        log.info("cancel of %s: the broker says it already ended (%s); reconciling", order.client_order_id, message)
        self._final_answers[order.client_order_id] = _FinalAnswer(message, actor, source)
        if self._final_settler is None or self._final_settler.done():
            self._final_settler = self.supervisor.spawn("reconcile.already_final", self._settle_final())
        return CancelResult(True, order.client_order_id, f"nothing to cancel: the order already ended at the broker ({message})")

    async def _settle_final(self) -> None:
        """Settle the orders whose cancel found them already final. The broker's own update usually
        closes them within moments; only those still working then cost a read of the book (one read
        for however many refusals came meanwhile)."""
        while self._final_answers:
            await asyncio.sleep(_FINAL_SETTLE_S)
            answers, self._final_answers = self._final_answers, {}
            open_ids = {cid for cid in answers if (o := self.oms.get(cid)) is not None and o.status.is_working}
            from_book = "the broker's order book"
            if open_ids:
                try:
                    await self.reconcile()
                except (BrokerError, TimeoutError) as exc:
                    from_book = f"nothing yet: the broker's order book could not be read ({exc or type(exc).__name__})"
            for cid, answer in answers.items():
                order = self.oms.get(cid)
                if order is None:
                    continue
                if order.status.is_working:
                    # The broker's word and its book disagree (or the book could not be read): a person looks.
                    self.alert(
                        AlertLevel.WARNING, "broker",
                        f"the broker refused the cancel of {cid} as already ended ({answer.message}), yet the order is "
                        f"still {order.status} at the desk (read from {from_book}): cancel it again or check it at the broker",
                    )
                self.record(
                    AuditEventType.CANCEL_ALREADY_FINAL,
                    {"client_order_id": cid, "broker_order_id": order.broker_order_id, "broker_message": answer.message,
                     "status": order.status, "filled_quantity": order.filled_quantity,
                     "reconciled_from": from_book if cid in open_ids else "the broker's order update"},
                    answer.actor, answer.source,
                )

    async def _order_book(self) -> Sequence[BookRow]:
        try:
            return await self.call_broker(self.broker.order_book(), CallKind.READ, BrokerCall.ORDER_BOOK)
        except BrokerError as exc:
            self.broker_failed(exc)
            raise

    async def reconcile(self, *, at_start: bool = False) -> ReconcileReport:
        """Fetch the broker's order book and bring the desk's orders in line with it (``at_start``: see
        ``OrderManager.reconcile``; every stored working order the book does not list is settled)."""
        report = self.oms.reconcile(
            await self._order_book(), at_start=at_start, book_outlives_desk=self.broker.capabilities.book_outlives_desk,
        )
        if report.adopted or report.missing_at_broker or report.problems:
            log.warning(
                "reconcile: adopted %s, missing at broker %s, problems %s",
                report.adopted, report.missing_at_broker, report.problems,
            )
        if report.unreadable:
            self.alert(
                AlertLevel.WARNING, "broker",
                f"{len(report.unreadable)} rows of the broker's order book are unreadable; orders marked UNKNOWN "
                f"stay counted as working: {'; '.join(report.unreadable[:3])}",
            )
        return report

    def _order_feed_gap(self, reason: str) -> None:
        """The broker lost an order notification (a fill, say): read its order book again. Asks that come
        while a read waits or runs make one more read after it, however many they are."""
        if self.lifecycle is not Lifecycle.RUNNING:
            return
        self._book_stale = True
        if self._book_reread is None or self._book_reread.done():
            log.warning("an order notification was lost (%s); reading the broker's order book again", reason)
            self._book_reread = self.supervisor.spawn("reconcile.order_feed_gap", self._reread_book())

    async def _reread_book(self) -> None:
        while self._book_stale:
            self._book_stale = False
            try:
                await self.reconcile()
            except (BrokerError, TimeoutError) as exc:
                self.alert(
                    AlertLevel.WARNING, "broker",
                    f"an order notification was lost and the order book could not be read again "
                    f"({exc or type(exc).__name__}); the desk's orders may be behind the broker's until the book is read",
                )
                return

    async def reconcile_working(self) -> int:
        """Reconcile, and return how many orders the broker's book itself shows as working."""
        book = await self._order_book()
        self.oms.reconcile(book)
        # An unreadable row may be a working order: it counts until the broker says otherwise.
        return sum(1 for row in book if (row.may_be_working if isinstance(row, UnreadableOrder) else row.status.is_working))

    async def broker_positions(self) -> list[BrokerPosition]:
        """The broker's own positions (a governed read)."""
        return await self.call_broker(self.broker.positions(), CallKind.READ, BrokerCall.POSITIONS)

    async def call_broker(
        self, call: Awaitable[T], kind: CallKind | None, method: BrokerCall | None = None, *, named: BrokerCall | None = None,
    ) -> T:
        """Every broker call waits for the governor (``kind``; ``None`` when the caller already did),
        is bounded by a timeout and counted as in flight for a graceful drain. ``method`` prices the
        call in the broker's API calls (hidden SDK calls included); one that costs none is not governed.
        Its latency and failures are counted under ``method`` (or ``named``, when the caller priced it)."""
        self._inflight += 1
        self._idle.clear()
        calls = self.broker.capabilities.calls(method) if method is not None else 1
        label = str(method or named or "other")
        try:
            if kind is not None and calls > 0:
                try:
                    await self.governor.acquire(kind, calls)
                except BaseException:
                    if asyncio.iscoroutine(call):
                        call.close()
                    raise
            started = time.perf_counter()
            try:
                result = await asyncio.wait_for(call, self.config.broker_call_timeout)
            except BrokerError as exc:
                self.call_stats.failed(label, str(exc.code))
                raise
            except TimeoutError:
                self.call_stats.failed(label, "timeout")
                raise
            except Exception as exc:
                self.call_stats.failed(label, type(exc).__name__)
                raise
            finally:
                self.call_stats.observe(label, time.perf_counter() - started)
            self._rtt.add(time.perf_counter() - started)
            return result
        except TimeoutError:
            self.breakers.errors.add(self.clock_ns())
            raise
        finally:
            self._inflight -= 1
            if self._inflight == 0:
                self._idle.set()

    # -- broker streams --------------------------------------------------------------------------

    async def _pump_ticks(self) -> None:
        publish = self.bus.publish
        async for tick in self.broker.ticks():
            publish(tick)
        self._stream_ended("ticks")

    async def _pump_order_updates(self) -> None:
        async for update in self.broker.order_updates():
            self.oms.apply_update(update)
        self._stream_ended("order updates")

    def _stream_ended(self, stream: str) -> None:
        if self.lifecycle is Lifecycle.RUNNING:
            name = self.broker.capabilities.name
            self.bus.publish(BrokerStatus(name, False, f"{stream} stream ended", self.clock_ns()))
            self.alert(AlertLevel.CRITICAL, "broker", f"{name} {stream} stream ended unexpectedly")


class EnginePorts:
    """The engine's side of the risk components' ports (``risk.ports``, ``risk.breakers.BreakerOps``).

    It reads the engine's attributes at each call, never caches them: the governor is replaced at
    resume (and by the benchmarks), the kill switch by tests.
    """

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    # -- DeskOps ---------------------------------------------------------------------------------

    def halt(self, reason: str, actor: str, *, restate: bool = False) -> None:
        self._engine.halt(reason, actor, restate=restate)

    def working_orders(self) -> list[Order]:
        return self._engine.oms.working()

    def order(self, client_order_id: str) -> Order | None:
        return self._engine.oms.get(client_order_id)

    async def cancel(self, client_order_id: str, *, actor: str, source: AuditSource) -> CancelResult:
        return await self._engine.cancel(client_order_id, actor=actor, source=source)

    def record(self, event: AuditEventType, payload: dict[str, Any], actor: str, source: AuditSource) -> None:
        self._engine.record(event, payload, actor, source)

    async def durable_or_log(self, event: AuditEventType, payload: dict[str, Any], actor: str, source: AuditSource) -> None:
        await self._engine.durable_or_log(event, payload, actor, source)

    # -- SweepOps and CancelPacer ----------------------------------------------------------------

    def clock_ns(self) -> int:
        return self._engine.clock_ns()

    def publish(self, event: object) -> None:
        self._engine.bus.publish(event)

    def alert(self, level: AlertLevel, component: str, message: str) -> None:
        self._engine.alert(level, component, message)

    def spawn(self, name: str, coro: Coroutine[Any, Any, T]) -> asyncio.Task[T]:
        return self._engine.supervisor.spawn(name, coro)

    async def wait_started(self) -> bool:
        return await self._engine.wait_started()

    async def reconcile_working(self) -> int:
        return await self._engine.reconcile_working()

    def entries_waiting(self) -> int:
        return self._engine.governor.entries_waiting

    def drop_queued(self, reason: str) -> int:
        return self._engine.governor.drop_pending(reason)

    def expected_seconds(self, cancels: int) -> float:
        return self._engine.governor.expected_seconds(cancels)

    def round_trip_s(self) -> float:
        return self._engine.round_trip_s()

    # -- FlattenOps ------------------------------------------------------------------------------

    def reduce_only(self, reason: str, actor: str) -> None:
        self._engine.reduce_only(reason, actor)

    async def submit(self, request: OrderRequest) -> SubmitResult:
        return await self._engine.submit(request)

    async def reconcile(self) -> ReconcileReport:
        return await self._engine.reconcile()

    async def broker_positions(self) -> list[BrokerPosition]:
        return await self._engine.broker_positions()

    def open_positions(self) -> dict[str, int]:
        portfolio = self._engine.portfolio
        return {key: portfolio.position(key) for key in portfolio.open_instruments()}

    def instrument(self, instrument_key: str) -> Instrument | None:
        return self._engine.instruments.get(instrument_key)

    def max_order_quantity(self, instrument: Instrument) -> int | None:
        limits = self._engine.gate.limits.for_instrument(instrument)
        return limits.max_order_quantity if limits is not None else None

    # -- BreakerOps ------------------------------------------------------------------------------

    def breaker_readings(self) -> BreakerReadings:
        engine = self._engine
        now = engine.clock_ns()
        limits = engine.gate.limits
        pnl = engine.day_pnl.current(now)
        hours, calendar, market = limits.desk.enforce_trading_hours, engine.gate.calendar, engine.market_data
        halted = engine.trading_state is TradingState.HALTED
        prices = []
        # A halted desk trips nothing: its price ages are not read (nor can a failing read stop the breakers).
        for key in () if halted else engine.exposed_instruments():
            instrument = engine.instruments.get(key)
            if instrument is None:
                continue
            last = market.last(key)
            prices.append(PriceReading(
                key, not hours or calendar.is_open(instrument.exchange, now), last.ts_ns if last is not None else None,
            ))
        storm_ns = int(limits.breakers.error_storm_seconds * 1_000_000_000)
        exposure = engine.portfolio.exposure
        return BreakerReadings(
            now_ns=now, desk=limits.desk, limits=limits.breakers,
            halted=halted, pnl=pnl, peak_pnl=engine.day_pnl.peak,
            broker_down_since_ns=engine.broker_down_since_ns, started_ns=engine.started_ns, prices=tuple(prices),
            recent_errors=engine.breakers.errors.count_since(now - storm_ns),
            gross_exposure=exposure.gross, net_exposure=abs(exposure.net),
            orders_today=engine.risk_book.orders_on(now), open_orders=engine.risk_book.open_orders,
        )

    def breaker_tripped(self, event: BreakerTripped) -> None:
        engine = self._engine
        engine.kill_switch.engage(f"breaker {event.breaker}: {event.detail}", "system", AuditSource.BREAKER)
        engine.record(
            AuditEventType.BREAKER_TRIPPED,
            {"breaker": event.breaker, "detail": event.detail, "value": event.value, "limit": event.limit},
            "system", AuditSource.BREAKER,
        )
        engine.bus.publish(event)


def _request_payload(request: OrderRequest) -> dict[str, Any]:
    # repr() of what arrived: the record must show exactly what a source sent, garbage included.
    return {
        "instrument": repr(request.instrument_key) if not isinstance(request.instrument_key, str) else request.instrument_key,
        "side": repr(request.side) if not isinstance(request.side, str) else request.side,
        "quantity": repr(request.quantity),
        "price": repr(request.price),
        "order_type": str(request.order_type),
        "product": str(request.product),
        "tag": request.tag,
    }


# Sources whose orders go out in the name of someone who must be allowed to trade.
_NEEDS_AUTHORITY = frozenset({OrderSource.TICKET, OrderSource.API})


def _order_authority(request: OrderRequest, operator: Actor | None) -> Rejection | None:
    """A ticket order goes out in the name of the operator signed in at the desk, a local API order in
    its client's; either must be allowed to trade."""
    if operator is None:
        if request.source is OrderSource.API:
            return Rejection(RejectReason.NOT_AUTHORISED, "an API order needs an API client's authority", "nobody", str(Permission.TRADE))
        return Rejection(RejectReason.NOT_AUTHORISED, "nobody is signed in: sign in to send orders", "nobody", str(Permission.TRADE))
    if not operator.can(Permission.TRADE):
        role = operator.role or "no role"
        return Rejection(
            RejectReason.NOT_AUTHORISED, f"{operator.name} ({role}) may not trade", operator.name, str(Permission.TRADE),
        )
    if operator.name != request.actor:
        return Rejection(
            RejectReason.NOT_AUTHORISED, f"{operator.name} may not send an order in the name of {request.actor}",
            str(request.actor), operator.name,
        )
    return None


def _cancel_refusal(operator: Actor, order: Order) -> str | None:
    """Why ``operator`` may not cancel ``order``; None when the permission table allows it."""
    if operator.can(Permission.CANCEL_ANY):
        return None
    if operator.can(Permission.CANCEL_OWN):
        if order.actor == operator.name:
            return None
        return f"{operator.name} may cancel only their own orders; {order.client_order_id} is {order.actor}'s"
    return f"{operator.name} ({operator.role or 'no role'}) may not cancel orders"
