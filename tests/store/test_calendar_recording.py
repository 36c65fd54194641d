"""Desks starting together on one PostgreSQL database record the firm's calendar once between them.

Found by the four-desk soak (tests/test_firm_desks.py): two desks read "no version yet", both wrote
version 1, and the second's audit write failed on the primary key, halting that desk at start.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import text

from app.domain.audit import AuditSource
from app.engine.risk.calendar_registry import CalendarVersion, record_version
from app.store import calendar_versions
from app.store.audit_writer import AuditWriter
from app.store.migrate import open_store
from app.store.verify import verify_chain
from tests.support.calendar import synthetic_calendar

DESKS = 6


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_desks_recording_the_same_calendar_at_once_store_one_version_and_none_fails(db_url: str) -> None:
    calendars = synthetic_calendar({2026: [], 2027: None})
    writers = [AuditWriter(open_store(db_url), desk_id=f"DESK{n}A") for n in range(DESKS)]
    for writer in writers:
        writer.start()
    barrier = threading.Barrier(DESKS)

    def start(writer: AuditWriter) -> CalendarVersion:
        barrier.wait()
        return record_version(writer, calendars, actor="system", source=AuditSource.SYSTEM, reason="desk start")

    try:
        with ThreadPoolExecutor(DESKS) as pool:
            versions = list(pool.map(start, writers))
        assert all(writer.failure is None for writer in writers)
    finally:
        for writer in writers:
            writer.close()
    assert {version.version for version in versions} == {1}
    assert sum(version.changed for version in versions) == 1
    engine = writers[0].engine
    assert [stored.version for stored in calendar_versions.history(engine)] == [1]
    with engine.connect() as connection:
        recorded = connection.execute(text("SELECT count(*) FROM audit_log WHERE event_type = 'calendar.changed'")).scalar_one()
    assert recorded == 1
    assert verify_chain(engine).ok
