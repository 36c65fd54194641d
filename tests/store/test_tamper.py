"""Tampering the database alone cannot hide: `main.py audit verify` against the key, checkpoints and digests.

Each case was exit 0 before the chain was keyed and checkpointed (issue 12). The attacker drops the
append-only triggers first, as anyone who can write the file can.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from app.store.canonical import GENESIS_HASH, record_bytes
from app.store.checkpoints import CHECKPOINT_FILE, write_checkpoint
from app.store.db import make_engine
from app.store.migrate import open_store
from tests.store.chain_fixtures import file_keys, fill, keyring_env, tamper
from tests.support.calendar import cover_today

ROOT = Path(__file__).resolve().parents[2]
RECORDS = 20


def main_py(home: Path, keyring_file: Path, *args: str) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("BULWARK_")}
    environ.update(BULWARK_HOME=str(cover_today(home)), **keyring_env(keyring_file))
    return subprocess.run([sys.executable, str(ROOT / "main.py"), *args], capture_output=True, text=True,
                          env=environ, timeout=120, check=False)


@pytest.fixture
def desk(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    """A data folder with a keyed chain of 21 records and a checkpoint at its end."""
    home, keyring_file = tmp_path / "home", tmp_path / "keyring.json"
    home.mkdir()
    monkeypatch.setenv("BULWARK_TEST_KEYRING_FILE", str(keyring_file))
    keys = file_keys(keyring_file)
    writer = fill(f"sqlite:///{home}/bulwark.db", RECORDS, keys)
    write_checkpoint(writer.engine, home, keys=keys)
    writer.engine.dispose()
    return home, keyring_file


def rechain_unkeyed(home: Path, start: int, *, keep_key_column: bool) -> None:
    """Recompute every hash from ``start`` on with the chain's own SHA-256 function, as an attacker without the key."""
    engine = make_engine(f"sqlite:///{home}/bulwark.db")
    with engine.begin() as c:
        found = c.exec_driver_sql("SELECT seq, ts_ns, actor, source, event_type, payload, prev_hash, hash, key_fp "
                                  "FROM audit_log ORDER BY seq").all()
        prev = GENESIS_HASH if start == 1 else found[start - 2][7]
        for seq, ts, actor, source, kind, payload, _, _, key_fp in found[start - 1:]:
            digest = hashlib.sha256(prev.encode() + record_bytes(seq, ts, actor, source, kind, payload)).hexdigest()
            c.exec_driver_sql("UPDATE audit_log SET prev_hash = ?, hash = ?, key_fp = ? WHERE seq = ?",
                              (prev, digest, key_fp if keep_key_column else None, seq))
            prev = digest
    engine.dispose()


def append_unkeyed(home: Path, *, claim_key: bool) -> None:
    engine = make_engine(f"sqlite:///{home}/bulwark.db")
    with engine.begin() as c:
        seq, ts, prev, key_fp = c.exec_driver_sql(
            "SELECT seq, ts_ns, hash, key_fp FROM audit_log ORDER BY seq DESC LIMIT 1").one()
        payload = '{"i":999}'
        row = (seq + 1, ts + 1, "mallory", "api", "order.proposed", payload)
        digest = hashlib.sha256(prev.encode() + record_bytes(*row)).hexdigest()
        c.exec_driver_sql("INSERT INTO audit_log (seq, ts_ns, actor, source, event_type, payload, prev_hash, hash, key_fp) "
                          "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", (*row, prev, digest, key_fp if claim_key else None))
    engine.dispose()


def test_an_untouched_keyed_chain_verifies_against_its_key_and_checkpoint(desk: tuple[Path, Path]) -> None:
    home, keyring_file = desk
    proc = main_py(home, keyring_file, "audit", "verify")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "checked against key " in proc.stdout and "checked 1 checkpoints" in proc.stdout
    assert proc.stdout.strip().splitlines()[-1] == f"verified {RECORDS + 1} records"


