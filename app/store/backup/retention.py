"""Retention: which backups to keep (a pure rule over timestamps) and deleting the others.

Days, weeks and months are counted in IST, the desk's calendar; the backups' names stay in UTC.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Iterable
from pathlib import Path

from app.domain.india_time import IST

from .errors import BackupError
from .files import _fsync_dir
from .manifest import list_backups
from .utc import _utc

log = logging.getLogger(__name__)


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
