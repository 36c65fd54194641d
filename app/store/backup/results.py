"""What checking and restoring a backup return: ``BackupCheck`` and ``RestoreResult``.

Apart from ``verify`` and ``restore`` because both backends build them and those two modules
import the backends.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import BackupError
from .manifest import BackupInfo


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


def _manifest_of(check: BackupCheck) -> BackupInfo:
    """The manifest of a backup about to be restored.

    ``verify_backup`` finds none intact without one, so this never raises after that check; it is
    an explicit check rather than an ``assert`` so it still holds under ``python -O``.
    """
    if check.info is None:
        raise BackupError(f"refusing to restore {check.path.name}: it has no readable manifest")
    return check.info
