"""An auditor's read-only copy of a data folder: the commands that only read run on it and write nothing;
`panic` on a folder it cannot write still reaches the running desk.

A read-only copy is made with ``chmod -R a-w``. Run as a normal user that forbids every write; run as
root (CI containers) it forbids none, which makes "nothing was written" the sharper check: any write
the commands tried would have landed.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import sqlite3
import stat
import subprocess
import sys
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import pytest

from app.domain.audit import AuditEventType
from app.domain.trading_state import TradingState
from app.store.audit_writer import AuditWriter
from app.store.db import open_read_only
from app.store.migrate import open_store
from app.store.verify import verify_chain
from tests.support.desk_process import ROOT, main_env, url_of
from tests.test_cli_panic import DeskThread

RECORDS = 5

pytestmark = pytest.mark.skipif(os.name != "posix", reason="read-only by POSIX mode bits")


def _desk_folder(home: Path) -> AuditWriter:
    """A data folder whose store holds ``RECORDS`` audit records; the writer is still open."""
    home.mkdir(parents=True)
    writer = AuditWriter(open_store(url_of(home)))
    writer.start()
    for i in range(RECORDS):
        writer.append_blocking(AuditEventType.APP_START, {"i": i}, actor="system", source="system")
    return writer


def _close(writer: AuditWriter) -> None:
    writer.close()
    writer.engine.dispose()


def _snapshot(folder: Path) -> dict[str, tuple[int, int, str]]:
    """Every file under ``folder``: mode, modification time and content hash."""
    found = {}
    for path in sorted(folder.rglob("*")):
        info = path.lstat()
        digest = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else ""
        found[str(path.relative_to(folder))] = (info.st_mode, info.st_mtime_ns, digest)
    return found


def _make_read_only(folder: Path) -> None:
    for path in [*folder.rglob("*"), folder]:
        path.chmod(stat.S_IMODE(path.stat().st_mode) & ~0o222)


def _make_writable(folder: Path) -> None:
    for path in [folder, *folder.rglob("*")]:
        path.chmod(stat.S_IMODE(path.stat().st_mode) | 0o200)


@pytest.fixture(params=["closed", "crashed"])
def auditor_copy(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Path, dict[str, str]]]:
    """A read-only copy of a desk's folder: of a store closed cleanly (no write-ahead log), or copied while
    its desk still had it open, as a crash leaves it (the last commits only in ``-wal``)."""
    desk_home = tmp_path / "desk"
    writer = _desk_folder(desk_home)
    copy = tmp_path / "auditor"
    if request.param == "crashed":
        with closing(sqlite3.connect(desk_home / "bulwark.db")) as hold:
            hold.execute("PRAGMA wal_autocheckpoint=0")
            writer.append_blocking(AuditEventType.APP_START, {"i": "only in the log"}, actor="system", source="system")
            shutil.copytree(desk_home, copy)
        _close(writer)
        assert (copy / "bulwark.db-wal").stat().st_size > 0
    else:
        _close(writer)
        shutil.copytree(desk_home, copy)
    env = main_env(copy)  # writes its calendar override now, before the folder is made read-only
    _make_read_only(copy)
    try:
        yield copy, env
    finally:
        _make_writable(copy)


def _run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(ROOT / "main.py"), *args], capture_output=True, text=True, env=env,
                          timeout=120, check=False)


def test_read_only_commands_run_on_a_read_only_copy_and_write_nothing(auditor_copy: tuple[Path, dict[str, str]]) -> None:
    copy, env = auditor_copy
    crashed = (copy / "bulwark.db-wal").exists()
    expected = RECORDS + 1 if crashed else RECORDS
    before = _snapshot(copy)

    verify = _run(env, "audit", "verify")
    assert verify.returncode == 0, verify.stdout + verify.stderr
    assert f"verified {expected} records" in verify.stdout
    export = _run(env, "audit", "export", "--format", "jsonl")
    assert export.returncode == 0, export.stderr
    assert len(export.stdout.splitlines()) == expected
    check = _run(env, "limits", "check")
    assert check.returncode == 0, check.stderr
    assert "valid" in check.stdout
    history = _run(env, "limits", "history")
    assert history.returncode == 0, history.stderr
    assert "no limits have been stored yet" in history.stdout

    assert _snapshot(copy) == before  # no file added, changed, touched or re-moded: no log, no -shm


def test_a_read_only_engine_reads_what_a_crash_left_in_the_log_and_cannot_write(tmp_path: Path) -> None:
    writer = _desk_folder(tmp_path / "desk")
    copy = tmp_path / "copy"
    with closing(sqlite3.connect(tmp_path / "desk" / "bulwark.db")):
        shutil.copytree(tmp_path / "desk", copy)
    _close(writer)
    engine = open_read_only(url_of(copy))
    try:
        result = verify_chain(engine)
        assert result.ok and result.records == RECORDS
        with engine.connect() as connection, pytest.raises(Exception, match="readonly|read-only|query_only"):
            connection.exec_driver_sql("INSERT INTO trading_state (ts_ns, state, reason, actor) VALUES (1, 'ACTIVE', '', '')")
    finally:
        engine.dispose()


def test_panic_on_a_folder_it_cannot_write_still_halts_the_desk(tmp_path: Path) -> None:
    home = tmp_path / "home"
    env = main_env(home)
    with DeskThread(home) as desk:
        before = {path.name for path in home.iterdir()}
        _make_read_only(home)
        try:
            proc = _run(env, "panic", "--reason", "read-only folder")
        finally:
            _make_writable(home)
    assert "the desk confirmed: trading HALTED" in proc.stdout, proc.stdout + proc.stderr
    assert desk.started_as is TradingState.ACTIVE and desk.state is TradingState.HALTED
    assert "Traceback" not in proc.stderr
    if os.geteuid() != 0:  # root writes the flag anyway; anyone else is refused and says so
        assert proc.returncode == 1 and "the HALTED flag was NOT written" in proc.stderr
    # no log file was started in a folder marked read-only
    assert {path.name for path in home.iterdir()} - before <= {"bulwark.db-wal", "bulwark.db-shm"}


def test_a_read_only_engine_verifies_and_cannot_write_on_either_backend(db_url: str) -> None:
    writer = AuditWriter(open_store(db_url))
    writer.start()
    writer.append_blocking(AuditEventType.APP_START, {}, actor="system", source="system")
    _close(writer)
    engine = open_read_only(db_url)
    try:
        result = verify_chain(engine)
        assert result.ok and result.records == 1
        with engine.connect() as connection, pytest.raises(Exception, match="readonly|read-only|query_only"):
            connection.exec_driver_sql("INSERT INTO trading_state (ts_ns, state, reason, actor) VALUES (1, 'ACTIVE', '', '')")
    finally:
        engine.dispose()
