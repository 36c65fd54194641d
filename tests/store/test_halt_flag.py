"""The persisted HALTED flag on both backends: the next start is halted and the chain still verifies."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import Engine, event

from app.domain.trading_state import TradingState
from app.engine.recorder import Recorder
from app.store.audit_writer import AuditWriter
from app.store.db import StoreError
from app.store.export import rows
from app.store.halt_flag import persist_halt
from app.store.migrate import open_store
from app.store.verify import verify_chain

DESK = "AAAAAA"


def resumed_state(writer: AuditWriter) -> tuple[TradingState | None, str]:
    # What the engine reads at its next start.
    saved = Recorder(writer, lambda exc: None, desk_id=DESK).load("2026-11-23", "paper")
    return saved.trading_state, saved.reason


def last_state(engine: Engine) -> tuple[str, str, str] | None:
    with engine.connect() as connection:
        row = connection.exec_driver_sql("SELECT state, reason, actor FROM trading_state ORDER BY id DESC LIMIT 1").first()
    return (row[0], row[1], row[2]) if row is not None else None


def test_after_persist_halt_the_next_start_is_halted_and_the_chain_verifies(db_url: str) -> None:
    engine = open_store(db_url)
    writer = AuditWriter(engine)
    writer.start()
    assert last_state(engine) is None
    persist_halt(writer, DESK, "fat finger on NIFTY", "panic:alice")
    writer.close()
    # a fresh engine, as a restarted desk would open
    again = AuditWriter(open_store(db_url))
    assert resumed_state(again) == (TradingState.HALTED, "fat finger on NIFTY")
    result = verify_chain(again.engine)
    assert result.ok, result.reason
    records = list(rows(again.engine))
    assert len(records) == 1
    record = records[0]
    assert (record["event_type"], record["source"], record["actor"]) == ("kill_switch.engaged", "panic", "panic:alice")
    payload = record["payload"] if isinstance(record["payload"], dict) else json.loads(record["payload"])
    assert payload == {"reason": "fat finger on NIFTY", "via": "panic"}
    with again.engine.connect() as connection:
        state_rows = connection.exec_driver_sql("SELECT state, reason, actor FROM trading_state").all()
    assert [tuple(r) for r in state_rows] == [("HALTED", "fat finger on NIFTY", "panic:alice")]


def test_a_later_state_row_wins_so_a_rearm_after_the_panic_is_respected(db_url: str) -> None:
    engine = open_store(db_url)
    writer = AuditWriter(engine)
    writer.start()
    persist_halt(writer, DESK, "first", "panic:alice")
    with engine.begin() as connection:
        connection.exec_driver_sql(
            f"INSERT INTO trading_state (desk_id, ts_ns, state, reason, actor) VALUES ('{DESK}', 1, 'ACTIVE', 're-armed', 'bob')"
        )
    assert last_state(engine) == ("ACTIVE", "re-armed", "bob")
    persist_halt(writer, DESK, "second", "panic:carol")
    assert last_state(engine) == ("HALTED", "second", "panic:carol")
    writer.close()
    assert verify_chain(engine).records == 2


def test_a_failed_write_stores_neither_the_record_nor_the_flag(db_url: str) -> None:
    engine = open_store(db_url)
    writer = AuditWriter(engine)
    writer.start()

    def refuse_state_rows(conn, cursor, statement, parameters, context, executemany):  # type: ignore[no-untyped-def]
        if statement.lstrip().upper().startswith("INSERT INTO TRADING_STATE"):
            raise RuntimeError("disk full")

    event.listen(engine, "before_cursor_execute", refuse_state_rows)
    with pytest.raises(StoreError, match="nothing in this batch was stored"):
        persist_halt(writer, DESK, "boom", "panic:alice")
    event.remove(engine, "before_cursor_execute", refuse_state_rows)
    writer.close()
    # one transaction: the audit record written before the failing row was rolled back with it
    assert last_state(engine) is None
    assert verify_chain(engine).records == 0


def test_persist_halt_needs_a_running_writer(db_url: str) -> None:
    writer = AuditWriter(open_store(db_url))
    with pytest.raises(StoreError, match="not running"):
        persist_halt(writer, DESK, "r", "panic:alice")
