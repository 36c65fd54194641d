"""Broker calls spent per trading day, per broker account and desk, so a restart within the day resumes the
governor's counts. Each desk writes only its own rows; an account's day total is the sum over its desks."""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import Connection, Engine, Table, func, select
from sqlalchemy.dialects import postgresql, sqlite

from .db import StoreError
from .models import RateCounterRow

_COUNTERS: Table = RateCounterRow.__table__  # type: ignore[assignment]


def _upsert_statement(insert: Callable[[Table], sqlite.Insert | postgresql.Insert]) -> sqlite.Insert | postgresql.Insert:
    statement = insert(_COUNTERS)
    return statement.on_conflict_do_update(
        index_elements=[_COUNTERS.c.trading_day, _COUNTERS.c.account, _COUNTERS.c.desk_id, _COUNTERS.c.kind],
        set_={"count": statement.excluded.count},
    )


# Both dialects spell the upsert the same way (ON CONFLICT ... DO UPDATE), each with its own construct.
# Built once, values bound at execution: the governor counts every broker call, and a statement rebuilt
# with literal values each time cost the audit writer's thread (which every submit waits for) ~0.3 ms.
_UPSERTS: dict[str, sqlite.Insert | postgresql.Insert] = {
    "sqlite": _upsert_statement(sqlite.insert),
    "postgresql": _upsert_statement(postgresql.insert),
}


def load(engine: Engine, trading_day: str, account: str, desk_id: str) -> dict[str, int]:
    """The counts ``desk_id`` stored for ``account`` on ``trading_day`` (ISO date), by kind; empty if none."""
    with engine.connect() as connection:
        rows = connection.execute(
            select(_COUNTERS.c.kind, _COUNTERS.c.count).where(
                _COUNTERS.c.trading_day == trading_day, _COUNTERS.c.account == account, _COUNTERS.c.desk_id == desk_id
            )
        )
        return {kind: count for kind, count in rows}


def account_totals(engine: Engine, trading_day: str, account: str) -> dict[str, int]:
    """What every desk together spent through ``account`` on ``trading_day``, by kind."""
    with engine.connect() as connection:
        rows = connection.execute(
            select(_COUNTERS.c.kind, func.sum(_COUNTERS.c.count)).where(
                _COUNTERS.c.trading_day == trading_day, _COUNTERS.c.account == account
            ).group_by(_COUNTERS.c.kind)
        )
        return {kind: int(total) for kind, total in rows}


def upsert(connection: Connection, trading_day: str, account: str, desk_id: str, kind: str, count: int) -> None:
    """Set this desk's counter in the caller's transaction (the audit writer's, in the running desk)."""
    statement = _UPSERTS.get(connection.dialect.name)
    if statement is None:
        raise StoreError(f"rate counters need SQLite or PostgreSQL, not {connection.dialect.name}")
    connection.execute(statement, {"trading_day": trading_day, "account": account, "desk_id": desk_id, "kind": kind,
                                   "count": count})
