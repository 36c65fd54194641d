"""The audit chain on SQLite and PostgreSQL: durable group commit, append-only, tamper detection."""

from __future__ import annotations

import asyncio
import threading

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, text
from sqlalchemy.exc import DBAPIError

from app.domain.audit import AuditEventType, AuditSource
from app.store.audit_writer import AuditWriter
from app.store.canonical import GENESIS_HASH, canonical_json, chain_hash
from app.store.db import StoreError
from app.store.migrate import open_store
from app.store.redaction import REDACTED, Redactor
from app.store.verify import verify_chain


def fill_chain(engine: Engine, n: int, **writer_kw: object) -> AuditWriter:
    writer = AuditWriter(engine, **writer_kw)  # type: ignore[arg-type]
    writer.start()

    async def go() -> None:
        await asyncio.gather(
            *[writer.append(AuditEventType.ORDER_PROPOSED, {"i": i, "px": "101.05"}, actor="alice", source=AuditSource.API) for i in range(n)]
        )

    asyncio.run(go())
    return writer


def drop_triggers(engine: Engine) -> None:
    with engine.begin() as c:
        if engine.dialect.name == "sqlite":
            c.exec_driver_sql("DROP TRIGGER audit_log_no_update")
            c.exec_driver_sql("DROP TRIGGER audit_log_no_delete")
        else:
            c.exec_driver_sql("DROP TRIGGER audit_log_no_update_delete ON audit_log")
            c.exec_driver_sql("DROP TRIGGER audit_log_no_truncate ON audit_log")


def test_appends_are_durable_ordered_and_verify(db_url: str) -> None:
    engine = open_store(db_url)
    writer = fill_chain(engine, 300)
    writer.close()
    result = verify_chain(engine)
    assert result.ok, result.reason
    assert result.records == 300
    assert writer.commits < 300  # group commit shared transactions
    # a new engine (a restart) sees every record: they were committed, not just queued
    again = open_store(db_url)
    with again.connect() as c:
        rows = c.exec_driver_sql("SELECT seq, prev_hash, hash FROM audit_log ORDER BY seq").fetchall()
    assert [r[0] for r in rows] == list(range(1, 301))
    assert rows[0][1] == GENESIS_HASH
    assert all(rows[i][1] == rows[i - 1][2] for i in range(1, 300))


def test_entry_hash_is_sha256_of_prev_and_canonical_bytes(db_url: str) -> None:
    engine = open_store(db_url)
    writer = AuditWriter(engine, clock_ns=lambda: 1_700_000_000_000_000_000)
    writer.start()
    entry = writer.append_blocking(AuditEventType.GATE_REJECTED, {"reason": "NO_LIMIT", "value": "5", "limit": None}, actor="bob", source=AuditSource.TICKET)
    writer.close()
    assert entry.seq == 1 and entry.prev_hash == GENESIS_HASH
    assert entry.payload == '{"limit":null,"reason":"NO_LIMIT","value":"5"}'
    import hashlib

    expected = hashlib.sha256(
        (GENESIS_HASH + '[1,1700000000000000000,"bob","ticket","gate.rejected",' + entry.payload + "]").encode()
    ).hexdigest()
    assert entry.hash == expected == chain_hash(GENESIS_HASH, 1, entry.ts_ns, "bob", "ticket", "gate.rejected", entry.payload)


def test_database_refuses_update_and_delete(db_url: str) -> None:
    engine = open_store(db_url)
    fill_chain(engine, 5).close()
    for statement in ("UPDATE audit_log SET actor = 'mallory' WHERE seq = 2", "DELETE FROM audit_log WHERE seq = 3"):
        with pytest.raises(DBAPIError, match="append-only"), engine.begin() as c:
            c.exec_driver_sql(statement)
    if engine.dialect.name == "postgresql":
        with pytest.raises(DBAPIError, match="append-only"), engine.begin() as c:
            c.exec_driver_sql("TRUNCATE audit_log")
    assert verify_chain(engine).ok


