"""Backups: create/list/verify/restore on real SQLite files (and PostgreSQL when its tools are here),
retention as a property, and the daily schedule's clock arithmetic."""

from __future__ import annotations

import asyncio
import datetime as dt
import gzip
import hashlib
import json
import shutil
import socket
import sqlite3
import threading
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import create_engine

from app.domain.audit import AuditEventType, AuditSource
from app.store.audit_writer import AuditWriter
from app.store.backup import (
    IST,
    PG_DUMP_MISSING,
    BackupError,
    BackupInfo,
    BackupScheduler,
    create_backup,
    list_backups,
    manifest_path_for,
    next_run,
    prune_backups,
    restore_backup,
    select_to_keep,
    verify_backup,
)
from app.store.migrate import open_store
from app.store.verify import VerifyResult, verify_chain

RECORDS = 300
NOW = dt.datetime(2026, 11, 25, 7, 30, tzinfo=IST)  # 02:00 UTC


def _url(path: Path) -> str:
    return f"sqlite:///{path}"


def _append(url: str, count: int, *, start: int = 0) -> None:
    engine = open_store(url)
    writer = AuditWriter(engine)
    writer.start()
    try:
        for i in range(start, start + count):
            writer.append_blocking(
                AuditEventType.ORDER_PROPOSED, {"i": i, "symbol": "NIFTY"}, actor="tester", source=AuditSource.SYSTEM
            )
    finally:
        writer.close()
        engine.dispose()


def _chain(path: Path) -> VerifyResult:
    """Verify a database file without changing it (read-only: no migration, no checkpoint, no WAL switch)."""
    engine = create_engine(f"sqlite:///file:{path}?mode=ro&uri=true")
    try:
        return verify_chain(engine)
    finally:
        engine.dispose()


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _never() -> bool:
    return False


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("template") / "bulwark.db"
    _append(_url(path), RECORDS)
    assert not path.with_name("bulwark.db-wal").exists()
    return path


@pytest.fixture
def db(template: Path, tmp_path: Path) -> Path:
    """A desk database with RECORDS audit records, in a folder of its own."""
    folder = tmp_path / "home"
    folder.mkdir()
    path = folder / "bulwark.db"
    shutil.copyfile(template, path)
    return path


@pytest.fixture
def backups(tmp_path: Path) -> Path:
    return tmp_path / "backups"


# -- create / list / verify ----------------------------------------------------------------------


def test_create_writes_a_compressed_snapshot_and_a_manifest_that_matches(db: Path, backups: Path) -> None:
    info = create_backup(_url(db), backups, now=NOW)

    assert info.path.name == "bulwark-20261125-020000.db.gz"  # UTC in the name, not IST
    assert info.ok and info.kind == "sqlite" and info.verified is True
    manifest = json.loads(manifest_path_for(info.path).read_text())
    assert manifest["file"] == info.path.name
    assert manifest["sha256"] == _sha(info.path) == info.sha256
    assert manifest["size"] == info.path.stat().st_size
    assert manifest["created_at"] == "2026-11-25T02:00:00+00:00"
    live = _chain(db)
    assert manifest["audit"] == {
        "records": RECORDS, "last_hash": live.last_hash, "verified": True, "verified_records": RECORDS,
        "broken_at": None, "reason": None, "missing_triggers": [],
    }
    raw = gzip.decompress(info.path.read_bytes())
    assert raw.startswith(b"SQLite format 3\x00")
    assert hashlib.sha256(raw).hexdigest() == manifest["db_sha256"]
    assert sorted(p.name for p in backups.iterdir()) == [info.path.name, info.path.name + ".manifest.json"]

    listed = list_backups(backups)
    assert [b.path for b in listed] == [info.path] and listed[0].ok and listed[0].records == RECORDS


