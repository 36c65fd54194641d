"""Versioned documents (the risk limits, the trading calendar): each version the whole normalised
document, who set it, when and why.

Rows are only ever added; the newest version is the one a restart puts in force. The document is
kept as text: the store does not know its schema, the engine does.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Engine, Row, Select, Table, select
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
    """The version rows of one table with the columns of ``StoredDocument``.

    A table with a ``desk_id`` column keeps one line of versions per desk (the risk limits); the
    methods then take the desk (``desk_id``), and one without (the calendar) is shared by all.
    """

    def __init__(self, table: Table) -> None:
        self.table = table
        self._scoped = "desk_id" in table.c

    def _scope(self, desk_id: str | None) -> dict[str, str]:
        if self._scoped != (desk_id is not None):
            raise ValueError(f"{self.table.name} versions {'are' if self._scoped else 'are not'} kept per desk")
        return {} if desk_id is None else {"desk_id": desk_id}

    def insert(self, connection: Connection, stored: StoredDocument, desk_id: str | None = None) -> None:
        """Add a version (inside the caller's transaction); a version number already taken fails."""
        connection.execute(sql_insert(self.table).values(
            version=stored.version, ts_ns=stored.ts_ns, actor=stored.actor, reason=stored.reason, document=stored.document,
            **self._scope(desk_id),
        ))

    def _select(self, desk_id: str | None) -> Select[Any]:
        query = select(*(self.table.c[name] for name in _FIELDS))
        for column, value in self._scope(desk_id).items():
            query = query.where(self.table.c[column] == value)
        return query.order_by(self.table.c.version.desc())

    def latest(self, engine: Engine, desk_id: str | None = None) -> StoredDocument | None:
        """The newest version, or None when none was ever stored."""
        with engine.connect() as connection:
            row = connection.execute(self._select(desk_id).limit(1)).first()
        return _stored(row) if row is not None else None

    def history(self, engine: Engine, desk_id: str | None = None, limit: int = 20) -> list[StoredDocument]:
        """The newest ``limit`` versions, newest first."""
        if limit < 1:
            raise ValueError(f"history needs a limit of at least 1, got {limit}")
        with engine.connect() as connection:
            rows = connection.execute(self._select(desk_id).limit(limit)).all()
        return [_stored(row) for row in rows]


_FIELDS = ("version", "ts_ns", "actor", "reason", "document")


def _stored(row: Row[Any]) -> StoredDocument:
    return StoredDocument(**row._mapping)
