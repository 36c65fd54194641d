"""A first start killed anywhere in the schema's creation, a store an older Bulwark left half-created,
and a store that was lost: the next start finishes the first two and refuses the third."""

from __future__ import annotations

import os
import signal
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, event, inspect

from app.store import migrate
from app.store.db import StoreError, make_engine
from app.store.migrate import current_revision, head_revision, open_store, upgrade
from app.store.models import Base
from app.store.verify import verify_chain

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="kills a forked child; POSIX only")


def _statements(url: str) -> list[str]:
    seen: list[str] = []

    def trace(dbapi_connection: sqlite3.Connection, _record: Any) -> None:
        dbapi_connection.set_trace_callback(seen.append)

    event.listen(Engine, "connect", trace)
    try:
        open_store(url).dispose()
    finally:
        event.remove(Engine, "connect", trace)
    return seen


def _kill_points(statements: list[str]) -> list[int]:
    """Every statement outside the creation's transaction, and every ninth inside it (numbered from 1).

    A kill anywhere inside the transaction is undone alike by SQLite's rollback: a sample of them proves
    that, while each statement before ``BEGIN`` and from ``COMMIT`` on is where a kill could differ."""
    words = [statement.split()[0].upper() for statement in statements]
    begin = words.index("BEGIN") + 1
    commit = len(words) - words[::-1].index("COMMIT")
    inside = list(range(begin + 1, commit))
    return sorted({*range(1, begin + 1), *inside[::9], inside[-1], *range(commit, len(words) + 1)})


def _open_killed_before_statement(url: str, n: int) -> int:
    """Open the store in a forked child that SIGKILLs itself as SQLite starts its ``n``-th statement."""
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child never returns
        count = 0

        def trace(_sql: str) -> None:
            nonlocal count
            count += 1
            if count == n:
                os.kill(os.getpid(), signal.SIGKILL)

        def hook(dbapi_connection: sqlite3.Connection, _record: Any) -> None:
            dbapi_connection.set_trace_callback(trace)

        try:
            event.listen(Engine, "connect", hook, insert=True)
            open_store(url).dispose()
        finally:
            os._exit(3)
    _, status = os.waitpid(pid, 0)
    return status


def _assert_sound_empty_store(url: str) -> None:
    engine = open_store(url)
    try:
        assert current_revision(engine) == head_revision()
        result = verify_chain(engine)
        assert result.ok, (result.broken_at, result.reason, result.missing_triggers)
        assert result.records == 0
    finally:
        engine.dispose()


@pytest.mark.slow
def test_a_first_start_killed_before_any_statement_leaves_a_store_the_next_start_opens(tmp_path: Path) -> None:
    statements = _statements(f"sqlite:///{tmp_path}/count.db")
    total = len(statements)
    assert total > 20  # the trace sees the whole creation, DDL included
    points = _kill_points(statements)
    assert points[0] == 1 and points[-1] == total and len(points) > 20
    for n in points:
        home = tmp_path / f"kill-{n}"
        home.mkdir()
        url = f"sqlite:///{home}/bulwark.db"
        status = _open_killed_before_statement(url, n)
        assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL, f"statement {n}: {status}"
        # Killed mid-way, the store is not there at all, or there complete: never there in part.
        if (home / "bulwark.db").exists():
            engine = make_engine(url)
            try:
                assert current_revision(engine) == head_revision(), f"killed before statement {n} of {total}"
            finally:
                engine.dispose()
        _assert_sound_empty_store(url)


def _half_created(url: str, *, with_function: bool = False) -> Engine:
    """What a first start of an older Bulwark left when killed mid-creation: an empty version table
    and the audit table without its append-only triggers."""
    engine = make_engine(url)
    with engine.begin() as connection:
        connection.exec_driver_sql("CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL PRIMARY KEY)")
        Base.metadata.tables["audit_log"].create(connection)
        if with_function:
            connection.exec_driver_sql(
                "CREATE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS "
                "$$ BEGIN RAISE EXCEPTION 'x'; END $$"
            )
    return engine


def test_a_half_created_store_without_records_is_finished(db_url: str) -> None:
    _half_created(db_url, with_function=db_url.startswith("postgresql")).dispose()
    _assert_sound_empty_store(db_url)


def test_a_half_created_store_with_records_is_refused_untouched(db_url: str) -> None:
    engine = _half_created(db_url)
    with engine.begin() as connection:
        connection.exec_driver_sql(
            "INSERT INTO audit_log (seq, ts_ns, actor, source, event_type, payload, prev_hash, hash) "
            "VALUES (1, 1, 'a', 'system', 'x', '{}', 'p', 'h')"
        )
    engine.dispose()
    with pytest.raises(StoreError, match=r"rows \(audit_log 1\) but no schema version.*Restore a backup"):
        open_store(db_url)
    engine = make_engine(db_url)
    try:
        assert "orders" not in inspect(engine).get_table_names()
        with engine.connect() as connection:
            assert connection.exec_driver_sql("SELECT count(*) FROM audit_log").scalar() == 1
    finally:
        engine.dispose()


def test_a_migration_that_fails_half_way_leaves_the_schema_as_it_was(
    db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    scripts = tmp_path / "migrations"
    (scripts / "versions").mkdir(parents=True)
    (scripts / "env.py").write_text((migrate.MIGRATIONS / "env.py").read_text())
    (scripts / "versions" / "0001_half.py").write_text(
        '"""Creates a table, then fails."""\nimport sqlalchemy as sa\nfrom alembic import op\n\n'
        'revision = "0001"\ndown_revision = None\n\n\ndef upgrade() -> None:\n'
        '    op.create_table("first", sa.Column("id", sa.Integer(), primary_key=True))\n'
        '    op.execute("CREATE INDEX ix_first ON first (id)")\n'
        '    raise RuntimeError("the second step failed")\n'
    )
    monkeypatch.setattr(migrate, "MIGRATIONS", scripts)
    engine = make_engine(db_url)
    try:
        with pytest.raises(RuntimeError, match="second step"):
            upgrade(engine)
        assert inspect(engine).get_table_names() == []
    finally:
        engine.dispose()


def test_an_empty_database_file_is_refused_as_a_lost_store(tmp_path: Path) -> None:
    path = tmp_path / "bulwark.db"
    path.touch()
    with pytest.raises(StoreError, match=r"bulwark.db is empty \(0 bytes\).*restore a backup"):
        open_store(f"sqlite:///{path}")
    assert path.stat().st_size == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bulwark.db"]


def test_a_write_ahead_log_without_its_database_is_refused(tmp_path: Path) -> None:
    # What is left when bulwark.db is deleted under a desk that crashed: its log, holding the last commits.
    (tmp_path / "bulwark.db-wal").write_bytes(bytes.fromhex("377f0682") + bytes(4092))
    with pytest.raises(StoreError, match="missing but its write-ahead log"):
        open_store(f"sqlite:///{tmp_path}/bulwark.db")
    assert not (tmp_path / "bulwark.db").exists()