def test_the_last_record_deleted_is_a_missing_tail(desk: tuple[Path, Path]) -> None:
    home, keyring_file = desk
    tamper(home, f"DELETE FROM audit_log WHERE seq = {RECORDS + 1}")
    proc = main_py(home, keyring_file, "audit", "verify")
    assert proc.returncode == 1
    assert f"the chain ends at record {RECORDS}, so records up to {RECORDS + 1} are missing" in proc.stdout


def test_a_table_truncated_to_half_is_caught(desk: tuple[Path, Path]) -> None:
    home, keyring_file = desk
    tamper(home, f"DELETE FROM audit_log WHERE seq > {RECORDS // 2}")
    proc = main_py(home, keyring_file, "audit", "verify")
    assert proc.returncode == 1
    assert f"the chain ends at record {RECORDS // 2}" in proc.stdout


@pytest.mark.parametrize("claim_key", [False, True], ids=["unkeyed", "claiming-the-key"])
def test_a_record_appended_with_the_chains_own_hash_function_is_caught(desk: tuple[Path, Path], claim_key: bool) -> None:
    home, keyring_file = desk
    tamper(home, then=lambda h: append_unkeyed(h, claim_key=claim_key))
    proc = main_py(home, keyring_file, "audit", "verify")
    assert proc.returncode == 1
    assert f"BROKEN at seq {RECORDS + 2}" in proc.stdout


@pytest.mark.parametrize("keep_key_column", [False, True], ids=["unkeyed", "claiming-the-key"])
def test_an_edit_with_the_rest_of_the_chain_recomputed_is_caught(desk: tuple[Path, Path], keep_key_column: bool) -> None:
    home, keyring_file = desk
    tamper(home, "UPDATE audit_log SET payload = '{\"i\":999,\"pad\":\"\"}' WHERE seq = 5",
           then=lambda h: rechain_unkeyed(h, 5, keep_key_column=keep_key_column))
    proc = main_py(home, keyring_file, "audit", "verify")
    assert proc.returncode == 1
    assert "BROKEN at seq 5" in proc.stdout


def test_a_checkpoint_edited_to_match_a_cut_chain_has_a_bad_signature(desk: tuple[Path, Path]) -> None:
    home, keyring_file = desk
    tamper(home, f"DELETE FROM audit_log WHERE seq = {RECORDS + 1}")
    engine = make_engine(f"sqlite:///{home}/bulwark.db")
    with engine.connect() as c:
        last = c.exec_driver_sql(f"SELECT hash FROM audit_log WHERE seq = {RECORDS}").scalar_one()
    engine.dispose()
    path = home / CHECKPOINT_FILE
    doc = json.loads(path.read_text())
    path.write_text(json.dumps({**doc, "seq": RECORDS, "hash": last}) + "\n")
    proc = main_py(home, keyring_file, "audit", "verify")
    assert proc.returncode == 1
    assert "bad signature" in proc.stdout


def test_checkpoints_given_on_the_command_line_are_checked_too(desk: tuple[Path, Path], tmp_path: Path) -> None:
    home, keyring_file = desk
    kept = tmp_path / "kept-elsewhere.jsonl"
    shutil.move(home / CHECKPOINT_FILE, kept)
    tamper(home, f"DELETE FROM audit_log WHERE seq > {RECORDS // 2}")
    assert main_py(home, keyring_file, "audit", "verify").returncode == 0  # nothing to compare with: undetectable
    proc = main_py(home, keyring_file, "audit", "verify", "--checkpoints", str(kept))
    assert proc.returncode == 1 and "are missing" in proc.stdout


def test_verify_on_a_machine_without_the_key_fails_closed(desk: tuple[Path, Path], tmp_path: Path) -> None:
    home, _ = desk
    proc = main_py(home, tmp_path / "other-machine.json", "audit", "verify")
    assert proc.returncode == 1
    assert "this machine's keyring" in proc.stdout and "has no such key" in proc.stdout


