"""Schema migrations at start-up, and databases the desk must refuse."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from sqlalchemy import inspect

from app.domain.audit import AuditEventType
from app.store.audit_writer import AuditWriter
from app.store.db import StoreError, make_engine
from app.store.migrate import current_revision, head_revision, open_store, upgrade
from app.store.verify import verify_chain


def test_fresh_database_comes_up_to_head(db_url: str) -> None:
    engine = open_store(db_url)
    assert current_revision(engine) == head_revision()
    tables = set(inspect(engine).get_table_names())
    assert {"audit_log", "orders", "fills", "position_snapshots", "limit_versions", "trading_state", "rate_counters"} <= tables


def test_the_migrated_schema_is_the_models_schema(db_url: str) -> None:
    """Every table, column, key and index the code declares is what the migrations built (so a model
    changed without its migration fails here, not on a trader's first start)."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from app.store.models import Base

    engine = open_store(db_url)
    try:
        with engine.connect() as connection:
            differences = compare_metadata(MigrationContext.configure(connection, opts={"compare_type": True}), Base.metadata)
    finally:
        engine.dispose()
    # SQLite reports the chain's BIGINT key as INTEGER (its rowid alias): the one known difference.
    differences = [d for d in differences
                   if not (db_url.startswith("sqlite") and isinstance(d, list) and d[0][0] == "modify_type" and d[0][3] == "seq")]
    assert differences == []


def test_older_database_is_upgraded_and_keeps_its_records(db_url: str) -> None:
    engine = make_engine(db_url)
    upgrade(engine, "0001")
    assert current_revision(engine) == "0001"
    assert "trading_state" not in inspect(engine).get_table_names()
    writer = AuditWriter(engine)
    writer.start()
    writer.append_blocking(AuditEventType.APP_START, {"version": "old"}, actor="system", source="system")
    writer.close()
    engine.dispose()
    upgraded = open_store(db_url)
    assert current_revision(upgraded) == head_revision()
    assert "trading_state" in inspect(upgraded).get_table_names()
    result = verify_chain(upgraded)
    assert result.ok and result.records == 1


def test_reopening_is_idempotent(db_url: str) -> None:
    open_store(db_url).dispose()
    engine = open_store(db_url)
    assert current_revision(engine) == head_revision()


def test_newer_schema_is_refused_untouched(db_url: str) -> None:
    engine = open_store(db_url)
    with engine.begin() as c:
        c.exec_driver_sql("UPDATE alembic_version SET version_num = '9999'")
    engine.dispose()
    with pytest.raises(StoreError, match="newer than this Bulwark"):
        open_store(db_url)
    with make_engine(db_url).connect() as c:
        assert c.exec_driver_sql("SELECT version_num FROM alembic_version").scalar() == "9999"


def test_garbage_file_is_refused_and_left_alone(tmp_path: Path) -> None:
    path = tmp_path / "bulwark.db"
    path.write_bytes(b"this is not a database" * 100)
    before = path.read_bytes()
    with pytest.raises(StoreError, match="not a SQLite database"):
        open_store(f"sqlite:///{path}")
    assert path.read_bytes() == before


def test_truncated_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "bulwark.db"
    engine = open_store(f"sqlite:///{path}")
    writer = AuditWriter(engine)
    writer.start()

    async def many() -> None:
        await asyncio.gather(*[writer.append("x", {"i": i, "pad": "p" * 200}, actor="a", source="system") for i in range(3000)])

    asyncio.run(many())
    writer.close()
    with engine.connect() as c:
        c.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    engine.dispose()
    size = path.stat().st_size
    with path.open("r+b") as handle:
        handle.truncate(size // 3)
    # Either opening fails, or the chain check does: never a silent success.
    try:
        broken = open_store(f"sqlite:///{path}")
    except StoreError as exc:
        assert "malformed" in str(exc) or "not a database" in str(exc)
        return
    assert not verify_chain(broken).ok


def test_read_only_database_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "bulwark.db"
    open_store(f"sqlite:///{path}").dispose()
    # SQLite's own read-only mode works for root too, unlike file permissions.
    with pytest.raises(StoreError, match="readonly|read-only|read only"):
        engine = open_store(f"sqlite:///file:{path}?mode=ro&uri=true")
        writer = AuditWriter(engine)
        writer.start()
        try:
            writer.append_blocking("x", {}, actor="a", source="system")
        finally:
            writer.close()


def test_missing_folder_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="does not exist"):
        open_store(f"sqlite:///{tmp_path}/nope/bulwark.db")
