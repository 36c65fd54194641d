"""Versioned documents (the risk limits, the trading calendar): each version the whole normalised
document, who set it, when and why.

Rows are only ever added; the newest version is the one a restart puts in force. The document is
kept as text: the store does not know its schema, the engine does.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Engine, Row, Table, select
from sqlalchemy import insert as sql_insert


@dataclass(frozen=True, slots=True)
class StoredDocument:
    """One stored version; ``document`` is its canonical JSON text."""

    version: int
    ts_ns: int
    actor: str
    reason: str
    document: str

    def __post_init__(self) -> None:
        if self.version < 1:
            raise ValueError(f"versions start at 1, got {self.version}")


class DocumentVersions:
    """The version rows of one table with the columns of ``StoredDocument``."""

    def __init__(self, table: Table) -> None:
        self.table = table

    def insert(self, connection: Connection, stored: StoredDocument) -> None:
        """Add a version (inside the caller's transaction); a version number already taken fails."""
        connection.execute(sql_insert(self.table).values(
            version=stored.version, ts_ns=stored.ts_ns, actor=stored.actor, reason=stored.reason, document=stored.document,
        ))

    def latest(self, engine: Engine) -> StoredDocument | None:
        """The newest version, or None when none was ever stored."""
        with engine.connect() as connection:
            row = connection.execute(select(self.table).order_by(self.table.c.version.desc()).limit(1)).first()
        return _stored(row) if row is not None else None

    def history(self, engine: Engine, limit: int = 20) -> list[StoredDocument]:
        """The newest ``limit`` versions, newest first."""
        if limit < 1:
            raise ValueError(f"history needs a limit of at least 1, got {limit}")
        with engine.connect() as connection:
            rows = connection.execute(select(self.table).order_by(self.table.c.version.desc()).limit(limit)).all()
        return [_stored(row) for row in rows]


def _stored(row: Row[Any]) -> StoredDocument:
    return StoredDocument(**row._mapping)
