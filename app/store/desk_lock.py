"""Knowing whether a desk is running against a database, so a restore never swaps it underneath.

SQLite: the desk holds an exclusive OS lock on ``<database>.desk-lock`` for as long as it runs;
the lock dies with the process, so a crashed desk never leaves a stale lock. PostgreSQL: several
desks share the database, each holding a session advisory lock on its own desk id for as long as
it runs (so one desk's data folder never runs twice, from two workstations say); the server drops
it with the connection, so a crashed desk leaves none either. Desks connect with
``application_name = 'bulwark-desk'``, visible to every workstation in ``pg_stat_activity``.
"""

from __future__ import annotations

import os
import sys
import zlib
from types import TracebackType
from typing import IO, Self

from sqlalchemy import Connection, Engine, text
from sqlalchemy.pool import NullPool

from .db import StoreError, make_engine, sqlite_path

DESK_APPLICATION_NAME = "bulwark-desk"
# The high half of every desk lock's advisory key ("bwkd"); the migration lock's key differs.
_DESK_LOCK_NAMESPACE = 0x62776B64


def _lock(handle: IO[bytes]) -> bool:
    if sys.platform == "win32":
        import msvcrt

        try:
            msvcrt.locking(handle.fileno(), msvcrt.LK_NBLCK, 1)
        except OSError:
            return False
        return True
    import fcntl

    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return False
    return True


def _advisory_key(desk_id: str) -> int:
    """The advisory lock's 64-bit key for a desk: a fixed namespace in the high half, the desk id's CRC in the low."""
    return (_DESK_LOCK_NAMESPACE << 32) | zlib.crc32(desk_id.encode())


class DeskLock:
    """Held by a running desk, and by ``rearm`` from its check to its write, on one database.

    SQLite: an exclusive OS lock on ``<database>.desk-lock``; while one holder has it, no desk can
    start on that file and ``desk_running`` says so. PostgreSQL, given the desk's id: a session
    advisory lock on that id, on a connection of its own held until the lock is released; no other
    process can take the same desk's lock meanwhile. Without a desk id, nothing on PostgreSQL.
    """

    def __init__(self, db_url: str, desk_id: str | None = None) -> None:
        path = sqlite_path(db_url)
        self.path = path.with_name(path.name + ".desk-lock") if path is not None else None
        self._url = db_url
        self._desk_id = desk_id
        self._handle: IO[bytes] | None = None
        self._engine: Engine | None = None
        self._connection: Connection | None = None

    def _enter_postgresql(self, desk_id: str) -> None:
        engine = make_engine(self._url, application_name=DESK_APPLICATION_NAME, poolclass=NullPool,
                             connect_args={"connect_timeout": 10})
        try:
            connection = engine.connect()
            taken = connection.execute(text("SELECT pg_try_advisory_lock(:key)"), {"key": _advisory_key(desk_id)}).scalar()
            connection.commit()
        except BaseException:
            engine.dispose()
            raise
        if not taken:
            connection.close()
            engine.dispose()
            raise StoreError(f"desk {desk_id} is already running on this database (another process holds its lock): "
                             "a data folder runs one desk at a time")
        self._engine, self._connection = engine, connection

    def __enter__(self) -> Self:
        if self.path is None:
            if self._desk_id is not None:
                self._enter_postgresql(self._desk_id)
            return self
        handle = self.path.open("a+b")
        if not _lock(handle):
            handle.close()
            raise StoreError(f"another desk is already running on {self.path.with_suffix('')}")
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()).encode())
        handle.flush()
        self._handle = handle
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None
        if self._connection is not None and self._engine is not None:
            # Closing the session releases its advisory locks, even if the unlock itself fails.
            try:
                self._connection.close()
            finally:
                self._engine.dispose()
                self._connection = self._engine = None


def desk_running(db_url: str) -> bool:
    """Whether some desk is using the database at ``db_url`` right now."""
    path = sqlite_path(db_url)
    if path is not None:
        lock_path = path.with_name(path.name + ".desk-lock")
        if not lock_path.exists():
            return False
        with lock_path.open("a+b") as handle:
            return not _lock(handle)
    engine = make_engine(db_url)
    try:
        with engine.connect() as connection:
            count = connection.execute(
                text("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                     "AND application_name = :name AND pid <> pg_backend_pid()"),
                {"name": DESK_APPLICATION_NAME},
            ).scalar()
        return bool(count)
    finally:
        engine.dispose()
