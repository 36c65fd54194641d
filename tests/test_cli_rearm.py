"""`python main.py rearm` as an operator runs it: a subprocess on a real data folder, with and without a desk."""

from __future__ import annotations

import getpass
import json
import socket
import time
from pathlib import Path

import pytest
from sqlalchemy import insert

from app.domain.audit import AuditEventType, AuditSource
from app.domain.india_time import ist_day
from app.store.audit_writer import AuditWriter
from app.store.desk_identity import read_identity
from app.store.desk_lock import DeskLock
from app.store.migrate import open_store
from app.store.models import LEGACY_DESK_ID, FillRow, OrderRow
from tests.support.desk_process import audit_records, desk, run_main, states, url_of

NS_PER_HOUR = 3_600 * 1_000_000_000


def append(home: Path, kind: AuditEventType, payload: dict[str, object], actor: str = "system") -> None:
    """An audit record as the desk writes it, through the real writer."""
    engine = open_store(url_of(home))
    writer = AuditWriter(engine)
    writer.start()
    try:
        writer.append_blocking(kind, payload, actor=actor, source=AuditSource.SYSTEM)
    finally:
        writer.close()
        engine.dispose()


def test_rearm_after_panic_then_the_next_start_is_active(tmp_path: Path) -> None:
    assert run_main(tmp_path, "panic", "--reason", "strategy misbehaving").returncode == 0
    proc = run_main(tmp_path, "rearm", "--reason", "strategy fixed and the book checked")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    user = getpass.getuser()
    assert f"RE-ARM to ACTIVE by {user}: strategy fixed and the book checked" in proc.stdout
    assert "no desk answered" in proc.stdout
    assert "checked: the store says HALTED; today's realised P&L ₹0.00, daily loss limit ₹25,000.00" in proc.stdout
    assert "done: re-armed from HALTED to ACTIVE in the store; the next start of the desk is ACTIVE" in proc.stdout
    assert states(tmp_path)[-1] == ("ACTIVE", "re-armed: strategy fixed and the book checked", user)
    [rearmed] = audit_records(tmp_path, AuditEventType.REARMED)
    assert rearmed["actor"] == user and rearmed["source"] == "operator"
    # The folder has not started a desk yet: the re-arm is of the desk that ran before desks had ids.
    assert json.loads(str(rearmed["payload"])) == {"from": "HALTED", "to": "ACTIVE", "reason": "strategy fixed and the book checked",
                                                   "via": "rearm command, no desk running", "desk": "legacy"}
    started = run_main(tmp_path, "simulate", "--seconds", "1", "--json")
    assert started.returncode == 0, started.stderr
    assert json.loads(started.stdout)["trading_state"] == "ACTIVE"
    assert "restored" not in started.stderr
    verify = run_main(tmp_path, "audit", "verify")
    assert verify.returncode == 0, verify.stdout + verify.stderr


def test_a_halted_start_says_it_restored_the_halt_and_how_to_rearm(tmp_path: Path) -> None:
    assert run_main(tmp_path, "panic", "--reason", "end of day").returncode == 0
    started = run_main(tmp_path, "simulate", "--seconds", "1", "--json")
    assert started.returncode == 0, started.stderr
    assert json.loads(started.stdout)["trading_state"] == "HALTED"
    assert "trading state ACTIVE -> HALTED by system: restored HALTED from the store: end of day" in started.stderr
    assert 'the desk starts HALTED; an operator re-arms it, giving a reason, once trading is safe again: ' \
           '.venv/bin/python main.py rearm --reason "..."' in started.stderr
    assert "resumed:" not in started.stderr


@pytest.mark.parametrize(
    "args, message",
    [
        ([], "the following arguments are required: --reason"),
        (["--reason", ""], "the reason must not be empty"),
        (["--reason", "   "], "the reason must not be empty"),
        (["--reason", "x" * 501], "at most 500"),
        (["--reason", "ok", "--to", "HALTED"], "argument --to: invalid choice: 'HALTED'"),
        (["--reason", "ok", "--timeout", "0"], "--timeout"),
    ],
)
def test_bad_arguments_exit_2_and_change_nothing(tmp_path: Path, args: list[str], message: str) -> None:
    assert run_main(tmp_path, "panic").returncode == 0
    proc = run_main(tmp_path, "rearm", *args)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert message in proc.stderr
    assert states(tmp_path)[-1][0] == "HALTED"


