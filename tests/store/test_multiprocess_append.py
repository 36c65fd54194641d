"""Two processes extending one audit chain at once (the desk and `main.py panic`): no fork, no lost record."""

from __future__ import annotations

import multiprocessing
import multiprocessing.synchronize
import queue
from typing import Any

from app.domain.audit import AuditEventType, AuditSource
from app.store.audit_writer import AuditWriter
from app.store.db import StoreError, make_engine
from app.store.migrate import open_store
from app.store.verify import verify_chain

PER_PROCESS = 300


def _append_many(url: str, name: str, go: multiprocessing.synchronize.Event, results: multiprocessing.Queue[Any]) -> None:
    """Child process: its own engine and writer, one transaction per record to maximise interleaving."""
    engine = make_engine(url)
    writer = AuditWriter(engine)
    writer.start()
    errors: list[str] = []
    go.wait(30)
    for i in range(PER_PROCESS):
        try:
            writer.append_blocking(AuditEventType.ORDER_PROPOSED, {"i": i, "process": name}, actor=name, source=AuditSource.API)
        except StoreError as exc:
            errors.append(str(exc))
    writer.close()
    engine.dispose()
    results.put((name, errors))


def test_two_processes_append_to_one_chain_concurrently(db_url: str) -> None:
    engine = open_store(db_url)  # migrated once, before the children start
    context = multiprocessing.get_context("spawn")
    go = context.Event()
    results: multiprocessing.Queue[Any] = context.Queue()
    children = [context.Process(target=_append_many, args=(db_url, name, go, results)) for name in ("desk", "panic")]
    for child in children:
        child.start()
    go.set()
    outcomes: dict[str, list[str]] = {}
    for _ in children:
        try:
            name, errors = results.get(timeout=120)
        except queue.Empty:
            break
        outcomes[name] = errors
    for child in children:
        child.join(30)
        assert child.exitcode == 0
    assert set(outcomes) == {"desk", "panic"}
    assert outcomes == {"desk": [], "panic": []}, {name: errors[:3] for name, errors in outcomes.items()}
    result = verify_chain(engine)
    assert result.ok, result.reason
    assert result.records == 2 * PER_PROCESS
    with engine.connect() as connection:
        actors = dict(connection.exec_driver_sql("SELECT actor, count(*) FROM audit_log GROUP BY actor").fetchall())
    assert actors == {"desk": PER_PROCESS, "panic": PER_PROCESS}
    engine.dispose()
