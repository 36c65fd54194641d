"""The single writer: appends to the audit chain (and writes desk rows) with group commit.

One dedicated thread owns every write. It takes whatever is queued (up to ``max_batch``), writes
it in one transaction and commits once, so under load many appends share one fsync while a lone
append is written at once. An append's future resolves only after its commit returned: callers
that await it know the record is durable. A failed commit fails every future in its batch and
rolls back the whole batch, so the chain never has a gap.

With a spool (the desk's, in its data folder), losing the database is an outage, not a failure:
the batch that met it and every batch after go to the fsynced spool (their waiters hear of it
once the spool is durable), non-spoolable work (a callable) fails as before, and every second the
thread tries the database again. Once it answers, one transaction appends a ``store.outage``
record (the window), then the spooled records in order (new seq and hashes, their own times), and
applies the spooled desk rows; only then is the spool removed. Watchers hear the outage begin and end.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import hashlib
import itertools
import json
import logging
import queue
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

from sqlalchemy import Connection, Engine, inspect, text
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError

from app.domain.audit import AuditEventType, AuditSource

from .canonical import GENESIS_HASH, canonical_json, json_string
from .chain_key import (
    ALGORITHM,
    ChainKey,
    ChainKeyError,
    ChainKeys,
    missing_key_message,
)
from .db import StoreError
from .desk_rows import RowWrite
from .desk_rows import apply as apply_row
from .redaction import Redactor
from .spool import Spool, SpoolContent, SpooledRecord, SpooledRow

log = logging.getLogger(__name__)

CHAIN_KEYED = "audit.chain_keyed"
# The payload key naming the desk that wrote a record, on a chain several desks extend.
DESK_KEY = "desk"
_COLUMNS = ("seq", "ts_ns", "actor", "source", "event_type", "payload", "prev_hash", "hash", "key_fp")
# Rows per multi-row INSERT on SQLite. The driver releases the GIL at every statement step, and a
# busy event loop then keeps the writer waiting a whole switch interval (5 ms) for it back: one
# statement per batch instead of one per row. 9 columns x 1,000 rows stays under SQLite's limit of
# 32,766 parameters (3.32 and later).
_SQLITE_CHUNK = 1_000

_Row = tuple[int, int, str, str, str, str, str, str, "str | None"]


class AuditEntry(NamedTuple):
    """A durable link of the chain. ``key_fp`` names the key ``hash`` is an HMAC under (``None``: SHA-256).

    A named tuple: the writer makes one per append from the row it inserted, in one step.
    """

    seq: int
    ts_ns: int
    actor: str
    source: str
    event_type: str
    payload: str
    prev_hash: str
    hash: str
    key_fp: str | None = None


_entry = AuditEntry._make


@dataclass(frozen=True, slots=True)
class StoreOutage:
    """The database unreachable from ``began_ns`` (the writer's clock); ``ended_ns`` once the spool was replayed."""

    began_ns: int
    reason: str
    ended_ns: int | None = None
    spooled: int = 0

    @property
    def duration_s(self) -> float:
        return 0.0 if self.ended_ns is None else (self.ended_ns - self.began_ns) / 1e9


@dataclass(slots=True)
class _Append:
    ts_ns: int
    actor: str
    source: str
    event_type: str
    payload: str
    rows: Callable[[Connection], Any] | None = None


@dataclass(slots=True)
class _Job:
    work: _Append | RowWrite | Callable[[Connection], Any]
    # An asyncio future is resolved on its own loop; a concurrent one (the blocking calls) from the writer thread.
    future: asyncio.Future[Any] | concurrent.futures.Future[Any]


_STOP = object()
# Put by the probe thread: the database answered (or not); the writer thread looks again.
_WAKE = object()


class AuditWriter:
    """Owns the writer thread. ``append`` (async) and ``append_blocking`` return only once durable."""

    def __init__(
        self,
        engine: Engine,
        *,
        redactor: Redactor | None = None,
        clock_ns: Callable[[], int] = time.time_ns,
        max_batch: int = 500,
        keys: ChainKeys | None = None,
        create_key: bool = False,
        desk_id: str | None = None,
        spool: Path | None = None,
        retry_s: float = 1.0,
    ) -> None:
        """``keys`` finds the chain's key by the tail's fingerprint (the system keyring by default).

        ``create_key`` (the desk): when the chain is not keyed yet, or keyed with a key this
        keyring lacks, create a key and append an ``audit.chain_keyed`` record announcing it.
        Without it (``panic``, ``rearm``, CLI commands) a keyed chain whose key is missing refuses
        the append: nothing unkeyed is ever written after a keyed record.

        ``desk_id`` (a desk, or a command acting for one): added to every record's payload as ``desk``.

        ``spool`` (the desk's file in its data folder): while the database is unreachable, records and
        desk rows go there and are replayed when it answers again (tried every ``retry_s``). A spool
        left by an earlier run is replayed by ``start``. Without one, losing the database fails the writes.
        """
        self.engine = engine
        # Several desks may extend one chain: each record says which desk wrote it (``desk`` in its payload).
        self.desk_id = desk_id
        self.redactor = redactor or Redactor()
        self.keys = keys if keys is not None else ChainKeys()
        self._create_key = create_key
        self._clock_ns = clock_ns
        self._max_batch = max_batch
        self._queue: queue.SimpleQueue[_Job | object] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock_table = engine.dialect.name == "postgresql"
        self._sqlite = engine.dialect.name == "sqlite"
        self._marker = "?" if engine.dialect.paramstyle == "qmark" else "%s"
        self._key: ChainKey | None = None
        self._key_created = False
        self._announce: ChainKey | None = None
        self._has_key_column: bool | None = None
        self._connection: Connection | None = None
        self._insert_sql: dict[tuple[int, int], str] = {}
        self.failure: BaseException | None = None
        self.commits = 0
        # Jobs queued and jobs settled, each counted by one side: the difference is the depth.
        self._queued_lock = threading.Lock()
        self._queued = 0
        self._settled = 0
        self._spool = Spool(spool) if spool is not None else None
        self._retry_s = retry_s
        self._outage: StoreOutage | None = None
        self._next_try = 0.0
        self._probing = False
        self._reachable = threading.Event()
        self._spooled = 0
        self._replay_refused = ""
        self._watchers: list[tuple[Callable[[StoreOutage], None], asyncio.AbstractEventLoop]] = []
        self._watch_lock = threading.Lock()
        # Outages this writer lived through (begun), for the stop record: the next start is then HALTED.
        self.outages = 0
        self._lost_driver_errors: tuple[type[BaseException], ...] = tuple(
            getattr(engine.dialect.loaded_dbapi, name) for name in ("OperationalError", "InterfaceError")
            if hasattr(engine.dialect.loaded_dbapi, name)
        )

    @property
    def key_fingerprint(self) -> str | None:
        """The fingerprint of the key this writer appends with, once its first write chose it."""
        return None if self._key is None else self._key.fingerprint

    @property
    def pending(self) -> int:
        """Writes (audit records and desk rows) queued or being written whose commit has not returned yet."""
        return max(0, self._queued - self._settled)

    @property
    def outage(self) -> StoreOutage | None:
        """The outage going on now (records go to the spool), or ``None``."""
        return self._outage

    def watch_outages(self, callback: Callable[[StoreOutage], None], loop: asyncio.AbstractEventLoop) -> None:
        """Call ``callback`` on ``loop`` when an outage begins (``ended_ns`` None) and when it ends; at once
        if one is going on."""
        with self._watch_lock:
            self._watchers.append((callback, loop))
            now = self._outage
        if now is not None:
            loop.call_soon_threadsafe(callback, now)

    def _tell(self, outage: StoreOutage) -> None:
        with self._watch_lock:
            watchers = list(self._watchers)
        for callback, loop in watchers:
            try:
                loop.call_soon_threadsafe(callback, outage)
            except RuntimeError:
                log.warning("the store outage could not be told to a watcher whose loop is closed")

    def _put(self, job: _Job) -> None:
        # Several threads may queue (the loop, CLI commands): the count must not lose an increment.
        with self._queued_lock:
            self._queued += 1
        self._queue.put(job)

    def start(self) -> None:
        """Start the thread; first, replay a spool an earlier run left (raises ``StoreError`` if it cannot)."""
        if self._thread is not None:
            return
        spool = self._spool
        if spool is not None and spool.exists():
            content = spool.read()
            spool.resume(content)
            self._outage = StoreOutage(content.began_ns, f"{content.reason} (left by an earlier run)")
            log.critical("an outage spool left by an earlier run (%d records): writing it to the database first",
                         len(content.records))
            failure = self._replay(spool, self._outage)
            if failure is not None:
                self._disconnect()
                raise StoreError(f"the outage spool {spool.path} left by an earlier run could not be written "
                                 f"to the database; it is kept: {failure}")
        self._thread = threading.Thread(target=self._run, name="audit-writer", daemon=True)
        self._thread.start()

    def close(self, timeout: float = 10.0) -> None:
        """Write what is queued, then stop the thread."""
        if self._thread is None:
            return
        self._queue.put(_STOP)
        self._thread.join(timeout)
        if self._thread.is_alive():
            log.error("audit writer did not stop within %.1fs", timeout)
        self._thread = None

    # -- producers ---------------------------------------------------------------------------------

    def _prepare(self, event_type: AuditEventType | str, payload: Mapping[str, Any], actor: str, source: AuditSource | str) -> _Append:
        if self._thread is None:
            raise StoreError("the audit writer is not running")
        text = self.redactor.canonical(payload if self.desk_id is None else {**payload, DESK_KEY: self.desk_id})
        return _Append(self._clock_ns(), str(actor), str(source), str(event_type), text)

    def append(
        self, event_type: AuditEventType | str, payload: Mapping[str, Any], *, actor: str, source: AuditSource | str
    ) -> asyncio.Future[AuditEntry]:
        """Queue a record; the returned future resolves with the entry once it is committed."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[AuditEntry] = loop.create_future()
        self._put(_Job(self._prepare(event_type, payload, actor, source), future))
        return future

    def append_blocking(
        self, event_type: AuditEventType | str, payload: Mapping[str, Any], *, actor: str, source: AuditSource | str,
        timeout: float = 30.0, rows: Callable[[Connection], Any] | None = None,
    ) -> AuditEntry:
        """``append`` for code outside the event loop (CLI commands).

        ``rows(connection)``, if given, writes desk rows in the same transaction as the record:
        both are stored or neither is. Raises ``TimeoutError`` if the commit is not confirmed in time.
        """
        future: concurrent.futures.Future[AuditEntry] = concurrent.futures.Future()
        work = self._prepare(event_type, payload, actor, source)
        work.rows = rows
        self._put(_Job(work, future))
        return future.result(timeout)

    def execute_blocking(self, work: Callable[[Connection], Any] | RowWrite, timeout: float = 30.0) -> Any:
        """``execute`` for code outside the event loop; returns what ``work`` returned, once committed."""
        if self._thread is None:
            raise StoreError("the audit writer is not running")
        future: concurrent.futures.Future[Any] = concurrent.futures.Future()
        self._put(_Job(work, future))
        return future.result(timeout)

    def execute(self, work: Callable[[Connection], Any] | RowWrite) -> asyncio.Future[Any]:
        """Run ``work(connection)`` in the writer's next transaction, or apply a desk row write.

        A ``RowWrite`` is kept in the spool through an outage (its future then resolves with ``None``);
        a callable fails during one."""
        if self._thread is None:
            raise StoreError("the audit writer is not running")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        self._put(_Job(work, future))
        return future

    # -- the thread --------------------------------------------------------------------------------

    def _run(self) -> None:
        stopping = False
        while not stopping:
            if self._outage is not None and not self._probing:
                # In an outage the thread wakes to try the database again even when nothing is queued.
                try:
                    first = self._queue.get(timeout=max(0.0, self._next_try - time.monotonic()))
                except queue.Empty:
                    self._try_replay()
                    continue
            else:
                first = self._queue.get()
            if first is _STOP:
                break
            if first is _WAKE:
                self._try_replay()
                continue
            batch = [first]
            while len(batch) < self._max_batch:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is _STOP:
                    stopping = True
                    break
                batch.append(item)
            self._write([job for job in batch if isinstance(job, _Job)])
        if self._spool is not None and self._outage is not None and self._replay(self._spool, self._outage) is None:
            log.info("the outage spool was written to the database at the writer's close")
        if self._spool is not None:
            self._spool.close()
        self._disconnect()

    def _connect(self) -> Connection:
        # One connection for the thread's life: a pool checkout, reset and checkin per batch cost
        # as much as the batch's SQL.
        if self._connection is None:
            self._connection = self.engine.connect()
        return self._connection

    def _disconnect(self) -> None:
        if self._connection is not None:
            try:
                self._connection.close()
            except Exception:
                log.warning("closing the audit writer's connection failed", exc_info=True)
            self._connection = None

    def _insert(self, connection: Connection, rows: list[_Row]) -> None:
        width = 9 if self._has_key_column else 8
        if width == 8:
            if any(row[8] is not None for row in rows):
                raise StoreError("the audit_log table has no key_fp column: migrate the store before keying it")
            rows = [row[:8] for row in rows]  # type: ignore[misc]
        cursor = connection.connection.cursor()
        try:
            if not self._sqlite:
                cursor.executemany(self._statement(1, width), rows)
                return
            for start in range(0, len(rows), _SQLITE_CHUNK):
                chunk = rows[start:start + _SQLITE_CHUNK]
                cursor.execute(self._statement(len(chunk), width), list(itertools.chain.from_iterable(chunk)))
        finally:
            cursor.close()

    def _statement(self, count: int, width: int) -> str:
        sql = self._insert_sql.get((count, width))
        if sql is None:
            group = f"({', '.join([self._marker] * width)})"
            sql = f"INSERT INTO audit_log ({', '.join(_COLUMNS[:width])}) VALUES {', '.join([group] * count)}"
            self._insert_sql[(count, width)] = sql
        return sql

    def _tail(self, connection: Connection) -> tuple[int, str, str | None]:
        if self._has_key_column is None:
            self._has_key_column = "key_fp" in {column["name"] for column in inspect(connection).get_columns("audit_log")}
        columns = "seq, hash, key_fp" if self._has_key_column else "seq, hash, NULL"
        last = connection.exec_driver_sql(f"SELECT {columns} FROM audit_log ORDER BY seq DESC LIMIT 1").first()
        return (0, GENESIS_HASH, None) if last is None else (int(last[0]), str(last[1]), last[2])

    def _choose_key(self, tail_fp: str | None) -> ChainKey | None:
        """The key this batch is written with, read under the write lock (another process may have keyed the chain)."""
        if self._key is not None:
            return self._key
        if tail_fp is not None:
            self._key = self.keys.get(tail_fp)
            if self._key is None and not self._create_key:
                raise ChainKeyError(missing_key_message(tail_fp, self.keys.describe()))
        if self._key is None and self._create_key and not self._key_created:
            self._key_created = True
            self._key = self._announce = self.keys.create()
            if self._key is None and tail_fp is not None:
                raise ChainKeyError(missing_key_message(tail_fp, self.keys.describe()))
        return self._key

    def _lock(self, connection: Connection) -> None:
        if self._lock_table:
            # Desks sharing one PostgreSQL database take turns extending the one chain.
            connection.exec_driver_sql("LOCK TABLE audit_log IN SHARE ROW EXCLUSIVE MODE")
        elif self._sqlite:
            # Another process (`main.py panic`) may extend the chain too. pysqlite would only
            # begin at the INSERT, after the tail was read, so both could read the same tail;
            # taking the write lock first makes the read and the append one step. pysqlite
            # sees the open transaction and commits or rolls it back as usual.
            connection.exec_driver_sql("BEGIN IMMEDIATE")

    def _chain(self, connection: Connection, works: list[_Append], *, keyed: bool) -> tuple[list[_Row], ChainKey | None]:
        """Append ``works`` to the chain, after the key announcement if one is due: the rows inserted, and the
        key announced (its record is the first row)."""
        # Read under the lock every batch: an index probe, and the only way to see what
        # another process appended since.
        seq, prev, tail_fp = self._tail(connection)
        # Desk rows alone need no key: a HALTED flag is written even where the key is missing.
        key = self._choose_key(tail_fp) if keyed or self._create_key else self._key
        announced = self._announce
        fp = None if key is None else key.fingerprint
        pads = None if key is None else key.pads()
        sha256 = hashlib.sha256
        quote = json_string
        rows: list[_Row] = []
        appends: list[_Append] = []
        if announced is not None:
            announcement = {"key": announced.fingerprint, "algorithm": ALGORITHM, "previous_key": tail_fp}
            appends.append(_Append(self._clock_ns(), "system", str(AuditSource.SYSTEM), CHAIN_KEYED,
                                   canonical_json(announcement)))
        appends.extend(works)
        # The quoted actor, source and event type, kept while consecutive records share them.
        last: tuple[str, str, str] | None = None
        middle = ""
        for work in appends:
            seq += 1
            named = (work.actor, work.source, work.event_type)
            if named != last:
                last = named
                middle = f",{quote(work.actor)},{quote(work.source)},{quote(work.event_type)},"
            # canonical.record_bytes, inlined: this loop is the writer's hot path. ``seq`` is
            # this writer's own int; ``:d`` still refuses a timestamp that is not one.
            message = f"{prev}[{seq},{work.ts_ns:d}{middle}{work.payload}]".encode()
            if pads is None:
                hexed = sha256(message).hexdigest()
            else:
                inner, outer = pads[0].copy(), pads[1].copy()
                inner.update(message)
                outer.update(inner.digest())
                hexed = outer.hexdigest()
            rows.append((seq, work.ts_ns, work.actor, work.source, work.event_type, work.payload, prev, hexed, fp))
            prev = hexed
        if rows:
            self._insert(connection, rows)
        return rows, announced

    def _keyed(self, announced: ChainKey | None, rows: list[_Row]) -> None:
        """After the commit: the key announcement is written."""
        if announced is not None:
            self._announce = None
            log.info("audit chain keyed from record %d on with key %s (%s)", rows[0][0], announced.fingerprint, ALGORITHM)

    def _write(self, jobs: list[_Job]) -> None:
        if self._outage is not None and self._spool is not None:
            self._spool_jobs(self._spool, self._outage, jobs)
            self._try_replay()
            return
        results: list[Any] = []
        announced: ChainKey | None = None
        rows: list[_Row] = []
        try:
            connection = self._connect()
            with connection.begin():
                self._lock(connection)
                appends = [job.work for job in jobs if isinstance(job.work, _Append)]
                rows, announced = self._chain(connection, appends, keyed=bool(appends))
                entries = iter(rows[1:] if announced is not None else rows)
                for job in jobs:
                    work = job.work
                    if isinstance(work, _Append):
                        results.append(_entry(next(entries)))
                        if work.rows is not None:
                            work.rows(connection)
                    elif isinstance(work, RowWrite):
                        results.append(apply_row(connection, work))
                    else:
                        results.append(work(connection))
        except BaseException as exc:  # noqa: BLE001 - every waiter must hear about the failure
            self._disconnect()  # whatever broke, the next batch starts on a fresh connection
            spool = self._spool
            if spool is not None and self._lost(exc):
                first = min((job.work.ts_ns for job in jobs if isinstance(job.work, _Append)), default=None)
                try:
                    outage = self._begin_outage(spool, exc, first)
                except OSError as spool_exc:
                    log.critical("the outage spool %s could not be opened: %s", spool.path, spool_exc)
                else:
                    self._spool_jobs(spool, outage, jobs)
                    return
            self.failure = exc
            log.critical("audit write of %d jobs failed: %s", len(jobs), exc)
            error = StoreError(f"audit write failed, nothing in this batch was stored: {exc}")
            self._settled += len(jobs)
            self._settle(jobs, [error] * len(jobs), failed=True)
            return
        self._keyed(announced, rows)
        self.commits += 1
        self._settled += len(jobs)
        self._settle(jobs, results, failed=False)

    # -- outages -----------------------------------------------------------------------------------

    def _lost(self, exc: BaseException) -> bool:
        """The database connection is lost or cannot be made (not a refused statement: those stay failures)."""
        if isinstance(exc, DBAPIError):
            return bool(exc.connection_invalidated) or isinstance(exc, (OperationalError, InterfaceError))
        return isinstance(exc, self._lost_driver_errors)

    def _begin_outage(self, spool: Spool, exc: BaseException, first_ns: int | None) -> StoreOutage:
        reason = f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}"
        # No later than the first record that could not be written: every spooled record falls in the window.
        began = self._clock_ns() if first_ns is None else min(first_ns, self._clock_ns())
        spool.begin(began, reason)
        self._outage = outage = StoreOutage(began, reason)
        self._spooled = 0
        self.outages += 1
        self._next_try = time.monotonic() + self._retry_s
        # One line for the whole outage (and one at its end), not one per write.
        log.critical("the audit store is unreachable (%s): records go to the spool %s until it answers",
                     reason, spool.path)
        self._tell(outage)
        return outage

    def _spool_jobs(self, spool: Spool, outage: StoreOutage, jobs: list[_Job]) -> None:
        """Keep what can be kept in the spool (one fsync) and resolve it; fail the rest (callables)."""
        kept: list[_Job] = []
        items: list[tuple[str, str, str, str, int] | RowWrite] = []
        results: list[Any] = []
        refused: list[_Job] = []
        for job in jobs:
            work = job.work
            if isinstance(work, RowWrite):
                items.append(work)
                results.append(None)
            elif isinstance(work, _Append) and work.rows is None:
                items.append((work.actor, work.source, work.event_type, work.payload, work.ts_ns))
                # A spooled record has no seq or hash yet: the replay gives them.
                results.append(AuditEntry(0, work.ts_ns, work.actor, work.source, work.event_type, work.payload, "", ""))
            else:
                refused.append(job)
                continue
            kept.append(job)
        self._settled += len(jobs)
        if refused:
            error = StoreError(f"the audit store is unreachable ({outage.reason}): not written")
            self._settle(refused, [error] * len(refused), failed=True)
        if not kept:
            return
        try:
            spool.write(items)
        except OSError as exc:
            self.failure = exc
            log.critical("the outage spool %s could not be written: %s", spool.path, exc)
            error = StoreError(f"the audit store is unreachable and the spool could not be written: {exc}")
            self._settle(kept, [error] * len(kept), failed=True)
            return
        self._spooled += len(items)
        self._settle(kept, results, failed=False)

    def _try_replay(self) -> None:
        """Replay once a probe found the database answering; else start a probe when one is due."""
        spool, outage = self._spool, self._outage
        if spool is None or outage is None:
            return
        if not self._reachable.is_set():
            if not self._probing and time.monotonic() >= self._next_try:
                self._probing = True
                threading.Thread(target=self._probe, name="audit-writer-probe", daemon=True).start()
            return
        self._reachable.clear()
        failure = self._replay(spool, outage)
        if failure is not None:
            self._disconnect()
            self._next_try = time.monotonic() + self._retry_s
            said = f"{type(failure).__name__}: {failure}"
            if not self._lost(failure) and said != self._replay_refused:
                # Not the connection: a replay that cannot work as it is. The spool is kept; said once per reason.
                self._replay_refused = said
                log.error("the outage spool could not be written to the database (kept, retried): %s", said)

    def _probe(self) -> None:
        """Try the database off the writer thread: a connection that hangs (a network gone silent) must not
        keep the spool from taking the desk's writes meanwhile."""
        try:
            with self.engine.connect() as connection:
                connection.exec_driver_sql("SELECT 1")
            self._reachable.set()
        except Exception as exc:  # noqa: BLE001 - still out: the next probe is due in retry_s
            log.debug("the audit store does not answer yet: %s", exc)
        finally:
            self._next_try = time.monotonic() + self._retry_s
            self._probing = False
            self._queue.put(_WAKE)

    def _replay(self, spool: Spool, outage: StoreOutage) -> BaseException | None:
        """Write the spool to the database in one transaction, then remove it; the failure, if any."""
        announced: ChainKey | None = None
        try:
            content = spool.read()
            connection = self._connect()
            with connection.begin():
                self._lock(connection)
                ended = self._clock_ns()
                if _replayed(connection, content, self.desk_id):
                    # The commit of an earlier replay landed although it reported a failure.
                    log.warning("the outage spool %s was already in the chain", spool.path)
                    rows: list[_Row] = []
                    written = 0
                else:
                    landed = _landed_batches(connection, content)
                    items = [item for item in content.items if item.batch not in landed]
                    records = [item for item in items if isinstance(item, SpooledRecord)]
                    row_writes = [item.row for item in items if isinstance(item, SpooledRow)]
                    window = {"began_ns": content.began_ns, "ended_ns": ended,
                              "duration_s": round((ended - content.began_ns) / 1e9, 3), "reason": content.reason,
                              "records": len(records), "rows": len(row_writes)}
                    if landed:
                        window["already_stored_batches"] = len(landed)
                    if self.desk_id is not None:
                        window[DESK_KEY] = self.desk_id
                    # Stamped when the outage began: the records it announces follow it in time too.
                    appends = [_Append(content.began_ns, "system", str(AuditSource.SYSTEM), str(AuditEventType.STORE_OUTAGE),
                                       self.redactor.canonical(window))]
                    appends.extend(_Append(r.ts_ns, r.actor, r.source, r.event_type, r.payload) for r in records)
                    rows, announced = self._chain(connection, appends, keyed=True)
                    for row_write in row_writes:
                        conflict = apply_row(connection, row_write)
                        if conflict is not None:
                            log.critical("spooled fill %s conflicts with the stored fill of %s: not stored",
                                         row_write.values.get("fill_id"), conflict)
                    written = len(records)
        except BaseException as exc:  # noqa: BLE001 - the spool is kept; the caller retries or refuses to start
            return exc
        self._keyed(announced, rows)
        spool.remove()
        self.commits += 1
        self._outage = None
        done = StoreOutage(outage.began_ns, outage.reason, ended, self._spooled)
        log.warning("the audit store answers again after %.1f s: %d spooled records written to the chain",
                    done.duration_s, written)
        self._tell(done)
        return None
    def _settle(self, jobs: list[_Job], results: list[Any], *, failed: bool) -> None:
        by_loop: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future[Any], Any]]] = {}
        for job, result in zip(jobs, results):
            future = job.future
            if isinstance(future, concurrent.futures.Future):
                if failed:
                    future.set_exception(result)
                else:
                    future.set_result(result)
            else:
                by_loop.setdefault(future.get_loop(), []).append((future, result))
        # One wake-up per loop and batch, not one per record.
        for loop, pairs in by_loop.items():
            try:
                loop.call_soon_threadsafe(_resolve, pairs, failed)
            except RuntimeError:
                log.warning("audit results for %d jobs had no loop to go back to", len(pairs))


