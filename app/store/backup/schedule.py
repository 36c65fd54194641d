"""The daily schedule: when the next backup is due (a pure rule in IST) and the task a running
desk keeps to back up, prune and report at that time.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

from app.domain.india_time import IST

from .create import create_backup
from .errors import BackupError
from .manifest import BackupInfo
from .retention import prune_backups
from .utc import _utc

log = logging.getLogger(__name__)


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
