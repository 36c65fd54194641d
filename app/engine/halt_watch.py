"""The second way in for ``main.py panic``: the running desk watches the persisted HALTED flag.

``main.py panic`` first writes a HALTED row to ``trading_state`` (``app.store.halt_flag``), then
tells the desk over the control channel. A channel that is flooded, closed or published with the
wrong port must not leave the desk trading: ``HaltWatch`` reads the rows added to ``trading_state``
every ``POLL_S`` and, for a HALTED row the desk did not write itself, engages the kill switch with
the row's reason and actor (source PANIC), about ``POLL_S`` after the row's commit at most.

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
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy import Connection, Table, func, select
from sqlalchemy import Engine as SqlEngine

from app.domain.audit import AuditSource
from app.domain.events import AlertLevel, TradingStateChanged
from app.domain.trading_state import TradingState
from app.store.audit_writer import AuditWriter
from app.store.db import is_sqlite, make_engine
from app.store.models import TradingStateRow

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

_Key = tuple[str, str, str]


@dataclass(frozen=True, slots=True)
class StateRow:
    """One ``trading_state`` row."""

    id: int
    ts_ns: int
    state: str
    reason: str
    actor: str


def _newest_id(connection: Connection) -> int:
    return int(connection.execute(select(func.coalesce(func.max(_STATE.c.id), 0))).scalar_one())


def _rows_after(store: SqlEngine, after: int) -> list[StateRow]:
    with store.connect() as connection:
        found = connection.execute(
            select(_STATE.c.id, _STATE.c.ts_ns, _STATE.c.state, _STATE.c.reason, _STATE.c.actor)
            .where(_STATE.c.id > after).order_by(_STATE.c.id).limit(ROWS_PER_READ)
        ).all()
    return [StateRow(row[0], row[1], row[2], row[3], row[4]) for row in found]


class HaltWatch:
    """Engages the engine's kill switch for a HALTED row another process (``main.py panic``) adds to ``trading_state``.

    ``start`` notes where the table ends (after every row the desk had queued) and runs the watch
    under the engine's supervisor, so the engine's stop ends it. ``engaged`` lists the rows acted on.
    """

    def __init__(self, engine: Engine, writer: AuditWriter, database_url: str, *, poll_s: float = POLL_S,
                 clock_ns: Callable[[], int] = time.time_ns) -> None:
        self._engine = engine
        self._writer = writer
        self._url = database_url
        self._poll_s = poll_s
        # Real time, as the panic process stamps its row: the engine's clock may be a simulated session's.
        self._clock_ns = clock_ns
        self._expected: deque[tuple[_Key, float]] = deque()
        self._last_id = 0
        self._failures = 0
        self.engaged: list[StateRow] = []

    async def start(self) -> None:
        """Begin watching the rows added from now on; raises ``StoreError`` if the store cannot be read."""
        self._engine.bus.subscribe(TradingStateChanged, self._on_state, critical=False, name="halt_watch")
        # Through the writer's queue: every row of a change made before the subscription is then
        # committed and below this id, and every later one is announced on the bus first.
        self._last_id = await self._writer.execute(_newest_id)
        # On PostgreSQL a read is bounded by the server too: the reader thread must not hang the desk's exit.
        store = make_engine(self._url) if is_sqlite(self._url) else make_engine(self._url, connect_args=_PG_BOUNDS)
        self._engine.supervisor.spawn("halt_watch", self._run(store))
        log.info("watching the store's trading state for a HALTED flag every %.0f ms (after row %d)",
                 self._poll_s * 1000, self._last_id)

    def _on_state(self, event: TradingStateChanged) -> None:
        self._expected.append(((str(event.current), event.reason, event.actor), time.monotonic()))

    async def _run(self, store: SqlEngine) -> None:
        loop = asyncio.get_running_loop()
        executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="halt-watch")
        read: asyncio.Future[list[StateRow]] | None = None
        try:
            while True:
                began = loop.time()
                if read is None:
                    read = loop.run_in_executor(executor, _rows_after, store, self._last_id)
                # asyncio.wait, not wait_for: it leaves the read running, and never swallows the stop's cancel.
                done, _ = await asyncio.wait({read}, timeout=READ_TIMEOUT_S)
                if not done:
                    self._read_failed(f"no answer within {READ_TIMEOUT_S:g}s")
                    continue  # the same read again: a stuck one must not pile up others behind it
                try:
                    rows = read.result()
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
                await asyncio.sleep(max(self._poll_s - (loop.time() - began), 0.0))
        finally:
            executor.submit(store.dispose)
            executor.shutdown(wait=False)

    def _read_failed(self, why: str) -> None:
        self._failures += 1
        if self._failures == 1:
            log.warning("reading the store's trading state for a HALTED flag failed (%s); retrying", why)
        if self._failures == ALERT_AFTER_FAILURES:
            message = (f"cannot read the store's trading state ({self._failures} reads in a row failed, the last: {why}): "
                       "until it can, main.py panic reaches this desk only over its control channel")
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


def newest_flag_id(store: SqlEngine, reason: str, actor: str) -> int | None:
    """The id of the newest HALTED row with this reason and actor: the flag ``main.py panic`` just wrote."""
    with store.connect() as connection:
        found = connection.execute(
            select(func.max(_STATE.c.id)).where(
                _STATE.c.state == str(TradingState.HALTED), _STATE.c.reason == reason, _STATE.c.actor == actor)
        ).scalar_one()
    return None if found is None else int(found)


def halted_after(store: SqlEngine, flag_id: int, actor: str) -> StateRow | None:
    """A HALTED row the desk wrote after the flag ``flag_id`` for the same actor: its kill switch engaged for that panic."""
    with store.connect() as connection:
        row = connection.execute(
            select(_STATE.c.id, _STATE.c.ts_ns, _STATE.c.state, _STATE.c.reason, _STATE.c.actor)
            .where(_STATE.c.id > flag_id, _STATE.c.state == str(TradingState.HALTED), _STATE.c.actor == actor)
            .order_by(_STATE.c.id).limit(1)
        ).first()
    return None if row is None else StateRow(row[0], row[1], row[2], row[3], row[4])
