"""`python main.py` as a trader starts it: the window on a fresh data folder, the demo inside it, one desk per folder."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import app
from tests.support.desk_process import audit_records, desk, run_main

OFFSCREEN = {"QT_QPA_PLATFORM": "offscreen"}


@pytest.mark.slow
def test_main_py_demo_opens_the_desk_on_a_fresh_folder_trades_through_the_gate_and_stops_in_order(tmp_path: Path) -> None:
    home = tmp_path / "fresh"
    proc = run_main(home, "--demo", "--quit-after", "6", "--no-global-hotkey", env=OFFSCREEN)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "desk window first painted" in proc.stderr
    start = audit_records(home, "app.start")
    assert [json.loads(str(r["payload"]))["command"] for r in start] == ["desk --demo"]
    # Which release wrote the records: a compliance officer reads it from the chain itself.
    assert json.loads(str(start[0]["payload"]))["version"] == app.__version__
    proposed = audit_records(home, "order.proposed")
    assert proposed and all(r["actor"] == "demo" for r in proposed)
    # The demo's share of bad and over-limit orders is refused by the one gate, and recorded.
    assert audit_records(home, "gate.rejected")
    stop = audit_records(home, "app.stop")
    # A timed run closes without asking and leaves working orders to the broker (here the paper market, gone with it).
    assert len(stop) == 1 and json.loads(str(stop[0]["payload"]))["working_orders"] == "leave"
    assert (home / "desk-window.ini").exists()
    verify = run_main(home, "audit", "verify")
    assert verify.returncode == 0, verify.stdout + verify.stderr


def test_a_second_desk_on_the_same_data_folder_says_one_is_running_and_exits(tmp_path: Path) -> None:
    home = tmp_path / "desk"
    with desk(home):
        proc = run_main(home, "--quit-after", "5", "--no-global-hotkey", env=OFFSCREEN)
        assert proc.returncode == 1
        assert "a desk is already running" in proc.stderr
        # It never got as far as a window or an engine.
        assert "first painted" not in proc.stderr and "engine running" not in proc.stderr
    assert len(audit_records(home, "app.start")) == 1


def test_the_demo_never_trades_a_real_broker(tmp_path: Path) -> None:
    proc = run_main(tmp_path / "real", "--demo", "--broker", "breeze", env=OFFSCREEN)
    assert proc.returncode == 2 and "--demo runs only on the paper broker" in proc.stderr
    assert "first painted" not in proc.stderr


def test_an_unusable_setting_is_refused_before_any_window(tmp_path: Path) -> None:
    proc = run_main(tmp_path / "bad", "--instruments", "0", env=OFFSCREEN)
    assert proc.returncode == 2 and "--instruments" in proc.stderr
    proc = run_main(tmp_path / "bad", "--broker", "nosuch", env=OFFSCREEN)
    assert proc.returncode == 2 and "invalid choice" in proc.stderr
    # No abbreviations of the desk's options: "--quit" is not the hidden timed-run option.
    proc = run_main(tmp_path / "bad", "--quit", "1", env=OFFSCREEN)
    assert proc.returncode == 2 and "invalid choice: '1'" in proc.stderr


def test_too_many_instruments_is_refused_with_the_reason_and_no_trading(tmp_path: Path) -> None:
    home = tmp_path / "big"
    proc = run_main(home, "--instruments", "5000", "--quit-after", "5", "--no-global-hotkey", env=OFFSCREEN)
    assert proc.returncode == 1
    assert "--instruments must be between 1 and 2000" in proc.stderr
    assert "engine running" not in proc.stderr
