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
import logging
import queue
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Engine, Table, select

from app.domain.audit import AuditEventType, AuditSource

from .canonical import GENESIS_HASH, canonical_json, chain_hash
from .db import StoreError
from .models import AuditRecord
from .redaction import Redactor

log = logging.getLogger(__name__)

_AUDIT: Table = AuditRecord.__table__  # type: ignore[assignment]


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """A durable link of the chain."""

    seq: int
    ts_ns: int
    actor: str
    source: str
    event_type: str
    payload: str
    prev_hash: str
    hash: str


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
    future: asyncio.Future[Any] | concurrent.futures.Future[Any]
    loop: asyncio.AbstractEventLoop | None


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
    ) -> None:
        self.engine = engine
        self.redactor = redactor or Redactor()
        self._clock_ns = clock_ns
        self._max_batch = max_batch
        self._queue: queue.SimpleQueue[_Job | object] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock_table = engine.dialect.name == "postgresql"
        self._begin_immediate = engine.dialect.name == "sqlite"
        marker = "?" if engine.dialect.paramstyle == "qmark" else "%s"
        self._insert_sql = (
            "INSERT INTO audit_log (seq, ts_ns, actor, source, event_type, payload, prev_hash, hash) "
            f"VALUES ({', '.join([marker] * 8)})"
        )
        self.failure: BaseException | None = None
        self.commits = 0
        # Jobs queued and jobs settled, each counted by one side: the difference is the depth.
        self._queued_lock = threading.Lock()
        self._queued = 0
        self._settled = 0

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
        text = canonical_json(self.redactor.redact(dict(payload)))
        return _Append(self._clock_ns(), str(actor), str(source), str(event_type), text)

    def append(
        self, event_type: AuditEventType | str, payload: Mapping[str, Any], *, actor: str, source: AuditSource | str
    ) -> asyncio.Future[AuditEntry]:
        """Queue a record; the returned future resolves with the entry once it is committed."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[AuditEntry] = loop.create_future()
        self._put(_Job(self._prepare(event_type, payload, actor, source), future, loop))
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
        self._put(_Job(work, future, None))
        return future.result(timeout)

    def execute(self, work: Callable[[Connection], Any]) -> asyncio.Future[Any]:
        """Run ``work(connection)`` in the writer's next transaction (desk rows: orders, fills, state)."""
        if self._thread is None:
            raise StoreError("the audit writer is not running")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        self._put(_Job(work, future, loop))
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

    def _write(self, jobs: list[_Job]) -> None:
        results: list[Any] = []
        try:
            with self.engine.begin() as connection:
                if self._lock_table:
                    # Desks sharing one PostgreSQL database take turns extending the one chain.
                    connection.exec_driver_sql("LOCK TABLE audit_log IN SHARE ROW EXCLUSIVE MODE")
                elif self._begin_immediate:
                    # Another process (`main.py panic`) may extend the chain too. pysqlite would only
                    # begin at the INSERT, after the tail was read, so both could read the same tail;
                    # taking the write lock first makes the read and the append one step. pysqlite
                    # sees the open transaction and commits or rolls it back as usual.
                    connection.exec_driver_sql("BEGIN IMMEDIATE")
                last = connection.execute(
                    select(_AUDIT.c.seq, _AUDIT.c.hash).order_by(_AUDIT.c.seq.desc()).limit(1)
                ).first()
                seq, prev = (last[0], last[1]) if last is not None else (0, GENESIS_HASH)
                rows: list[tuple[int, int, str, str, str, str, str, str]] = []
                for job in jobs:
                    work = job.work
                    if isinstance(work, _Append):
                        seq += 1
                        digest = chain_hash(prev, seq, work.ts_ns, work.actor, work.source, work.event_type, work.payload)
                        entry = AuditEntry(seq, work.ts_ns, work.actor, work.source, work.event_type, work.payload, prev, digest)
                        rows.append((seq, work.ts_ns, work.actor, work.source, work.event_type, work.payload, prev, digest))
                        prev = digest
                        results.append(entry)
                    else:
                        results.append(None)
                if rows:
                    # The driver's executemany directly: Core's per-row bookkeeping halved throughput.
                    connection.exec_driver_sql(self._insert_sql, rows)
                for index, job in enumerate(jobs):
                    if not isinstance(job.work, _Append):
                        results[index] = job.work(connection)
                    elif job.work.rows is not None:
                        job.work.rows(connection)
        except BaseException as exc:  # noqa: BLE001 - every waiter must hear about the failure
            self.failure = exc
            log.critical("audit write of %d jobs failed: %s", len(jobs), exc)
            error = StoreError(f"audit write failed, nothing in this batch was stored: {exc}")
            self._settled += len(jobs)
            self._settle(jobs, [error] * len(jobs), failed=True)
            return
        self.commits += 1
        self._settled += len(jobs)
        self._settle(jobs, results, failed=False)

    def _settle(self, jobs: list[_Job], results: list[Any], *, failed: bool) -> None:
        by_loop: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future[Any], Any]]] = {}
        for job, result in zip(jobs, results):
            if job.loop is None:
                future = job.future
                assert isinstance(future, concurrent.futures.Future)
                if failed:
                    future.set_exception(result)
                else:
                    future.set_result(result)
            else:
                assert isinstance(job.future, asyncio.Future)
                by_loop.setdefault(job.loop, []).append((job.future, result))
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