TAMPERING = {
    "edit": ("UPDATE audit_log SET payload = '{\"i\":999,\"px\":\"101.05\"}' WHERE seq = 7", 7, "edited"),
    "delete": ("DELETE FROM audit_log WHERE seq = 7", 7, "missing"),
    "delete_last": ("DELETE FROM audit_log WHERE seq = 20", None, None),
    "forge_append": (
        ("INSERT INTO audit_log (seq, ts_ns, actor, source, event_type, payload, prev_hash, hash) "
         "SELECT 21, ts_ns, 'mallory', source, event_type, payload, hash, 'f00d' FROM audit_log WHERE seq = 20"),
        21,
        "edited",
    ),
}


@pytest.mark.parametrize("case", sorted(TAMPERING))
def test_verify_finds_tampering_even_with_triggers_dropped(db_url: str, case: str) -> None:
    engine = open_store(db_url)
    fill_chain(engine, 20).close()
    drop_triggers(engine)
    statement, seq, why = TAMPERING[case]
    with engine.begin() as c:
        c.exec_driver_sql(statement)
    result = verify_chain(engine)
    assert not result.ok
    assert result.missing_triggers
    if seq is None:
        # Cutting the tail leaves a valid shorter chain: only the daily digest anchored elsewhere shows it.
        assert result.broken_at is None and result.records == 19
    else:
        assert result.broken_at == seq
        assert why in (result.reason or "")


def test_verify_finds_reordering_and_insertion(db_url: str) -> None:
    engine = open_store(db_url)
    fill_chain(engine, 10).close()
    drop_triggers(engine)
    with engine.begin() as c:
        # swap the contents of records 4 and 5, keeping each row's own hashes
        rows = {r[0]: r for r in c.exec_driver_sql("SELECT seq, ts_ns, actor, source, event_type, payload, prev_hash, hash FROM audit_log WHERE seq IN (4, 5)")}
        c.exec_driver_sql("DELETE FROM audit_log WHERE seq IN (4, 5)")
        for new_seq, old in ((4, rows[5]), (5, rows[4])):
            c.execute(
                text("INSERT INTO audit_log (seq, ts_ns, actor, source, event_type, payload, prev_hash, hash) VALUES (:seq, :ts, :actor, :source, :et, :payload, :prev, :hash)"),
                {"seq": new_seq, "ts": old[1], "actor": old[2], "source": old[3], "et": old[4], "payload": old[5], "prev": old[6], "hash": old[7]},
            )
    result = verify_chain(engine)
    assert result.broken_at == 4 and "prev_hash" in (result.reason or "")


def test_intact_chain_without_triggers_is_not_ok(db_url: str) -> None:
    engine = open_store(db_url)
    fill_chain(engine, 3).close()
    drop_triggers(engine)
    result = verify_chain(engine)
    assert result.broken_at is None and result.records == 3
    assert not result.ok and result.missing_triggers


