"""The audit writer through a real PostgreSQL outage: its database refuses connections and its connection is
killed. Records and desk rows go to the spool and are acknowledged; work that cannot be spooled fails; once the
database answers, one store.outage record, then every spooled record in order, and the spool is gone."""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import Connection, text
from sqlalchemy.engine import make_url

from app.domain.audit import AuditEventType, AuditSource
from app.store import desk_rows
from app.store.audit_writer import AuditWriter, StoreOutage
from app.store.db import StoreError
from app.store.desk_rows import RowWrite
from app.store.migrate import open_store
from app.store.spool import Spool, spool_file
from app.store.verify import verify_chain
from tests.conftest import NO_PG_REASON
from tests.pg_server import psycopg_conninfo


class PgDatabase:
    """A fresh database on the test server that can be made unreachable and reachable again."""

    def __init__(self, base: str) -> None:
        self.name = f"test_{uuid.uuid4().hex}"
        self.admin = psycopg_conninfo(base)
        self.url = make_url(base).set(database=self.name).render_as_string(hide_password=False)

    def _sql(self, *statements: str) -> None:
        with psycopg.connect(self.admin, autocommit=True) as connection:
            for statement in statements:
                connection.execute(statement)  # type: ignore[arg-type]

    def cut(self) -> None:
        """No new connection, and the open ones killed: what the desk sees of a server going away."""
        self._sql(f'ALTER DATABASE "{self.name}" ALLOW_CONNECTIONS false',
                  f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{self.name}'")

    def restore(self) -> None:
        self._sql(f'ALTER DATABASE "{self.name}" ALLOW_CONNECTIONS true')


@pytest.fixture
def pg_database(pg_base_url: str | None) -> Iterator[PgDatabase]:
    if pg_base_url is None:
        pytest.skip(NO_PG_REASON)
    database = PgDatabase(pg_base_url)
    database._sql(f'CREATE DATABASE "{database.name}"')
    try:
        yield database
    finally:
        database.restore()
        database._sql(f'DROP DATABASE IF EXISTS "{database.name}" WITH (FORCE)')


def wait_until(condition: Callable[[], bool], what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def state(reason: str) -> RowWrite:
    return RowWrite(desk_rows.TRADING_STATE, {"desk_id": "abc123", "ts_ns": 1, "state": "HALTED", "reason": reason,
                                              "actor": "system"})


@contextmanager
def running(writer: AuditWriter) -> Iterator[AuditWriter]:
    writer.start()
    try:
        yield writer
    finally:
        writer.close()


def test_an_outage_spools_every_record_and_row_and_replays_them_in_order(
    pg_database: PgDatabase, tmp_path: Path, caplog: pytest.LogCaptureFixture,
) -> None:
    engine = open_store(pg_database.url)
    heard: list[StoreOutage] = []

    async def scenario(writer: AuditWriter) -> None:
        writer.watch_outages(heard.append, asyncio.get_running_loop())
        await writer.append(AuditEventType.APP_START, {"n": 0}, actor="system", source=AuditSource.SYSTEM)
        pg_database.cut()
        # The first write meets the lost connection; it and all after are kept, each acknowledged once fsynced.
        spooled = [await writer.append(AuditEventType.FILL, {"n": n}, actor="broker", source=AuditSource.BROKER)
                   for n in range(1, 4)]
        assert [entry.seq for entry in spooled] == [0, 0, 0]
        assert await writer.execute(state("outage")) is None
        many = await asyncio.gather(*[writer.append(AuditEventType.ORDER_UPDATE, {"n": n}, actor="broker",
                                                    source=AuditSource.BROKER) for n in range(4, 40)])
        assert len(many) == 36
        with pytest.raises(StoreError, match="unreachable"):
            await writer.execute(lambda connection: connection.execute(text("SELECT 1")))
        assert writer.outage is not None and spool_file(tmp_path).is_file()
        await asyncio.sleep(0)
        assert [outage.ended_ns for outage in heard] == [None]
        pg_database.restore()
        await asyncio.to_thread(wait_until, lambda: writer.outage is None, "the replay")
        await asyncio.sleep(0.05)
        # Back to normal: a record written now is after the replayed ones.
        after = await writer.append(AuditEventType.APP_STOP, {"n": 40}, actor="system", source=AuditSource.SYSTEM)
        assert after.seq == 42

    caplog.set_level(logging.INFO, logger="app.store.audit_writer")
    with running(AuditWriter(engine, desk_id="abc123", spool=spool_file(tmp_path), retry_s=0.05)) as writer:
        asyncio.run(scenario(writer))

    assert not spool_file(tmp_path).exists()
    assert len(heard) == 2 and heard[1].ended_ns is not None and heard[1].spooled == 40
    assert writer.outages == 1
    with engine.connect() as connection:
        chain = connection.execute(text("SELECT seq, event_type, payload FROM audit_log ORDER BY seq")).all()
        reasons = connection.execute(text("SELECT reason FROM trading_state")).scalars().all()
    assert [r.event_type for r in chain[:2]] == ["app.start", "store.outage"]
    window = json.loads(chain[1].payload)
    assert window["records"] == 39 and window["rows"] == 1 and window["began_ns"] == heard[0].began_ns
    assert window["ended_ns"] == heard[1].ended_ns and "OperationalError" in window["reason"]
    assert [json.loads(r.payload)["n"] for r in chain[2:]] == list(range(1, 41))
    assert reasons == ["outage"]
    result = verify_chain(engine)
    assert result.ok, result.reason
    assert [(o.seq, o.records) for o in result.outages] == [(2, 39)]
    # One line when it began, one when it ended: not one per write.
    lines = [r for r in caplog.records if r.name == "app.store.audit_writer" and r.levelno >= logging.WARNING]
    assert [r.levelno for r in lines] == [logging.CRITICAL, logging.WARNING], [r.getMessage() for r in lines]


def test_without_a_spool_a_lost_database_fails_the_writes_as_before(pg_database: PgDatabase) -> None:
    engine = open_store(pg_database.url)
    with running(AuditWriter(engine)) as writer:
        writer.append_blocking(AuditEventType.APP_START, {}, actor="system", source=AuditSource.SYSTEM)
        pg_database.cut()
        with pytest.raises(StoreError, match="nothing in this batch was stored"):
            writer.append_blocking(AuditEventType.FILL, {}, actor="broker", source=AuditSource.BROKER)
        assert writer.outage is None


def test_a_refused_statement_is_a_failure_not_an_outage(pg_database: PgDatabase, tmp_path: Path) -> None:
    engine = open_store(pg_database.url)

    def wrong(connection: Connection) -> None:
        connection.execute(text("SELECT no_such_column FROM audit_log"))

    with running(AuditWriter(engine, spool=spool_file(tmp_path))) as writer:
        with pytest.raises(StoreError, match="nothing in this batch was stored"):
            writer.execute_blocking(wrong)
        assert writer.outage is None and not spool_file(tmp_path).exists()


def test_a_left_spool_that_cannot_be_written_refuses_the_start_and_is_kept(pg_database: PgDatabase, tmp_path: Path) -> None:
    engine = open_store(pg_database.url)
    spool = Spool(spool_file(tmp_path))
    spool.begin(1, "OperationalError: connection refused")
    spool.write([("broker", "broker", "fill", '{"n":1}', 2)])
    spool.close()
    kept = spool.path.read_bytes()
    pg_database.cut()
    with pytest.raises(StoreError, match="left by an earlier run could not be written to the database; it is kept"):
        AuditWriter(engine, spool=spool.path).start()
    assert spool.path.read_bytes() == kept
    pg_database.restore()
    with running(AuditWriter(engine, spool=spool.path)):
        pass
    assert not spool.path.exists()
    with engine.connect() as connection:
        assert connection.execute(text("SELECT event_type FROM audit_log ORDER BY seq")).scalars().all() == [
            "store.outage", "fill"]
