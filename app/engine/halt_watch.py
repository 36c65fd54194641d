"""The second way in for ``main.py panic``, and the way in for the firm halt: the running desk watches the store.

``main.py panic`` first writes a HALTED row to ``trading_state`` (``app.store.halt_flag``), then
tells the desk over the control channel. A channel that is flooded, closed or published with the
wrong port must not leave the desk trading: ``HaltWatch`` reads the rows added to this desk's
``trading_state`` (its ``desk_id``: ``main.py panic --desk ID`` writes a colleague's) every ``POLL_S``
and, for a HALTED row the desk did not write itself, engages the kill switch with the row's reason
and actor (source PANIC), about ``POLL_S`` after the row's commit at most.

The firm halt (``app.store.firm_flag``): the same read takes the ``firm_state`` rows added since the
watch started. A HALTED one engages the kill switch (its reason naming the firm halt), holds every
re-arm of this desk until the firm is re-armed (``Engine.rearm_holds``) and records in ``firm_acks``
that this desk halted, then, once the sweep reports, how many orders it left working. An ACTIVE one
lifts the hold; the desk stays HALTED until it is re-armed on its own. A desk that starts while the
firm is HALTED halts at once. The watch's second thread writes those records and the desk's
heartbeat (``desks.seen_ns``, every ``HEARTBEAT_S``), so a slow write never delays a read.

Telling the desk's own rows apart: the recorder writes one row for every ``TradingStateChanged``
on the bus, with the event's state, reason and actor, and the event comes first. The watch notes
each event and takes the first matching row as the desk's own. A HALTED row whose panic is already
in force (the control channel got there first) engages nothing a second time. Any other row from
outside (a re-arm is only written from outside when no desk runs) is logged and left alone: only a
halt may reach a running desk this way.

The reads run on a thread of their own with a connection of their own, so neither a busy loop's
default executor nor the audit writer's queue can hold them up, and each ends its transaction at
once (no old snapshot kept open in SQLite's WAL). A failed read is logged once and retried; after
``ALERT_AFTER_FAILURES`` in a row the operator is alerted that this path is down.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING

from sqlalchemy import Connection, Table, func, select
from sqlalchemy import Engine as SqlEngine

from app.domain.audit import AuditEventType, AuditSource
from app.domain.events import AlertLevel, TradingStateChanged
from app.domain.trading_state import TradingState
from app.store.audit_writer import AuditWriter
from app.store.db import is_sqlite, make_engine
from app.store.desk_identity import heartbeat
from app.store.firm_flag import (
    HEARTBEAT_S,
    FirmState,
    firm_rows_after,
    newest_firm_state,
    record_halted,
    record_swept,
)
from app.store.models import TradingStateRow

from .risk.kill_switch import KillSwitchReport

if TYPE_CHECKING:
    from .engine import Engine

log = logging.getLogger(__name__)

_STATE: Table = TradingStateRow.__table__  # type: ignore[assignment]

# Well inside the 500 ms a panic's flag must take to halt the desk, and a read of an index's tail.
POLL_S = 0.1
# A read that has not answered in this long counts as failed (the next poll waits for the same one).
READ_TIMEOUT_S = 1.0
# Failed reads in a row before the operator hears that panic's second path is down (about 2 s).
ALERT_AFTER_FAILURES = 20
# An event whose row has not shown up in this long is forgotten (the write failed, and said so).
OWN_ROW_WAIT_S = 300.0
ROWS_PER_READ = 500
_PG_BOUNDS = {"connect_timeout": 2, "options": "-c statement_timeout=2000"}
# The name of the firm halt's hold on re-arming (``Engine.rearm_holds``).
FIRM_HOLD = "firm"
WRITE_TIMEOUT_S = 10.0

_Key = tuple[str, str, str]


@dataclass(frozen=True, slots=True)
class StateRow:
    """One ``trading_state`` row."""

    id: int
    ts_ns: int
    state: str
    reason: str
    actor: str


def _start_point(connection: Connection, desk_id: str) -> tuple[int, FirmState | None]:
    """The desk's newest trading-state row id and the firm state in force, in one snapshot."""
    newest = connection.execute(select(func.coalesce(func.max(_STATE.c.id), 0)).where(_STATE.c.desk_id == desk_id)).scalar_one()
    return int(newest), newest_firm_state(connection)