def test_rearm_with_no_store_in_the_data_folder_creates_none(tmp_path: Path) -> None:
    proc = run_main(tmp_path, "rearm", "--reason", "first day")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert f"rearm refused: no database at {tmp_path / 'bulwark.db'}: no desk has run in this data folder" in proc.stderr
    assert not (tmp_path / "bulwark.db").exists()


def test_rearm_on_a_desk_that_is_not_halted_says_so(tmp_path: Path) -> None:
    open_store(url_of(tmp_path)).dispose()
    proc = run_main(tmp_path, "rearm", "--reason", "just in case")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "rearm refused: the desk is not halted: the store says the next start is ACTIVE; nothing to re-arm" in proc.stderr
    assert run_main(tmp_path, "panic").returncode == 0
    assert run_main(tmp_path, "rearm", "--reason", "only reducing", "--to", "REDUCING").returncode == 0
    again = run_main(tmp_path, "rearm", "--reason", "twice", "--to", "REDUCING")
    assert again.returncode == 1
    assert "the desk is already REDUCING (re-armed: only reducing): nothing to re-arm" in again.stderr
    lifted = [r for r in audit_records(tmp_path, AuditEventType.REARMED) if "refused" not in json.loads(str(r["payload"]))]
    assert len(lifted) == 1


def add_losing_round_trip(home: Path, loss_per_share_paise: int) -> None:
    """Buy 100 RELIANCE at ₹1,000 and sell them lower, stored as the desk stores orders and fills.

    Dated an hour ahead: a fill later than today counts as today (a desk on a session clock dates
    them so), which keeps the test on one trading day whenever it runs.
    """
    engine = open_store(url_of(home))
    ts = time.time_ns() + NS_PER_HOUR
    legs = [("BUY", 100_000), ("SELL", 100_000 - loss_per_share_paise)]
    try:
        with engine.begin() as connection:
            for n, (side, price) in enumerate(legs):
                order_id = f"T-{n}"
                # The folder never started a desk: its rows are the ones from before desks had ids.
                connection.execute(insert(OrderRow).values(
                    client_order_id=order_id, desk_id=LEGACY_DESK_ID, broker_order_id=f"B-{n}", instrument_key="NSE:RELIANCE", side=side,
                    quantity=100, price=price, order_type="LIMIT", product="INTRADAY", source="TICKET", actor="tom",
                    status="FILLED", filled_quantity=100, fill_value=100 * price, created_ns=ts + n, updated_ns=ts + n,
                    trading_day=ist_day(ts).isoformat(),
                ))
                connection.execute(insert(FillRow).values(
                    desk_id=LEGACY_DESK_ID, fill_id=f"F-{n}", client_order_id=order_id, instrument_key="NSE:RELIANCE", side=side, quantity=100,
                    price=price, ts_ns=ts + n,
                ))
    finally:
        engine.dispose()


def test_rearm_to_active_is_refused_when_todays_realised_loss_is_at_the_daily_limit(tmp_path: Path) -> None:
    add_losing_round_trip(tmp_path, 30_000)  # ₹300 a share on 100 shares: ₹30,000, past the default ₹25,000
    assert run_main(tmp_path, "panic", "--reason", "daily loss").returncode == 0
    proc = run_main(tmp_path, "rearm", "--reason", "want to trade")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert ("rearm refused: today's realised loss ₹30,000.00 is at or past the daily loss limit ₹25,000.00 "
            "(/") in proc.stderr
    assert "resources/limits.toml (no version stored yet)): re-arm to REDUCING at most (--to REDUCING)" in proc.stderr
    assert states(tmp_path)[-1][0] == "HALTED"
    # The refusal is audited as the engine audits one: who tried, to what, and why not.
    [refused] = audit_records(tmp_path, AuditEventType.REARMED)
    assert refused["actor"] == getpass.getuser() and refused["source"] == "operator"
    payload = json.loads(str(refused["payload"]))
    assert payload["refused"].startswith("today's realised loss ₹30,000.00 is at or past the daily loss limit")
    assert {k: payload[k] for k in ("to", "reason", "via")} == {
        "to": "ACTIVE", "reason": "want to trade", "via": "rearm command, no desk running"}
    reducing = run_main(tmp_path, "rearm", "--reason", "close the rest out", "--to", "REDUCING")
    assert reducing.returncode == 0, reducing.stdout + reducing.stderr
    assert "today's realised P&L -₹30,000.00" in reducing.stdout
    assert states(tmp_path)[-1][0] == "REDUCING"


