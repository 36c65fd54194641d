"""Knowing whether a desk is running against a database, so a restore never swaps it underneath.

SQLite: the desk holds an exclusive OS lock on ``<database>.desk-lock`` for as long as it runs;
the lock dies with the process, so a crashed desk never leaves a stale lock. PostgreSQL: desks
connect with ``application_name = 'bulwark-desk'``, visible to every workstation in
``pg_stat_activity``.
"""

from __future__ import annotations

import os
import sys
from types import TracebackType
from typing import IO, Self

from sqlalchemy import text

from .db import StoreError, make_engine, sqlite_path

DESK_APPLICATION_NAME = "bulwark-desk"


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


class DeskLock:
    """Held by a running desk, and by ``rearm`` from its check to its write, on one database.

    SQLite: an exclusive OS lock on ``<database>.desk-lock``; while one holder has it, no desk can
    start on that file and ``desk_running`` says so. PostgreSQL: a no-op: ``desk_running`` sees a desk
    already connected, but nothing keeps another workstation's desk from starting meanwhile.
    """

    def __init__(self, db_url: str) -> None:
        path = sqlite_path(db_url)
        self.path = path.with_name(path.name + ".desk-lock") if path is not None else None
        self._handle: IO[bytes] | None = None

    def __enter__(self) -> Self:
        if self.path is None:
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