def test_backups_in_the_same_second_get_distinct_names_and_list_newest_first(db: Path, backups: Path) -> None:
    first = create_backup(_url(db), backups, now=NOW)
    second = create_backup(_url(db), backups, now=NOW)
    later = create_backup(_url(db), backups, now=NOW + dt.timedelta(days=1))
    assert second.path.name == "bulwark-20261125-020000-2.db.gz"
    assert [b.path for b in list_backups(backups)] == [later.path, second.path, first.path]


def test_list_flags_a_file_without_manifest_and_a_manifest_without_file(db: Path, backups: Path) -> None:
    lost_file = create_backup(_url(db), backups, now=NOW)
    lost_manifest = create_backup(_url(db), backups, now=NOW + dt.timedelta(hours=1))
    lost_file.path.unlink()
    manifest_path_for(lost_manifest.path).unlink()

    by_name = {b.path.name: b for b in list_backups(backups)}
    assert by_name[lost_file.path.name].problems == ("backup file missing",)
    assert "no manifest" in by_name[lost_manifest.path.name].problems[0]
    assert not any(b.ok for b in by_name.values())


def test_verify_a_good_backup(db: Path, backups: Path) -> None:
    info = create_backup(_url(db), backups, now=NOW)
    for path in (info.path, manifest_path_for(info.path)):  # either file names the backup
        check = verify_backup(path)
        assert check.ok, check.problems
        assert check.checksum_ok is True and check.chain_checked
        assert check.records == check.verified_records == RECORDS and check.broken_at is None


def test_backup_taken_while_the_desk_keeps_appending_is_consistent(db: Path, backups: Path) -> None:
    url = _url(db)
    engine = open_store(url)
    writer = AuditWriter(engine)
    writer.start()
    stop = threading.Event()
    progress = threading.Condition()
    appended = 0
    failed: list[BaseException] = []

    def keep_appending() -> None:
        nonlocal appended
        try:
            while not stop.is_set():
                writer.append_blocking(AuditEventType.FILL, {"n": appended}, actor="desk", source=AuditSource.BROKER)
                with progress:
                    appended += 1
                    progress.notify_all()
        except BaseException as exc:  # noqa: BLE001 - handed to the test thread, which fails with it
            with progress:
                failed.append(exc)
                progress.notify_all()

    thread = threading.Thread(target=keep_appending)
    thread.start()
    taken: list[BackupInfo] = []
    try:
        for i in range(3):
            target = 50 * (i + 1)
            # Woken by each append (or the appender's failure), never by a clock; the timeout only
            # turns a stalled appender into a failure instead of a hung run.
            with progress:
                assert progress.wait_for(lambda: failed or appended >= target, timeout=120), "the appender stalled"  # noqa: B023 - called before target changes
            if failed:
                raise failed[0]
            taken.append(create_backup(url, backups, now=NOW + dt.timedelta(minutes=i)))
    finally:
        stop.set()
        thread.join()
        writer.close()
        engine.dispose()

    with sqlite3.connect(db) as conn:
        hashes = dict(conn.execute("SELECT seq, hash FROM audit_log"))
    counts = [info.records or 0 for info in taken]
    assert all(RECORDS < c < RECORDS + appended for c in counts)
    assert counts == sorted(counts) and len(set(counts)) == 3  # the writer really ran between them
    for info in taken:
        check = verify_backup(info.path)
        assert check.ok, check.problems
        assert info.verified is True and check.records == info.records
        assert hashes[info.records] == info.last_hash  # a prefix of the live chain, cut cleanly