def test_a_loss_inside_the_limit_does_not_stop_the_rearm(tmp_path: Path) -> None:
    add_losing_round_trip(tmp_path, 20_000)
    assert run_main(tmp_path, "panic").returncode == 0
    proc = run_main(tmp_path, "rearm", "--reason", "loss is within limits")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "today's realised P&L -₹20,000.00" in proc.stdout


@pytest.mark.parametrize(
    "started, finished, action",
    [
        (AuditEventType.KILL_SWITCH_ENGAGED, AuditEventType.CANCEL_SWEEP_DONE, "kill-switch sweep"),
        (AuditEventType.FLATTEN_REQUESTED, AuditEventType.FLATTEN_DONE, "flatten"),
    ],
)
@pytest.mark.parametrize("closed_by", ["its end", "a later start that read the book"])
def test_rearm_is_refused_after_a_sweep_or_flatten_the_last_desk_never_finished(
    tmp_path: Path, started: AuditEventType, finished: AuditEventType, action: str, closed_by: str
) -> None:
    append(tmp_path, AuditEventType.APP_START, {"command": "simulate"})
    # The mark of this run's own start does not hide what the run started after it.
    append(tmp_path, AuditEventType.RECONCILED, {"at": "start", "broker": "paper", "working": 0})
    append(tmp_path, started, {"reason": "runaway", "working": 3}, actor="rita")
    # panic's own record of the flag starts no sweep, and must not hide the unfinished one.
    assert run_main(tmp_path, "panic").returncode == 0
    proc = run_main(tmp_path, "rearm", "--reason", "looks quiet")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert f"a desk run started a {action}" in proc.stderr and "by rita" in proc.stderr
    assert "orders may still be working at the broker" in proc.stderr
    # A later desk whose start never got to read the broker's book (it died, or the read failed) saw none of them.
    append(tmp_path, AuditEventType.APP_START, {"command": "simulate"})
    append(tmp_path, AuditEventType.RECONCILED, {"at": "the end of the run", "broker": "paper", "working": 0})
    proc = run_main(tmp_path, "rearm", "--reason", "looks quiet")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "no desk start has read the broker's order book since" in proc.stderr
    if closed_by == "its end":
        append(tmp_path, finished, {})
    else:
        append(tmp_path, AuditEventType.APP_START, {"command": "simulate"})
        append(tmp_path, AuditEventType.RECONCILED, {"at": "start", "broker": "paper", "working": 0})
    # And that run stopped cleanly: after one that did not, only a running desk may be re-armed.
    append(tmp_path, AuditEventType.APP_STOP, {"command": "simulate"})
    proc = run_main(tmp_path, "rearm", "--reason", "looks quiet")
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_an_unreachable_postgresql_store_is_one_clear_line_and_exit_1(tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    down = f"postgresql+psycopg://bulwark@127.0.0.1:{port}/bulwark"
    proc = run_main(tmp_path, "rearm", "--reason", "checked", "--timeout", "0.5", env={"BULWARK_DB_URL": down})
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    [line] = [text for text in proc.stderr.splitlines() if text.startswith("rearm refused")]
    assert line.startswith("rearm refused: the store cannot be used (OperationalError: connection failed: ")
    assert line.endswith("): nothing was changed") and str(port) in line


def test_rearm_refused_while_a_desk_holds_the_store_but_does_not_answer(tmp_path: Path) -> None:
    assert run_main(tmp_path, "panic").returncode == 0
    with DeskLock(url_of(tmp_path)):
        proc = run_main(tmp_path, "rearm", "--reason", "checked", "--timeout", "0.5")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "this folder's desk is running but did not answer on its control channel" in proc.stderr
    assert states(tmp_path)[-1][0] == "HALTED"


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_on_a_shared_database_only_the_folders_own_running_desk_blocks_an_offline_rearm(db_url: str, tmp_path: Path) -> None:
    shared = {"BULWARK_DB_URL": db_url}
    first, second = tmp_path / "first", tmp_path / "second"
    for home in (first, second):
        assert run_main(home, "simulate", "--seconds", "0.5", env=shared).returncode == 0
        assert run_main(home, "panic", "--reason", "lunch", env=shared).returncode == 0
    identity = read_identity(first)
    assert identity is not None
    with DeskLock(db_url, identity.desk_id):
        refused = run_main(first, "rearm", "--reason", "checked", "--timeout", "0.5", env=shared)
        rearmed = run_main(second, "rearm", "--reason", "checked", "--timeout", "0.5", env=shared)
    assert refused.returncode == 1 and "this folder's desk is running" in refused.stderr, refused.stdout + refused.stderr
    assert rearmed.returncode == 0, rearmed.stdout + rearmed.stderr


def test_rearm_asks_the_running_desk_which_applies_its_own_checks(tmp_path: Path) -> None:
    home = tmp_path / "home"
    assert run_main(home, "panic", "--reason", "lunch").returncode == 0
    user = getpass.getuser()
    with desk(home):
        proc = run_main(home, "rearm", "--reason", "back from lunch")
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert "done: the running desk re-armed; trading is ACTIVE" in proc.stdout
        assert "no desk answered" not in proc.stdout
        again = run_main(home, "rearm", "--reason", "twice")
        assert again.returncode == 1, again.stdout + again.stderr
        assert "rearm refused: the running desk refused: the desk is already ACTIVE, not halted: nothing to re-arm" in again.stderr
    # The engine audited the re-arm before it happened; the desk, not the command, wrote it.
    [rearmed] = audit_records(home, AuditEventType.REARMED)
    assert rearmed["actor"] == user and rearmed["source"] == "operator"
    identity = read_identity(home)
    assert identity is not None
    assert json.loads(str(rearmed["payload"])) == {"from": "HALTED", "to": "ACTIVE", "reason": "back from lunch",
                                                   "desk": identity.desk_id}


def test_a_running_desk_with_operators_checks_the_operator_itself(tmp_path: Path) -> None:
    home = tmp_path / "home"
    assert run_main(home, "panic", "--reason", "lunch").returncode == 0
    staff = [("asha", "admin", "admin pass phrase 1"), ("tom", "trader", "trader pass phrase 2"),
             ("rita", "risk_officer", "risk pass phrase 3")]
    for name, role, password in staff:
        authority = [] if name == "asha" else ["--as", "asha"]
        stdin = f"{password}\n" if name == "asha" else f"admin pass phrase 1\n{password}\n"
        added = run_main(home, "operator", "add", name, "--role", role, *authority, "--password-stdin", stdin=stdin)
        assert added.returncode == 0, added.stderr
    with desk(home) as running:
        unnamed = run_main(home, "rearm", "--reason", "back from lunch")
        assert unnamed.returncode == 1
        # The desk answered that it needs an operator; with no terminal to ask at, the command says how.
        assert "no desk answered" not in unnamed.stdout
        assert "this desk has operators: name one with --operator NAME" in unnamed.stderr
        trader = run_main(home, "rearm", "--reason", "back from lunch", "--operator", "tom", "--password-stdin",
                          stdin="trader pass phrase 2\n")
        assert trader.returncode == 1
        assert "the running desk refused: tom may not re-arm the desk (needs the rearm permission)" in trader.stderr
        wrong = run_main(home, "rearm", "--reason", "back from lunch", "--operator", "rita", "--password-stdin",
                         stdin="not her password\n")
        assert wrong.returncode == 1 and "the running desk refused: wrong name or password" in wrong.stderr
        risk = run_main(home, "rearm", "--reason", "back from lunch", "--operator", "rita", "--password-stdin",
                        stdin="risk pass phrase 3\n")
        assert risk.returncode == 0, risk.stdout + risk.stderr
        assert "done: the running desk re-armed; trading is ACTIVE" in risk.stdout
        log = running.output()
    log += (home / "logs" / "bulwark.log").read_text()
    for _, _, password in staff:
        assert password not in log
    rearmed = audit_records(home, AuditEventType.REARMED)
    assert [(r["actor"], json.loads(str(r["payload"])).get("refused")) for r in rearmed] == [
        ("tom", "no rearm permission"), ("rita", None)]
    # The desk audited each check of the password (through the engine's recorder).
    failed = [json.loads(str(r["payload"])) for r in audit_records(home, AuditEventType.LOGIN_FAILED)]
    assert [(p["name"], p["purpose"], p["reason"]) for p in failed] == [("rita", "authorise", "wrong password")]
    ok = [json.loads(str(r["payload"]))["name"] for r in audit_records(home, AuditEventType.LOGIN_OK)]
    assert ok[-2:] == ["tom", "rita"]
    everything = json.dumps(audit_records(home, AuditEventType.LOGIN_OK) + audit_records(home, AuditEventType.LOGIN_FAILED))
    assert all(password not in everything for _, _, password in staff)
