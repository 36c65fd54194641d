"""Desk processes on one PostgreSQL database trading through one (paper) broker account: what the broker saw
from all of them together stays inside the account's limits in every sliding window."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from app.brokers.base import BREEZE_RATE_LIMITS
from tests.support.broker_budget import (
    SECOND_NS,
    budget_violations,
    busiest,
    read_call_logs,
)
from tests.support.desk_process import ROOT, main_env

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("desks", [2, 4])
def test_desks_flooding_one_account_never_exceed_its_limits(db_url: str, tmp_path: Path, desks: int) -> None:
    if not db_url.startswith("postgresql"):
        pytest.skip("desks share an account only on a shared (PostgreSQL) database")
    env = {
        "BULWARK_DB_URL": db_url, "BULWARK_PAPER__ACCOUNT": "pool", "BULWARK_FIRM__DESKS_PER_ACCOUNT": str(desks),
        "BULWARK_PAPER__CALL_LOG": "true", "BULWARK_PAPER__LATENCY_MS": "0", "BULWARK_API__ENABLED": "false",
    }
    homes = [tmp_path / f"desk{number}" for number in range(desks)]
    processes = []
    for home in homes:
        home.mkdir()
        # Each asks for far more than the whole account allows: the governors must hold them to their shares.
        processes.append(subprocess.Popen(
            [sys.executable, str(ROOT / "main.py"), "simulate", "--seconds", "12", "--orders-per-sec", "60",
             "--instruments", "6", "--json"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=main_env(home, env),
        ))
    reports = []
    for process in processes:
        out, err = process.communicate(timeout=180)
        assert process.returncode == 0, err[-3000:]
        reports.append(json.loads(out))
    calls = read_call_logs(home / "paper-calls.jsonl" for home in homes)
    assert budget_violations(calls, BREEZE_RATE_LIMITS) == []
    # They did run together, each near its share: more actions in some second than one desk's share allows.
    assert busiest([call.ns for call in calls if call.action], SECOND_NS)[0] > BREEZE_RATE_LIMITS.order_actions_per_second // desks
    assert all(report["governor"]["throttled"] > 0 for report in reports)
