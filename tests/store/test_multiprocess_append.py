"""Two processes extending one audit chain at once (the desk and `main.py panic`): no fork, no lost record."""

from __future__ import annotations

import multiprocessing
import multiprocessing.synchronize
import os
import queue
from pathlib import Path
from typing import Any

import pytest

from app.domain.audit import AuditEventType, AuditSource
from app.store.audit_writer import AuditWriter
from app.store.chain_key import ChainKeys
from app.store.db import StoreError, make_engine
from app.store.migrate import open_store
from app.store.verify import verify_chain
from tests.support import file_keyring

PER_PROCESS = 300


def _append_many(url: str, name: str, go: multiprocessing.synchronize.Event, results: multiprocessing.Queue[Any],
                 keyring_file: str | None = None) -> None:
    """Child process: its own engine and writer, one transaction per record to maximise interleaving.

    With ``keyring_file`` the desk keys the chain as it goes and panic must pick the key up from the keyring.
    """
    engine = make_engine(url)
    keys = None
    if keyring_file is not None:
        os.environ["BULWARK_TEST_KEYRING_FILE"] = keyring_file
        keys = ChainKeys(file_keyring.TestFileKeyring())
    writer = AuditWriter(engine, keys=keys, create_key=keyring_file is not None and name == "desk")
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


@pytest.mark.parametrize("keyed", [False, True], ids=["unkeyed", "keyed"])
def test_two_processes_append_to_one_chain_concurrently(db_url: str, keyed: bool, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    engine = open_store(db_url)  # migrated once, before the children start
    keyring_file = str(tmp_path / "keyring.json") if keyed else None
    context = multiprocessing.get_context("spawn")
    go = context.Event()
    results: multiprocessing.Queue[Any] = context.Queue()
    children = [context.Process(target=_append_many, args=(db_url, name, go, results, keyring_file))
                for name in ("desk", "panic")]
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
    keys = None
    if keyring_file is not None:
        monkeypatch.setenv("BULWARK_TEST_KEYRING_FILE", keyring_file)
        keys = ChainKeys(file_keyring.TestFileKeyring())
    result = verify_chain(engine, keys=keys)
    assert result.ok, result.problems()
    assert result.records == 2 * PER_PROCESS + keyed  # keyed: plus the record announcing the key
    assert len(result.keys) == keyed
    with engine.connect() as connection:
        actors = dict(connection.exec_driver_sql("SELECT actor, count(*) FROM audit_log GROUP BY actor").fetchall())
    assert actors == {"desk": PER_PROCESS, "panic": PER_PROCESS, **({"system": 1} if keyed else {})}
    engine.dispose()
