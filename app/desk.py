"""The one composition root: every front end (the GUI, ``simulate``) starts the desk here.

``Desk.start`` builds and starts, in this order: the data folder's desk identity, the desk lock
and the store (registering the desk there, with the audit writer), the broker (paper by default,
or what ``broker_factory`` makes) and the record of which broker this desk uses
(``last-desk.json``, before the broker hears anything, so a panic after a crash knows where the
orders are), this desk's slot of the broker account's rate limits (shared with the other desks on
the account; ``app.engine.account_lease``), the engine with its limits and trading calendar, the
control channel that ``main.py panic`` and ``rearm`` talk to (listening before the engine's start,
which may retry the broker's order book for a while), the engine's start, the backup schedule, and
the front end's services (the local API). ``Desk.stop`` undoes it in reverse: services, control
channel, engine (which drains and disconnects), the ``app.stop`` audit record; ``Desk.close`` then
closes the writer and releases the account's slot and the lock.

A front end adds widgets or a report; it never starts an engine another way.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import gc
import logging
import math
import time
from collections.abc import Awaitable, Callable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from types import TracebackType
from typing import Any, Protocol, Self

from sqlalchemy import Engine as SqlEngine

from app import __version__
from app.brokers.base import Broker
from app.brokers.paper import PaperBroker, PaperConfig, load_universe
from app.brokers.paper.synthetic_universe import synthetic_universe
from app.brokers.paper.universe import UniverseEntry
from app.domain.actors import Actor, Permission
from app.domain.audit import AuditEventType, AuditSource
from app.domain.events import Alert, AlertLevel
from app.domain.india_time import ist_day
from app.domain.instruments import Exchange, Segment
from app.domain.trading_state import TradingState
from app.engine.account_lease import AccountLease
from app.engine.config import EngineConfig
from app.engine.control import ControlServer
from app.engine.engine import Engine
from app.engine.halt_watch import HaltWatch
from app.engine.risk.calendar import TradingCalendar
from app.engine.risk.calendar_data import CalendarLoad, load_effective
from app.engine.risk.calendar_registry import CalendarVersion
from app.engine.risk.limits import RiskLimits, load_limits_file, parse_document
from app.security.accounts import AuthError
from app.security.api_clients import ApiClientDirectory
from app.security.operators import OperatorDirectory
from app.store.account_leases import AccountFull, check_slots
from app.store.audit_writer import AuditWriter
from app.store.backup import BackupInfo, BackupScheduler
from app.store.checkpoints import (
    chain_tail,
    checkpoint_file,
    refuse_forgotten_store,
    refuse_rolled_back_store,
    write_checkpoint,
)
from app.store.desk_identity import (
    DeskIdentity,
    RegisteredDesk,
    load_or_create,
    mark_stopped,
    register,
    unfoldered,
)
from app.store.desk_lock import DESK_APPLICATION_NAME, DeskLock
from app.store.desk_state import DeskScope, unclean_end
from app.store.last_desk import record_last_desk
from app.store.migrate import open_store
from app.store.redaction import Redactor
from app.store.spool import spool_file
from app.store.verify import VerifyResult, verify_chain

log = logging.getLogger(__name__)

DEFAULT_LIMITS = Path(__file__).resolve().parent.parent / "resources" / "limits.toml"
# Past the file's instruments the universe is generated; a desk of this many still keeps up.
MAX_INSTRUMENTS = 2_000
# Minutes into the session the clock starts at when the market is closed now: past the opening
# minutes' auction noise, like a desk that starts trading a little after the open.
_SESSION_START_OFFSET_NS = 5 * 60 * 1_000_000_000

# Builds the broker (another than the paper market) from the universe entries to trade and the
# desk's clock; returns it with the entries as that broker defines the instruments.
BrokerFactory = Callable[[list[UniverseEntry], Callable[[], int]], Awaitable[tuple[Broker, list[UniverseEntry]]]]
ControlHandler = Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]
# Extra commands for the control channel, given the running engine.
ControlHandlers = Callable[[Engine], dict[str, ControlHandler]]


class DeskService(Protocol):
    """Something a front end runs beside the engine for the desk's life (the local API): started once the
    engine runs, stopped before it stops, so no request reaches an engine that is going away."""

    name: str

    async def start(self, desk: Desk) -> None:
        """Start serving; raise with a reason the operator can act on when it cannot."""

    async def stop(self) -> None:
        """Stop serving; never raises."""


class DeskError(ValueError):
    """The desk cannot start with these options."""


@dataclass(frozen=True, slots=True)
class DeskOptions:
    """What desk to build. ``instruments=None`` trades the paper universe file as it is."""

    command: str
    database_url: str | None = None
    # The data folder: the control channel's key file and the last-desk record live there.
    home: Path | None = None
    limits_path: Path | None = None
    instruments: int | None = None
    seed: int = 1
    paper: PaperConfig = field(default_factory=PaperConfig)
    engine: EngineConfig = field(default_factory=EngineConfig)
    secrets: tuple[str, ...] = field(default=(), repr=False)
    backups_dir: Path | None = None
    backup_time: dt.time = dt.time(16, 0)
    settings_summary: dict[str, Any] = field(default_factory=dict)
    broker_factory: BrokerFactory | None = None
    # The calendar in force (default: the shipped file alone).
    calendar: CalendarLoad | None = None
    # When the market is closed (or closes within this many seconds), the desk's clock runs from just
    # after the next open: the paper market is simulated, so a newcomer can trade it at any hour. A
    # desk on a real broker keeps real time (``None``).
    session_horizon_s: float | None = 0.0
    # More for the app.start audit record (what the front end was asked to do).
    start_details: dict[str, Any] = field(default_factory=dict)
    # Run beside the engine once it has started (the local API); stopped first.
    services: tuple[DeskService, ...] = ()
    # How many desks may share the broker account's rate limits (firm.desks_per_account; the database's number wins).
    desks_per_account: int = 1

    def __post_init__(self) -> None:
        try:
            check_slots(self.desks_per_account)
        except ValueError as exc:
            raise DeskError(str(exc)) from None
        if self.instruments is not None and not 1 <= self.instruments <= MAX_INSTRUMENTS:
            raise DeskError(f"--instruments must be between 1 and {MAX_INSTRUMENTS}, got {self.instruments}")
        if self.session_horizon_s is not None and (not math.isfinite(self.session_horizon_s) or self.session_horizon_s < 0):
            raise DeskError(f"the session horizon must be a non-negative number of seconds, got {self.session_horizon_s}")


def session_clock(calendar: TradingCalendar, now_ns: int, seconds: float) -> Callable[[], int]:
    """Real time if the market is open for the next ``seconds``; otherwise real time shifted to just after the next open."""
    end_ns = now_ns + int((seconds + 60) * 1e9)
    if not (calendar.is_open(Exchange.NSE, now_ns) and calendar.is_open(Exchange.NSE, end_ns)):
        next_open = calendar.next_open_ns(Exchange.NSE, now_ns)
        if next_open is None:
            year = calendar.last_covered_day.year + 1
            raise DeskError(
                f"the desk's trading calendar has no session after {calendar.last_covered_day}: import the {year} "
                f"holidays (main.py calendar import FILE) or accept weekdays as sessions "
                f"(main.py calendar accept-weekdays {year} --reason ...)"
            )
        offset = next_open + _SESSION_START_OFFSET_NS - now_ns
        return lambda: time.time_ns() + offset
    return time.time_ns


def synthetic_limits(
    underlyings: list[str], futures: Sequence[UniverseEntry] = (), shipped: Path = DEFAULT_LIMITS,
) -> RiskLimits:
    """The shipped limits plus an ``[underlyings.NAME]`` section per synthetic underlying, holding the file's ``[defaults]``,
    and for each synthetic future an ``[instruments."KEY"]`` section sized for one lot.

    Default deny stays for everything real: no section of the file changes and only these names
    gain one. The data folder's limits cannot be used instead: they name no synthetic underlying,
    and a desk must not store a limits version for instruments that exist only in this market. A
    future's lot is worth more than the defaults' order value, so without its own section the demo
    could never trade one; its key is stable for the run (the universe is rolled once, at start).
    """
    document = load_limits_file(shipped).document()
    sections = document.setdefault("underlyings", {})
    for name in underlyings:
        if name in sections:
            raise DeskError(f"synthetic underlying {name} already has a section in {shipped}")
        sections[name] = dict(document["defaults"])
    contracts = document.setdefault("instruments", {})
    for entry in futures:
        lot_rupees = entry.instrument.lot_size * entry.start_price / 100
        # A quarter above one lot at the start price, in whole thousands: room for the walk, not for a second lot.
        cap = math.ceil(lot_rupees * 1.25 / 1000) * 1000
        contracts[entry.instrument.key] = {
            "max_order_lots": 1, "max_position_lots": 2, "max_order_value_inr": cap, "max_position_value_inr": 2 * cap,
        }
    return parse_document(document, f"{shipped} with its [defaults] for {len(underlyings)} synthetic underlyings")


class Desk:
    """A running desk: store, broker, engine, control channel, backups and the desk lock, started and stopped in order.

    Use as ``async with Desk(options) as desk:`` or call ``start``, ``stop`` and ``close``. The
    engine exists from construction (its bus can be subscribed to before the start); ``start``
    raises ``StoreError`` (store unusable, or another desk holds it), ``DeskError``,
    ``CalendarError``/``LimitsError`` or ``EngineStartError``; ``close`` then releases what it had built.
    """

    def __init__(self, options: DeskOptions, *, control_handlers: ControlHandlers | None = None) -> None:
        self.options = options
        self.calendar_load = options.calendar if options.calendar is not None else load_effective(None)
        self.calendar = TradingCalendar(self.calendar_load.calendar)
        now = time.time_ns()
        self.clock_ns: Callable[[], int] = (
            session_clock(self.calendar, now, options.session_horizon_s) if options.session_horizon_s is not None else time.time_ns
        )
        day = ist_day(self.clock_ns())
        universe = load_universe(session_day=day, is_session=self.calendar.is_session_day)
        count = options.instruments if options.instruments is not None else len(universe)
        self.entries = synthetic_universe(count, seed=options.seed, session_day=day, is_session=self.calendar.is_session_day, base=universe)
        self.synthetic = sorted({e.instrument.underlying for e in self.entries[len(universe):]})
        if self.synthetic and options.broker_factory is not None:
            raise DeskError(
                f"--instruments must be at most {len(universe)} with a broker other than paper: the instruments past "
                "the paper universe file are synthetic and exist only in the paper market"
            )
        self.broker: Broker | None = None
        self.engine: Engine | None = None
        self.writer: AuditWriter | None = None
        self._operators: OperatorDirectory | None = None
        self._api_clients: ApiClientDirectory | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.limits_source = ""
        self.calendar_version: CalendarVersion | None = None
        self._control_handlers = control_handlers
        self._control: ControlServer | None = None
        self._services: list[DeskService] = []
        self._resources = ExitStack()
        self._stopping: asyncio.Future[None] | None = None
        # Why the last run on this store did not stop cleanly (read at start); this run then starts HALTED.
        self.unclean_end: str | None = None
        # Which desk this is: the data folder's id (created at its first start), registered in the store.
        self.identity: DeskIdentity = unfoldered()
        self.registered: RegisteredDesk | None = None
        # This desk's slot of the broker account's rate limits (a desk with a store holds one while it runs).
        self.account_lease: AccountLease | None = None

    async def __aenter__(self) -> Self:
        try:
            await self.start()
        except BaseException:
            await self.close()
            raise
        return self

    async def __aexit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        try:
            await self.stop()
        finally:
            await self.close()

    @property
    def running_engine(self) -> Engine:
        """The engine, once ``start`` has built it."""
        if self.engine is None:
            raise RuntimeError("the desk has not started")
        return self.engine

    async def start(self, on_engine: Callable[[Engine], None] | None = None) -> Engine:
        """Build and start everything; ``on_engine`` sees the engine as soon as it exists, before its start
        (a window attaches there, so a kill switch pressed during a long start already reaches it)."""
        options = self.options
        tail_key: str | None = None
        order_id_stem: str | None = None
        store: SqlEngine | None = None
        if options.home is not None:
            self.identity = await asyncio.to_thread(load_or_create, options.home)
        if options.database_url is not None:
            lock = DeskLock(options.database_url, self.identity.desk_id)
            await asyncio.to_thread(lock.__enter__)
            self._resources.push(lock.__exit__)
            if options.home is not None:
                await asyncio.to_thread(refuse_forgotten_store, options.database_url, options.home)
            store = await asyncio.to_thread(open_store, options.database_url, application_name=DESK_APPLICATION_NAME)
            if options.home is not None:
                await asyncio.to_thread(refuse_rolled_back_store, store, options.home)
            self.registered = await asyncio.to_thread(register, store, self.identity)
            order_id_stem = self.registered.order_id_stem(options.engine.client_id_prefix)
            scope = DeskScope(self.identity.desk_id, legacy=self.registered.adopted_legacy)
            tail_key = (await asyncio.to_thread(chain_tail, store))[2]
            # The desk keys the chain (a new key in the OS keyring) when it is not keyed yet. Through a database
            # outage its records wait in the data folder's spool; one a dead run left is written first, here.
            self.writer = AuditWriter(store, redactor=Redactor(options.secrets), create_key=True, desk_id=self.identity.desk_id,
                                      spool=spool_file(options.home) if options.home is not None else None)
            await asyncio.to_thread(self.writer.start)
            # Before this run's own app.start: did this desk's last run record a clean stop?
            self.unclean_end = await asyncio.to_thread(unclean_end, store, scope)
            self._loop = asyncio.get_running_loop()
            self._operators = OperatorDirectory(store, self._record_operator_event)
            # Reads the clients table once (off the loop); audited like operator changes.
            self._api_clients = await asyncio.to_thread(ApiClientDirectory, store, self._record_operator_event)
        entries = self.entries
        broker: Broker
        if options.broker_factory is None:
            # Each run's market numbers its orders under this run's own stem: ids (and fill ids) never repeat.
            paper = replace(options.paper, wall_clock_ns=self.clock_ns)
            if order_id_stem is not None:
                paper = replace(paper, order_id_prefix=f"P{order_id_stem}-")
            broker = PaperBroker(paper, universe=entries)
        else:
            broker, entries = await options.broker_factory(entries, self.clock_ns)
            self.entries = entries
        self.broker = broker
        if options.home is not None:
            # Before the broker hears anything: a panic after this desk dies must know where its orders are.
            await asyncio.to_thread(record_last_desk, options.home, broker.capabilities.name)
        if store is not None:
            try:
                self.account_lease = await AccountLease.claim(
                    store, broker.capabilities, self.identity.desk_id, options.desks_per_account, ist_day(self.clock_ns()).isoformat()
                )
            except AccountFull as exc:
                raise DeskError(str(exc)) from None
        limits = self._limits(entries)
        engine = Engine(
            broker, [e.instrument for e in entries], options.engine, audit=self.writer, clock_ns=self.clock_ns,
            limits=limits if isinstance(limits, RiskLimits) else None, calendar=self.calendar,
            desk_id=self.identity.desk_id, order_id_stem=order_id_stem,
            account_share=self.account_lease.share if self.account_lease is not None else None,
        )
        self.engine = engine
        if self.writer is not None:
            await self.writer.append(
                AuditEventType.APP_START,
                {"command": options.command, "version": __version__, **options.start_details, "seed": options.seed, "instruments": len(entries),
                 "synthetic_underlyings": len(self.synthetic), "limits": self.limits_source,
                 "settings": options.settings_summary},
                actor="system", source=AuditSource.SYSTEM,
            )
            if tail_key is not None and self.writer.key_fingerprint != tail_key:
                engine.alert(
                    AlertLevel.CRITICAL, "audit",
                    f"the audit chain's key {tail_key} is not in this machine's keyring: the chain goes on under a new "
                    f"key {self.writer.key_fingerprint}, and the records before it verify only where {tail_key} is",
                )
            if self.writer.key_fingerprint is None:
                engine.alert(
                    AlertLevel.WARNING, "audit",
                    "the audit chain is not keyed: this machine has no secure keyring, so anyone who can write the "
                    "database could recompute the chain undetected; checkpoints and digests kept elsewhere still pin it. "
                    "Set up the encrypted keyring file (main.py keyring use-file) and restart the desk",
                )
        # After app.start, so a kill pressed while the desk opened its store is recorded after it.
        if on_engine is not None:
            on_engine(engine)
        if self.account_lease is not None:
            # After on_engine: a window attached there shows the lease's warning.
            self.account_lease.attach(engine)
        if isinstance(limits, Path):
            await engine.load_limits(limits, DEFAULT_LIMITS)
        self.calendar_version = await engine.record_calendar(self.calendar_load)
        if options.home is not None:
            # Listening before the start: it may retry the broker's book for a while, and a panic then
            # must reach this engine, which halts at once and sweeps once the start is over.
            handlers: dict[str, ControlHandler] = {
                "panic": lambda args: panic_handler(engine, args),
                "rearm": lambda args: rearm_handler(engine, args, self._operators),
            }
            if self._control_handlers is not None:
                handlers.update(self._control_handlers(engine))
            self._control = ControlServer(options.home, handlers)
            await self._control.start()
        if self.writer is not None and options.database_url is not None:
            # Panic's second way in, whatever happens to the channel: the HALTED flag it writes first.
            await HaltWatch(engine, self.writer, options.database_url).start()
        await engine.start(unclean=self.unclean_end)
        if self.writer is not None and options.backups_dir is not None and options.database_url is not None:
            scheduler = BackupScheduler(
                options.database_url, options.backups_dir, options.backup_time,
                on_done=lambda outcome: _backup_done(engine, outcome),
                checkpoints=checkpoint_file(options.home) if options.home is not None else None,
            )
            engine.supervisor.spawn("backup.scheduler", scheduler.run())
        for service in options.services:
            await self._start_service(engine, service)
        # Everything built so far lives as long as the desk (modules, the universe, limits, the API's
        # app): out of the collector's sight until ``close``. A full collection otherwise walks it all on
        # the loop: measured 67-74 ms pauses under the local API's load, every order waiting behind them.
        gc.freeze()
        return engine

    async def _start_service(self, engine: Engine, service: DeskService) -> None:
        """A service that cannot start is said loudly, but the desk runs on: its window, kill switch and
        control channel do not depend on it."""
        try:
            await service.start(self)
        except Exception as exc:
            log.exception("the %s did not start", service.name)
            engine.alert(AlertLevel.CRITICAL, service.name, f"the {service.name} is not running: {exc}")
            return
        self._services.append(service)

    async def _stop_services(self) -> None:
        services, self._services = self._services, []
        for service in reversed(services):
            try:
                await service.stop()
            except Exception:
                log.exception("the %s did not stop cleanly", service.name)

    @property
    def operators(self) -> OperatorDirectory:
        """The operator accounts, once ``start`` has opened the store (a desk without a store has none)."""
        if self._operators is None:
            raise RuntimeError("the desk has no store open, so no operator accounts")
        return self._operators

    @property
    def api_clients(self) -> ApiClientDirectory:
        """The local API's clients, once ``start`` has opened the store (a desk without a store has none)."""
        if self._api_clients is None:
            raise RuntimeError("the desk has no store open, so no API clients")
        return self._api_clients

    def _record_operator_event(self, event: AuditEventType, payload: dict[str, Any], actor: str, source: AuditSource) -> None:
        """The operators' audit sink. A sign-in runs in a worker thread (argon2 blocks), and the engine's
        recorder lives on the loop: its records go there, in order; before the engine exists, the writer's."""
        engine, loop = self.engine, self._loop
        if engine is not None and engine.recorder is not None and loop is not None:
            try:
                on_loop = asyncio.get_running_loop() is loop
            except RuntimeError:
                on_loop = False
            if on_loop:
                engine.record(event, payload, actor, source)
            else:
                loop.call_soon_threadsafe(engine.record, event, payload, actor, source)
        elif self.writer is not None:
            self.writer.append_blocking(event, payload, actor=actor, source=source)

    def _limits(self, entries: list[UniverseEntry]) -> RiskLimits | Path:
        """Limits that are not the data folder's versioned ones, or the data folder's file to load those from."""
        if self.synthetic:
            futures = [e for e in entries if e.instrument.underlying in self.synthetic and e.instrument.segment is Segment.FUTURES]
            self.limits_source = f"shipped {DEFAULT_LIMITS.name}, with its [defaults] for {len(self.synthetic)} synthetic underlyings"
            return synthetic_limits(self.synthetic, futures)
        if self.writer is not None and self.options.limits_path is not None:
            self.limits_source = f"data folder {self.options.limits_path.name}"
            return self.options.limits_path
        self.limits_source = f"shipped {DEFAULT_LIMITS.name}"
        return load_limits_file(DEFAULT_LIMITS)

    async def stop(self, **details: Any) -> None:
        """Close the control channel, stop the engine in order and record the stop (``details`` go into it).

        Each step runs even if an earlier one failed; a second call waits for the first.
        """
        if self._stopping is None:
            self._stopping = asyncio.ensure_future(self._stop(details))
        await asyncio.shield(self._stopping)

    async def _stop(self, details: dict[str, Any]) -> None:
        try:
            await self._stop_services()
            if self._control is not None:
                await self._control.close()
        finally:
            try:
                if self.engine is not None:
                    await self.engine.stop()
            finally:
                await self._record_stop(details)

    async def _record_stop(self, details: dict[str, Any]) -> None:
        """The ``app.stop`` record the next start looks for (``desk_state.unclean_end``): without it, or
        when it says the store failed or carries an unsettled unclean end, that start is HALTED."""
        if self.writer is None or self.engine is None:
            return
        engine = self.engine
        payload: dict[str, Any] = {"command": self.options.command, **details}
        if engine.recorder is not None and engine.recorder.failed:
            # A store that failed during the run lost records: the next start must not trust it blindly.
            payload["store_failed"] = True
        if self.writer.outages:
            # Its records were kept through the outage, but the next start must read the broker's book HALTED first.
            payload["store_outages"] = self.writer.outages
        if self.unclean_end is not None and engine.start_report is None:
            # This run never read the broker's book, so the last run's unclean end is still unsettled.
            payload["unclean_end"] = self.unclean_end
        try:
            await self.writer.append(AuditEventType.APP_STOP, payload, actor="system", source=AuditSource.SYSTEM)
            if self.registered is not None:
                # The firm view shows the desk stopped, not silent (its heartbeat ended with the engine).
                await self.writer.execute(partial(mark_stopped, desk_id=self.identity.desk_id))
        except Exception as exc:  # noqa: BLE001 - a failed store already halted the desk; the stop goes on
            log.error("the stop could not be recorded: %s", exc)

    async def verify(self) -> VerifyResult | None:
        """Check the audit chain the desk wrote to (``None`` without a store)."""
        if self.writer is None:
            return None
        return await asyncio.to_thread(partial(verify_chain, self.writer.engine, keys=self.writer.keys))

    async def close(self) -> None:
        """Stop what still runs (recording ``app.stop`` with ``"via": "close"`` if ``stop`` never ran: a start
        that failed, say), close the audit writer and release the desk lock: after ``stop``, or after a failed
        start. Each step runs even if one before failed."""
        try:
            if self._stopping is None:
                try:
                    await self._stop_services()
                    if self._control is not None:
                        await self._control.close()
                finally:
                    if self.engine is not None:
                        try:
                            await self.engine.stop()
                        finally:
                            await self._record_stop({"via": "close"})
        finally:
            try:
                if self.writer is not None:
                    await asyncio.to_thread(self.writer.close)
                    await self._checkpoint(self.writer)
            finally:
                try:
                    if self.account_lease is not None:
                        await self.account_lease.close()
                finally:
                    self._resources.close()
                # What start froze may be garbage now (another desk may start in this process: the tests).
                gc.unfreeze()

    async def _checkpoint(self, writer: AuditWriter) -> None:
        """Pin the chain's committed tail in the data folder's checkpoint file, outside the database: a
        later truncation or rewrite of the chain then fails ``audit verify``."""
        if self.options.home is None:
            return
        try:
            checkpoint = await asyncio.to_thread(write_checkpoint, writer, self.options.home, reason="stop")
        except Exception as exc:  # noqa: BLE001 - the stop goes on; the next verify still checks the chain itself
            log.error("the stop's audit checkpoint could not be written: %s", exc)
            return
        log.info("audit checkpoint at stop: %s", checkpoint.describe())


