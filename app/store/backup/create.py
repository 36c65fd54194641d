"""Creating a backup: the one entry point, which hands the work to the backend the URL names."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from ..chain_key import ChainKeys
from ..db import sqlite_path
from .errors import BackupError
from .manifest import BackupInfo
from .postgres import _create_postgresql
from .sqlite import _create_sqlite
from .urls import _backend
from .utc import _utc


def create_backup(
    db_url: str, backup_dir: Path, *, now: dt.datetime | None = None, checkpoints: Path | None = None,
    keys: ChainKeys | None = None,
) -> BackupInfo:
    """Back up the database at ``db_url`` into ``backup_dir`` (created if needed); safe while the desk runs.

    A signed checkpoint of the backed-up chain's last record goes into the manifest and is appended
    to ``checkpoints`` (the data folder's ``audit-checkpoints.jsonl``; for SQLite, by default, the
    one beside the database), so a later cut of the live chain shows against either. ``keys``:
    the keyring the chain's key is read from (the system's by default).

    ``now`` (timezone-aware, default the current time) names the backup; a naive one is a
    ``ValueError``. Everything else that goes wrong is a ``BackupError``. A broken audit chain is
    not an error: the backup is made and its manifest says ``verified: false`` and why.
    """
    created_at = _utc(now)
    backup_dir = Path(backup_dir)
    try:
        backup_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise BackupError(f"cannot create the backup folder {backup_dir}: {exc.strerror or exc}") from exc
    keys = keys if keys is not None else ChainKeys()
    if _backend(db_url) == "sqlite":
        source = sqlite_path(db_url)
        if checkpoints is None and source is not None:
            checkpoints = source.parent / "audit-checkpoints.jsonl"
        return _create_sqlite(db_url, backup_dir, created_at, checkpoints, keys)
    return _create_postgresql(db_url, backup_dir, created_at, checkpoints, keys)
