"""`main.py panic` against a running desk (`simulate` in another process): the desk confirms HALTED
and its kill switch sweeps the working orders; the next start is halted whatever happened."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _env(home: Path) -> dict[str, str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("BULWARK_")}
    environ["BULWARK_HOME"] = str(home)
    return environ


def test_panic_halts_a_running_desk_through_the_control_channel(tmp_path: Path) -> None:
    desk = subprocess.Popen(
        [sys.executable, str(ROOT / "main.py"), "simulate", "--seconds", "8", "--json", "--orders-per-sec", "6"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env(tmp_path), cwd=tmp_path,
    )
    try:
        deadline = time.monotonic() + 30
        while not (tmp_path / "control.json").exists():
            assert desk.poll() is None, desk.stderr.read() if desk.stderr else ""
            assert time.monotonic() < deadline, "the desk never opened its control channel"
            time.sleep(0.1)
        time.sleep(2)
        started = time.monotonic()
        panic = subprocess.run(
            [sys.executable, str(ROOT / "main.py"), "panic", "--reason", "fat finger on the strategy"],
            capture_output=True, text=True, env=_env(tmp_path), cwd=tmp_path, timeout=60,
        )
        elapsed = time.monotonic() - started
        assert panic.returncode == 0, panic.stdout + panic.stderr
        assert "HALTED" in panic.stdout
        assert elapsed < 15
        out, err = desk.communicate(timeout=60)
    finally:
        if desk.poll() is None:
            desk.kill()
    assert desk.returncode == 0, err
    report = json.loads(out)
    assert report["trading_state"] == "HALTED"
    assert report["kill_switch"]["reason"] == "fat finger on the strategy"
    assert report["kill_switch"]["working_after"] == 0
    assert report["audit"]["verified"] is True
    assert not (tmp_path / "control.json").exists()
