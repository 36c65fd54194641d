"""Versions of the trading calendar in force (see ``document_versions``).

The calendar is the firm's, not one desk's: every desk on a shared PostgreSQL database records the
version it finds in force at start. ``recording`` makes those desks take turns between reading the
newest version and committing the next, or two starting together would both take the same number
and the loser's audit write would fail (halting that desk).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Engine, text

from .document_versions import DocumentVersions
from .models import CalendarVersionRow

# 'bulwark' and 1: beside the migrations' lock (app.store.migrate.MIGRATION_LOCK_KEY, 'bulwark' and 0).
RECORDING_LOCK_KEY = 0x62756C7761726B01

_VERSIONS = DocumentVersions(CalendarVersionRow.__table__)  # type: ignore[arg-type]

insert = _VERSIONS.insert
latest = _VERSIONS.latest
history = _VERSIONS.history


@contextmanager
def recording(engine: Engine) -> Iterator[None]:
    """While inside, no other desk on this PostgreSQL database is inside (a session advisory lock on a
    connection of its own). SQLite needs none: one data folder's desk is the only writer of its file."""
    if engine.dialect.name != "postgresql":
        yield
        return
    with engine.connect() as connection:
        connection.execute(text("SELECT pg_advisory_lock(:key)"), {"key": RECORDING_LOCK_KEY})
        connection.commit()
        try:
            yield
        finally:
            connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": RECORDING_LOCK_KEY})
            connection.commit()
