"""The outage spool: batches read back in order, one fsync each, a torn tail dropped, a damaged middle refused;
and a spool a run left behind is written to the chain by the next writer's start, once."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import text

from app.domain.audit import AuditEventType, AuditSource
from app.store import desk_rows
from app.store.audit_writer import AuditWriter
from app.store.desk_rows import RowWrite
from app.store.migrate import open_store
from app.store.spool import Spool, SpooledRecord, SpooledRow, SpoolError, spool_file
from app.store.verify import verify_chain
from tests.store.test_audit_cli import ROOT, env_for
from tests.support.calendar import cover_today

T0 = 1_764_000_000_000_000_000


def record(i: int) -> tuple[str, str, str, str, int]:
    return ("broker", "broker", "fill", json.dumps({"i": i}), T0 + i)


def state_row(i: int) -> RowWrite:
    return RowWrite(desk_rows.TRADING_STATE, {"desk_id": "abc123", "ts_ns": T0 + i, "state": "HALTED",
                                              "reason": f"outage {i}", "actor": "system"})


def test_batches_read_back_in_order_each_made_durable_by_one_fsync(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    spool = Spool(spool_file(tmp_path))
    synced: list[int] = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (synced.append(fd), real_fsync(fd))[1])
    spool.begin(T0, "OperationalError: connection refused")
    assert len(synced) == 2  # the file, and the folder holding its new name
    spool.write([record(1), state_row(2), record(3)])
    spool.write([record(4)])
    assert len(synced) == 4
    spool.close()

    content = Spool(spool.path).read()
    assert (content.began_ns, content.reason) == (T0, "OperationalError: connection refused")
    assert content.items == [
        SpooledRecord(0, T0 + 1, "broker", "broker", "fill", '{"i": 1}'), SpooledRow(0, state_row(2)),
        SpooledRecord(0, T0 + 3, "broker", "broker", "fill", '{"i": 3}'), SpooledRecord(1, T0 + 4, "broker", "broker", "fill", '{"i": 4}'),
    ]


def test_a_torn_tail_is_dropped_and_a_damaged_middle_refused(tmp_path: Path) -> None:
    spool = Spool(spool_file(tmp_path))
    spool.begin(T0, "lost")
    spool.write([record(1)])
    spool.write([record(2), record(3)])
    spool.close()
    whole = spool.path.read_text()
    lines = whole.splitlines(keepends=True)

    # A crash mid-batch: its end line never written, its last line cut. That batch was never acknowledged.
    spool.path.write_text("".join(lines[:-2]) + lines[-2][:7])
    assert [item.batch for item in Spool(spool.path).read().items] == [0]
    spool.path.write_text("".join(lines[:-1]))
    assert [item.batch for item in Spool(spool.path).read().items] == [0]

    spool.path.write_text(lines[0] + lines[1][:-5] + "\n" + "".join(lines[2:]))
    with pytest.raises(SpoolError, match="damaged at line 2"):
        Spool(spool.path).read()

    spool.path.write_text(lines[0][:5])
    assert Spool(spool.path).read().items == []


def test_a_spool_left_by_a_dead_run_is_replayed_at_start_once(db_url: str, tmp_path: Path) -> None:
    """The batch that met the outage may have committed although its commit failed: found, not written twice."""
    engine = open_store(db_url)
    clock = iter(range(T0, T0 + 1_000))
    first = AuditWriter(engine, clock_ns=lambda: next(clock), desk_id="abc123")
    first.start()
    landed = first.append_blocking(AuditEventType.FILL, {"i": 1}, actor="broker", source=AuditSource.BROKER)
    first.close()

    spool = Spool(spool_file(tmp_path))
    spool.begin(T0 + 500, "OperationalError: server closed the connection")
    spool.write([(landed.actor, landed.source, landed.event_type, landed.payload, landed.ts_ns), state_row(1)])
    spool.write([("system", "system", "trading_state.changed", '{"desk":"abc123","to":"HALTED"}', T0 + 600), state_row(2)])
    spool.write([("broker", "broker", "order.cancelled", '{"desk":"abc123","n":3}', T0 + 700)])
    spool.close()

    writer = AuditWriter(engine, clock_ns=lambda: T0 + 900, desk_id="abc123", spool=spool.path)
    writer.start()
    writer.close()

    assert not spool.path.exists()
    with engine.connect() as connection:
        chain = connection.execute(text("SELECT seq, ts_ns, event_type, payload FROM audit_log ORDER BY seq")).all()
        reasons = connection.execute(text("SELECT reason FROM trading_state ORDER BY id")).scalars().all()
    assert [(r.seq, r.event_type) for r in chain] == [
        (1, "fill"), (2, "store.outage"), (3, "trading_state.changed"), (4, "order.cancelled")]
    window = json.loads(chain[1].payload)
    assert window == {"began_ns": T0 + 500, "ended_ns": T0 + 900, "duration_s": 0.0, "reason":
                      "OperationalError: server closed the connection", "records": 2, "rows": 1,
                      "already_stored_batches": 1, "desk": "abc123"}
    assert [r.ts_ns for r in chain] == [T0, T0 + 500, T0 + 600, T0 + 700]
    # The landed batch's row landed with it; only the next batch's row is written.
    assert reasons == ["outage 2"]
    result = verify_chain(engine)
    assert result.ok, result.reason
    [outage] = result.outages
    assert (outage.seq, outage.desk, outage.began_ns, outage.ended_ns, outage.records) == (2, "abc123", T0 + 500, T0 + 900, 2)


def test_a_damaged_spool_refuses_the_start_and_is_kept(db_url: str, tmp_path: Path) -> None:
    path = spool_file(tmp_path)
    path.write_text('{"began_ns": 1, "reason": "x"}\n{"b": 0, "a": [1, \n{"end": 0}\n')
    writer = AuditWriter(open_store(db_url), spool=path)
    with pytest.raises(SpoolError, match="damaged at line 2"):
        writer.start()
    assert path.read_text().startswith('{"began_ns": 1')


def test_audit_verify_reports_the_outage_window_and_passes(tmp_path: Path) -> None:
    home = cover_today(tmp_path / "home")
    engine = open_store(f"sqlite:///{home / 'bulwark.db'}")
    spool = Spool(spool_file(home))
    spool.begin(T0, "OperationalError: connection refused")
    spool.write([record(1), record(2)])
    spool.close()
    writer = AuditWriter(engine, clock_ns=lambda: T0 + 20_000_000_000, desk_id="abc123", spool=spool.path)
    writer.start()
    writer.close()

    proc = subprocess.run([sys.executable, str(ROOT / "main.py"), "audit", "verify"], capture_output=True, text=True,
                          env=env_for(home), timeout=120, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert ("outage desk abc123 at seq 1: the database was unreachable from 2025-11-24T16:00:00.000+00:00 to "
            "2025-11-24T16:00:20.000+00:00 (20.0 s, OperationalError: connection refused); 2 records spooled and "
            "appended after it") in proc.stdout
    assert "verified 3 records" in proc.stdout
