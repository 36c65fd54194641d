"""`main.py backup ...` end to end, including the refusal to restore under a running desk."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from app.cli.common import EXIT_UNVERIFIED
from app.store.backup import create_backup
from tests.support.calendar import cover_today

ROOT = Path(__file__).resolve().parents[2]


def env_for(home: Path) -> dict[str, str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("BULWARK_")}
    environ["BULWARK_HOME"] = str(cover_today(home))
    return environ


def main_py(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(ROOT / "main.py"), *args], capture_output=True, text=True,
                          env=env_for(home), timeout=120, check=False)


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_create_list_verify_restore(tmp_path: Path) -> None:
    assert main_py(tmp_path, "backup", "create").returncode == 1  # nothing recorded yet
    assert main_py(tmp_path, "simulate", "--seconds", "1").returncode == 0
    created = main_py(tmp_path, "backup", "create")
    assert created.returncode == 0, created.stderr
    (backup,) = sorted((tmp_path / "backups").glob("*.db.gz"))
    listed = main_py(tmp_path, "backup", "list")
    assert backup.name in listed.stdout and " ok" in listed.stdout
    assert main_py(tmp_path, "backup", "verify", str(backup)).returncode == 0
    assert main_py(tmp_path, "simulate", "--seconds", "1").returncode == 0
    restored = main_py(tmp_path, "backup", "restore", str(backup))
    assert restored.returncode == 0, restored.stderr
    (safety,) = tmp_path.glob("bulwark.db.pre-restore-*")
    # The checkpoints of the replaced chain (its two stops after the backup) go aside with it: the
    # restored chain is shorter than they are by design, and is verified on its own.
    (aside,) = tmp_path.glob("audit-checkpoints.jsonl.pre-restore-*")
    assert str(aside) in restored.stdout and not (tmp_path / "audit-checkpoints.jsonl").exists()
    verify = main_py(tmp_path, "audit", "verify")
    assert verify.returncode == 0 and verify.stdout.strip().endswith("records"), verify.stdout
    against_old = main_py(tmp_path, "audit", "verify", "--checkpoints", str(aside))
    assert against_old.returncode == 1 and "BROKEN" in against_old.stdout
    shutil.copyfile(safety, tmp_path / "replaced.db")
    replaced = subprocess.run(
        [sys.executable, str(ROOT / "main.py"), "audit", "verify", "--checkpoints", str(aside)], capture_output=True,
        text=True, env={**env_for(tmp_path), "BULWARK_DB_URL": f"sqlite:///{tmp_path / 'replaced.db'}"}, timeout=120, check=False,
    )
    assert replaced.returncode == 0, replaced.stdout + replaced.stderr
    events = main_py(tmp_path, "audit", "export").stdout
    assert '"backup.restored"' in events


def test_verify_rejects_a_damaged_backup(tmp_path: Path) -> None:
    assert main_py(tmp_path, "simulate", "--seconds", "1").returncode == 0
    assert main_py(tmp_path, "backup", "create").returncode == 0
    (backup,) = sorted((tmp_path / "backups").glob("*.db.gz"))
    data = bytearray(backup.read_bytes())
    data[len(data) // 2] ^= 0xFF
    backup.write_bytes(bytes(data))
    proc = main_py(tmp_path, "backup", "verify", str(backup))
    assert proc.returncode == 1 and "PROBLEM" in proc.stdout
    before = digest(tmp_path / "bulwark.db")
    assert main_py(tmp_path, "backup", "restore", str(backup)).returncode == 1
    assert digest(tmp_path / "bulwark.db") == before


def test_restore_refused_while_a_desk_runs(tmp_path: Path) -> None:
    assert main_py(tmp_path, "simulate", "--seconds", "1").returncode == 0
    assert main_py(tmp_path, "backup", "create").returncode == 0
    (backup,) = sorted((tmp_path / "backups").glob("*.db.gz"))
    # A run far longer than the test: the desk is killed below, so the restore can never race its end.
    desk = subprocess.Popen([sys.executable, str(ROOT / "main.py"), "simulate", "--seconds", "3600"],
                            env=env_for(tmp_path), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        lock = tmp_path / "bulwark.db.desk-lock"
        # the lock file outlives a desk; it is this desk's once it holds this desk's pid (the
        # deadline only turns a desk that never starts into a failure instead of a hung run)
        deadline = time.monotonic() + 120
        while not (lock.exists() and lock.read_text().strip() == str(desk.pid)):
            assert desk.poll() is None, f"the desk exited with {desk.returncode} before taking the lock"
            assert time.monotonic() < deadline, "the desk never took the lock"
            time.sleep(0.05)
        proc = main_py(tmp_path, "backup", "restore", str(backup))
        assert proc.returncode == 1
        assert "desk is running" in proc.stderr
        assert not list(tmp_path.glob("bulwark.db.pre-restore-*"))
    finally:
        desk.kill()
        desk.wait(10)
    # the desk is gone (killed): its lock went with it, and the restore now goes through
    assert main_py(tmp_path, "backup", "restore", str(backup)).returncode == 0


@pytest.mark.skipif(shutil.which("pg_dump") is None, reason="PostgreSQL client tools missing")
@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_verifying_a_dump_without_a_scratch_server_says_only_the_checksum_was_checked(
    db_url: str, pg_base_url: str | None, tmp_path: Path
) -> None:
    from tests.store.test_backup import NOW, _append

    _append(db_url, 5)
    info = create_backup(db_url, tmp_path / "backups", now=NOW)
    assert info.ok and info.records == 5

    unchecked = main_py(tmp_path, "backup", "verify", str(info.path))
    assert unchecked.returncode == EXIT_UNVERIFIED, unchecked.stdout + unchecked.stderr
    assert "NOT VERIFIED" in unchecked.stderr and "BULWARK_VERIFY_PG_URL" in unchecked.stderr
    assert "None" not in unchecked.stdout + unchecked.stderr

    assert pg_base_url is not None
    checked = subprocess.run(
        [sys.executable, str(ROOT / "main.py"), "backup", "verify", str(info.path)], capture_output=True, text=True,
        env={**env_for(tmp_path), "BULWARK_VERIFY_PG_URL": pg_base_url}, timeout=120, check=False,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "5 audit records intact" in checked.stdout

    dump = info.path.read_bytes()
    info.path.write_bytes(dump[:-1] + bytes([dump[-1] ^ 0xFF]))
    damaged = main_py(tmp_path, "backup", "verify", str(info.path))
    assert damaged.returncode == 1 and "checksum mismatch" in damaged.stdout
