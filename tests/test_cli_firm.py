"""`main.py panic --firm`, `panic --desk ID`, `firm status` and `firm rearm` on a real store (both backends),
run in process through ``app.cli.main``; the desks are registered rows, so no desk confirms here (see
tests/test_firm_desks.py for running desks)."""

from __future__ import annotations

import io
import json
import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine

from app.cli import main
from app.cli.firm import EXIT_NOT_WRITTEN
from app.logs import unconfigure_logging
from app.store.db import make_engine
from app.store.desk_identity import (
    DeskIdentity,
    mark_stopped,
    register,
    registered_desks,
)
from app.store.export import rows
from app.store.firm_flag import firm_in_force
from app.store.migrate import open_store
from tests.support.calendar import cover_today
from tests.support.desk_process import run_main, url_of

ALPHA, BRAVO = DeskIdentity("AAAAAA", "alpha"), DeskIdentity("BBBBBB", "bravo")
ADMIN, ADMIN_PW = "asha", "admin pass phrase 1"
TRADER, TRADER_PW = "tom", "trader pass phrase 2"
RISK, RISK_PW = "rita", "risk pass phrase 3"


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    for name in [k for k in os.environ if k.startswith("BULWARK_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("BULWARK_HOME", str(cover_today(tmp_path / "workstation")))
    yield tmp_path / "workstation"
    unconfigure_logging()


@pytest.fixture
def firm(home: Path, db_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Engine]:
    """Two desks registered on the database: alpha running (its heartbeat fresh), bravo stopped cleanly."""
    monkeypatch.setenv("BULWARK_DB_URL", db_url)
    store = open_store(db_url)
    register(store, ALPHA)
    register(store, BRAVO)
    with store.begin() as connection:
        mark_stopped(connection, BRAVO.desk_id)
    yield store
    store.dispose()


def cli(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *args: str,
        stdin: str = "") -> tuple[int, str, str]:
    monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def firm_records(store: Engine) -> list[tuple[str, str, dict[str, object]]]:
    return [(str(r["event_type"]), str(r["actor"]), json.loads(str(r["payload"])) if isinstance(r["payload"], str)
             else r["payload"]) for r in rows(store) if str(r["event_type"]).startswith("firm.")]


def desk_states(store: Engine, desk_id: str) -> list[str]:
    with store.connect() as connection:
        found = connection.exec_driver_sql(f"SELECT state FROM trading_state WHERE desk_id = '{desk_id}' ORDER BY id").all()
    return [row[0] for row in found]


def test_a_firm_halt_is_written_shown_and_lifted(firm: Engine, monkeypatch: pytest.MonkeyPatch,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = cli(monkeypatch, capsys, "panic", "--firm", "--reason", "exchange outage", "--timeout", "0.2")
    assert code == 0, out + err
    halt = firm_in_force(firm)
    assert halt is not None and halt.halted and halt.reason == "exchange outage" and halt.actor.startswith("panic:")
    assert f"written: firm halt {halt.id}" in out
    assert "0 of 1 running desks confirmed" in out
    # Alpha's heartbeat says it runs, but nothing answers for it here: the operator hears of it.
    assert "not confirmed: alpha (AAAAAA)" in err and "bravo" not in err
    code, out, _ = cli(monkeypatch, capsys, "firm", "status")
    assert code == 0
    head, titles, alpha, bravo = out.splitlines()
    assert head.startswith("firm: HALTED since ") and f"(firm state {halt.id}): exchange outage" in head
    assert titles.split() == ["DESK", "NAME", "HOST", "LIVENESS", "TRADING", "FIRM", "HALT", "SWEEP", "WORKING"]
    assert alpha.startswith("AAAAAA") and "alive" in alpha and "NOT CONFIRMED" in alpha
    assert bravo.split()[0] == "BBBBBB" and "stopped" in bravo
    # A desk is not re-armed on its own while the firm is halted, with no desk running either.
    code, _, err = cli(monkeypatch, capsys, "rearm", "--reason", "mine is fine", "--timeout", "0.2")
    assert code == 1 and f"rearm refused: the firm is halted (firm halt {halt.id} by " in err
    code, out, err = cli(monkeypatch, capsys, "firm", "rearm", "--reason", "exchange back")
    assert code == 0, out + err
    assert f"done: firm halt {halt.id} lifted" in out and "every desk stays HALTED until it is re-armed on its own" in out
    lifted = firm_in_force(firm)
    assert lifted is not None and not lifted.halted
    code, _, err = cli(monkeypatch, capsys, "firm", "rearm", "--reason", "again")
    assert code == 1 and "firm rearm refused: the firm is not halted" in err
    assert [(kind, payload.get("refused")) for kind, _, payload in firm_records(firm)] == [
        ("firm.halted", None), ("firm.rearmed", None), ("firm.rearmed", "the firm is not halted")]
    code, out, _ = cli(monkeypatch, capsys, "firm", "status")
    assert code == 0 and out.startswith("firm: ACTIVE since ")


def test_panic_for_one_desk_writes_only_that_desks_flag(firm: Engine, monkeypatch: pytest.MonkeyPatch,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = cli(monkeypatch, capsys, "panic", "--desk", "ZZZZZZ", "--reason", "who?")
    assert code == 1 and "no desk ZZZZZZ is registered on this database" in err
    code, out, err = cli(monkeypatch, capsys, "panic", "--desk", "bbbbbb", "--reason", "colleague's algo")
    assert code == 0, out + err
    assert "written: the HALTED flag of bravo (BBBBBB)" in out and "that desk is not running" in out
    assert desk_states(firm, BRAVO.desk_id) == ["HALTED"] and desk_states(firm, ALPHA.desk_id) == []
    # Alpha runs by its heartbeat, yet no desk acts on its flag here: the operator must act.
    code, out, err = cli(monkeypatch, capsys, "panic", "--desk", ALPHA.desk_id, "--reason", "x", "--timeout", "0.1")
    assert code == 1 and "ACTION NEEDED: alpha (AAAAAA)" in err and "is running and did not record a halt" in err
    assert desk_states(firm, ALPHA.desk_id) == ["HALTED"]
    assert firm_in_force(firm) is None


@pytest.mark.parametrize(
    "args, message",
    [
        (["firm", "rearm"], "the following arguments are required: --reason"),
        (["firm", "rearm", "--reason", "  "], "the reason must not be empty"),
        (["panic", "--firm", "--reason", ""], "the reason must not be empty"),
        (["panic", "--firm", "--desk", "AAAAAA"], "not allowed with argument"),
        (["firm"], "the following arguments are required: ACTION"),
    ],
)
def test_bad_input_is_one_line_and_changes_nothing(home: Path, monkeypatch: pytest.MonkeyPatch,
                                                   capsys: pytest.CaptureFixture[str], args: list[str], message: str) -> None:
    with pytest.raises(SystemExit) as exited:
        cli(monkeypatch, capsys, *args)
    assert exited.value.code == 2
    assert message in capsys.readouterr().err
    assert not (home / "bulwark.db").exists()


@pytest.mark.parametrize("args", [["firm", "status"], ["firm", "rearm", "--reason", "r"], ["panic", "--firm"],
                                  ["panic", "--desk", "AAAAAA"]])
def test_without_a_database_nothing_is_created(home: Path, monkeypatch: pytest.MonkeyPatch,
                                               capsys: pytest.CaptureFixture[str], args: list[str]) -> None:
    code, _, err = cli(monkeypatch, capsys, *args)
    said = [line for line in err.splitlines() if not re.match(r"\d{4}-\d\d-\d\dT", line)]  # the console log's lines aside
    assert code == 1 and len(said) == 1 and "no database at" in said[0]
    assert not (home / "bulwark.db").exists()


def test_a_store_that_cannot_be_reached_is_not_written_and_says_so(home: Path, monkeypatch: pytest.MonkeyPatch,
                                                                    capsys: pytest.CaptureFixture[str]) -> None:
    # Nothing listens on port 1: the connection is refused at once.
    monkeypatch.setenv("BULWARK_DB_URL", "postgresql+psycopg://bulwark@127.0.0.1:1/firm")
    code, _, err = cli(monkeypatch, capsys, "panic", "--firm", "--reason", "outage")
    assert code == EXIT_NOT_WRITTEN and "the firm flag was NOT written" in err


def test_once_operators_exist_a_firm_halt_needs_a_risk_officer_and_a_rearm_the_rearm_permission(
    firm: Engine, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    assert cli(monkeypatch, capsys, "operator", "add", ADMIN, "--role", "admin", "--password-stdin", stdin=f"{ADMIN_PW}\n")[0] == 0
    for name, role, password in ((TRADER, "trader", TRADER_PW), (RISK, "risk_officer", RISK_PW)):
        code, out, err = cli(monkeypatch, capsys, "operator", "add", name, "--role", role, "--as", ADMIN, "--password-stdin",
                             stdin=f"{ADMIN_PW}\n{password}\n")
        assert code == 0, out + err
    code, _, err = cli(monkeypatch, capsys, "panic", "--firm", "--reason", "r")
    assert code == 1 and "panic --firm refused: this desk has operators: name one with --operator NAME" in err
    code, _, err = cli(monkeypatch, capsys, "panic", "--firm", "--reason", "r", "--operator", TRADER, "--password-stdin",
                       stdin=f"{TRADER_PW}\n")
    assert code == 1 and "tom (trader) does not have the firm_halt permission" in err
    assert firm_in_force(firm) is None
    code, out, err = cli(monkeypatch, capsys, "panic", "--firm", "--reason", "r", "--operator", RISK, "--password-stdin",
                         "--timeout", "0.1", stdin=f"{RISK_PW}\n")
    assert code == 0, out + err
    halt = firm_in_force(firm)
    assert halt is not None and halt.halted and halt.actor == RISK
    code, _, err = cli(monkeypatch, capsys, "firm", "rearm", "--reason", "ok", "--operator", TRADER, "--password-stdin",
                       stdin=f"{TRADER_PW}\n")
    assert code == 1 and "tom (trader) does not have the rearm permission" in err
    code, out, err = cli(monkeypatch, capsys, "firm", "rearm", "--reason", "ok", "--operator", RISK, "--password-stdin",
                         stdin=f"{RISK_PW}\n")
    assert code == 0, out + err
    assert [(kind, actor, payload.get("refused")) for kind, actor, payload in firm_records(firm)] == [
        ("firm.halted", TRADER, "no firm_halt permission"), ("firm.halted", RISK, None),
        ("firm.rearmed", TRADER, "no rearm permission"), ("firm.rearmed", RISK, None)]


def test_a_desk_that_stopped_cleanly_is_shown_stopped(tmp_path: Path) -> None:
    home = tmp_path / "desk"
    ran = run_main(home, "simulate", "--seconds", "1", "--json")
    assert ran.returncode == 0, ran.stderr
    store = make_engine(url_of(home))
    try:
        (row,) = registered_desks(store)
    finally:
        store.dispose()
    assert (row.seen_ns, row.pid) == (None, None)
    status = run_main(home, "firm", "status")
    assert status.returncode == 0 and status.stdout.splitlines()[0] == "firm: ACTIVE (never halted)"
    assert status.stdout.splitlines()[2].split()[:4] == [row.desk_id, row.name, row.host, "stopped"]
