"""Several desks, each a `main.py simulate` process with its own data folder, on one PostgreSQL database."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
from sqlalchemy import text

from app.store.db import make_engine
from app.store.desk_identity import read_identity
from tests.support.desk_process import ROOT, main_env, run_main

pytestmark = pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)


def start(home: Path, db_url: str, *args: str) -> subprocess.Popen[str]:
    home.mkdir(parents=True, exist_ok=True)
    return subprocess.Popen([sys.executable, str(ROOT / "main.py"), "simulate", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=main_env(home, {"BULWARK_DB_URL": db_url}))


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
def test_desks_trading_side_by_side_keep_to_their_own_rows(db_url: str, tmp_path: Path, count: int) -> None:
    # The same seed everywhere: every paper market numbers its orders and fills alike, the worst case for ids.
    desks = [tmp_path / f"desk{i}" for i in range(count)]
    runs = finish({home: start(home, db_url, "--seconds", "30", "--json", "--seed", "7") for home in desks}, timeout=300)
    working_at_stop = {home: json.loads(out)["orders"]["working"] for home, (out, _) in runs.items()}
    assert all(report_state == "ACTIVE" for report_state in (json.loads(out)["trading_state"] for out, _ in runs.values()))

    # Each desk again: it resumes its own unsettled orders, never another desk's.
    again = finish({home: start(home, db_url, "--seconds", "1") for home in desks}, timeout=240)
    for home, (_, err) in again.items():
        resumed = [line for line in err.splitlines() if "resumed" in line and "unsettled orders" in line]
        assert resumed, err[-2000:]
        assert f"resumed {working_at_stop[home]} unsettled orders" in resumed[0], (working_at_stop, resumed)
        assert "error_storm" not in err

    engine = make_engine(db_url)
    try:
        with engine.connect() as connection:
            fill_rows = Counter(dict(connection.execute(text("SELECT desk_id, count(*) FROM fills GROUP BY desk_id")).all()))
            payloads = connection.execute(text("SELECT payload FROM audit_log WHERE event_type = 'fill'")).scalars().all()
            halted = connection.execute(text("SELECT count(*) FROM trading_state WHERE state <> 'ACTIVE'")).scalar_one()
    finally:
        engine.dispose()
    fill_records = Counter(json.loads(payload)["desk"] for payload in payloads)
    assert fill_rows == fill_records and sum(fill_rows.values()) > 0
    assert len(fill_rows) == count
    assert halted == 0