def _rows_after(store: SqlEngine, desk_id: str, after: int, firm_after: int) -> tuple[list[StateRow], list[FirmState]]:
    with store.connect() as connection:
        found = connection.execute(
            select(_STATE.c.id, _STATE.c.ts_ns, _STATE.c.state, _STATE.c.reason, _STATE.c.actor)
            .where(_STATE.c.desk_id == desk_id, _STATE.c.id > after).order_by(_STATE.c.id).limit(ROWS_PER_READ)
        ).all()
        firm = firm_rows_after(connection, firm_after)
    return [StateRow(row[0], row[1], row[2], row[3], row[4]) for row in found], firm


def _beat(store: SqlEngine, desk_id: str, now_ns: int) -> None:
    with store.begin() as connection:
        heartbeat(connection, desk_id, now_ns)


class HaltWatch:
    """Engages the engine's kill switch for a HALTED row another process adds to this desk's ``trading_state``
    (``main.py panic``) or to ``firm_state`` (``main.py panic --firm``), and keeps the desk's heartbeat.

    ``start`` notes where the tables end (after every row the desk had queued), halts the desk at once
    when the firm is HALTED, and runs the watch under the engine's supervisor, so the engine's stop ends
    it. ``engaged`` lists the desk's flags acted on, ``firm_engaged`` the firm halts.
    """

    def __init__(self, engine: Engine, writer: AuditWriter, database_url: str, *, poll_s: float = POLL_S,
                 heartbeat_s: float = HEARTBEAT_S, clock_ns: Callable[[], int] = time.time_ns) -> None:
        self._engine = engine
        self._writer = writer
        self._url = database_url
        self._desk_id = engine.desk_id
        self._poll_s = poll_s
        self._heartbeat_s = heartbeat_s
        # Real time, as the panic process stamps its row: the engine's clock may be a simulated session's.
        self._clock_ns = clock_ns
        self._expected: deque[tuple[_Key, float]] = deque()
        self._last_id = 0
        self._firm_last = 0
        self._failures = 0
        # The watch's writes (confirmations, heartbeats) run here, off the reads' thread.
        self._writes = ThreadPoolExecutor(max_workers=1, thread_name_prefix="halt-watch-write")
        # Firm halts this desk halted for whose sweep has not reported yet.
        self._unswept: list[int] = []
        self._beat_failed = False
        self.engaged: list[StateRow] = []
        self.firm_engaged: list[FirmState] = []

    async def start(self) -> None:
        """Begin watching the rows added from now on; raises ``StoreError`` if the store cannot be read."""
        self._engine.bus.subscribe(TradingStateChanged, self._on_state, critical=False, name="halt_watch")
        self._engine.bus.subscribe(KillSwitchReport, self._on_sweep, critical=False, name="halt_watch.sweep")
        # Through the writer's queue: every row of a change made before the subscription is then
        # committed and below this id, and every later one is announced on the bus first.
        self._last_id, firm = await self._writer.execute(partial(_start_point, desk_id=self._desk_id))
        if firm is not None:
            self._firm_last = firm.id
            if firm.halted:
                self._firm_halt(firm, "in force as the desk starts")
        # On PostgreSQL a read is bounded by the server too: the reader thread must not hang the desk's exit.
        store = make_engine(self._url) if is_sqlite(self._url) else make_engine(self._url, connect_args=_PG_BOUNDS)
        self._engine.supervisor.spawn("halt_watch", self._run(store))
        log.info("watching the store's trading state of desk %s and the firm state for a HALTED flag every %.0f ms "
                 "(after rows %d and %d)", self._desk_id, self._poll_s * 1000, self._last_id, self._firm_last)

    def _on_state(self, event: TradingStateChanged) -> None:
        self._expected.append(((str(event.current), event.reason, event.actor), time.monotonic()))

    async def _run(self, store: SqlEngine) -> None:
        loop = asyncio.get_running_loop()
        executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="halt-watch")
        read: asyncio.Future[tuple[list[StateRow], list[FirmState]]] | None = None
        beat: Future[None] | None = None
        next_beat = loop.time()
        try:
            while True:
                began = loop.time()
                if began >= next_beat and (beat is None or beat.done()):
                    if beat is not None:
                        self._beat_done(beat)
                    beat = self._writes.submit(_beat, store, self._desk_id, self._clock_ns())
                    next_beat = began + self._heartbeat_s
                if read is None:
                    read = loop.run_in_executor(executor, _rows_after, store, self._desk_id, self._last_id, self._firm_last)
                # asyncio.wait, not wait_for: it leaves the read running, and never swallows the stop's cancel.
                done, _ = await asyncio.wait({read}, timeout=READ_TIMEOUT_S)
                if not done:
                    self._read_failed(f"no answer within {READ_TIMEOUT_S:g}s")
                    continue  # the same read again: a stuck one must not pile up others behind it
                try:
                    rows, firm = read.result()
                except Exception as exc:  # noqa: BLE001 - a transient store error must not end the watch
                    read = None
                    self._read_failed(f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}")
                else:
                    read = None
                    if self._failures:
                        log.warning("the store's trading state can be read again after %d failed reads", self._failures)
                        if self._failures >= ALERT_AFTER_FAILURES:
                            self._engine.alert(AlertLevel.INFO, "halt_watch", "the persisted HALTED flag is watched again")
                        self._failures = 0
                    self._handle(rows)
                    self._handle_firm(firm)
                await asyncio.sleep(max(self._poll_s - (loop.time() - began), 0.0))
        finally:
            self._writes.shutdown(wait=False)
            executor.submit(store.dispose)
            executor.shutdown(wait=False)

    def _beat_done(self, beat: Future[None]) -> None:
        exc = beat.exception()
        if exc is not None and not self._beat_failed:
            log.warning("the desk's heartbeat could not be written (%s: %s); the firm view will show it silent",
                        type(exc).__name__, str(exc).strip().splitlines()[0] if str(exc).strip() else "no detail")
        elif exc is None and self._beat_failed:
            log.warning("the desk's heartbeat is written again")
        self._beat_failed = exc is not None

    def _read_failed(self, why: str) -> None:
        self._failures += 1
        if self._failures == 1:
            log.warning("reading the store's trading state for a HALTED flag failed (%s); retrying", why)
        if self._failures == ALERT_AFTER_FAILURES:
            message = (f"cannot read the store's trading state ({self._failures} reads in a row failed, the last: {why}): "
                       "until it can, main.py panic reaches this desk only over its control channel, and a firm halt not at all")
            log.error(message)
            self._engine.alert(AlertLevel.CRITICAL, "halt_watch", message)

    def _handle(self, rows: list[StateRow]) -> None:
        for row in rows:
            self._last_id = row.id
            if self._own(row):
                continue
            if row.state != TradingState.HALTED:
                log.warning("trading state row %d (%s by %s: %s) was not written by this desk: left alone, only a "
                            "HALTED flag acts on a running desk", row.id, row.state, row.actor, row.reason)
                continue
            if self._in_force(row):
                log.info("HALTED flag row %d by %s is already in force", row.id, row.actor)
                continue
            late_ms = (self._clock_ns() - row.ts_ns) / 1e6
            log.critical("HALTED flag by %s found in the store (row %d, %.0f ms after it was stamped): engaging the "
                         "kill switch: %s", row.actor, row.id, late_ms, row.reason)
            self.engaged.append(row)
            self._engine.engage_kill_switch(row.reason, row.actor, AuditSource.PANIC)

    def _handle_firm(self, rows: list[FirmState]) -> None:
        for firm in rows:
            self._firm_last = firm.id
            if firm.halted:
                self._firm_halt(firm, f"found in the store {(self._clock_ns() - firm.ts_ns) / 1e6:.0f} ms after it was stamped")
            else:
                self._firm_rearmed(firm)

    def _firm_halt(self, firm: FirmState, when: str) -> None:
        log.critical("FIRM HALT %d by %s (%s): engaging the kill switch: %s", firm.id, firm.actor, when, firm.reason)
        self.firm_engaged.append(firm)
        self._engine.rearm_holds[FIRM_HOLD] = (f"the firm is halted ({firm.describe()}): "
                                               "the firm must be re-armed first (main.py firm rearm)")
        self._engine.engage_kill_switch(f"firm halt {firm.id}: {firm.reason}", firm.actor, AuditSource.PANIC)
        halted_ns = self._clock_ns()
        self._unswept.append(firm.id)
        self._confirm(firm.id, {"firm_id": firm.id, "halted_ns": halted_ns},
                      partial(record_halted, firm_id=firm.id, desk_id=self._desk_id, halted_ns=halted_ns))

    def _firm_rearmed(self, firm: FirmState) -> None:
        if self._engine.rearm_holds.pop(FIRM_HOLD, None) is None:
            log.info("firm state row %d (%s by %s) lifts no halt of this desk", firm.id, firm.state, firm.actor)
            return
        message = f"the firm halt was lifted by {firm.actor} ({firm.reason}): this desk stays HALTED until it is re-armed on its own"
        log.warning(message)
        self._engine.alert(AlertLevel.WARNING, "firm", message)

    def _on_sweep(self, report: KillSwitchReport) -> None:
        """A sweep ended: it covered every order working when a firm halt engaged the switch before it."""
        if not report.done or not self._unswept:
            return
        swept_ns = self._clock_ns()
        for firm_id in self._unswept:
            self._confirm(firm_id, {"firm_id": firm_id, "swept_ns": swept_ns, "still_working": report.working_after},
                          partial(record_swept, firm_id=firm_id, desk_id=self._desk_id, swept_ns=swept_ns,
                                  still_working=report.working_after))
        self._unswept.clear()

    def _confirm(self, firm_id: int, payload: dict[str, int], row: Callable[[Connection], None]) -> None:
        """Record ``firm.ack`` with its ``firm_acks`` row, on the watch's write thread: the desk is halted
        already, and the firm view waits for this, not the desk."""
        def write() -> None:
            try:
                self._writer.append_blocking(AuditEventType.FIRM_ACK, payload, actor="system", source=AuditSource.SYSTEM,
                                             timeout=WRITE_TIMEOUT_S, rows=row)
            except Exception as exc:  # noqa: BLE001 - the desk is halted whatever; the firm view shows it unconfirmed
                log.error("the confirmation of firm halt %d could not be written: %s: %s", firm_id, type(exc).__name__, exc)

        try:
            self._writes.submit(write)
        except RuntimeError:  # the watch stopped with the engine: a sweep ending after that is not confirmed
            log.warning("firm halt %d: the confirmation %s was not written, the halt watch has stopped", firm_id, payload)

    def _own(self, row: StateRow) -> bool:
        """Whether the row is one the desk wrote for a change it announced; that announcement is used up."""
        horizon = time.monotonic() - OWN_ROW_WAIT_S
        while self._expected and self._expected[0][1] < horizon:
            self._expected.popleft()
        key = (row.state, row.reason, row.actor)
        for index, (expected, _) in enumerate(self._expected):
            if expected == key:
                del self._expected[index]
                return True
        return False

    def _in_force(self, row: StateRow) -> bool:
        """The desk is halted by this very panic's kill switch: the control channel brought it first."""
        engine = self._engine
        last = engine.kill_switch.last
        return (engine.trading_state is TradingState.HALTED and engine.trading_state_actor == row.actor
                and last is not None and last.reason == row.reason and last.actor == row.actor)


