"""Several desks, each a `main.py simulate` process with its own data folder, on one PostgreSQL database: they
start together, trade side by side on their own rows, and halt together when the firm halts."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
from sqlalchemy import Engine, select, text

from app.brokers.base import BREEZE_RATE_LIMITS
from app.store.db import make_engine
from app.store.desk_identity import read_identity, registered_desks
from app.store.firm_flag import firm_in_force, firm_view
from app.store.models import TradingStateRow
from tests.support.broker_budget import budget_violations, read_call_logs
from tests.support.desk_process import ROOT, RunningDesk, desk, main_env, run_main

pytestmark = pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)

# The bound is 500 ms; a loaded 2-core CI machine running two desks gets twice that.
HALT_WITHIN_NS = 1_000_000_000


def start(home: Path, db_url: str, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    home.mkdir(parents=True, exist_ok=True)
    return subprocess.Popen([sys.executable, str(ROOT / "main.py"), "simulate", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=main_env(home, {"BULWARK_DB_URL": db_url, **(env or {})}))


def finish(processes: dict[Path, subprocess.Popen[str]], timeout: float) -> dict[Path, tuple[str, str]]:
    outputs = {}
    for home, process in processes.items():
        out, err = process.communicate(timeout=timeout)
        assert process.returncode == 0, f"{home.name} exited {process.returncode}: {err[-3000:]}"
        outputs[home] = (out, err)
    return outputs


@pytest.mark.slow
def test_five_desks_starting_at_once_on_an_empty_database_all_start(db_url: str, tmp_path: Path) -> None:
    homes = [tmp_path / f"desk{i}" for i in range(5)]
    processes = {home: start(home, db_url, "--seconds", "1") for home in homes}
    finish(processes, timeout=240)
    engine = make_engine(db_url)
    try:
        with engine.connect() as connection:
            desks = connection.execute(text("SELECT desk_id FROM desks")).scalars().all()
            starts = connection.execute(text("SELECT count(*) FROM audit_log WHERE event_type = 'app.start'")).scalar_one()
    finally:
        engine.dispose()
    identities = {read_identity(home) for home in homes}
    assert sorted(desks) == sorted(identity.desk_id for identity in identities if identity is not None)
    assert len(desks) == 5 and starts == 5
    verified = run_main(homes[0], "audit", "verify", env={"BULWARK_DB_URL": db_url})
    assert verified.returncode == 0, verified.stdout + verified.stderr


@pytest.mark.slow
@pytest.mark.parametrize("count", [2, 4])
def test_desks_trading_side_by_side_keep_to_their_own_rows_and_the_accounts_limits(
    db_url: str, tmp_path: Path, count: int
) -> None:
    # One simulated broker account for every desk, each asking for more than its share of it. The same seed
    # everywhere: every paper market numbers its orders and fills alike, the worst case for ids.
    shared = {"BULWARK_PAPER__ACCOUNT": "pool", "BULWARK_FIRM__DESKS_PER_ACCOUNT": str(count),
              "BULWARK_PAPER__CALL_LOG": "true"}
    desks = [tmp_path / f"desk{i}" for i in range(count)]
    runs = finish({home: start(home, db_url, "--seconds", "30", "--json", "--seed", "7", "--orders-per-sec", "4", env=shared)
                   for home in desks}, timeout=300)
    reports = {home: json.loads(out) for home, (out, _) in runs.items()}
    # Which desk left ACTIVE, and what its log said of halts and critical alerts.
    not_active = {home.name: (report["trading_state"], [line for line in runs[home][1].splitlines()
                                                        if "halt" in line.lower() or "CRITICAL" in line][-6:])
                  for home, report in reports.items() if report["trading_state"] != "ACTIVE"}
    assert not not_active, not_active
    # The governors held each desk to its share: every one of them was refused some orders for rate.
    assert all(report["governor"]["throttled"] > 0 for report in reports.values())
    # Each desk again: it resumes its own unsettled orders, never another desk's.
    again = finish({home: start(home, db_url, "--seconds", "1", env=shared) for home in desks}, timeout=240)
    for home, (_, err) in again.items():
        resumed = [line for line in err.splitlines() if "resumed" in line and "unsettled orders" in line]
        assert resumed, err[-2000:]
        assert f"resumed {reports[home]['orders']['working']} unsettled orders" in resumed[0], resumed
        assert "error_storm" not in err

    engine = make_engine(db_url)
    try:
        with engine.connect() as connection:
            fill_rows = Counter(dict(connection.execute(text("SELECT desk_id, count(*) FROM fills GROUP BY desk_id")).all()))
            payloads = connection.execute(text("SELECT payload FROM audit_log WHERE event_type = 'fill'")).scalars().all()
            halted = connection.execute(text(
                "SELECT desk_id, state, reason, actor FROM trading_state WHERE state <> 'ACTIVE'")).all()
    finally:
        engine.dispose()
    fill_records = Counter(json.loads(payload)["desk"] for payload in payloads)
    assert fill_rows == fill_records and len(fill_rows) == count
    assert halted == []
    # What the account's exchange accepted from all of them, both runs, in every sliding second and minute.
    assert budget_violations(read_call_logs(home / "paper-calls.jsonl" for home in desks), BREEZE_RATE_LIMITS) == []


def beating(store: Engine, desk_id: str) -> bool:
    """The desk's halt watch runs: it beat after the desk registered."""
    found = {row.desk_id: row for row in registered_desks(store)}
    row = found.get(desk_id)
    return row is not None and row.seen_ns is not None and row.seen_ns > row.started_ns


