"""Restoring a backup: the refusals common to both backends (a running desk, a damaged backup,
a broken chain without ``force``, the wrong kind), then the backend's restore.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path

from .errors import BackupError
from .postgres import _restore_postgresql
from .results import RestoreResult, _manifest_of
from .sqlite import _restore_sqlite
from .urls import _backend
from .utc import _utc
from .verify import verify_backup


def restore_backup(
    path: Path, db_url: str, *, desk_running: Callable[[], bool], force: bool = False,
    now: dt.datetime | None = None,
) -> RestoreResult:
    """Replace the database at ``db_url`` with the backup at ``path``; the current one is kept first.

    Refuses (``BackupError``) while ``desk_running()`` says a desk uses the database, when the
    backup fails its checksum or cannot be read, and, unless ``force``, when its audit chain is
    broken. SQLite: the current database (with its WAL) is copied to ``<db>.pre-restore-<UTC
    stamp>`` through the backup API, then the backup replaces it atomically. PostgreSQL: the
    current database is dumped to ``pre-restore-<db>-<UTC stamp>.pgdump`` next to the backup,
    then ``pg_restore --clean`` replaces what the dump holds, in one transaction.
    """
    if desk_running():
        raise BackupError("a desk is running against this database: stop it before restoring a backup")
    backend = _backend(db_url)
    check = verify_backup(path)
    if not check.intact:
        raise BackupError("refusing to restore a damaged backup: " + "; ".join(check.integrity_problems))
    if check.chain_problems and not force:
        raise BackupError(
            "refusing to restore a backup whose audit chain is broken: " + "; ".join(check.chain_problems)
            + " (use force to restore it anyway; it stays evidence)"
        )
    info = _manifest_of(check)
    if info.kind != backend:
        raise BackupError(f"this is a {info.kind} backup; it cannot be restored into a {backend} database")
    moment = _utc(now)
    if backend == "sqlite":
        return _restore_sqlite(check, db_url, desk_running, force, moment)
    return _restore_postgresql(check, db_url, desk_running, force, moment)
