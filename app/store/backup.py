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

Nothing here parses arguments or prints: ``app/cli.py`` and the desk call these functions.
Passwords in PostgreSQL URLs never reach a manifest, an exception message or a command line
(``pg_dump``/``pg_restore`` get them through ``PGPASSWORD``).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import gzip
import hashlib
import json
import logging
import os
import re
import shutil
import sqlite3
import subprocess
import tempfile
import uuid
import zlib
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, inspect
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError
from sqlalchemy.pool import NullPool

from app.domain.india_time import IST

from .canonical import GENESIS_HASH
from .chain_key import ChainKeys
from .checkpoints import (
    Checkpoint,
    CheckpointError,
    append_checkpoint,
    chain_tail,
    make_checkpoint,
    read_checkpoints,
)
from .db import StoreError, sqlite_path
from .migrate import current_revision
from .verify import VerifyResult, verify_chain

log = logging.getLogger(__name__)

__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "IST",
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

FORMAT = "bulwark-backup"
FORMAT_VERSION = 1
SQLITE_SUFFIX = ".db.gz"
PG_SUFFIX = ".pgdump"
MANIFEST_SUFFIX = ".manifest.json"
VERIFY_PG_URL_ENV = "BULWARK_VERIFY_PG_URL"
PG_DUMP_MISSING = (
    "pg_dump not found: install PostgreSQL client tools (Debian: postgresql-client) to back up a PostgreSQL desk"
)
PG_RESTORE_MISSING = (
    "pg_restore not found: install PostgreSQL client tools (Debian: postgresql-client) to restore a PostgreSQL desk"
)
PG_TOOL_TIMEOUT_S = 3600.0
_CHUNK = 1 << 20
_NAME_RE = re.compile(r"^bulwark-(\d{8})-(\d{6})(?:-(\d+))?(\.db\.gz|\.pgdump)$")

class BackupError(StoreError):
    """A backup could not be created, checked or restored; the message says why and what to do."""


# -- results -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class BackupInfo:
    """One backup as its manifest describes it. ``problems`` is empty for a complete backup."""

    path: Path
    manifest_path: Path
    created_at: dt.datetime
    kind: str
    size: int | None = None
    sha256: str | None = None
    db_sha256: str | None = None
    db_size: int | None = None
    records: int | None = None
    last_hash: str | None = None
    verified: bool | None = None
    broken_at: int | None = None
    reason: str | None = None
    schema_revision: str | None = None
    source: str | None = None
    problems: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def name(self) -> str:
        return self.path.name

    def audit_payload(self) -> dict[str, Any]:
        """The payload of a ``BACKUP_CREATED`` audit record for this backup."""
        return {
            "file": self.path.name,
            "kind": self.kind,
            "created_at": self.created_at.isoformat(),
            "sha256": self.sha256,
            "size": self.size,
            "records": self.records,
            "last_hash": self.last_hash,
            "verified": self.verified,
            "broken_at": self.broken_at,
        }


@dataclass(frozen=True, slots=True)
class BackupCheck:
    """What ``verify_backup`` found.

    ``integrity_problems``: the file is damaged, missing, unreadable or disagrees with its
    manifest: never restore it. ``chain_problems``: the file is what the manifest says, but the
    audit chain inside it is broken (``broken_at``) or unprotected: restore only with ``force``.
    """

    path: Path
    info: BackupInfo | None
    checksum_ok: bool | None
    chain_checked: bool
    records: int | None = None
    last_hash: str | None = None
    verified_records: int | None = None
    broken_at: int | None = None
    reason: str | None = None
    missing_triggers: tuple[str, ...] = ()
    integrity_problems: tuple[str, ...] = ()
    chain_problems: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()

    @property
    def intact(self) -> bool:
        return self.checksum_ok is True and not self.integrity_problems

    @property
    def ok(self) -> bool:
        return self.intact and not self.chain_problems

    @property
    def problems(self) -> tuple[str, ...]:
        return self.integrity_problems + self.chain_problems


@dataclass(frozen=True, slots=True)
class RestoreResult:
    """A finished restore. ``safety_copy`` holds the database as it was just before (None if there was none)."""

    backup: Path
    target: str
    safety_copy: Path | None
    records: int
    last_hash: str
    forced: bool
    check: BackupCheck
    restored_at: dt.datetime
    notes: tuple[str, ...] = ()

    def audit_payload(self) -> dict[str, Any]:
        """The payload of a ``BACKUP_RESTORED`` audit record (append it to the restored store)."""
        return {
            "file": self.backup.name,
            "sha256": self.check.info.sha256 if self.check.info else None,
            "records": self.records,
            "last_hash": self.last_hash,
            "safety_copy": str(self.safety_copy) if self.safety_copy else None,
            "forced": self.forced,
            "restored_at": self.restored_at.isoformat(),
        }


