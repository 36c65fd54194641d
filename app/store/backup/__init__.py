"""Backups of the store: create, list, verify, restore, retention and a daily schedule.

A backup is two files in the backup folder:

* the data file, ``bulwark-YYYYMMDD-HHMMSS.db.gz`` (SQLite: a gzip of a consistent snapshot taken
  with SQLite's online backup API, safe while the desk keeps writing) or
  ``bulwark-YYYYMMDD-HHMMSS.pgdump`` (PostgreSQL: ``pg_dump --format=custom``). The timestamp in
  the name is **UTC** (not IST), so names sort in time order on any machine and never repeat or
  jump at a daylight-saving or timezone change; a ``-N`` suffix is added if two backups share a
  second.
* its manifest, ``<data file name>.manifest.json``: format version, creation time (UTC), source
  kind, file name, size, SHA-256 of the file (and, for SQLite, of the uncompressed database),
  and what the audit chain held: record count, last hash, and whether the chain verified.

Both are written atomically (temporary file, fsync, rename, fsync of the folder); the manifest
is written last, so a data file without a manifest is an incomplete backup. A backup of a broken
chain is still written (evidence is never destroyed), with ``verified: false`` and the reason.

The manifest detects damage (a flipped bit, a truncated copy). It is not a seal: whoever can
rewrite a backup can rewrite its manifest. Tampering is caught by the audit chain itself, which
``verify_backup`` recomputes, and by the day digests anchored outside the machine.

Nothing here parses arguments or prints: ``app/cli/backup.py`` and the desk call these functions.
Passwords in PostgreSQL URLs never reach a manifest, an exception message or a command line
(``pg_dump``/``pg_restore`` get them through ``PGPASSWORD``).

The package, one concern a module: ``manifest`` (file names, the manifest, listing), ``sqlite``
and ``postgres`` (the two backends), ``create``/``verify``/``restore`` (the entry points that
pick a backend), ``retention`` and ``schedule``; ``errors``, ``utc``, ``files``, ``urls``,
``contents``, ``checkpoint`` and ``results`` are what those share. Callers import from here.
"""

from __future__ import annotations

from app.domain.india_time import IST

from .create import create_backup
from .errors import BackupError
from .manifest import (
    FORMAT,
    FORMAT_VERSION,
    MANIFEST_SUFFIX,
    PG_SUFFIX,
    SQLITE_SUFFIX,
    BackupInfo,
    list_backups,
    manifest_path_for,
)
from .postgres import (
    PG_DUMP_MISSING,
    PG_RESTORE_MISSING,
    PG_TOOL_TIMEOUT_S,
    VERIFY_PG_URL_ENV,
)
from .restore import restore_backup
from .results import BackupCheck, RestoreResult
from .retention import prune_backups, select_to_keep
from .schedule import BackupScheduler, next_run
from .verify import verify_backup

__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "IST",
    "MANIFEST_SUFFIX",
    "PG_DUMP_MISSING",
    "PG_RESTORE_MISSING",
    "PG_SUFFIX",
    "PG_TOOL_TIMEOUT_S",
    "SQLITE_SUFFIX",
    "VERIFY_PG_URL_ENV",
    "BackupCheck",
    "BackupError",
    "BackupInfo",
    "BackupScheduler",
    "RestoreResult",
    "create_backup",
    "list_backups",
    "manifest_path_for",
    "next_run",
    "prune_backups",
    "restore_backup",
    "select_to_keep",
    "verify_backup",
]
