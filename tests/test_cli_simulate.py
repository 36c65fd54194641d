"""`python main.py simulate` as a user runs it: a subprocess, a fresh data folder, one JSON object."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.calendar import cover_today

ROOT = Path(__file__).resolve().parents[1]


def run_main(home: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("BULWARK_")}
    environ["BULWARK_HOME"] = str(cover_today(home))
    environ.update(env or {})
    workdir = home.parent / f"{home.name}-cwd"
    workdir.mkdir(exist_ok=True)
    return subprocess.run(
        [sys.executable, str(ROOT / "main.py"), *args], capture_output=True, text=True, env=environ, timeout=120, cwd=workdir,
        check=False,
    )


def test_simulate_json_report(tmp_path: Path) -> None:
    proc = run_main(
        tmp_path, "simulate", "--seconds", "3", "--seed", "5", "--json", "--orders-per-sec", "8", "--instruments", "6"
    )
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    for key in ("ticks", "orders", "rejections", "fills", "positions", "exposure", "pnl", "loop_lag_ms", "trading_state"):
        assert key in report
    orders = report["orders"]
    assert set(orders) >= {"submitted", "accepted", "rejected", "filled", "cancelled", "working"}
    assert orders["submitted"] >= 15
    assert orders["accepted"] > 0 and orders["filled"] > 0
    # An accepted order needed a last price, and every market step prices all six instruments.
    # (How many steps a run of N seconds gets is the loop's timing, not the report's correctness.)
    assert report["ticks"] >= 6
    assert report["trading_state"] == "ACTIVE"
    assert report["kill_switch"] is None
    assert sum(report["rejections"].values()) == orders["rejected"]
    assert report["bad_orders_sent"] <= orders["rejected"]
    assert report["exposure"]["gross"] >= abs(report["exposure"]["net"])
    assert report["loop_lag_ms"]["p99"] >= report["loop_lag_ms"]["p50"] >= 0
    assert report["oms"]["malformed_updates"] == 0
    # the log lands in the data folder; nothing is written to the working directory
    log_file = tmp_path / "logs" / "bulwark.log"
    assert log_file.is_file() and "engine running" in log_file.read_text()
    assert list((tmp_path.parent / f"{tmp_path.name}-cwd").iterdir()) == []


def test_bad_orders_in_the_flow_are_all_rejected(tmp_path: Path) -> None:
    proc = run_main(tmp_path, "simulate", "--seconds", "4", "--seed", "11", "--json", "--orders-per-sec", "9", "--instruments", "27")
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["bad_orders_sent"] > 0
    local = {"INVALID_QUANTITY", "NOT_LOT_MULTIPLE", "PRICE_OFF_TICK", "INVALID_PRICE", "UNKNOWN_INSTRUMENT"}
    assert sum(n for r, n in report["rejections"].items() if r in local) == report["bad_orders_sent"]
    # Well-formed orders the gate must refuse are in the flow too.
    assert set(report["rejections"]) & {"ORDER_QUANTITY_LIMIT", "PRICE_COLLAR", "DUPLICATE_ORDER"}
    assert report["audit"]["verified"] is True


def test_kill_at_engages_the_kill_switch_mid_run(tmp_path: Path) -> None:
    proc = run_main(tmp_path, "simulate", "--seconds", "5", "--seed", "3", "--json", "--orders-per-sec", "6", "--kill-at", "2.5")
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    kill = report["kill_switch"]
    assert set(kill) >= {"engaged_at", "halted_in_us", "cancels", "cleared_in_ms", "working_after"}
    # Mid-run by cause, not by the clock: after the desk started and took orders (none is accepted
    # once HALTED, which simulate never lifts), and before orders it then refused (below). How
    # fast the halt is belongs to tests/bench/kill_switch.py.
    assert kill["engaged_at"] > 0 and report["orders"]["accepted"] > 0
    assert kill["halted_in_us"] > 0
    assert kill["working_after"] == 0 and report["orders"]["working"] == 0
    # Each order working at the switch is accounted for: cancelled, or filled before its cancel landed.
    assert sum(kill["outcomes"].values()) >= kill["working_at_engage"]
    assert set(kill["outcomes"]) <= {"CANCELLED", "FILLED", "ENDED"}
    assert report["trading_state"] == "HALTED"
    # Orders after the switch are refused, with their reason counted.
    assert report["rejections"].get("TRADING_HALTED", 0) > 0
    assert report["audit"]["verified"] is True


@pytest.mark.parametrize(
    "args, message",
    [
        (["--seconds", "0"], "--seconds"),
        (["--seconds", "abc"], "--seconds"),
        (["--instruments", "0"], "--instruments"),
        (["--instruments", "500"], "--instruments must be at most"),
        (["--orders-per-sec", "-3"], "--orders-per-sec"),
        (["--broker", "zerodha"], "--broker"),
        (["--kill-at", "-1"], "--kill-at"),
        (["--seconds", "2", "--kill-at", "9"], "--kill-at must be between"),
    ],
)
def test_bad_arguments_exit_2_with_a_clear_message(tmp_path: Path, args: list[str], message: str) -> None:
    proc = run_main(tmp_path, "simulate", *args)
    assert proc.returncode == 2
    assert message in proc.stderr


def test_invalid_settings_stop_the_start_naming_key_value_and_range(tmp_path: Path) -> None:
    proc = run_main(tmp_path, "simulate", "--seconds", "1", env={"BULWARK_PAPER__LATENCY_MS": "-5"})
    assert proc.returncode == 2
    assert "paper.latency_ms" in proc.stderr and "-5" in proc.stderr and ">= 0" in proc.stderr
