"""The single writer: appends to the audit chain (and writes desk rows) with group commit.

One dedicated thread owns every write. It takes whatever is queued (up to ``max_batch``), writes
it in one transaction and commits once, so under load many appends share one fsync while a lone
append is written at once. An append's future resolves only after its commit returned: callers
that await it know the record is durable. A failed commit fails every future in its batch and
rolls back the whole batch, so the chain never has a gap.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import hashlib
import itertools
import logging
import queue
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

from sqlalchemy import Connection, Engine, inspect

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
from .redaction import Redactor

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
    work: _Append | Callable[[Connection], Any]
    # An asyncio future is resolved on its own loop; a concurrent one (the blocking calls) from the writer thread.
    future: asyncio.Future[Any] | concurrent.futures.Future[Any]


_STOP = object()


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
    ) -> None:
        """``keys`` finds the chain's key by the tail's fingerprint (the system keyring by default).

        ``create_key`` (the desk): when the chain is not keyed yet, or keyed with a key this
        keyring lacks, create a key and append an ``audit.chain_keyed`` record announcing it.
        Without it (``panic``, ``rearm``, CLI commands) a keyed chain whose key is missing refuses
        the append: nothing unkeyed is ever written after a keyed record.

        ``desk_id`` (a desk, or a command acting for one): added to every record's payload as ``desk``.
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

    @property
    def key_fingerprint(self) -> str | None:
        """The fingerprint of the key this writer appends with, once its first write chose it."""
        return None if self._key is None else self._key.fingerprint

    @property
    def pending(self) -> int:
        """Writes (audit records and desk rows) queued or being written whose commit has not returned yet."""
        return max(0, self._queued - self._settled)

    def _put(self, job: _Job) -> None:
        # Several threads may queue (the loop, CLI commands): the count must not lose an increment.
        with self._queued_lock:
            self._queued += 1
        self._queue.put(job)

    def start(self) -> None:
        if self._thread is not None:
            return
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

    def execute_blocking(self, work: Callable[[Connection], Any], timeout: float = 30.0) -> Any:
        """``execute`` for code outside the event loop; returns what ``work`` returned, once committed."""
        if self._thread is None:
            raise StoreError("the audit writer is not running")
        future: concurrent.futures.Future[Any] = concurrent.futures.Future()
        self._put(_Job(work, future))
        return future.result(timeout)

    def execute(self, work: Callable[[Connection], Any]) -> asyncio.Future[Any]:
        """Run ``work(connection)`` in the writer's next transaction (desk rows: orders, fills, state)."""
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
            first = self._queue.get()
            if first is _STOP:
                break
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

    def _write(self, jobs: list[_Job]) -> None:
        results: list[Any] = []
        announced = self._announce
        try:
            connection = self._connect()
            with connection.begin():
                if self._lock_table:
                    # Desks sharing one PostgreSQL database take turns extending the one chain.
                    connection.exec_driver_sql("LOCK TABLE audit_log IN SHARE ROW EXCLUSIVE MODE")
                elif self._sqlite:
                    # Another process (`main.py panic`) may extend the chain too. pysqlite would only
                    # begin at the INSERT, after the tail was read, so both could read the same tail;
                    # taking the write lock first makes the read and the append one step. pysqlite
                    # sees the open transaction and commits or rolls it back as usual.
                    connection.exec_driver_sql("BEGIN IMMEDIATE")
                # Read under the lock every batch: an index probe, and the only way to see what
                # another process appended since.
                seq, prev, tail_fp = self._tail(connection)
                appending = any(isinstance(job.work, _Append) for job in jobs)
                # Desk rows alone need no key: a HALTED flag is written even where the key is missing.
                key = self._choose_key(tail_fp) if appending or self._create_key else self._key
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
                appends.extend(job.work for job in jobs if isinstance(job.work, _Append))
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
                entries = iter(rows[1:] if announced is not None else rows)
                for job in jobs:
                    if isinstance(job.work, _Append):
                        results.append(_entry(next(entries)))
                        if job.work.rows is not None:
                            job.work.rows(connection)
                    else:
                        results.append(job.work(connection))
        except BaseException as exc:  # noqa: BLE001 - every waiter must hear about the failure
            self._disconnect()  # whatever broke, the next batch starts on a fresh connection
            self.failure = exc
            log.critical("audit write of %d jobs failed: %s", len(jobs), exc)
            error = StoreError(f"audit write failed, nothing in this batch was stored: {exc}")
            self._settled += len(jobs)
            self._settle(jobs, [error] * len(jobs), failed=True)
            return
        if announced is not None:
            self._announce = None
            log.info("audit chain keyed from record %d on with key %s (%s)",
                        rows[0][0], announced.fingerprint, ALGORITHM)
        self.commits += 1
        self._settled += len(jobs)
        self._settle(jobs, results, failed=False)

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


def _resolve(pairs: list[tuple[asyncio.Future[Any], Any]], failed: bool) -> None:
    for future, result in pairs:
        if future.done():
            continue
        if failed:
            future.set_exception(result)
        else:
            future.set_result(result)
