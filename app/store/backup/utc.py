"""Backup time: every moment a backup takes is timezone-aware and kept in UTC.

UTC (not IST) names backups so they sort in time order on any machine and never repeat or jump
at a daylight-saving or timezone change; a naive ``datetime`` is refused rather than guessed.
"""

from __future__ import annotations

import datetime as dt


def _utc(now: dt.datetime | None) -> dt.datetime:
    if now is None:
        return dt.datetime.now(dt.UTC)
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("timestamps must be timezone-aware")
    return now.astimezone(dt.UTC)


def _stamp(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).strftime("%Y%m%d-%H%M%S")
