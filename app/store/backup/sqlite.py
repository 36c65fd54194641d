"""Backups of a SQLite store: a gzip of a consistent snapshot taken with SQLite's online backup
API (safe while the desk keeps writing), checked read-only, restored atomically over the file.
"""

from __future__ import annotations

import datetime as dt
import gzip
import hashlib
import logging
import shutil
import sqlite3
import tempfile
import zlib
from collections.abc import Callable
from pathlib import Path

from sqlalchemy import Engine, create_engine
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.pool import NullPool

from ..chain_key import ChainKeys
from ..checkpoints import chain_tail
from ..db import sqlite_path
from ..verify import verify_chain
from .checkpoint import _checkpoint, _record_checkpoint
from .contents import _chain_reason, _Contents, _read_contents
from .errors import BackupError
from .files import (
    _CHUNK,
    _atomic_target,
    _free_path,
    _sha256_file,
    _temp_path,
    _unlink,
    _write_bytes_atomic,
)
from .manifest import (
    SQLITE_SUFFIX,
    BackupInfo,
    _info_from_manifest,
    _manifest,
    _manifest_bytes,
    _reserve_name,
    manifest_path_for,
)
from .results import BackupCheck, RestoreResult, _manifest_of
from .utc import _stamp

log = logging.getLogger(__name__)


def _readonly_sqlite_engine(path: Path) -> Engine:
    """An engine that reads ``path`` exactly as it is: no migration, no WAL switch, no write at all."""
    uri = path.resolve().as_uri() + "?mode=ro&immutable=1"

    def connect() -> sqlite3.Connection:
        return sqlite3.connect(uri, uri=True, check_same_thread=False)

    return create_engine("sqlite://", creator=connect, poolclass=NullPool)


def _sqlite_snapshot(source: Path, dest: Path) -> None:
    """Copy ``source`` to ``dest`` with the online backup API: one consistent read, writers keep going (WAL)."""
    # A normal connection that only reads: a read-only one would leave -wal/-shm files behind.
    src = sqlite3.connect(source, timeout=30)
    try:
        dst = sqlite3.connect(dest)
        try:
            src.backup(dst)  # pages=-1: the whole database in one step, under one read transaction
            mode = dst.execute("PRAGMA journal_mode=DELETE").fetchone()
            if not mode or str(mode[0]).lower() != "delete":
                raise BackupError(f"could not make the snapshot a single file (journal mode {mode!r})")
        finally:
            dst.close()
    finally:
        src.close()


def _create_sqlite(db_url: str, backup_dir: Path, created_at: dt.datetime, checkpoints: Path | None,
                   keys: ChainKeys) -> BackupInfo:
    source = sqlite_path(db_url)
    if source is None:
        raise BackupError("an in-memory SQLite database has nothing to back up")
    if not source.is_file():
        raise BackupError(f"there is no database at {source}")
    data_file = _reserve_name(backup_dir, _stamp(created_at), SQLITE_SUFFIX)
    snapshot = _temp_path(backup_dir, data_file.name + ".snapshot")
    try:
        try:
            _sqlite_snapshot(source, snapshot)
        except sqlite3.Error as exc:
            raise BackupError(f"cannot read {source}: {exc}") from exc
        db_sha256 = _sha256_file(snapshot)
        db_size = snapshot.stat().st_size
        engine = _readonly_sqlite_engine(snapshot)
        notes: list[str] = []
        try:
            contents = _read_contents(engine, keys)
            checkpoint = _checkpoint(chain_tail(engine), keys, created_at, notes,
                                     verified=contents.chain.ok, checkpoints=checkpoints)
        except SQLAlchemyError as exc:
            raise BackupError(f"the snapshot of {source} cannot be read as a Bulwark store: {exc}") from exc
        finally:
            engine.dispose()
        with _atomic_target(data_file) as tmp, snapshot.open("rb") as raw, tmp.open("wb") as out, \
                gzip.GzipFile(filename="", mode="wb", fileobj=out, mtime=0, compresslevel=6) as packed:
            shutil.copyfileobj(raw, packed, _CHUNK)
        chain = contents.chain
        manifest = _manifest(
            data_file=data_file, created_at=created_at, kind="sqlite", source=str(source.resolve()),
            db_sha256=db_sha256, db_size=db_size, records=contents.rows, last_hash=contents.last_hash,
            verified=chain.ok, verified_records=chain.records, broken_at=chain.broken_at,
            reason=_chain_reason(chain), missing_triggers=list(chain.missing_triggers),
            schema_revision=contents.revision, notes=notes, checkpoint=checkpoint,
        )
        _write_bytes_atomic(manifest_path_for(data_file), _manifest_bytes(manifest))
    except BaseException:
        _unlink(data_file)
        raise
    finally:
        _unlink(snapshot)
    _record_checkpoint(checkpoint, checkpoints)
    log.info("backup %s created (%d records, verified=%s)", data_file.name, contents.rows, chain.ok)
    return _info_from_manifest(manifest_path_for(data_file))


