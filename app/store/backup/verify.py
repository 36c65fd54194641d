"""Checking a backup: its checksum against its manifest, then the audit chain inside it.

The backend-neutral half of the check; reading the data file is the backend's part.
"""

from __future__ import annotations

from pathlib import Path

from .contents import _Contents
from .files import _sha256_file
from .manifest import (
    MANIFEST_SUFFIX,
    _info_from_manifest,
    _kind_from_name,
    manifest_path_for,
)
from .postgres import _verify_pg_file
from .results import BackupCheck
from .sqlite import _verify_sqlite_file


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
