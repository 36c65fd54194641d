"""A desk killed mid-flow starts HALTED next time, saying why and what reconciliation found; an operator
re-arms it, and a desk that stopped cleanly starts in its stored state. Real `main.py` processes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.support.desk_process import (
    audit_records,
    desk,
    run_main,
    states,
    stored_working,
)

pytestmark = pytest.mark.slow


def simulate(home: Path) -> dict[str, object]:
    proc = run_main(home, "simulate", "--seconds", "1", "--json")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    report = json.loads(proc.stdout)
    assert isinstance(report, dict)
    return report


def payload(record: dict[str, object]) -> dict[str, object]:
    found = record["payload"]
    document = json.loads(found) if isinstance(found, str) else found
    assert isinstance(document, dict)
    return document


def test_a_desk_killed_mid_flow_restarts_halted_and_an_operator_rearms_it(tmp_path: Path) -> None:
    """Found: after a disk-full halt the restart came up ACTIVE with 4 phantom working orders."""
    home = tmp_path / "home"
    with desk(home, "--orders-per-sec", "8") as running:
        running.wait_until(lambda: bool(stored_working(home)), "orders working in the store")
        running.kill()
    left = stored_working(home)
    assert left

    report = simulate(home)
    assert report["trading_state"] == "HALTED"
    state, reason, actor = states(home)[-1]
    assert state == "HALTED" and actor == "system"
    assert reason.startswith("the last run ended without a clean stop (the run started ")
    assert "recorded no stop: it was killed, crashed or its store failed); reconciliation at start: " in reason
    # The paper market died with the killed desk: its orders can never fill, and none is left working.
    assert f"{len(left)} orders not at the broker closed as EXPIRED" in reason
    assert stored_working(home) == []
    [reconciled] = [payload(r) for r in audit_records(home, "reconciled") if payload(r).get("unclean_end")]
    closed = reconciled["closed"]
    assert isinstance(closed, dict) and set(closed) == {o.client_order_id for o in left}
    assert any(payload(r)["component"] == "restart" and payload(r)["message"] == reason
               for r in audit_records(home, "alert.raised"))

    # That run stopped cleanly, HALTED: the re-arm with no desk running works as after any halt.
    rearm = run_main(home, "rearm", "--reason", "orders checked at the broker")
    assert rearm.returncode == 0, rearm.stdout + rearm.stderr
    assert simulate(home)["trading_state"] == "ACTIVE"
    # A clean stop restarts in its stored state.
    assert simulate(home)["trading_state"] == "ACTIVE"


def test_the_rearm_command_refuses_while_the_last_run_has_not_stopped_cleanly(tmp_path: Path) -> None:
    home = tmp_path / "home"
    with desk(home) as running:
        assert run_main(home, "panic", "--reason", "stop it").returncode == 0
        running.wait_until(lambda: bool(audit_records(home, "kill_switch.sweep_done")), "the panic's sweep to finish")
        running.kill()
    proc = run_main(home, "rearm", "--reason", "looks fine")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "the last desk run did not end with a clean stop" in proc.stderr
    assert "Start the desk, then re-arm it while it runs" in proc.stderr