def _decompress(data_file: Path, dest: Path) -> str:
    """Gunzip ``data_file`` into ``dest``; return the SHA-256 of what was written."""
    digest = hashlib.sha256()
    with gzip.open(data_file, "rb") as packed, dest.open("wb") as out:
        while chunk := packed.read(_CHUNK):
            digest.update(chunk)
            out.write(chunk)
    return digest.hexdigest()


def _verify_sqlite_file(data_file: Path, info: BackupInfo | None, integrity: list[str]) -> _Contents | None:
    with tempfile.TemporaryDirectory(prefix="bulwark-verify-") as folder:
        db = Path(folder) / "backup.db"
        try:
            db_sha = _decompress(data_file, db)
        except (OSError, EOFError, ValueError, zlib.error) as exc:
            integrity.append(f"cannot decompress: {exc}")
            return None
        if info is not None and info.db_sha256 and info.db_sha256 != db_sha:
            integrity.append("the decompressed database differs from the manifest's checksum")
        with db.open("rb") as handle:
            if handle.read(16) != b"SQLite format 3\x00":
                integrity.append("the decompressed file is not a SQLite database")
                return None
        engine = _readonly_sqlite_engine(db)
        try:
            with engine.connect() as connection:
                quick = [str(row[0]) for row in connection.exec_driver_sql("PRAGMA quick_check")]
            if quick != ["ok"]:
                integrity.append("SQLite quick_check: " + "; ".join(quick[:5]))
            return _read_contents(engine)
        except SQLAlchemyError as exc:
            integrity.append(f"the database cannot be read: {str(exc).splitlines()[0]}")
            return None
        finally:
            engine.dispose()


def _safety_copy_sqlite(target: Path, moment: dt.datetime) -> tuple[Path, list[str]]:
    dest = _free_path(target.with_name(f"{target.name}.pre-restore-{_stamp(moment)}"))
    notes: list[str] = []
    try:
        with _atomic_target(dest) as tmp:
            _sqlite_snapshot(target, tmp)
    except (sqlite3.Error, BackupError) as exc:
        # Unreadable as a database (that may be why it is being restored): keep its bytes as they are.
        notes.append(f"the current database could not be read ({exc}); its files were copied byte for byte")
        for suffix in ("", "-wal", "-shm", "-journal"):
            source = target.with_name(target.name + suffix)
            if source.is_file():
                copy = dest.with_name(dest.name + suffix)
                with _atomic_target(copy) as tmp:
                    shutil.copyfile(source, tmp)
    return dest, notes


def _restore_sqlite(
    check: BackupCheck, db_url: str, desk_running: Callable[[], bool], force: bool, moment: dt.datetime
) -> RestoreResult:
    info = _manifest_of(check)
    target = sqlite_path(db_url)
    if target is None:
        raise BackupError("cannot restore into an in-memory SQLite database")
    target.parent.mkdir(parents=True, exist_ok=True)
    safety: Path | None = None
    notes: list[str] = []
    if target.exists():
        safety, notes = _safety_copy_sqlite(target, moment)
    with _atomic_target(target) as tmp:
        db_sha = _decompress(info.path, tmp)
        if info.db_sha256 and db_sha != info.db_sha256:
            raise BackupError("the decompressed backup differs from its manifest; nothing was changed")
        if desk_running():
            raise BackupError("a desk started against this database during the restore; nothing was changed")
        # A WAL or hot journal left beside the old file would be replayed into the new one.
        for suffix in ("-wal", "-shm", "-journal"):
            _unlink(target.with_name(target.name + suffix))
    engine = _readonly_sqlite_engine(target)
    try:
        restored = verify_chain(engine)
    finally:
        engine.dispose()
    log.warning("restored %s from %s (safety copy %s)", target, info.path.name, safety)
    return RestoreResult(
        backup=info.path, target=str(target), safety_copy=safety, records=restored.records,
        last_hash=restored.last_hash, forced=force and bool(check.chain_problems), check=check,
        restored_at=moment, notes=tuple(notes),
    )