_OUTAGE_AT = text("SELECT payload FROM audit_log WHERE ts_ns = :ts AND event_type = :kind")
_RECORDS_BETWEEN = text("SELECT ts_ns, actor, event_type, payload FROM audit_log WHERE ts_ns BETWEEN :low AND :high")


def _replayed(connection: Connection, content: SpoolContent, desk_id: str | None) -> bool:
    """Whether this spool's ``store.outage`` record is in the chain (a replay whose commit landed)."""
    found = connection.execute(_OUTAGE_AT, {"ts": content.began_ns, "kind": str(AuditEventType.STORE_OUTAGE)})
    for (payload,) in found:
        try:
            document = json.loads(payload)
        except ValueError:
            continue
        if isinstance(document, dict) and document.get(DESK_KEY) == desk_id:
            return True
    return False


def _landed_batches(connection: Connection, content: SpoolContent) -> set[int]:
    """Spooled batches whose records are in the chain: the batch that met the outage may have committed
    although its commit reported a failure. Matched by time, actor, event type and payload."""
    records = content.records
    if not records:
        return set()
    low, high = min(r.ts_ns for r in records), max(r.ts_ns for r in records)
    stored = {tuple(row) for row in connection.execute(_RECORDS_BETWEEN, {"low": low, "high": high})}
    return {r.batch for r in records if (r.ts_ns, r.actor, r.event_type, r.payload) in stored}


def _resolve(pairs: list[tuple[asyncio.Future[Any], Any]], failed: bool) -> None:
    for future, result in pairs:
        if future.done():
            continue
        if failed:
            future.set_exception(result)
        else:
            future.set_result(result)
