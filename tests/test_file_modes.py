"""The desk's files are its user's only: created 0600 in a 0700 folder, and tightened at start when an
older Bulwark, a copy or a restore left them readable by other local users."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from app.file_modes import tighten
from tests.support.desk_process import ROOT, main_env

pytestmark = pytest.mark.skipif(os.name != "posix", reason="POSIX modes; on Windows the profile's ACLs apply")


def mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


def loose_folder(home: Path) -> dict[str, int]:
    """A data folder as an older Bulwark left it under umask 022."""
    (home / "logs").mkdir(parents=True)
    files = {"bulwark.db": b"SQLite format 3\x00", "limits.toml": b"", "logs/bulwark.log": b"x\n",
             "logs/bulwark.log.1": b"y\n"}
    for name, data in files.items():
        (home / name).write_bytes(data)
        (home / name).chmod(0o644)
    (home / "logs").chmod(0o755)
    home.chmod(0o755)
    return {name: 0o600 for name in files} | {"logs": 0o700}


def test_tighten_takes_group_and_other_off_everything_and_follows_no_link(tmp_path: Path) -> None:
    home = tmp_path / "home"
    expected = loose_folder(home)
    (home / "script.sh").write_text("")
    (home / "script.sh").chmod(0o754)
    outside = tmp_path / "shared.txt"
    outside.write_text("")
    outside.chmod(0o644)
    (home / "link").symlink_to(outside)

    changed = tighten(home)

    assert mode(home) == 0o700
    for name, wanted in expected.items():
        assert mode(home / name) == wanted, name
    assert mode(home / "script.sh") == 0o700
    assert mode(outside) == 0o644  # the link's target is not the desk's
    assert {change.path for change in changed} == {home, home / "script.sh", *(home / name for name in expected)}
    assert all(change.error is None for change in changed)
    assert tighten(home) == []


def run(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = main_env(home)  # may write the test calendar override (calendar.toml) into home
    return subprocess.run([sys.executable, str(ROOT / "main.py"), *args], capture_output=True, text=True, env=env,
                          timeout=120, check=False)


def test_a_start_tightens_what_it_finds_and_says_so_in_one_line(tmp_path: Path) -> None:
    home = tmp_path / "home"
    expected = loose_folder(home)
    proc = run(home, "backup", "list")
    assert "Traceback" not in proc.stderr
    said = [line for line in proc.stderr.splitlines() if "made owner-only" in line]
    assert len(said) == 1, proc.stderr
    assert f"{home} (0755->0700)" in said[0] and "bulwark.db (0644->0600)" in said[0] and "limits.toml (0644->0600)" in said[0]
    for name, wanted in expected.items():
        assert mode(home / name) == wanted, name
    again = run(home, "backup", "list")
    assert "made owner-only" not in again.stderr


def test_everything_a_desk_process_creates_is_its_users_only(tmp_path: Path) -> None:
    home = tmp_path / "home"
    main_env(home)
    before = set(home.rglob("*"))
    # With no desk running, panic (which tightens nothing: it runs on read-only folders too) creates
    # the log and a store holding the HALTED flag.
    proc = run(home, "panic", "--reason", "modes")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    created = set(home.rglob("*")) - before
    assert {home / "bulwark.db", home / "logs", home / "logs" / "bulwark.log"} <= created
    assert {str(path): oct(mode(path)) for path in created if mode(path) & 0o077} == {}
