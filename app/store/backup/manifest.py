"""What a backup is on disk: the names of its files and its manifest, written, read and listed.

The manifest format and the naming scheme live together because each reads the other: a
manifest names its data file, and a data file without a manifest is an incomplete backup.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..checkpoints import Checkpoint
from .errors import BackupError
from .files import _sha256_file

FORMAT = "bulwark-backup"
FORMAT_VERSION = 1
SQLITE_SUFFIX = ".db.gz"
PG_SUFFIX = ".pgdump"
MANIFEST_SUFFIX = ".manifest.json"
_NAME_RE = re.compile(r"^bulwark-(\d{8})-(\d{6})(?:-(\d+))?(\.db\.gz|\.pgdump)$")


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


def manifest_path_for(data_file: Path) -> Path:
    return data_file.with_name(data_file.name + MANIFEST_SUFFIX)


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


def _manifest_bytes(manifest: Mapping[str, Any]) -> bytes:
    return (json.dumps(manifest, indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode("utf-8")


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