# -- small helpers -------------------------------------------------------------------------------


def _utc(now: dt.datetime | None) -> dt.datetime:
    if now is None:
        return dt.datetime.now(dt.UTC)
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("timestamps must be timezone-aware")
    return now.astimezone(dt.UTC)


def _stamp(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).strftime("%Y%m%d-%H%M%S")


def manifest_path_for(data_file: Path) -> Path:
    return data_file.with_name(data_file.name + MANIFEST_SUFFIX)


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _fsync_dir(folder: Path) -> None:
    if os.name == "nt":  # Windows cannot open a folder for fsync; rename is durable enough there
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_file(path: Path) -> None:
    with path.open("rb+") as handle:
        os.fsync(handle.fileno())


def _temp_path(folder: Path, name: str) -> Path:
    return folder / f".{name}.{uuid.uuid4().hex[:12]}.tmp"


def _unlink(path: Path) -> None:
    try:
        path.unlink()
    except FileNotFoundError:
        pass


@contextmanager
def _atomic_target(dest: Path) -> Iterator[Path]:
    """Yield a temporary path next to ``dest``; on success fsync it and rename it over ``dest``."""
    tmp = _temp_path(dest.parent, dest.name)
    try:
        yield tmp
        if os.name != "nt":
            os.chmod(tmp, 0o600)  # trading records: readable by their owner only
        _fsync_file(tmp)
        os.replace(tmp, dest)
        _fsync_dir(dest.parent)
    finally:
        _unlink(tmp)


def _write_bytes_atomic(dest: Path, data: bytes) -> None:
    with _atomic_target(dest) as tmp:
        tmp.write_bytes(data)


