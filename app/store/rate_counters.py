"""Broker calls spent per trading day, so a restart within the day resumes the governor's counts."""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import Connection, Engine, Table, select
from sqlalchemy.dialects import postgresql, sqlite

from .db import StoreError
from .models import RateCounterRow

_COUNTERS: Table = RateCounterRow.__table__  # type: ignore[assignment]


def _upsert_statement(insert: Callable[[Table], sqlite.Insert | postgresql.Insert]) -> sqlite.Insert | postgresql.Insert:
    statement = insert(_COUNTERS)
    return statement.on_conflict_do_update(
        index_elements=[_COUNTERS.c.trading_day, _COUNTERS.c.broker, _COUNTERS.c.kind],
        set_={"count": statement.excluded.count},
    )


# Both dialects spell the upsert the same way (ON CONFLICT ... DO UPDATE), each with its own construct.
# Built once, values bound at execution: the governor counts every broker call, and a statement rebuilt
# with literal values each time cost the audit writer's thread (which every submit waits for) ~0.3 ms.
_UPSERTS: dict[str, sqlite.Insert | postgresql.Insert] = {
    "sqlite": _upsert_statement(sqlite.insert),
    "postgresql": _upsert_statement(postgresql.insert),
}


def load(engine: Engine, trading_day: str, broker: str) -> dict[str, int]:
    """The counts stored for ``broker`` on ``trading_day`` (ISO date), by kind; empty if none."""
    with engine.connect() as connection:
        rows = connection.execute(
            select(_COUNTERS.c.kind, _COUNTERS.c.count).where(
                _COUNTERS.c.trading_day == trading_day, _COUNTERS.c.broker == broker
            )
        )
        return {kind: count for kind, count in rows}


def upsert(connection: Connection, trading_day: str, broker: str, kind: str, count: int) -> None:
    """Set one counter in the caller's transaction (the audit writer's, in the running desk)."""
    statement = _UPSERTS.get(connection.dialect.name)
    if statement is None:
        raise StoreError(f"rate counters need SQLite or PostgreSQL, not {connection.dialect.name}")
    connection.execute(statement, {"trading_day": trading_day, "broker": broker, "kind": kind, "count": count})
