"""Versions of the risk limits: each one the whole normalised document, who set it, when and why.

Rows are only ever added; the newest version is the one a restart puts in force. The document is
kept as text: the store does not know the limits' schema, the engine does.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Engine, Row, Table, select
from sqlalchemy import insert as sql_insert

from .models import LimitVersionRow

_VERSIONS: Table = LimitVersionRow.__table__  # type: ignore[assignment]


@dataclass(frozen=True, slots=True)
class StoredLimits:
    """One stored version of the limits; ``document`` is its canonical JSON text."""

    version: int
    ts_ns: int
    actor: str
    reason: str
    document: str

    def __post_init__(self) -> None:
        if self.version < 1:
            raise ValueError(f"limit versions start at 1, got {self.version}")


def _stored(row: Row[Any]) -> StoredLimits:
    return StoredLimits(**row._mapping)


def insert(connection: Connection, stored: StoredLimits) -> None:
    """Add a version (inside the caller's transaction); a version number already taken fails."""
    connection.execute(sql_insert(_VERSIONS).values(
        version=stored.version, ts_ns=stored.ts_ns, actor=stored.actor, reason=stored.reason, document=stored.document,
    ))


def latest(engine: Engine) -> StoredLimits | None:
    """The newest version, or None when limits were never stored."""
    with engine.connect() as connection:
        row = connection.execute(select(_VERSIONS).order_by(_VERSIONS.c.version.desc()).limit(1)).first()
    return _stored(row) if row is not None else None


def history(engine: Engine, limit: int = 20) -> list[StoredLimits]:
    """The newest ``limit`` versions, newest first."""
    if limit < 1:
        raise ValueError(f"history needs a limit of at least 1, got {limit}")
    with engine.connect() as connection:
        rows = connection.execute(select(_VERSIONS).order_by(_VERSIONS.c.version.desc()).limit(limit)).all()
    return [_stored(row) for row in rows]