def _reserve_name(folder: Path, stamp: str, suffix: str) -> Path:
    """Claim ``bulwark-<stamp><suffix>`` (or ``-2``, ``-3``...) with an exclusive create."""
    for index in range(1, 1000):
        name = f"bulwark-{stamp}{'' if index == 1 else f'-{index}'}{suffix}"
        candidate = folder / name
        if manifest_path_for(candidate).exists():
            continue
        try:
            fd = os.open(candidate, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
        except FileExistsError:
            continue
        os.close(fd)
        return candidate
    raise BackupError(f"cannot find a free backup name for {stamp} in {folder}")


def _describe(url: str) -> str:
    """A URL fit for messages and manifests: the password replaced by ``***``."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "<unparseable database URL>"


def _scrub(text: str, *urls: str) -> str:
    """Remove every password of ``urls`` from ``text`` (tool output, driver errors)."""
    for url in urls:
        try:
            password = make_url(url).password
        except ArgumentError:
            continue
        if password:
            text = text.replace(str(password), "***")
    return text


def _backend(url: str) -> str:
    try:
        name = make_url(url).get_backend_name()
    except ArgumentError as exc:
        raise BackupError(f"not a database URL: {_describe(url)}") from exc
    if name not in ("sqlite", "postgresql"):
        raise BackupError(f"cannot back up a {name} database: only SQLite and PostgreSQL are supported")
    return name


def _readonly_sqlite_engine(path: Path) -> Engine:
    """An engine that reads ``path`` exactly as it is: no migration, no WAL switch, no write at all."""
    uri = path.resolve().as_uri() + "?mode=ro&immutable=1"

    def connect() -> sqlite3.Connection:
        return sqlite3.connect(uri, uri=True, check_same_thread=False)

    return create_engine("sqlite://", creator=connect, poolclass=NullPool)


def _schema_revision(engine: Engine) -> str | None:
    try:
        return current_revision(engine)
    except SQLAlchemyError:
        return None


def _chain_reason(result: VerifyResult) -> str | None:
    return "; ".join(result.problems()) or None


@dataclass(frozen=True, slots=True)
class _Contents:
    """What a database holds: its chain check, and its audit rows counted without trusting the chain."""

    chain: VerifyResult
    rows: int
    last_hash: str | None
    revision: str | None


def _read_contents(engine: Engine, keys: ChainKeys | None = None) -> _Contents:
    chain = verify_chain(engine, keys=keys)
    rows, last = 0, None
    if inspect(engine).has_table("audit_log"):
        with engine.connect() as connection:
            rows = int(connection.exec_driver_sql("SELECT count(*) FROM audit_log").scalar_one())
            value = connection.exec_driver_sql("SELECT hash FROM audit_log ORDER BY seq DESC LIMIT 1").scalar()
            last = None if value is None else str(value)
    return _Contents(chain, rows, last, _schema_revision(engine))


# -- manifests -----------------------------------------------------------------------------------


def _manifest(
    *, data_file: Path, created_at: dt.datetime, kind: str, source: str, db_sha256: str | None,
    db_size: int | None, records: int, last_hash: str | None, verified: bool, verified_records: int,
    broken_at: int | None, reason: str | None, missing_triggers: list[str], schema_revision: str | None,
    notes: list[str], checkpoint: Checkpoint | None = None,
) -> dict[str, Any]:
    """The manifest document. ``audit.records``/``last_hash`` count the rows the backup holds (the
    last by sequence number), whatever the chain says; ``verified_records`` is how far the chain
    verified from the start."""
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "created_at": created_at.isoformat(),
        "kind": kind,
        "source": source,
        "file": data_file.name,
        "size": data_file.stat().st_size,
        "sha256": _sha256_file(data_file),
        "db_sha256": db_sha256,
        "db_size": db_size,
        "schema_revision": schema_revision,
        "audit": {
            "records": records,
            "last_hash": last_hash,
            "verified": verified,
            "verified_records": verified_records,
            "broken_at": broken_at,
            "reason": reason,
            "missing_triggers": missing_triggers,
        },
        "checkpoint": None if checkpoint is None else checkpoint.to_json(),
        "notes": notes,
    }


def _info_from_manifest(manifest_path: Path) -> BackupInfo:
    """Read a manifest; anything wrong with it or its data file becomes a problem, never an exception."""
    guessed = manifest_path.with_name(manifest_path.name[: -len(MANIFEST_SUFFIX)])
    try:
        doc = json.loads(manifest_path.read_text(encoding="utf-8"))
        if not isinstance(doc, dict) or doc.get("format") != FORMAT:
            raise ValueError("not a Bulwark backup manifest")
        version = doc.get("format_version")
        if not isinstance(version, int) or version > FORMAT_VERSION:
            raise ValueError(f"manifest format {version!r} is newer than this Bulwark reads ({FORMAT_VERSION})")
        name = doc["file"]
        if not isinstance(name, str) or Path(name).name != name or name in ("", ".", ".."):
            raise ValueError("its file name is not a plain file name")
        created = dt.datetime.fromisoformat(doc["created_at"])
        if created.tzinfo is None:
            raise ValueError("created_at has no timezone")
        audit = doc.get("audit") or {}
    except (OSError, ValueError, KeyError, TypeError) as exc:
        return BackupInfo(
            path=guessed, manifest_path=manifest_path, created_at=_time_from_name(guessed),
            kind=_kind_from_name(guessed), problems=(f"manifest unreadable: {exc}",),
        )
    data_file = manifest_path.with_name(name)
    problems: list[str] = []
    size = doc.get("size")
    if not data_file.is_file():
        problems.append("backup file missing")
    elif isinstance(size, int) and data_file.stat().st_size != size:
        problems.append(f"backup file is {data_file.stat().st_size} bytes, the manifest says {size}")
    return BackupInfo(
        path=data_file,
        manifest_path=manifest_path,
        created_at=created.astimezone(dt.UTC),
        kind=str(doc.get("kind", "")),
        size=size if isinstance(size, int) else None,
        sha256=doc.get("sha256"),
        db_sha256=doc.get("db_sha256"),
        db_size=doc.get("db_size"),
        records=audit.get("records"),
        last_hash=audit.get("last_hash"),
        verified=audit.get("verified"),
        broken_at=audit.get("broken_at"),
        reason=audit.get("reason"),
        schema_revision=doc.get("schema_revision"),
        source=doc.get("source"),
        problems=tuple(problems),
    )


def _time_from_name(path: Path) -> dt.datetime:
    match = _NAME_RE.match(path.name)
    if match:
        try:
            return dt.datetime.strptime(match[1] + match[2], "%Y%m%d%H%M%S").replace(tzinfo=dt.UTC)
        except ValueError:
            pass
    try:
        return dt.datetime.fromtimestamp(path.stat().st_mtime, dt.UTC)
    except OSError:
        return dt.datetime.fromtimestamp(0, dt.UTC)


def _index_from_name(path: Path) -> int:
    """The ``-N`` of a backup made in the same second as another (1 for the first)."""
    match = _NAME_RE.match(path.name)
    return int(match[3]) if match and match[3] else 1


def _kind_from_name(path: Path) -> str:
    if path.name.endswith(SQLITE_SUFFIX):
        return "sqlite"
    if path.name.endswith(PG_SUFFIX):
        return "postgresql"
    return "unknown"


# -- create --------------------------------------------------------------------------------------


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


def _checkpoint(tail: tuple[int, str, str | None], keys: ChainKeys, moment: dt.datetime,
                notes: list[str], *, verified: bool, checkpoints: Path | None) -> Checkpoint | None:
    """A signed checkpoint of the backed-up tail, unless that would bless a chain that is broken or
    shorter than a checkpoint already taken (a truncation): the manifest then says why there is none."""
    if not verified:
        notes.append("no checkpoint: the chain did not verify")
        return None
    if checkpoints is not None and checkpoints.exists():
        try:
            newest = max((checkpoint.seq for checkpoint in read_checkpoints(checkpoints)), default=0)
        except StoreError as exc:
            notes.append(f"no checkpoint: {exc}")
            return None
        if newest > tail[0]:
            notes.append(f"no checkpoint: the chain ends at record {tail[0]}, before the checkpoint at record {newest} "
                         f"in {checkpoints.name} (records were removed)")
            return None
    try:
        return make_checkpoint(*tail, keys, "backup", moment)
    except StoreError as exc:
        # The backup is made all the same (evidence is never withheld); the manifest says why it has no checkpoint.
        notes.append(f"no checkpoint: {exc}")
        return None


def _record_checkpoint(checkpoint: Checkpoint | None, checkpoints: Path | None) -> None:
    if checkpoint is None or checkpoints is None:
        return
    try:
        append_checkpoint(checkpoints, checkpoint)
    except CheckpointError as exc:
        log.error("backup made, but its checkpoint was not appended: %s", exc)


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


def _manifest_bytes(manifest: Mapping[str, Any]) -> bytes:
    return (json.dumps(manifest, indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode("utf-8")


# -- PostgreSQL ----------------------------------------------------------------------------------


def _libpq_url(url: str) -> str:
    """``postgresql+psycopg://u:pw@h/db`` -> ``postgresql://u@h/db``: libpq's form, without the password."""
    parsed: URL = make_url(url).set(drivername="postgresql", password=None)
    return parsed.render_as_string(hide_password=False)


def _pg_env(url: str) -> dict[str, str]:
    env = dict(os.environ)
    password = make_url(url).password
    if password:
        env["PGPASSWORD"] = str(password)
    return env


def _run_pg_tool(args: list[str], url: str, what: str) -> None:
    try:
        done = subprocess.run(
            args, env=_pg_env(url), capture_output=True, text=True, timeout=PG_TOOL_TIMEOUT_S, check=False,
            stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired as exc:
        raise BackupError(f"{what} did not finish within {PG_TOOL_TIMEOUT_S:.0f} s") from exc
    except OSError as exc:
        raise BackupError(f"cannot run {what}: {exc.strerror or exc}") from exc
    if done.returncode != 0:
        detail = _scrub((done.stderr or done.stdout or "").strip(), url)
        raise BackupError(f"{what} failed (exit {done.returncode}) for {_describe(url)}: {detail[-2000:]}")


def _pg_dump(url: str, dest: Path, *, snapshot: str | None = None) -> None:
    tool = shutil.which("pg_dump")
    if tool is None:
        raise BackupError(PG_DUMP_MISSING)
    args = [tool, "--format=custom", "--no-password", f"--dbname={_libpq_url(url)}", f"--file={dest}"]
    if snapshot:
        args.append(f"--snapshot={snapshot}")
    _run_pg_tool(args, url, "pg_dump")


def _create_postgresql(db_url: str, backup_dir: Path, created_at: dt.datetime, checkpoints: Path | None,
                       keys: ChainKeys) -> BackupInfo:
    if shutil.which("pg_dump") is None:
        raise BackupError(PG_DUMP_MISSING)
    data_file = _reserve_name(backup_dir, _stamp(created_at), PG_SUFFIX)
    engine = create_engine(db_url, poolclass=NullPool)
    try:
        # Export a snapshot and hand it to pg_dump, so the counts below describe exactly the dump.
        with _atomic_target(data_file) as tmp, \
                engine.connect().execution_options(isolation_level="REPEATABLE READ") as connection:
            snap = str(connection.exec_driver_sql("SELECT pg_export_snapshot()").scalar_one())
            has_audit = inspect(connection).has_table("audit_log")
            keyed = has_audit and "key_fp" in {c["name"] for c in inspect(connection).get_columns("audit_log")}
            last = (
                connection.exec_driver_sql(
                    f"SELECT seq, hash, {'key_fp' if keyed else 'NULL'} FROM audit_log ORDER BY seq DESC LIMIT 1"
                ).first() if has_audit else None
            )
            count = connection.exec_driver_sql("SELECT count(*) FROM audit_log").scalar_one() if has_audit else 0
            revision = None
            if inspect(connection).has_table("alembic_version"):
                revision = connection.exec_driver_sql("SELECT version_num FROM alembic_version").scalar()
            _pg_dump(db_url, tmp, snapshot=snap)
            connection.rollback()
        # The chain is walked on the live database (a superset of the dump): a break after the
        # dump's last record does not concern this backup.
        live = verify_chain(engine, keys=keys)
        dump_last_seq = int(last[0]) if last is not None else 0
        dump_last_hash = str(last[1]) if last is not None else None
        broken_at = live.broken_at if live.broken_at is not None and live.broken_at <= dump_last_seq else None
        reasons: list[str] = []
        if not has_audit:
            reasons.append("there is no audit_log table")
        elif broken_at is not None:
            reasons.append(f"record {broken_at}: {live.reason}")
        if live.missing_triggers:
            reasons.append("append-only triggers missing: " + ", ".join(live.missing_triggers))
        reasons.extend(p for p in live.problems() if "has no such key" in p)
        if not reasons and last is not None:
            with engine.connect() as connection:
                now_hash = connection.exec_driver_sql(
                    "SELECT hash FROM audit_log WHERE seq = %(seq)s", {"seq": dump_last_seq}).scalar()
            if now_hash != dump_last_hash:
                broken_at = dump_last_seq
                reasons.append(f"record {dump_last_seq} changed while the backup was taken")
        verified = not reasons
        notes = ["the chain was verified on the live database when the backup was made, up to the dump's last record"]
        checkpoint = _checkpoint(
            (dump_last_seq, dump_last_hash or GENESIS_HASH, None if last is None else last[2]), keys, created_at, notes,
            verified=verified, checkpoints=checkpoints)
        manifest = _manifest(
            data_file=data_file, created_at=created_at, kind="postgresql", source=_describe(db_url),
            db_sha256=None, db_size=None, records=int(count), last_hash=dump_last_hash, verified=verified,
            verified_records=int(count) if broken_at is None else live.records, broken_at=broken_at,
            reason="; ".join(reasons) or None, missing_triggers=list(live.missing_triggers),
            schema_revision=None if revision is None else str(revision),
            notes=notes, checkpoint=checkpoint,
        )
        _write_bytes_atomic(manifest_path_for(data_file), _manifest_bytes(manifest))
    except SQLAlchemyError as exc:
        _unlink(data_file)
        raise BackupError(f"cannot back up {_describe(db_url)}: {_scrub(str(exc).splitlines()[0], db_url)}") from None
    except BaseException:
        _unlink(data_file)
        raise
    finally:
        engine.dispose()
    _record_checkpoint(checkpoint, checkpoints)
    log.info("backup %s created (%s records, verified=%s)", data_file.name, count, verified)
    return _info_from_manifest(manifest_path_for(data_file))


# -- list ----------------------------------------------------------------------------------------


def list_backups(backup_dir: Path) -> list[BackupInfo]:
    """Every backup in ``backup_dir``, newest first; incomplete or orphaned ones carry ``problems``."""
    backup_dir = Path(backup_dir)
    if not backup_dir.is_dir():
        return []
    found: list[BackupInfo] = []
    described: set[str] = set()
    entries = sorted(p for p in backup_dir.iterdir() if not p.name.startswith("."))
    for entry in entries:
        if entry.name.endswith(MANIFEST_SUFFIX) and entry.is_file():
            info = _info_from_manifest(entry)
            found.append(info)
            described.add(info.path.name)
    for entry in entries:
        if _NAME_RE.match(entry.name) and entry.is_file() and entry.name not in described:
            found.append(BackupInfo(
                path=entry, manifest_path=manifest_path_for(entry), created_at=_time_from_name(entry),
                kind=_kind_from_name(entry), size=entry.stat().st_size,
                problems=("no manifest (an incomplete backup, or a file copied in by hand)",),
            ))
    found.sort(key=lambda info: (info.created_at, _index_from_name(info.path), info.path.name), reverse=True)
    return found


# -- verify --------------------------------------------------------------------------------------


def _resolve(path: Path) -> tuple[Path, Path]:
    path = Path(path)
    if path.name.endswith(MANIFEST_SUFFIX):
        info = _info_from_manifest(path)
        return info.path, path
    return path, manifest_path_for(path)


def verify_backup(path: Path) -> BackupCheck:
    """Check a backup (its data file or its manifest): checksum, then the audit chain inside it.

    SQLite backups are decompressed into a temporary folder and checked as they are (read-only,
    never migrated). PostgreSQL dumps get the checksum only, unless ``BULWARK_VERIFY_PG_URL``
    names a scratch server where a temporary database is created, restored into, checked and
    dropped. Never raises for a bad backup: everything found is in the result.
    """
    data_file, manifest_file = _resolve(path)
    info = _info_from_manifest(manifest_file) if manifest_file.is_file() else None
    integrity: list[str] = []
    notes: list[str] = []
    checksum_ok: bool | None = None
    if info is None:
        integrity.append("no manifest: the checksum cannot be checked")
    else:
        integrity.extend(p for p in info.problems if p != "backup file missing")
    if not data_file.is_file():
        integrity.append(f"backup file missing: {data_file}")
        return BackupCheck(path=data_file, info=info, checksum_ok=None, chain_checked=False,
                           integrity_problems=tuple(integrity))
    if info is not None and info.sha256:
        checksum_ok = _sha256_file(data_file) == info.sha256
        if not checksum_ok:
            integrity.append("checksum mismatch: the backup file was altered or damaged since it was made")
    elif info is not None:
        integrity.append("the manifest holds no checksum")
    kind = info.kind if info is not None and info.kind else _kind_from_name(data_file)
    contents: _Contents | None
    if kind == "sqlite":
        contents = _verify_sqlite_file(data_file, info, integrity)
    elif kind == "postgresql":
        contents = _verify_pg_file(data_file, integrity, notes)
    else:
        integrity.append(f"unknown backup kind {kind!r}")
        contents = None
    if contents is None:
        recorded: tuple[str, ...] = ()
        if info is not None and info.verified is False:
            recorded = (f"the audit chain was broken when the backup was made: {info.reason}",)
        return BackupCheck(path=data_file, info=info, checksum_ok=checksum_ok, chain_checked=False,
                           broken_at=info.broken_at if recorded and info else None,
                           integrity_problems=tuple(integrity), chain_problems=recorded, notes=tuple(notes))
    chain = contents.chain
    chain_problems: list[str] = []
    if chain.broken_at is not None:
        chain_problems.append(f"audit chain broken at record {chain.broken_at}: {chain.reason}")
    if chain.missing_triggers:
        chain_problems.append("append-only triggers missing: " + ", ".join(chain.missing_triggers))
    if info is not None and not info.problems:
        if info.records is not None and info.records != contents.rows:
            integrity.append(f"the manifest says {info.records} audit records, the backup holds {contents.rows}")
        if info.last_hash != contents.last_hash:
            integrity.append("the last audit record's hash differs from the manifest's")
        if info.verified is True and not chain.ok:
            integrity.append("the manifest says the chain verified when the backup was made; it does not now")
        if info.verified is False and chain.ok:
            notes.append("the manifest says the chain was broken when the backup was made; it verifies now")
        if info.schema_revision != contents.revision:
            integrity.append(
                f"schema revision {contents.revision} differs from the manifest's {info.schema_revision}")
    return BackupCheck(
        path=data_file, info=info, checksum_ok=checksum_ok, chain_checked=True,
        records=contents.rows, last_hash=contents.last_hash, verified_records=chain.records,
        broken_at=chain.broken_at, reason=chain.reason, missing_triggers=tuple(chain.missing_triggers),
        integrity_problems=tuple(integrity), chain_problems=tuple(chain_problems), notes=tuple(notes),
    )


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


def _verify_pg_file(data_file: Path, integrity: list[str], notes: list[str]) -> _Contents | None:
    if integrity:
        return None
    scratch = os.environ.get(VERIFY_PG_URL_ENV, "").strip()
    if not scratch:
        notes.append(
            "checksum only: checking the audit chain of a PostgreSQL dump needs a scratch server; "
            f"set {VERIFY_PG_URL_ENV} to a PostgreSQL URL where a temporary database may be created"
        )
        return None
    if shutil.which("pg_restore") is None:
        notes.append("checksum only: " + PG_RESTORE_MISSING)
        return None
    try:
        return _verify_pg_in_scratch(data_file, scratch)
    except (BackupError, SQLAlchemyError, ArgumentError) as exc:
        text = _scrub(str(exc).splitlines()[0], scratch)
        integrity.append(f"restoring into the scratch server {_describe(scratch)} failed: {text}")
        return None


def _pg_admin_url(url: str) -> str:
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed.render_as_string(hide_password=False)


def _verify_pg_in_scratch(data_file: Path, scratch_url: str) -> _Contents:
    admin_url = _pg_admin_url(scratch_url)
    name = f"bulwark_verify_{uuid.uuid4().hex[:16]}"
    admin = create_engine(admin_url, poolclass=NullPool, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            connection.exec_driver_sql(f'CREATE DATABASE "{name}"')
        try:
            target = make_url(admin_url).set(database=name).render_as_string(hide_password=False)
            _pg_restore(data_file, target, clean=False)
            engine = create_engine(target, poolclass=NullPool)
            try:
                return _read_contents(engine)
            finally:
                engine.dispose()
        finally:
            with admin.connect() as connection:
                connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}"')
    finally:
        admin.dispose()


def _pg_restore(data_file: Path, url: str, *, clean: bool) -> None:
    tool = shutil.which("pg_restore")
    if tool is None:
        raise BackupError(PG_RESTORE_MISSING)
    args = [tool, "--no-password", "--no-owner", "--no-privileges", "--exit-on-error", "--single-transaction",
            f"--dbname={_libpq_url(url)}"]
    if clean:
        args += ["--clean", "--if-exists"]
    _run_pg_tool([*args, str(data_file)], url, "pg_restore")


# -- restore -------------------------------------------------------------------------------------


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
    assert check.info is not None
    if check.info.kind != backend:
        raise BackupError(f"this is a {check.info.kind} backup; it cannot be restored into a {backend} database")
    moment = _utc(now)
    if backend == "sqlite":
        return _restore_sqlite(check, db_url, desk_running, force, moment)
    return _restore_postgresql(check, db_url, desk_running, force, moment)


def _free_path(base: Path) -> Path:
    candidate, index = base, 1
    while candidate.exists() or candidate.with_name(candidate.name + "-wal").exists():
        index += 1
        candidate = base.with_name(f"{base.name}-{index}")
    return candidate


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
    info = check.info
    assert info is not None
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


def _restore_postgresql(
    check: BackupCheck, db_url: str, desk_running: Callable[[], bool], force: bool, moment: dt.datetime
) -> RestoreResult:
    info = check.info
    assert info is not None
    if shutil.which("pg_restore") is None:
        raise BackupError(PG_RESTORE_MISSING)
    database = make_url(db_url).database or "postgres"
    safe_name = re.sub(r"[^A-Za-z0-9_.-]", "_", database)
    safety = _free_path(info.path.with_name(f"pre-restore-{safe_name}-{_stamp(moment)}{PG_SUFFIX}"))
    with _atomic_target(safety) as tmp:
        _pg_dump(db_url, tmp)
    if desk_running():
        raise BackupError(f"a desk started against this database during the restore; nothing was changed "
                          f"(a safety dump was written to {safety})")
    _pg_restore(info.path, db_url, clean=True)
    engine = create_engine(db_url, poolclass=NullPool)
    try:
        restored = verify_chain(engine)
    except SQLAlchemyError as exc:
        raise BackupError(f"restored, but cannot read it back: {_scrub(str(exc).splitlines()[0], db_url)}") from None
    finally:
        engine.dispose()
    return RestoreResult(
        backup=info.path, target=_describe(db_url), safety_copy=safety, records=restored.records,
        last_hash=restored.last_hash, forced=force and bool(check.chain_problems), check=check,
        restored_at=moment,
        notes=("tables the backup does not hold (from a newer schema) were left in place",),
    )


# -- retention -----------------------------------------------------------------------------------


def select_to_keep(
    timestamps: Iterable[dt.datetime], now: dt.datetime, *, daily: int = 7, weekly: int = 4, monthly: int = 12,
    tz: dt.tzinfo = IST,
) -> set[dt.datetime]:
    """Which backups retention keeps (the rest may go). Pure.

    Keeps the newest backup of each of the ``daily`` most recent days that have a backup, of each
    of the ``weekly`` most recent ISO weeks that have one, and of each of the ``monthly`` most
    recent months that have one (days, weeks and months in ``tz``, the desk's IST). One backup
    may count for several rules, so at most ``daily + weekly + monthly`` are kept. Backups dated
    after ``now`` (a clock that was wrong) are kept and not counted: never delete what the clock
    cannot place. Keeping what this returns and applying it again keeps the same set.
    """
    if min(daily, weekly, monthly) < 0:
        raise ValueError("retention counts cannot be negative")
    reference = _utc(now)
    stamps = set(timestamps)
    for stamp in stamps:
        _utc(stamp)
    future = {stamp for stamp in stamps if stamp > reference}
    past = sorted(stamps - future, reverse=True)
    keep = set(future)

    def newest_per(bucket: Callable[[dt.datetime], object], count: int) -> None:
        seen: set[object] = set()
        for stamp in past:  # newest first: the first of each bucket is its newest
            if len(seen) >= count:
                break
            key = bucket(stamp.astimezone(tz))
            if key not in seen:
                seen.add(key)
                keep.add(stamp)

    newest_per(lambda t: t.date(), daily)
    newest_per(lambda t: tuple(t.isocalendar())[:2], weekly)
    newest_per(lambda t: (t.year, t.month), monthly)
    return keep


def prune_backups(
    backup_dir: Path, now: dt.datetime, *, daily: int = 7, weekly: int = 4, monthly: int = 12
) -> list[Path]:
    """Delete the backups retention does not keep; return the deleted files (data files and manifests).

    Only complete backups (manifest and file) are considered; anything with a problem is left
    for a person to look at. Beyond ``select_to_keep``, two backups are always kept: the newest
    whose chain verified (the last known-good state) and the oldest whose chain did not (the
    first evidence of a break).
    """
    backups = [info for info in list_backups(backup_dir) if info.ok]
    keep = select_to_keep((info.created_at for info in backups), now, daily=daily, weekly=weekly, monthly=monthly)
    protected: set[Path] = set()
    good = [info for info in backups if info.verified is True]
    bad = [info for info in backups if info.verified is False]
    if good:
        protected.add(good[0].path)  # newest first
    if bad:
        protected.add(bad[-1].path)
    deleted: list[Path] = []
    for info in backups:
        if info.created_at in keep or info.path in protected:
            continue
        for victim in (info.path, info.manifest_path):
            try:
                victim.unlink()
            except FileNotFoundError:
                continue
            except OSError as exc:
                raise BackupError(f"cannot delete old backup {victim}: {exc.strerror or exc}") from exc
            deleted.append(victim)
    if deleted:
        _fsync_dir(Path(backup_dir))
        log.info("retention deleted %d old backup files", len(deleted))
    return deleted


# -- schedule ------------------------------------------------------------------------------------


def next_run(now: dt.datetime, at: dt.time) -> dt.datetime:
    """The first moment strictly after ``now`` when the clock in India reads ``at``. Pure."""
    if at.tzinfo is not None:
        raise ValueError("the backup time is a plain wall-clock time in India (IST), without tzinfo")
    local = _utc(now).astimezone(IST)
    candidate = dt.datetime.combine(local.date(), at, tzinfo=IST)
    if candidate <= local:
        candidate = dt.datetime.combine(local.date() + dt.timedelta(days=1), at, tzinfo=IST)
    return candidate


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@dataclass
class BackupScheduler:
    """Daily backups for a running desk: at ``at`` (IST) every day, back up, prune, report.

    ``run()`` never returns on its own; cancel its task to stop it. A failure (a full disk, a
    missing ``pg_dump``) is passed to ``on_done`` and the next day's backup is still attempted.
    The wait is re-measured against ``clock`` at least every ``max_sleep_s`` so a suspended
    laptop or a corrected clock does not push the backup off its time. A backup missed while the
    desk was closed is not caught up. Cancelling ``run()`` during a backup lets the copy already
    running in its thread finish (it is atomic either way); that run's prune and report are skipped.
    """

    db_url: str
    backup_dir: Path
    at: dt.time
    clock: Callable[[], dt.datetime] = _utcnow
    on_done: Callable[[BackupInfo | Exception], None] | None = None
    daily: int = 7
    weekly: int = 4
    monthly: int = 12
    max_sleep_s: float = 60.0
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep
    # The data folder's audit-checkpoints.jsonl (``None``: beside a SQLite database; none for PostgreSQL).
    checkpoints: Path | None = None
    runs: int = field(default=0, init=False)

    def __post_init__(self) -> None:
        if self.at.tzinfo is not None:
            raise ValueError("the backup time is a plain wall-clock time in India (IST), without tzinfo")

    def next_run(self, now: dt.datetime) -> dt.datetime:
        return next_run(now, self.at)

    async def run(self) -> None:
        while True:
            target = self.next_run(self.clock())
            await self._sleep_until(target)
            await self.run_once()

    async def _sleep_until(self, target: dt.datetime) -> None:
        while (remaining := (target - self.clock()).total_seconds()) > 0:
            await self.sleep(min(remaining, self.max_sleep_s))

    async def run_once(self) -> BackupInfo | Exception:
        """One backup and prune now; the outcome goes to ``on_done`` and is returned."""
        outcome: BackupInfo | Exception
        try:
            info = await asyncio.to_thread(create_backup, self.db_url, Path(self.backup_dir), now=self.clock(),
                                           checkpoints=self.checkpoints)
            outcome = info
            try:
                await asyncio.to_thread(
                    prune_backups, Path(self.backup_dir), self.clock(),
                    daily=self.daily, weekly=self.weekly, monthly=self.monthly,
                )
            except Exception as exc:  # noqa: BLE001 - reported, the loop goes on
                outcome = BackupError(f"backup {info.path.name} was created, but pruning old backups failed: {exc}")
        except Exception as exc:  # noqa: BLE001 - reported, the loop goes on
            log.error("scheduled backup failed: %s", exc)
            outcome = exc
        self.runs += 1
        if self.on_done is not None:
            try:
                self.on_done(outcome)
            except Exception:
                log.exception("the backup on_done callback raised")
        return outcome