def test_a_flipped_byte_fails_the_checksum(db: Path, backups: Path) -> None:
    info = create_backup(_url(db), backups, now=NOW)
    data = bytearray(info.path.read_bytes())
    data[len(data) // 2] ^= 0x01
    info.path.write_bytes(bytes(data))

    check = verify_backup(info.path)
    assert not check.ok and not check.intact and check.checksum_ok is False
    assert any("checksum mismatch" in p for p in check.integrity_problems)


def _break_chain(path: Path, seq: int) -> None:
    with sqlite3.connect(path) as conn:
        conn.execute("DROP TRIGGER audit_log_no_update")
        conn.execute("UPDATE audit_log SET payload = ? WHERE seq = ?", ('{"forged":true}', seq))
    conn.close()


def test_a_backup_of_an_edited_chain_is_kept_as_evidence_and_verify_names_the_record(
    db: Path, backups: Path
) -> None:
    _break_chain(db, 42)

    info = create_backup(_url(db), backups, now=NOW)
    assert info.ok  # the backup itself is complete
    assert info.verified is False and info.broken_at == 42
    assert info.reason is not None and "record 42" in info.reason and "audit_log_no_update" in info.reason
    assert info.records == RECORDS  # every row is in the backup, the forged one included

    check = verify_backup(info.path)
    assert check.intact and not check.ok
    assert check.broken_at == 42 and check.verified_records == 41
    assert check.missing_triggers == ("audit_log_no_update",)
    assert any("broken at record 42" in p for p in check.chain_problems)

    target = db.with_name("other.db")
    with pytest.raises(BackupError, match="audit chain is broken"):
        restore_backup(info.path, _url(target), desk_running=_never)
    assert not target.exists()
    forced = restore_backup(info.path, _url(target), desk_running=_never, force=True)
    assert forced.forced and forced.safety_copy is None
    assert _chain(target).broken_at == 42


# -- restore -------------------------------------------------------------------------------------


def _files(folder: Path) -> dict[str, str]:
    return {p.name: _sha(p) for p in sorted(folder.iterdir()) if p.is_file()}


def test_restore_refuses_while_a_desk_is_running_and_changes_nothing(db: Path, backups: Path) -> None:
    info = create_backup(_url(db), backups, now=NOW)
    _append(_url(db), 10, start=RECORDS)
    before = _files(db.parent)

    with pytest.raises(BackupError, match="desk is running"):
        restore_backup(info.path, _url(db), desk_running=lambda: True)
    assert _files(db.parent) == before


def test_restore_keeps_a_safety_copy_and_replaces_the_database(db: Path, backups: Path) -> None:
    url = _url(db)
    info = create_backup(url, backups, now=NOW)
    # 50 more records, left in the WAL as after a crash: the main file alone still says 300.
    holder = sqlite3.connect(db)
    holder.execute("SELECT count(*) FROM audit_log").fetchone()  # joins the WAL: the writer's close won't checkpoint
    _append(url, 50, start=RECORDS)
    crashed = db.parent / "crashed"
    crashed.mkdir()
    for suffix in ("", "-wal"):
        shutil.copyfile(db.with_name(db.name + suffix), crashed / f"bulwark.db{suffix}")
    holder.close()
    current = crashed / "bulwark.db"
    assert _chain(current).records == RECORDS + 50
    with sqlite3.connect(f"file:{current}?immutable=1", uri=True) as main_file_only:
        assert main_file_only.execute("SELECT count(*) FROM audit_log").fetchone() == (RECORDS,)
    main_file_only.close()

    result = restore_backup(info.path, _url(current), desk_running=_never, now=NOW + dt.timedelta(hours=3))

    assert result.safety_copy == crashed / "bulwark.db.pre-restore-20261125-050000"
    safety = _chain(result.safety_copy)
    assert safety.ok and safety.records == RECORDS + 50  # the WAL's records are in the safety copy
    assert result.records == RECORDS and result.last_hash == info.last_hash
    assert not (crashed / "bulwark.db-wal").exists()  # the stale WAL was not replayed into the backup
    assert not [p for p in crashed.iterdir() if p.name.startswith(".")]

    engine = open_store(_url(current))  # the desk starts on it
    writer = AuditWriter(engine)
    writer.start()
    try:
        writer.append_blocking(AuditEventType.BACKUP_RESTORED, result.audit_payload(), actor="ops",
                               source=AuditSource.OPERATOR)
    finally:
        writer.close()
    after = verify_chain(engine)
    engine.dispose()
    assert after.ok and after.records == RECORDS + 1


def test_restore_refuses_a_corrupt_backup(db: Path, backups: Path) -> None:
    info = create_backup(_url(db), backups, now=NOW)
    info.path.write_bytes(info.path.read_bytes()[:-100])  # a truncated copy
    before = _files(db.parent)
    with pytest.raises(BackupError, match="damaged backup"):
        restore_backup(info.path, _url(db), desk_running=_never)
    assert _files(db.parent) == before


def test_restore_refuses_a_backup_without_manifest(db: Path, backups: Path) -> None:
    info = create_backup(_url(db), backups, now=NOW)
    manifest_path_for(info.path).unlink()
    with pytest.raises(BackupError, match="no manifest"):
        restore_backup(info.path, _url(db), desk_running=_never)


def test_restore_over_an_unreadable_database_keeps_its_bytes(db: Path, backups: Path) -> None:
    info = create_backup(_url(db), backups, now=NOW)
    db.write_bytes(b"this is not a database" * 100)

    result = restore_backup(info.path, _url(db), desk_running=_never, now=NOW)

    assert result.safety_copy is not None
    assert result.safety_copy.read_bytes() == b"this is not a database" * 100
    assert result.notes and "byte for byte" in result.notes[0]
    assert _chain(db).ok and result.records == RECORDS


# -- PostgreSQL ----------------------------------------------------------------------------------


def test_pg_dump_missing_is_a_clear_error_without_the_password(
    backups: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    with pytest.raises(BackupError) as caught:
        create_backup("postgresql+psycopg://desk:s3cr3t-pw@db.example:5432/bulwark", backups, now=NOW)
    assert str(caught.value) == PG_DUMP_MISSING
    assert "s3cr3t" not in str(caught.value)
    assert list(backups.iterdir()) == []


@pytest.mark.skipif(shutil.which("pg_dump") is None, reason="pg_dump is not installed")
def test_a_postgresql_failure_never_shows_the_password(backups: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens there once closed
    with pytest.raises(BackupError) as caught:
        create_backup(f"postgresql+psycopg://desk:s3cr3t-pw@127.0.0.1:{port}/bulwark", backups, now=NOW)
    assert "s3cr3t" not in str(caught.value) and "***" in str(caught.value)
    assert list(backups.iterdir()) == []


@pytest.mark.skipif(
    shutil.which("pg_dump") is None or shutil.which("pg_restore") is None, reason="PostgreSQL client tools missing"
)
@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_postgresql_round_trip(
    db_url: str, pg_base_url: str | None, backups: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("BULWARK_VERIFY_PG_URL", raising=False)
    _append(db_url, 120)

    info = create_backup(db_url, backups, now=NOW)
    assert info.path.name == "bulwark-20261125-020000.pgdump"
    assert info.ok and info.kind == "postgresql" and info.verified is True and info.records == 120
    assert info.sha256 == _sha(info.path)

    unchecked = verify_backup(info.path)
    assert unchecked.ok and not unchecked.chain_checked
    assert any("BULWARK_VERIFY_PG_URL" in note for note in unchecked.notes)

    assert pg_base_url is not None
    monkeypatch.setenv("BULWARK_VERIFY_PG_URL", pg_base_url)
    checked = verify_backup(info.path)
    assert checked.ok and checked.chain_checked, checked.problems
    assert checked.records == 120 and checked.last_hash == info.last_hash

    _append(db_url, 30, start=120)
    result = restore_backup(info.path, db_url, desk_running=_never, now=NOW)
    assert result.safety_copy is not None and result.safety_copy.stat().st_size > 0
    assert result.records == 120
    engine = open_store(db_url)
    try:
        restored = verify_chain(engine)
    finally:
        engine.dispose()
    assert restored.ok and restored.records == 120  # the append-only triggers came back too


def test_an_unchecked_dump_whose_manifest_records_a_break_is_not_restored_without_force(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("BULWARK_VERIFY_PG_URL", raising=False)
    data = tmp_path / "bulwark-20261125-020000.pgdump"
    data.write_bytes(b"PGDMP fake")
    manifest = {
        "format": "bulwark-backup", "format_version": 1, "created_at": "2026-11-25T02:00:00+00:00",
        "kind": "postgresql", "file": data.name, "size": data.stat().st_size, "sha256": _sha(data),
        "audit": {"records": 9, "last_hash": "a" * 64, "verified": False, "broken_at": 7,
                  "reason": "record 7: its content does not match its hash (the record was edited)"},
    }
    manifest_path_for(data).write_text(json.dumps(manifest))

    check = verify_backup(data)
    assert check.intact and not check.ok and not check.chain_checked and check.broken_at == 7
    with pytest.raises(BackupError, match="audit chain is broken"):
        restore_backup(data, "postgresql+psycopg://desk@127.0.0.1:1/bulwark", desk_running=_never)


# -- retention -----------------------------------------------------------------------------------

REF = dt.datetime(2026, 11, 25, 3, 0, tzinfo=IST)
offsets = st.lists(st.integers(min_value=0, max_value=3 * 365 * 86_400), max_size=150)


def _stamps(seconds: list[int]) -> set[dt.datetime]:
    return {REF - dt.timedelta(seconds=s) for s in seconds}


@settings(max_examples=300, deadline=None)
@given(seconds=offsets)
def test_retention_properties(seconds: list[int]) -> None:
    stamps = _stamps(seconds)
    keep = select_to_keep(stamps, REF, daily=7, weekly=4, monthly=12)

    assert keep <= stamps
    assert len(keep) <= 7 + 4 + 12
    if stamps:
        assert max(stamps) in keep
    newest_per_day: dict[dt.date, dt.datetime] = {}
    for stamp in stamps:
        day = stamp.astimezone(IST).date()
        newest_per_day[day] = max(stamp, newest_per_day.get(day, stamp))
    for day in sorted(newest_per_day, reverse=True)[:7]:
        assert newest_per_day[day] in keep
    assert select_to_keep(keep, REF, daily=7, weekly=4, monthly=12) == keep  # pruning twice deletes nothing more


@settings(max_examples=100, deadline=None)
@given(
    seconds=offsets,
    future=st.lists(st.integers(min_value=1, max_value=10**7), max_size=5),
    daily=st.integers(0, 10), weekly=st.integers(0, 6), monthly=st.integers(0, 14),
)
def test_retention_with_any_counts_and_clock_skew(
    seconds: list[int], future: list[int], daily: int, weekly: int, monthly: int
) -> None:
    past = _stamps(seconds)
    ahead = {REF + dt.timedelta(seconds=s) for s in future}
    keep = select_to_keep(past | ahead, REF, daily=daily, weekly=weekly, monthly=monthly)
    assert ahead <= keep  # the clock cannot place them: never deleted
    assert len(keep - ahead) <= daily + weekly + monthly
    if past and daily + weekly + monthly:
        assert max(past) in keep
    assert select_to_keep(keep, REF, daily=daily, weekly=weekly, monthly=monthly) == keep


def test_retention_over_400_days_of_daily_backups() -> None:
    last = dt.date(2026, 11, 25)  # a Wednesday
    stamps = {dt.datetime.combine(last - dt.timedelta(days=n), dt.time(2, 0), tzinfo=IST) for n in range(400)}

    keep = select_to_keep(stamps, REF, daily=7, weekly=4, monthly=12)

    expected_days = (
        [dt.date(2026, 11, d) for d in range(19, 26)]  # daily: the last 7 days
        + [dt.date(2026, 11, 15), dt.date(2026, 11, 8)]  # weekly: Sundays of the weeks before (the 22nd is daily)
        + [dt.date(2026, 10, 31), dt.date(2026, 9, 30), dt.date(2026, 8, 31), dt.date(2026, 7, 31),
           dt.date(2026, 6, 30), dt.date(2026, 5, 31), dt.date(2026, 4, 30), dt.date(2026, 3, 31),
           dt.date(2026, 2, 28), dt.date(2026, 1, 31), dt.date(2025, 12, 31)]  # monthly: month ends
    )
    assert sorted(s.date() for s in keep) == sorted(expected_days)
    assert len(keep) == 20


def _fake_backup(folder: Path, when: dt.datetime, *, verified: bool) -> Path:
    """A backup as prune sees it: a data file and a manifest (no database needed)."""
    name = f"bulwark-{when.astimezone(dt.UTC):%Y%m%d-%H%M%S}.db.gz"
    data = folder / name
    data.write_bytes(b"x")
    manifest = {
        "format": "bulwark-backup", "format_version": 1, "created_at": when.astimezone(dt.UTC).isoformat(),
        "kind": "sqlite", "file": name, "size": 1, "sha256": hashlib.sha256(b"x").hexdigest(),
        "audit": {"records": 1, "last_hash": "0" * 64, "verified": verified},
    }
    manifest_path_for(data).write_text(json.dumps(manifest))
    return data


def test_prune_deletes_what_retention_drops_and_is_idempotent(db: Path, backups: Path) -> None:
    made = [create_backup(_url(db), backups, now=NOW - dt.timedelta(days=n)) for n in range(40)]
    stray = backups / "bulwark-20200101-000000.db.gz"  # no manifest: left for a person
    stray.write_bytes(b"?")
    expected = select_to_keep([m.created_at for m in made], NOW, daily=7, weekly=4, monthly=12)

    deleted = prune_backups(backups, NOW)

    remaining = [b for b in list_backups(backups) if b.ok]
    assert {b.created_at for b in remaining} == expected
    assert len(deleted) == 2 * (40 - len(expected))  # each data file with its manifest
    assert all(not p.exists() for p in deleted)
    assert stray.exists()
    assert prune_backups(backups, NOW) == []


def test_prune_keeps_the_last_good_backup_and_the_first_broken_one(tmp_path: Path) -> None:
    folder = tmp_path / "b"
    folder.mkdir()
    start = dt.datetime(2025, 1, 1, 2, 0, tzinfo=IST)
    for n in range(600):  # the chain broke on day 100 and every backup since shows it
        _fake_backup(folder, start + dt.timedelta(days=n), verified=n < 100)
    now = start + dt.timedelta(days=600)

    prune_backups(folder, now)

    kept = {b.created_at for b in list_backups(folder)}
    assert (start + dt.timedelta(days=99)).astimezone(dt.UTC) in kept  # last known-good
    assert (start + dt.timedelta(days=100)).astimezone(dt.UTC) in kept  # first evidence of the break
    assert len(kept) <= 7 + 4 + 12 + 2
    assert prune_backups(folder, now) == []


# -- schedule ------------------------------------------------------------------------------------


def test_next_run_across_midnight_in_india() -> None:
    late_evening = dt.datetime(2026, 11, 24, 18, 20, tzinfo=dt.UTC)  # 23:50 IST on the 24th
    assert next_run(late_evening, dt.time(0, 30)) == dt.datetime(2026, 11, 25, 0, 30, tzinfo=IST)
    # 20:00 UTC on the 24th is already 01:30 on the 25th in India: 01:00 has passed there.
    assert next_run(dt.datetime(2026, 11, 24, 20, 0, tzinfo=dt.UTC), dt.time(1, 0)) == dt.datetime(
        2026, 11, 26, 1, 0, tzinfo=IST
    )
    assert next_run(late_evening, dt.time(0, 30)).astimezone(dt.UTC) == dt.datetime(2026, 11, 24, 19, 0, tzinfo=dt.UTC)


def test_next_run_today_or_tomorrow() -> None:
    at = dt.time(18, 0)
    assert next_run(dt.datetime(2026, 11, 24, 17, 59, tzinfo=IST), at) == dt.datetime(2026, 11, 24, 18, 0, tzinfo=IST)
    assert next_run(dt.datetime(2026, 11, 24, 19, 0, tzinfo=IST), at) == dt.datetime(2026, 11, 25, 18, 0, tzinfo=IST)
    assert next_run(dt.datetime(2026, 11, 24, 18, 0, tzinfo=IST), at) == dt.datetime(2026, 11, 25, 18, 0, tzinfo=IST)
    # month and year ends
    assert next_run(dt.datetime(2026, 12, 31, 23, 0, tzinfo=IST), at) == dt.datetime(2027, 1, 1, 18, 0, tzinfo=IST)
    with pytest.raises(ValueError):
        next_run(dt.datetime(2026, 11, 24, 17, 0), at)  # naive: which clock?


class FakeClock:
    """Wall time that moves only when the scheduler sleeps; it stops for good after ``limit`` outcomes."""

    def __init__(self, start: dt.datetime, outcomes: list[BackupInfo | Exception], limit: int) -> None:
        self.now = start
        self.outcomes = outcomes
        self.limit = limit

    def __call__(self) -> dt.datetime:
        return self.now

    async def sleep(self, seconds: float) -> None:
        if len(self.outcomes) >= self.limit:
            await asyncio.Event().wait()  # no further run starts; the test cancels us here
        self.now += dt.timedelta(seconds=seconds)
        await asyncio.sleep(0)


async def _run_until(scheduler: BackupScheduler, outcomes: list[BackupInfo | Exception], count: int) -> None:
    task = asyncio.create_task(scheduler.run())
    try:
        async with asyncio.timeout(10):
            while len(outcomes) < count:
                await asyncio.sleep(0.01)
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


async def test_scheduler_backs_up_daily_at_the_ist_time_and_prunes(db: Path, backups: Path) -> None:
    outcomes: list[BackupInfo | Exception] = []
    clock = FakeClock(dt.datetime(2026, 11, 24, 23, 0, tzinfo=IST), outcomes, 3)
    scheduler = BackupScheduler(
        _url(db), backups, dt.time(0, 30), clock=clock, on_done=outcomes.append, sleep=clock.sleep,
        daily=1, weekly=0, monthly=0,
    )

    await _run_until(scheduler, outcomes, 3)

    infos = [o for o in outcomes if isinstance(o, BackupInfo)]
    assert len(infos) == len(outcomes) == 3
    assert [i.created_at for i in infos] == [
        dt.datetime(2026, 11, d, 0, 30, tzinfo=IST).astimezone(dt.UTC) for d in (25, 26, 27)
    ]
    assert infos[0].path.name == "bulwark-20261124-190000.db.gz"
    assert [b.path for b in list_backups(backups)] == [infos[-1].path]  # daily=1: the older two pruned


async def test_scheduler_reports_failures_and_keeps_going(tmp_path: Path) -> None:
    outcomes: list[BackupInfo | Exception] = []
    clock = FakeClock(dt.datetime(2026, 11, 24, 12, 0, tzinfo=IST), outcomes, 2)

    def on_done(outcome: BackupInfo | Exception) -> None:
        outcomes.append(outcome)
        raise RuntimeError("a broken callback must not stop the schedule")

    scheduler = BackupScheduler(
        _url(tmp_path / "missing.db"), tmp_path / "b", dt.time(18, 0), clock=clock, on_done=on_done,
        sleep=clock.sleep,
    )
    await _run_until(scheduler, outcomes, 2)

    assert all(isinstance(o, BackupError) and "no database" in str(o) for o in outcomes)
    assert scheduler.runs == 2
    assert clock.now == dt.datetime(2026, 11, 25, 18, 0, tzinfo=IST)  # today's 18:00, then tomorrow's


def test_scheduler_rejects_an_aware_time(backups: Path) -> None:
    with pytest.raises(ValueError):
        BackupScheduler("sqlite:///x.db", backups, dt.time(1, 0, tzinfo=dt.UTC))