def _backup_done(engine: Engine, outcome: BackupInfo | Exception) -> None:
    if isinstance(outcome, Exception):
        log.error("scheduled backup failed: %s", outcome)
        engine.bus.publish(Alert(AlertLevel.WARNING, "backup", f"scheduled backup failed: {outcome}", time.time_ns()))
    elif engine.recorder is not None:
        engine.recorder.record(AuditEventType.BACKUP_CREATED, outcome.audit_payload(), actor="system", source=AuditSource.SYSTEM)


async def panic_handler(engine: Engine, args: dict[str, Any]) -> dict[str, Any]:
    """The running desk's answer to `main.py panic`: engage the kill switch and confirm HALTED."""
    reason = str(args.get("reason") or "panic")
    actor = str(args.get("actor") or "panic")
    run = engine.engage_kill_switch(reason, actor, AuditSource.PANIC)
    return {
        "ok": engine.trading_state is TradingState.HALTED,
        "state": str(engine.trading_state),
        "working": run.working_at_engage,
        "expected_clear_s": round(run.expected_clear_s, 3),
    }


async def rearm_handler(engine: Engine, args: dict[str, Any], operators: OperatorDirectory | None = None) -> dict[str, Any]:
    """The running desk's answer to `main.py rearm`: ``Engine.rearm`` with all its checks, or why not.

    Once the desk has operators, the request must carry an operator's name and password
    (``operator``, ``password``), checked here like a sign-in; the engine then asks the permission
    table whether that operator's role may re-arm. A request without them is answered
    ``operator_required``, so the command asks for them.
    """
    reason, actor, to = args.get("reason"), args.get("actor"), args.get("to", str(TradingState.ACTIVE))
    if not isinstance(reason, str) or not isinstance(actor, str) or to not in (TradingState.ACTIVE, TradingState.REDUCING):
        return {"ok": False, "error": "rearm needs a reason, an actor and a state to go to (ACTIVE or REDUCING)",
                "state": str(engine.trading_state)}
    # Until operators exist, the actor is the desk's OS user: only that user can read the control key.
    who = Actor(actor, frozenset({Permission.REARM}))
    if operators is not None and await asyncio.to_thread(operators.has_operators):
        name, password = args.get("operator"), args.get("password")
        if not isinstance(name, str) or not isinstance(password, str):
            return {"ok": False, "operator_required": True, "state": str(engine.trading_state),
                    "error": "this desk has operators: a re-arm needs an operator's name and password"}
        try:
            who = await asyncio.to_thread(operators.authenticate, name, password, purpose="authorise")
        except AuthError as exc:
            return {"ok": False, "error": str(exc), "state": str(engine.trading_state)}
    try:
        await engine.rearm(who, reason, to=TradingState(to))
    except (ValueError, PermissionError) as exc:
        return {"ok": False, "error": str(exc), "state": str(engine.trading_state)}
    return {"ok": True, "state": str(engine.trading_state)}