def test_digests_are_compared_never_overwritten(desk: tuple[Path, Path], tmp_path: Path) -> None:
    home, keyring_file = desk
    good = tmp_path / "digests.jsonl"
    assert main_py(home, keyring_file, "audit", "verify", "--write-digests", str(good)).returncode == 0
    written = good.read_bytes()
    assert main_py(home, keyring_file, "audit", "verify", "--digests", str(good)).returncode == 0
    copy = tmp_path / "copy"
    shutil.copytree(home, copy)
    (copy / CHECKPOINT_FILE).unlink()
    tamper(copy, f"DELETE FROM audit_log WHERE seq > {RECORDS // 2}")
    proc = main_py(copy, keyring_file, "audit", "verify", "--digests", str(good))
    assert proc.returncode == 1 and "records were deleted or the table truncated" in proc.stdout
    again = main_py(copy, keyring_file, "audit", "verify", "--write-digests", str(good))
    assert again.returncode == 2 and "already exists" in again.stderr
    assert good.read_bytes() == written


def test_a_missing_digests_file_is_a_one_line_error(desk: tuple[Path, Path], tmp_path: Path) -> None:
    home, keyring_file = desk
    proc = main_py(home, keyring_file, "audit", "verify", "--digests", str(tmp_path / "nowhere" / "d.jsonl"))
    assert proc.returncode == 1
    errors = [line for line in proc.stderr.splitlines() if " INFO " not in line]
    assert len(errors) == 1 and "cannot read the digests file" in errors[0], proc.stderr


def overwrite_middle(db: Path) -> None:
    """512 random bytes over the page nearest the middle of the file that only an index uses.

    The chain walk reads the table through its primary key and never this index: only an
    integrity check of the file sees the damage.
    """
    page_size, pages = _index_pages(db, "ix_audit_log_ts_ns")
    middle = os.path.getsize(db) // 2
    page = min(pages, key=lambda number: abs((number - 1) * page_size - middle))
    data = bytearray(db.read_bytes())
    offset = (page - 1) * page_size + 256
    data[offset:offset + 512] = random.Random(12).randbytes(512)
    db.write_bytes(bytes(data))


def _index_pages(db: Path, index: str) -> tuple[int, list[int]]:
    import sqlite3

    connection = sqlite3.connect(db)
    try:
        page_size = connection.execute("PRAGMA page_size").fetchone()[0]
        pages = [row[0] for row in connection.execute("SELECT pageno FROM dbstat WHERE name = ?", (index,))]
    except sqlite3.OperationalError:
        pytest.skip("this SQLite has no dbstat table to find an index page with")
    finally:
        connection.close()
    assert len(pages) > 3
    return page_size, pages


@pytest.mark.slow
def test_a_file_with_512_random_bytes_in_the_middle_fails_verify_and_backup(tmp_path: Path,
                                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    home, keyring_file = tmp_path / "home", tmp_path / "keyring.json"
    home.mkdir()
    monkeypatch.setenv("BULWARK_TEST_KEYRING_FILE", str(keyring_file))
    fill(f"sqlite:///{home}/bulwark.db", 3000, file_keys(keyring_file), payload_pad=200).engine.dispose()
    open_store(f"sqlite:///{home}/bulwark.db").dispose()
    for suffix in ("-wal", "-shm"):
        assert not (home / f"bulwark.db{suffix}").exists() or (home / f"bulwark.db{suffix}").stat().st_size == 0
    overwrite_middle(home / "bulwark.db")
    proc = main_py(home, keyring_file, "audit", "verify")
    assert proc.returncode == 1, proc.stdout
    assert "quick_check" in proc.stdout and "BROKEN at seq" not in proc.stdout
    backup = main_py(home, keyring_file, "backup", "create")
    assert backup.returncode == 1, backup.stdout + backup.stderr
    assert "chain verified" not in backup.stdout and "quick_check" in backup.stdout
