"""Database engines: SQLite (embedded default) and PostgreSQL (shared desk), with durability settings."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url


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
    path = sqlite_path(url)
    if path is not None and not path.parent.is_dir():
        raise StoreError(f"database folder {path.parent} does not exist")
    if is_sqlite(url):
        engine = create_engine(url, **kwargs)
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    connect_args = {"application_name": application_name, **kwargs.pop("connect_args", {})}
    return create_engine(url, pool_pre_ping=True, connect_args=connect_args, **kwargs)
