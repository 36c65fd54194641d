"""What a backed-up database holds: its audit chain's check, its audit rows counted without
trusting the chain, and its schema revision.

Shared by the SQLite and PostgreSQL backends so a backup of either is described the same way.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Engine, inspect
from sqlalchemy.exc import SQLAlchemyError

from ..chain_key import ChainKeys
from ..migrate import current_revision
from ..verify import VerifyResult, verify_chain


def _schema_revision(engine: Engine) -> str | None:
    try:
        return current_revision(engine)
    except SQLAlchemyError:
        return None


def _chain_reason(result: VerifyResult) -> str | None:
    return "; ".join(result.problems()) or None


@dataclass(frozen=True, slots=True)
class _Contents:
    """What a database holds: its chain check, and its audit rows counted without trusting the chain."""

    chain: VerifyResult
    rows: int
    last_hash: str | None
    revision: str | None


def _read_contents(engine: Engine, keys: ChainKeys | None = None) -> _Contents:
    chain = verify_chain(engine, keys=keys)
    rows, last = 0, None
    if inspect(engine).has_table("audit_log"):
        with engine.connect() as connection:
            rows = int(connection.exec_driver_sql("SELECT count(*) FROM audit_log").scalar_one())
            value = connection.exec_driver_sql("SELECT hash FROM audit_log ORDER BY seq DESC LIMIT 1").scalar()
            last = None if value is None else str(value)
    return _Contents(chain, rows, last, _schema_revision(engine))