def newest_flag_id(store: SqlEngine, desk_id: str, reason: str, actor: str) -> int | None:
    """The id of the desk's newest HALTED row with this reason and actor: the flag ``main.py panic`` just wrote."""
    with store.connect() as connection:
        found = connection.execute(
            select(func.max(_STATE.c.id)).where(
                _STATE.c.desk_id == desk_id, _STATE.c.state == str(TradingState.HALTED), _STATE.c.reason == reason,
                _STATE.c.actor == actor)
        ).scalar_one()
    return None if found is None else int(found)


def halted_after(store: SqlEngine, desk_id: str, flag_id: int, actor: str) -> StateRow | None:
    """A HALTED row the desk wrote after its flag ``flag_id`` for the same actor: its kill switch engaged for that panic."""
    with store.connect() as connection:
        row = connection.execute(
            select(_STATE.c.id, _STATE.c.ts_ns, _STATE.c.state, _STATE.c.reason, _STATE.c.actor)
            .where(_STATE.c.desk_id == desk_id, _STATE.c.id > flag_id, _STATE.c.state == str(TradingState.HALTED),
                   _STATE.c.actor == actor)
            .order_by(_STATE.c.id).limit(1)
        ).first()
    return None if row is None else StateRow(row[0], row[1], row[2], row[3], row[4])
