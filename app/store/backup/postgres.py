"""Backups of a PostgreSQL store: ``pg_dump --format=custom`` of an exported snapshot, checked in
a scratch database when one is named, restored with ``pg_restore --clean`` in one transaction.

The client tools get the password through ``PGPASSWORD``, never on their command line.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import re
import shutil
import subprocess
import uuid
from collections.abc import Callable
from pathlib import Path

from sqlalchemy import create_engine, inspect
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError
from sqlalchemy.pool import NullPool

from ..canonical import GENESIS_HASH
from ..chain_key import ChainKeys
from ..verify import verify_chain
from .checkpoint import _checkpoint, _record_checkpoint
from .contents import _Contents, _read_contents
from .errors import BackupError
from .files import _atomic_target, _free_path, _unlink, _write_bytes_atomic
from .manifest import (
    PG_SUFFIX,
    BackupInfo,
    _info_from_manifest,
    _manifest,
    _manifest_bytes,
    _reserve_name,
    manifest_path_for,
)
from .results import BackupCheck, RestoreResult, _manifest_of
from .urls import _describe, _scrub
from .utc import _stamp

log = logging.getLogger(__name__)


VERIFY_PG_URL_ENV = "BULWARK_VERIFY_PG_URL"
PG_DUMP_MISSING = (
    "pg_dump not found: install PostgreSQL client tools (Debian: postgresql-client) to back up a PostgreSQL desk"
)
PG_RESTORE_MISSING = (
    "pg_restore not found: install PostgreSQL client tools (Debian: postgresql-client) to restore a PostgreSQL desk"
)
PG_TOOL_TIMEOUT_S = 3600.0


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


def _pg_restore(data_file: Path, url: str, *, clean: bool) -> None:
    tool = shutil.which("pg_restore")
    if tool is None:
        raise BackupError(PG_RESTORE_MISSING)
    args = [tool, "--no-password", "--no-owner", "--no-privileges", "--exit-on-error", "--single-transaction",
            f"--dbname={_libpq_url(url)}"]
    if clean:
        args += ["--clean", "--if-exists"]
    _run_pg_tool([*args, str(data_file)], url, "pg_restore")


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


def _restore_postgresql(
    check: BackupCheck, db_url: str, desk_running: Callable[[], bool], force: bool, moment: dt.datetime
) -> RestoreResult:
    info = _manifest_of(check)
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