def test_daily_digests_split_on_ist_midnight(db_url: str) -> None:
    engine = open_store(db_url)
    # 18:29:59 UTC is 23:59:59 IST; 18:30:00 UTC is the next day in India.
    stamps = iter([1_763_922_599_000_000_000, 1_763_922_600_000_000_000, 1_763_922_601_000_000_000])
    writer = AuditWriter(engine, clock_ns=lambda: next(stamps))
    writer.start()
    entries = [writer.append_blocking("x", {}, actor="a", source="system") for _ in range(3)]
    writer.close()
    digests = verify_chain(engine).digests
    assert [(str(d.day), d.records, d.last_seq) for d in digests] == [("2025-11-23", 1, 1), ("2025-11-24", 2, 3)]
    assert digests[-1].hash == entries[-1].hash


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_two_desks_sharing_postgresql_keep_one_chain(db_url: str) -> None:
    """Workstations sharing one PostgreSQL database take turns; the chain never forks."""
    a, b = open_store(db_url), open_store(db_url)
    writers = [AuditWriter(a), AuditWriter(b)]
    for w in writers:
        w.start()

    def spam(w: AuditWriter, tag: str) -> None:
        for i in range(100):
            w.append_blocking("x", {"i": i, "desk": tag}, actor=tag, source="system")

    threads = [threading.Thread(target=spam, args=(w, f"desk{n}")) for n, w in enumerate(writers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for w in writers:
        w.close()
    result = verify_chain(a)
    assert result.ok, result.reason
    assert result.records == 200


def test_failed_commit_fails_the_batch_and_leaves_no_gap(tmp_path) -> None:
    url = f"sqlite:///{tmp_path}/full.db"
    engine = open_store(url)
    fill_chain(engine, 5).close()
    with engine.connect() as c:
        pages = c.exec_driver_sql("PRAGMA page_count").scalar()
    # A real SQLITE_FULL: cap the file at its current size, as a full disk would.
    from sqlalchemy import event

    @event.listens_for(engine, "connect")
    def cap(dbapi_conn, _rec):  # type: ignore[no-untyped-def]
        dbapi_conn.execute(f"PRAGMA max_page_count = {pages}")

    engine.dispose()
    writer = AuditWriter(engine)
    writer.start()

    async def go() -> None:
        with pytest.raises(StoreError, match="full"):
            await writer.append("x", {"blob": "y" * 200_000}, actor="a", source="system")

    asyncio.run(go())
    writer.close()
    assert writer.failure is not None
    assert writer.pending == 0  # a failed batch is settled too: nothing waits on it
    result = verify_chain(engine)
    assert result.ok and result.records == 5


def test_pending_counts_writes_until_their_commit_returns(tmp_path) -> None:
    writer = AuditWriter(open_store(f"sqlite:///{tmp_path}/pending.db"))
    writer.start()
    assert writer.pending == 0
    release = threading.Event()

    async def go() -> None:
        held = writer.execute(lambda _connection: release.wait(10))
        appends = [writer.append("x", {"i": i}, actor="a", source="system") for i in range(3)]
        assert writer.pending == 4
        # Taken up by the writer or not, none of them is durable before the held job's commit.
        await asyncio.sleep(0.05)
        assert writer.pending == 4
        release.set()
        await asyncio.gather(held, *appends)
        assert writer.pending == 0

    asyncio.run(go())
    writer.close()


def test_redactor_keeps_secrets_out_of_the_database(db_url: str) -> None:
    engine = open_store(db_url)
    redactor = Redactor(["s3cr3t-session-TOKEN-42"])
    writer = AuditWriter(engine, redactor=redactor)
    writer.start()
    writer.append_blocking(
        AuditEventType.BROKER_CONNECTED,
        {"api_key": "AK-123456", "nested": {"Session_Token": "zzz", "password": "hunter22"}, "note": "got s3cr3t-session-TOKEN-42 ok", "list": [{"secret": 1}]},
        actor="sys", source="system",
    )
    writer.close()
    with engine.connect() as c:
        dump = " ".join(str(v) for row in c.exec_driver_sql("SELECT * FROM audit_log") for v in row)
    for secret in ("AK-123456", "zzz", "hunter22", "s3cr3t-session-TOKEN-42"):
        assert secret not in dump
    assert REDACTED in dump and "got [REDACTED] ok" in dump


@settings(max_examples=100, deadline=None)
@given(st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda kids: st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=8), kids, max_size=4),
    max_leaves=20,
))
def test_canonical_json_is_stable_under_key_order(value: object) -> None:
    import json

    text_form = canonical_json({"v": value})
    assert canonical_json(json.loads(text_form)) == text_form


def test_nan_payload_is_refused() -> None:
    with pytest.raises(ValueError):
        canonical_json({"px": float("nan")})
