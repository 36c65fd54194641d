"""Owner-only files: the desk's data is for the user who runs it, not for every local account.

The store holds orders, positions and the audit trail; the logs hold the same story. A desk
process runs with umask 077 (set at the command line's entry, so every file any part of it
creates is 0600 and every folder 0700), and at start :func:`tighten` takes group and other
permissions off what an older Bulwark, a copy or a restore left readable.

POSIX only: on Windows the mode bits are not the access control (the user profile's ACLs are),
so both functions do nothing there.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

__all__ = ["OWNER_ONLY_UMASK", "Tightened", "may_write", "owner_only_umask", "restore_umask", "tighten"]

OWNER_ONLY_UMASK = 0o077
_GROUP_AND_OTHER = 0o077
APPLIES = os.name == "posix"


@dataclass(frozen=True)
class Tightened:
    """One path whose mode :func:`tighten` changed, or could not change (``error``)."""

    path: Path
    before: int
    after: int
    error: str | None = None

    def describe(self, home: Path) -> str:
        try:
            name = str(self.path.relative_to(home)) if self.path != home else str(home)
        except ValueError:
            name = str(self.path)
        if self.error is not None:
            return f"{name} ({self.before:04o}, not changed: {self.error})"
        return f"{name} ({self.before:04o}->{self.after:04o})"


def owner_only_umask() -> int | None:
    """From now on this process creates files 0600 and folders 0700; returns the umask it replaced
    (``None`` where modes do not apply), for :func:`restore_umask`."""
    return os.umask(OWNER_ONLY_UMASK) if APPLIES else None


def restore_umask(previous: int | None) -> None:
    if previous is not None:
        os.umask(previous)


def tighten(home: Path, extra: Iterable[Path] = ()) -> list[Tightened]:
    """Take group and other permissions off the data folder ``home``, everything under it, and the
    ``extra`` files (a database kept outside it); returns what was changed or failed.

    Only paths this user owns are touched, and symbolic links are never followed.
    """
    if not APPLIES:
        return []
    uid = os.geteuid()
    changes: list[Tightened] = []
    paths: list[Path] = []
    if home.is_dir() and not home.is_symlink():
        paths.append(home)
        for folder, dirs, files in os.walk(home):
            base = Path(folder)
            paths.extend(base / name for name in dirs)
            paths.extend(base / name for name in files)
    paths.extend(extra)
    for path in paths:
        try:
            info = path.lstat()
        except OSError:
            continue  # gone meanwhile (a rotated log, a removed -shm)
        if stat.S_ISLNK(info.st_mode) or info.st_uid != uid or not info.st_mode & _GROUP_AND_OTHER:
            continue
        before = stat.S_IMODE(info.st_mode)
        after = before & ~_GROUP_AND_OTHER
        try:
            os.chmod(path, after)
            now = stat.S_IMODE(path.lstat().st_mode)
        except OSError as exc:
            changes.append(Tightened(path, before, before, exc.strerror or str(exc)))
            continue
        if now & _GROUP_AND_OTHER:
            # FAT, some network shares: chmod "succeeds" and the mode stays
            changes.append(Tightened(path, before, now, "the file system keeps its own modes"))
            continue
        changes.append(Tightened(path, before, now))
    return changes


def may_write(folder: Path) -> bool:
    """Whether this process should create files in ``folder``: it can, and the folder's owner has
    not marked it read-only (``os.access`` alone says yes to root on any folder)."""
    try:
        return os.access(folder, os.W_OK) and bool(folder.stat().st_mode & stat.S_IWUSR)
    except OSError:
        return False
