"""Two desks as traders run them (`main.py simulate`, each in its own process and data folder) on one
PostgreSQL database: a per-desk flag reaches only its desk, and `panic --firm` from a third workstation
halts both, each within a second of the flag, and `firm status` shows both confirmed."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import Engine, select

from app.store.db import make_engine
from app.store.desk_identity import read_identity, registered_desks
from app.store.firm_flag import firm_in_force, firm_view
from app.store.models import TradingStateRow
from tests.support.desk_process import RunningDesk, desk, run_main

# The bound is 500 ms; a loaded 2-core CI machine running two desks gets twice that.
HALT_WITHIN_NS = 1_000_000_000


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
@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
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