def halted_rows(store: Engine, desk_id: str) -> list[tuple[int, str]]:
    """(ts_ns, reason) of the desk's HALTED rows, oldest first."""
    table = TradingStateRow.__table__
    with store.connect() as connection:
        found = connection.execute(select(table.c.ts_ns, table.c.reason)
                                   .where(table.c.desk_id == desk_id, table.c.state == "HALTED").order_by(table.c.id)).all()
    return [(row[0], row[1]) for row in found]


def identity_of(running: RunningDesk, home: Path) -> str:
    running.wait_until(lambda: read_identity(home) is not None, "the desk's id")
    found = read_identity(home)
    assert found is not None
    return found.desk_id


@pytest.mark.slow
def test_a_firm_panic_halts_every_running_desk_and_a_desk_flag_only_its_own(db_url: str, tmp_path: Path) -> None:
    env = {"BULWARK_DB_URL": db_url}
    store = make_engine(db_url)
    try:
        with desk(tmp_path / "alpha", env=env) as alpha, desk(tmp_path / "bravo", env=env) as bravo:
            alpha_id, bravo_id = identity_of(alpha, tmp_path / "alpha"), identity_of(bravo, tmp_path / "bravo")
            alpha.wait_until(lambda: beating(store, alpha_id), "alpha's halt watch")
            bravo.wait_until(lambda: beating(store, bravo_id), "bravo's halt watch")

            # A colleague halts alpha from another workstation: bravo trades on.
            one = run_main(tmp_path / "colleague", "panic", "--desk", alpha_id, "--reason", "alpha's algo", env=env)
            assert one.returncode == 0, one.stdout + one.stderr
            assert "done: the desk halted (kill switch: alpha's algo)" in one.stdout
            assert halted_rows(store, bravo_id) == []

            firm = run_main(tmp_path / "risk", "panic", "--firm", "--reason", "exchange outage", env=env)
            assert firm.returncode == 0, firm.stdout + firm.stderr
            assert "2 of 2 running desks confirmed" in firm.stdout, firm.stdout + firm.stderr
            halt = firm_in_force(store)
            assert halt is not None and halt.halted
            for desk_id in (alpha_id, bravo_id):
                ts_ns, reason = halted_rows(store, desk_id)[-1]
                assert reason == f"kill switch: firm halt {halt.id}: exchange outage"
                assert ts_ns - halt.ts_ns < HALT_WITHIN_NS, f"desk {desk_id} halted {(ts_ns - halt.ts_ns) / 1e6:.0f} ms after the flag"

            def swept() -> bool:
                return all(s.ack is not None and s.ack.swept_ns is not None for s in firm_view(store).desks)

            alpha.wait_until(swept, "both desks' sweeps to be confirmed")
            status = run_main(tmp_path / "risk", "firm", "status", env=env)
            assert status.returncode == 0, status.stderr
            lines = {line.split()[0]: line for line in status.stdout.splitlines()[2:]}
            for desk_id in (alpha_id, bravo_id):
                assert "alive" in lines[desk_id] and "HALTED" in lines[desk_id] and "halted +" in lines[desk_id]
                assert "done, 0 still working" in lines[desk_id]
    finally:
        store.dispose()
