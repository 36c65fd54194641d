"""Bad settings, an unreachable or lost database, an unwritable output: `main.py` says so in one line,
exits non-zero, and prints no traceback."""

from __future__ import annotations

import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from app.store.migrate import open_store
from tests.support.desk_process import ROOT, main_env, url_of

# The console log handler's lines (app.logs.LineFormatter); what is left on stderr is the error.
LOG_LINE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}[+-]\d{2}:\d{2} (DEBUG|INFO|WARNING) ")


def run(home: Path, *args: str, env: dict[str, str] | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(ROOT / "main.py"), *args], capture_output=True, text=True,
                          env=main_env(home, env), cwd=cwd, timeout=120, check=False)


def the_error(proc: subprocess.CompletedProcess[str]) -> str:
    """The one line the command printed on stderr besides its log, after checking it is one and it failed."""
    assert proc.returncode != 0, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if not LOG_LINE.match(line)]
    assert len(lines) == 1, proc.stderr
    return lines[0]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


@pytest.mark.parametrize("command", [["backup", "list"], ["rearm", "--reason", "r"]])
def test_a_sqlite_file_in_a_missing_folder(tmp_path: Path, command: list[str]) -> None:
    proc = run(tmp_path / "home", *command, env={"BULWARK_DB_URL": "sqlite:////nonexistent/dir/x.db"})
    assert proc.returncode == 2
    assert the_error(proc) == (
        "Bulwark cannot start: invalid setting: db_url = 'sqlite:////nonexistent/dir/x.db' (from environment "
        "variable BULWARK_DB_URL): the folder /nonexistent/dir does not exist; create it or name another")


def test_a_sqlite_file_in_a_missing_folder_for_a_reader(tmp_path: Path) -> None:
    proc = run(tmp_path / "home", "audit", "verify", env={"BULWARK_DB_URL": "sqlite:////nonexistent/dir/x.db"})
    assert the_error(proc) == "no database at /nonexistent/dir/x.db: nothing has been recorded in this data folder"


def test_a_backend_the_desk_does_not_support(tmp_path: Path) -> None:
    proc = run(tmp_path / "home", "audit", "verify", env={"BULWARK_DB_URL": "mysql://desk:hunter2@db/bulwark"})
    assert proc.returncode == 2
    line = the_error(proc)
    assert "the 'mysql' database is not supported" in line and "BULWARK_DB_URL" in line
    assert "hunter2" not in proc.stderr


@pytest.mark.parametrize("action", [["verify"], ["export"]])
def test_an_unreachable_postgresql(tmp_path: Path, action: list[str]) -> None:
    url = f"postgresql+psycopg://bulwark:hunter2@127.0.0.1:{free_port()}/bulwark"
    proc = run(tmp_path / "home", "audit", *action, env={"BULWARK_DB_URL": url})
    assert proc.returncode == 1
    line = the_error(proc)
    assert line.startswith("audit: cannot read the database: connection failed") and "refused" in line, line
    assert "hunter2" not in proc.stderr


def test_export_to_a_missing_folder(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    open_store(url_of(home)).dispose()
    proc = run(home, "audit", "export", "--out", "/nonexistent/x.csv")
    assert proc.returncode == 1
    assert the_error(proc) == "audit: cannot write /nonexistent/x.csv: No such file or directory"


@pytest.mark.parametrize("command", [["audit", "verify"], ["rearm", "--reason", "r"]])
def test_an_emptied_store_is_refused_as_lost(tmp_path: Path, command: list[str]) -> None:
    home = tmp_path / "home"
    home.mkdir()
    (home / "bulwark.db").touch()
    proc = run(home, *command)
    line = the_error(proc)
    assert f"{home}/bulwark.db is empty (0 bytes)" in line and "restore a backup" in line, line
    assert (home / "bulwark.db").stat().st_size == 0


def test_a_relative_sqlite_path_is_in_the_data_folder_not_the_working_directory(tmp_path: Path) -> None:
    home, elsewhere = tmp_path / "home", tmp_path / "elsewhere"
    elsewhere.mkdir()
    # with no desk running, panic writes the HALTED flag to a new store
    proc = run(home, "panic", "--reason", "r", env={"BULWARK_DB_URL": "sqlite:///desk.db"}, cwd=elsewhere)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (home / "desk.db").is_file()
    assert list(elsewhere.iterdir()) == []


@pytest.mark.parametrize("command, consequence", [
    (["audit", "verify"], "nothing has been recorded in this data folder"),
    (["audit", "export"], "nothing has been recorded in this data folder"),
    (["limits", "history"], "no limits have been stored in this data folder"),
    (["backup", "create"], "nothing to back up"),
    (["rearm", "--reason", "r"], "no desk has run in this data folder, so nothing is halted"),
])
def test_a_command_that_needs_a_store_names_the_missing_one_and_creates_none(
    tmp_path: Path, command: list[str], consequence: str,
) -> None:
    home = tmp_path / "home"
    home.mkdir()
    proc = run(home, *command)
    assert proc.returncode == 1
    prefix = "rearm refused: " if command[0] == "rearm" else ""
    assert the_error(proc) == f"{prefix}no database at {home / 'bulwark.db'}: {consequence}"
    assert not (home / "bulwark.db").exists()
