"""Database engines: SQLite (embedded default) and PostgreSQL (shared desk), with durability settings."""

from __future__ import annotations

import shutil
import sqlite3
import tempfile
import weakref
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError

from app.file_modes import may_write

# The backends the desk is built and tested on; the settings refuse any other by name.
SUPPORTED_BACKENDS = ("sqlite", "postgresql")
SQLITE_HEADER = b"SQLite format 3\x00"
READ_ONLY_APPLICATION_NAME = "bulwark-reader"
PG_CONNECT_TIMEOUT_S = 10
# A server that vanishes without a word (a cable pulled, a VM frozen) must end the connection in seconds,
# not the kernel's minutes: the desk then halts and spools its records (an outage) instead of hanging on a
# write. Keepalives find a dead idle connection in about 5 + 3 x 2 s; tcp_user_timeout ends one whose sent
# data stays unacknowledged for 10 s.
PG_DEAD_PEER_BOUNDS: dict[str, int] = {
    "connect_timeout": PG_CONNECT_TIMEOUT_S, "keepalives": 1, "keepalives_idle": 5, "keepalives_interval": 2,
    "keepalives_count": 3, "tcp_user_timeout": 10_000,
}


class StoreError(RuntimeError):
    """The store cannot be used (corrupt file, newer schema, read-only folder, full disk...)."""


def is_sqlite(url: str) -> bool:
    return make_url(url).get_backend_name() == "sqlite"


def sqlite_path(url: str) -> Path | None:
    """The file behind a SQLite URL, or ``None`` for another backend or an in-memory database."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or not parsed.database or parsed.database == ":memory:":
        return None
    name = parsed.database
    # SQLite URI filenames (``file:/path?mode=ro&uri=true``) name the file after the scheme.
    return Path(name.removeprefix("file:"))


def refuse_lost_store(path: Path) -> None:
    """Raise ``StoreError`` when ``path`` shows a store that existed and is gone.

    A zero-length file: SQLite writes a header before anything else, and Bulwark builds a new store
    elsewhere and links it into place complete, so an empty ``bulwark.db`` is a store that was
    truncated or replaced, and the state it held (a HALTED desk) is lost. A write-ahead log without
    its database: the database was removed under it.
    """
    wal = path.with_name(path.name + "-wal")
    if path.exists() and path.is_file() and path.stat().st_size == 0:
        raise StoreError(
            f"{path} is empty (0 bytes): the store that was here, and the trading state it held, is lost; "
            "restore a backup (main.py backup restore), or delete the file if this folder never held a desk"
        )
    if not path.exists() and wal.exists() and wal.stat().st_size > 0:
        raise StoreError(
            f"{path} is missing but its write-ahead log {wal.name} is there: the store was removed; "
            "restore a backup (main.py backup restore)"
        )


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    try:
        # WAL lets readers (the GUI, backups, verify) run while the writer commits; FULL fsyncs
        # each commit so a durable append survives power loss, not only a process crash.
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=5000")
    finally:
        cursor.close()


def make_engine(url: str, *, application_name: str = "bulwark", **kwargs: Any) -> Engine:
    """A SQLAlchemy engine with the desk's durability settings applied to every connection.

    On PostgreSQL ``application_name`` labels the connections, so other workstations can see a
    running desk (``bulwark-desk``) in ``pg_stat_activity``.
    """
    backend = _backend(url)
    path = sqlite_path(url)
    if path is not None and not path.parent.is_dir():
        raise StoreError(f"database folder {path.parent} does not exist")
    try:
        if backend == "sqlite":
            engine = create_engine(url, **kwargs)
            event.listen(engine, "connect", _sqlite_pragmas)
            return engine
        connect_args = {"application_name": application_name, **PG_DEAD_PEER_BOUNDS, **kwargs.pop("connect_args", {})}
        return create_engine(url, pool_pre_ping=True, connect_args=connect_args, **kwargs)
    except (ImportError, NoSuchModuleError) as exc:
        raise StoreError(f"the {backend} database driver cannot be loaded: {exc}") from None


def open_read_only(url: str) -> Engine:
    """An engine that reads the store at ``url`` and cannot write to it, nor to its folder.

    For an auditor's copy on a read-only folder or medium, and for every command that only reads.
    SQLite, by the state of the write-ahead log:

    - no ``-wal``: no connection has the file open, so it is read as ``immutable`` (no locks, no
      ``-shm``: nothing is created beside it);
    - a ``-wal`` and ``-shm`` in a folder this user may write: a desk may be running; read with
      ``mode=ro``, sharing its WAL index (as any reader of a live store does);
    - a ``-wal`` otherwise (a crashed desk's folder, copied or read-only): its committed tail
      lives in the ``-wal``, which SQLite can read only with an index it would create beside it;
      the file and its log are copied to a private temporary folder and read there.

    PostgreSQL: every transaction is read-only (``default_transaction_read_only``).
    """
    backend = _backend(url)
    if backend != "sqlite":
        return make_engine(
            url, application_name=READ_ONLY_APPLICATION_NAME,
            connect_args={"options": "-c default_transaction_read_only=on", "connect_timeout": PG_CONNECT_TIMEOUT_S},
        )
    path = sqlite_path(url)
    if path is None:
        return make_engine(url)
    if not path.is_file():
        raise StoreError(f"no database at {path}: nothing has been recorded there")
    refuse_lost_store(path)
    with path.open("rb") as handle:
        if handle.read(len(SQLITE_HEADER)) != SQLITE_HEADER:
            raise StoreError(f"{path} is not a SQLite database (corrupt or overwritten); restore a backup")
    wal = path.with_name(path.name + "-wal")
    shm = path.with_name(path.name + "-shm")
    if not wal.exists():
        return _sqlite_reader(path, "immutable=1")
    if shm.exists() and may_write(path.parent):
        return _sqlite_reader(path, "mode=ro")
    private = Path(tempfile.mkdtemp(prefix="bulwark-read-"))
    shutil.copy2(path, private / path.name)
    shutil.copy2(wal, private / wal.name)
    engine = _sqlite_reader(private / path.name, "mode=ro")
    weakref.finalize(engine, shutil.rmtree, private, True)
    return engine


def _sqlite_reader(path: Path, options: str) -> Engine:
    uri = f"{path.resolve().as_uri()}?{options}"

    def connect() -> sqlite3.Connection:
        connection = sqlite3.connect(uri, uri=True, check_same_thread=False)
        connection.execute("PRAGMA query_only=1")
        connection.execute("PRAGMA busy_timeout=5000")
        return connection

    return create_engine("sqlite://", creator=connect)


def _backend(url: str) -> str:
    try:
        backend = make_url(url).get_backend_name()
    except ArgumentError:
        raise StoreError("the database URL cannot be parsed; expected dialect://...") from None
    if backend not in SUPPORTED_BACKENDS:
        raise StoreError(f"database backend {backend!r} is not supported; use one of {', '.join(SUPPORTED_BACKENDS)}")
    return backend
