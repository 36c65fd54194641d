"""The firm flag on both backends: the halt and its record in one transaction, the re-arm, each desk's
confirmation and the firm view over every registered desk."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, insert

from app.domain.audit import AuditEventType
from app.domain.orders import OrderStatus
from app.domain.trading_state import TradingState
from app.store.audit_writer import AuditWriter
from app.store.desk_identity import DeskIdentity, heartbeat, mark_stopped, register
from app.store.export import rows
from app.store.firm_flag import (
    SILENT_AFTER_S,
    firm_in_force,
    firm_rows_after,
    firm_view,
    persist_firm_halt,
    persist_firm_rearm,
    record_halted,
    record_refused,
    record_swept,
)
from app.store.migrate import open_store
from app.store.models import OrderRow, TradingStateRow
from app.store.verify import verify_chain

ALPHA, BRAVO, CHARLIE = DeskIdentity("AAAAAA", "alpha"), DeskIdentity("BBBBBB", "bravo"), DeskIdentity("CCCCCC", "charlie")
NOW = 1_800_000_000_000_000_000


@pytest.fixture
def store(db_url: str) -> Iterator[Engine]:
    engine = open_store(db_url)
    yield engine
    engine.dispose()


@pytest.fixture
def writer(store: Engine) -> Iterator[AuditWriter]:
    writer = AuditWriter(store, desk_id=ALPHA.desk_id)
    writer.start()
    yield writer
    writer.close()


def payload(record: dict[str, object]) -> dict[str, object]:
    found = record["payload"]
    return found if isinstance(found, dict) else json.loads(str(found))


def order(desk_id: str, client_id: str, status: OrderStatus) -> dict[str, object]:
    return {"client_order_id": client_id, "desk_id": desk_id, "broker_order_id": None, "instrument_key": "NSE:RELIANCE",
            "side": "BUY", "quantity": 1, "price": 100, "order_type": "LIMIT", "product": "MIS", "source": "ticket",
            "actor": "t", "status": str(status), "filled_quantity": 0, "fill_value": 0, "created_ns": 1, "updated_ns": 1,
            "trading_day": "2026-11-30"}


def test_a_firm_halt_and_its_record_land_together_and_the_rearm_puts_active_in_force(
    store: Engine, writer: AuditWriter,
) -> None:
    assert firm_in_force(store) is None
    halt = persist_firm_halt(writer, "exchange outage", "risk:carol", origin_desk=ALPHA.desk_id)
    assert firm_in_force(store) == halt and halt.halted and halt.state is TradingState.HALTED
    assert (halt.reason, halt.actor, halt.origin_desk) == ("exchange outage", "risk:carol", ALPHA.desk_id)
    rearm = persist_firm_rearm(writer, halt, "exchange back", "risk:carol")
    assert rearm.id > halt.id and not rearm.halted and rearm.reason == "re-armed: exchange back"
    assert firm_in_force(store) == rearm
    with store.connect() as connection:
        assert firm_rows_after(connection, 0) == [halt, rearm]
        assert firm_rows_after(connection, halt.id) == [rearm]
    records = [r for r in rows(store) if str(r["event_type"]).startswith("firm.")]
    assert [(r["event_type"], r["actor"]) for r in records] == [("firm.halted", "risk:carol"), ("firm.rearmed", "risk:carol")]
    assert payload(records[0]) == {"reason": "exchange outage", "origin_desk": ALPHA.desk_id, "desk": ALPHA.desk_id}
    assert payload(records[1])["lifts"] == halt.id
    assert verify_chain(store).ok


def test_a_refusal_is_recorded_and_changes_nothing(store: Engine, writer: AuditWriter) -> None:
    record_refused(writer, AuditEventType.FIRM_HALTED, "no firm_halt permission", "why not", "trader:tom")
    assert firm_in_force(store) is None
    (record,) = [r for r in rows(store) if r["event_type"] == "firm.halted"]
    assert payload(record)["refused"] == "no firm_halt permission" and record["source"] == "panic"


def test_the_firm_view_shows_each_desk_alive_or_not_with_its_state_confirmation_and_working_orders(
    store: Engine, writer: AuditWriter, tmp_path: Path,
) -> None:
    for identity in (ALPHA, BRAVO, CHARLIE):
        register(store, identity, now_ns=NOW)
    halt = persist_firm_halt(writer, "outage", "risk:carol")
    with store.begin() as connection:
        heartbeat(connection, ALPHA.desk_id, NOW + 2 * 10**9)
        mark_stopped(connection, CHARLIE.desk_id)
        # A beat after the clean stop (its thread outlived it) leaves the desk stopped.
        heartbeat(connection, CHARLIE.desk_id, NOW + 2 * 10**9)
        connection.execute(insert(TradingStateRow.__table__).values(
            desk_id=ALPHA.desk_id, ts_ns=NOW, state="HALTED", reason="kill switch: firm halt", actor="risk:carol"))
        record_halted(connection, halt.id, ALPHA.desk_id, NOW + 1)
        record_halted(connection, halt.id, BRAVO.desk_id, NOW + 2)
        record_swept(connection, halt.id, ALPHA.desk_id, NOW + 3, 1)
        connection.execute(insert(OrderRow.__table__), [
            order(ALPHA.desk_id, "a1", OrderStatus.OPEN), order(ALPHA.desk_id, "a2", OrderStatus.FILLED),
            order(BRAVO.desk_id, "b1", OrderStatus.PARTIALLY_FILLED), order(BRAVO.desk_id, "b2", OrderStatus.SENT),
        ])
    view = firm_view(store, now_ns=NOW + 3 * 10**9)
    assert view.halted and view.state == halt
    by_id = {status.desk.desk_id: status for status in view.desks}
    assert [status.desk.desk_id for status in view.desks] == [ALPHA.desk_id, BRAVO.desk_id, CHARLIE.desk_id]
    alpha, bravo, charlie = by_id[ALPHA.desk_id], by_id[BRAVO.desk_id], by_id[CHARLIE.desk_id]
    assert (alpha.liveness, alpha.seen_age_s) == ("alive", 1.0)
    assert alpha.trading is not None and alpha.trading.state is TradingState.HALTED
    assert alpha.ack is not None and (alpha.ack.halted_ns, alpha.ack.swept_ns, alpha.ack.still_working) == (NOW + 1, NOW + 3, 1)
    assert alpha.working == 1
    assert bravo.trading is None and bravo.working == 2
    assert bravo.ack is not None and bravo.ack.swept_ns is None
    assert (charlie.liveness, charlie.ack, charlie.working) == ("stopped", None, 0)
    # Nothing heard for longer than SILENT_AFTER_S: silent (dead or hung); a clean stop stays stopped.
    later = firm_view(store, now_ns=NOW + int((SILENT_AFTER_S + 3) * 10**9))
    assert {s.desk.desk_id: s.liveness for s in later.desks} == {ALPHA.desk_id: "silent", BRAVO.desk_id: "silent",
                                                                 CHARLIE.desk_id: "stopped"}
    # Once the firm is re-armed no halt is in force: nobody's confirmation is shown.
    persist_firm_rearm(writer, halt, "back", "risk:carol")
    assert all(status.ack is None for status in firm_view(store, now_ns=NOW).desks)


def test_halting_again_for_the_same_firm_halt_starts_the_confirmation_over(store: Engine, writer: AuditWriter) -> None:
    halt = persist_firm_halt(writer, "outage", "risk:carol")
    register(store, ALPHA, now_ns=NOW)
    with store.begin() as connection:
        record_halted(connection, halt.id, ALPHA.desk_id, NOW)
        record_swept(connection, halt.id, ALPHA.desk_id, NOW + 1, 0)
        # The desk restarted while the firm is still halted: it halted and sweeps again.
        record_halted(connection, halt.id, ALPHA.desk_id, NOW + 5)
    (alpha,) = firm_view(store, now_ns=NOW).desks
    assert alpha.ack is not None and (alpha.ack.halted_ns, alpha.ack.swept_ns, alpha.ack.still_working) == (NOW + 5, None, None)
