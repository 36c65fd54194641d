"""`main.py audit verify|export` and the crash test, run as a user would: subprocesses on a real data folder."""

from __future__ import annotations

import csv
import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from app.store.db import make_engine
from tests.store.chain_fixtures import tamper
from tests.support.calendar import cover_today

ROOT = Path(__file__).resolve().parents[2]


def env_for(home: Path, **extra: str) -> dict[str, str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("BULWARK_")}
    environ.update(BULWARK_HOME=str(cover_today(home)), **extra)
    return environ


def main_py(home: Path, *args: str, **extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(ROOT / "main.py"), *args], capture_output=True, text=True,
                          env=env_for(home, **extra), timeout=120, check=False)


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data folder with a few seconds of simulated trading in its audit chain."""
    home = tmp_path_factory.mktemp("desk")
    proc = main_py(home, "simulate", "--seconds", "2", "--orders-per-sec", "6", "--json")
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["audit"]["verified"] is True and report["audit"]["records"] > 20
    return home


def copy_of(home: Path, tmp_path: Path) -> Path:
    import shutil

    target = tmp_path / "copy"
    shutil.copytree(home, target)
    return target


def test_verify_intact_chain(recorded: Path) -> None:
    proc = main_py(recorded, "audit", "verify")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert lines[-1].startswith("verified ") and lines[-1].endswith(" records")
    assert any(line.startswith("digest ") for line in lines)


@pytest.mark.parametrize(
    "statements, seq",
    [
        (["UPDATE audit_log SET actor = 'mallory' WHERE seq = 5"], 5),
        (["DELETE FROM audit_log WHERE seq = 6"], 6),
        # insertion: make room by renumbering the tail, then insert a forged record
        (["UPDATE audit_log SET seq = seq + 1000000 WHERE seq >= 8",
          "UPDATE audit_log SET seq = seq - 999999 WHERE seq >= 1000000",
          "INSERT INTO audit_log (seq, ts_ns, actor, source, event_type, payload, prev_hash, hash) SELECT 8, ts_ns, 'mallory', source, event_type, payload, hash, 'forged' FROM audit_log WHERE seq = 7"], 8),
        # reordering: swap two records' positions
        (["UPDATE audit_log SET seq = -3 WHERE seq = 3", "UPDATE audit_log SET seq = 3 WHERE seq = 4",
          "UPDATE audit_log SET seq = 4 WHERE seq = -3"], 3),
    ],
    ids=["edited", "deleted", "inserted", "reordered"],
)
def test_verify_reports_first_broken_record(recorded: Path, tmp_path: Path, statements: list[str], seq: int) -> None:
    home = copy_of(recorded, tmp_path)
    tamper(home, *statements)
    proc = main_py(home, "audit", "verify")
    assert proc.returncode == 1
    assert proc.stdout.strip().splitlines()[-1].startswith(f"BROKEN at seq {seq}:")


def test_verify_flags_dropped_triggers(recorded: Path, tmp_path: Path) -> None:
    home = copy_of(recorded, tmp_path)
    engine = make_engine(f"sqlite:///{home}/bulwark.db")
    with engine.begin() as c:
        c.exec_driver_sql("DROP TRIGGER audit_log_no_delete")
    engine.dispose()
    proc = main_py(home, "audit", "verify")
    assert proc.returncode == 1
    assert "audit_log_no_delete" in proc.stdout


def test_verify_without_database_is_a_clear_error(tmp_path: Path) -> None:
    proc = main_py(tmp_path, "audit", "verify")
    assert proc.returncode == 1 and "no database" in proc.stderr
    assert not (tmp_path / "bulwark.db").exists()


def test_export_csv_and_jsonl_match_the_chain(recorded: Path, tmp_path: Path) -> None:
    jsonl = main_py(recorded, "audit", "export", "--format", "jsonl")
    assert jsonl.returncode == 0, jsonl.stderr
    records = [json.loads(line) for line in jsonl.stdout.splitlines()]
    assert [r["seq"] for r in records] == list(range(1, len(records) + 1))
    assert records[0]["event_type"] == "app.start" and isinstance(records[0]["payload"], dict)
    out = tmp_path / "audit.csv"
    proc = main_py(recorded, "audit", "export", "--format", "csv", "--out", str(out))
    assert proc.returncode == 0
    rows = list(csv.DictReader(io.StringIO(out.read_text())))
    assert len(rows) == len(records)
    assert [r["hash"] for r in rows] == [r["hash"] for r in records]
    today = records[0]["ts_ist"][:10]
    same_day = main_py(recorded, "audit", "export", "--since", today, "--until", today)
    assert len(same_day.stdout.splitlines()) == len(records)
    before = main_py(recorded, "audit", "export", "--until", "2000-01-01")
    assert before.returncode == 0 and before.stdout == ""


@pytest.mark.parametrize("args", [["--since", "yesterday"], ["--since", "2026-11-25", "--until", "2026-11-01"], ["--format", "xml"]])
def test_export_bad_arguments(recorded: Path, args: list[str]) -> None:
    proc = main_py(recorded, "audit", "export", *args)
    assert proc.returncode == 2 and proc.stderr


def test_sigkill_mid_flow_loses_no_audited_intent(tmp_path: Path) -> None:
    home = tmp_path / "desk"
    home.mkdir()
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "main.py"), "simulate", "--seconds", "60", "--orders-per-sec", "8", "--json"],
        env=env_for(home, BULWARK_PAPER__JOURNAL="true", BULWARK_PAPER__LATENCY_MS="5"),
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    journal = home / "paper-journal.jsonl"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and (not journal.exists() or len(journal.read_text().splitlines()) < 12):
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    received = [json.loads(line)["client_order_id"] for line in journal.read_text().splitlines() if line.strip()]
    assert len(received) >= 12

    verify = main_py(home, "audit", "verify")
    assert verify.returncode == 0, verify.stdout
    export = main_py(home, "audit", "export")
    sent = {json.loads(line)["payload"]["client_order_id"] for line in export.stdout.splitlines()
            if json.loads(line)["event_type"] == "order.sent"}
    missing = [cid for cid in received if cid not in sent]
    assert missing == [], f"the broker received orders the chain does not hold: {missing}"

    # the desk starts again on the same folder, and the chain still verifies after it
    again = main_py(home, "simulate", "--seconds", "1", "--json")
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["audit"]["verified"] is True
