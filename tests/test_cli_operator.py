"""`main.py operator ...`, and the operator's authority for `rearm` and `backup restore`.

The operator commands run in process through ``app.cli.main`` with stdin replaced (``--password-stdin``:
one password a line); re-arm and restore run as an operator runs them, in a subprocess.
"""

from __future__ import annotations

import io
import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.cli import main
from app.domain.audit import AuditEventType
from app.logs import unconfigure_logging
from app.store.desk_lock import DeskLock
from app.store.migrate import open_store
from tests.support.calendar import cover_today
from tests.support.desk_process import audit_records, run_main, states, url_of

ADMIN, ADMIN_PW = "asha", "admin pass phrase 1"
TRADER, TRADER_PW = "tom", "trader pass phrase 2"
RISK, RISK_PW = "rita", "risk pass phrase 3"
SQL = "'; DROP TABLE operators;--"


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    for name in [k for k in os.environ if k.startswith("BULWARK_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("BULWARK_HOME", str(cover_today(tmp_path)))
    yield tmp_path
    unconfigure_logging()


def operator(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *args: str,
             stdin: str = "") -> tuple[int, str, str]:
    monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
    code = main(["operator", *args])
    out, err = capsys.readouterr()
    return code, out, err


def payloads(home: Path, kind: str) -> list[dict[str, object]]:
    return [json.loads(str(r["payload"])) for r in audit_records(home, kind)]


@pytest.fixture
def staffed(home: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Path:
    """asha (admin), tom (trader) and rita (risk officer)."""
    assert operator(monkeypatch, capsys, "add", ADMIN, "--role", "admin", "--password-stdin", stdin=f"{ADMIN_PW}\n")[0] == 0
    for name, role, password in ((TRADER, "trader", TRADER_PW), (RISK, "risk_officer", RISK_PW)):
        code, out, err = operator(monkeypatch, capsys, "add", name, "--role", role, "--as", ADMIN, "--password-stdin",
                                  stdin=f"{ADMIN_PW}\n{password}\n")
        assert code == 0, out + err
    return home


def test_the_first_operator_is_an_admin_added_without_authority(home: Path, monkeypatch: pytest.MonkeyPatch,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = operator(monkeypatch, capsys, "list")
    assert code == 0 and "no operators yet" in out
    code, _, err = operator(monkeypatch, capsys, "add", TRADER, "--role", "trader", "--password-stdin", stdin=f"{TRADER_PW}\n")
    assert code == 1 and "the first operator must be an administrator" in err
    code, _, err = operator(monkeypatch, capsys, "add", ADMIN, "--role", "admin", "--as", "root", "--password-stdin",
                            stdin=f"{ADMIN_PW}\n{ADMIN_PW}\n")
    assert code == 1 and "there are no operators yet, so no --as" in err
    code, out, err = operator(monkeypatch, capsys, "add", ADMIN, "--role", "admin", "--password-stdin", stdin=f"{ADMIN_PW}\n")
    assert code == 0, err
    assert "added asha as admin (the first administrator)" in out
    assert payloads(home, AuditEventType.OPERATOR_ADDED) == [
        {"name": "asha", "role": "admin", "by": "asha", "reason": "first administrator"}]
    # From now on, an administrator's authority.
    code, _, err = operator(monkeypatch, capsys, "add", "eve", "--role", "admin", "--password-stdin", stdin="eve pass phrase 9\n")
    assert code == 1 and "operators exist: an administrator must authorise this with --as NAME" in err
    assert run_main(home, "audit", "verify").returncode == 0


def test_list_shows_accounts_and_never_a_hash(staffed: Path, monkeypatch: pytest.MonkeyPatch,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = operator(monkeypatch, capsys, "list")
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split() == ["NAME", "ROLE", "ENABLED", "LOCKED", "UNTIL", "PASSWORD", "CHANGED"]
    assert [line.split()[:4] for line in lines[1:]] == [["asha", "admin", "yes", "-"], ["rita", "risk_officer", "yes", "-"],
                                                        ["tom", "trader", "yes", "-"]]
    assert "argon2" not in out and ADMIN_PW not in out


def test_disable_enable_and_reset_need_an_admin_and_are_audited(staffed: Path, monkeypatch: pytest.MonkeyPatch,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = operator(monkeypatch, capsys, "disable", TRADER, "--as", ADMIN, "--password-stdin", stdin="wrong one\n")
    assert code == 1 and "operator disable refused: the administrator's authority (--as): wrong name or password" in err
    assert ADMIN_PW not in err
    code, _, err = operator(monkeypatch, capsys, "disable", ADMIN, "--as", RISK, "--password-stdin", stdin=f"{RISK_PW}\n")
    assert code == 1 and "rita may not manage operators" in err
    code, _, err = operator(monkeypatch, capsys, "disable", ADMIN, "--as", ADMIN, "--password-stdin", stdin=f"{ADMIN_PW}\n")
    assert code == 1 and "asha is the last enabled administrator" in err
    code, out, err = operator(monkeypatch, capsys, "disable", TRADER, "--as", ADMIN, "--password-stdin", stdin=f"{ADMIN_PW}\n")
    assert code == 0 and "disabled tom" in out, err
    code, out, _ = operator(monkeypatch, capsys, "list")
    assert [line.split()[2] for line in out.splitlines() if line.startswith("tom")] == ["no"]
    code, out, err = operator(monkeypatch, capsys, "enable", TRADER, "--as", ADMIN, "--password-stdin", stdin=f"{ADMIN_PW}\n")
    assert code == 0 and "enabled tom" in out, err
    code, out, err = operator(monkeypatch, capsys, "reset-password", TRADER, "--as", ADMIN, "--password-stdin",
                              stdin=f"{ADMIN_PW}\na new trader phrase\n")
    assert code == 0 and "reset the password of tom" in out, err
    code, _, err = operator(monkeypatch, capsys, "reset-password", "ghost", "--as", ADMIN, "--password-stdin",
                            stdin=f"{ADMIN_PW}\na new trader phrase\n")
    assert code == 1 and "no operator named ghost" in err
    assert [p["name"] for p in payloads(staffed, AuditEventType.OPERATOR_DISABLED)] == ["tom"]
    assert [p["name"] for p in payloads(staffed, AuditEventType.OPERATOR_ENABLED)] == ["tom"]
    assert payloads(staffed, AuditEventType.PASSWORD_RESET) == [
        {"name": "tom", "role": "trader", "by": "asha", "reason": "reset by an administrator"}]
    failed = payloads(staffed, AuditEventType.LOGIN_FAILED)
    assert [(p["name"], p["reason"]) for p in failed] == [("asha", "wrong password")]
    everything = json.dumps([r for kind in ("operator.added", "login.ok", "login.failed", "operator.password_reset")
                             for r in audit_records(staffed, kind)])
    for secret in (ADMIN_PW, TRADER_PW, RISK_PW, "a new trader phrase", "wrong one"):
        assert secret not in everything
    assert run_main(staffed, "audit", "verify").returncode == 0


@pytest.mark.parametrize(
    "name, password, message",
    [
        ("", "a fine pass phrase", "name: enter a name"),
        ("x" * 10_240, "a fine pass phrase", "name: at most 64 characters"),
        ("bad\x1bname", "a fine pass phrase", "no control characters"),
        ("Jos\u00e9", "a fine pass phrase", "only letters a-z"),
        (SQL, "a fine pass phrase", "only letters a-z"),
        ("TOM", "a fine pass phrase", "an operator named TOM exists already"),
        ("newbie", "", "password: enter a password"),
        ("newbie", "short", "password: at least 12 characters"),
        ("newbie", "x" * 10_240, "password: at most 1024 characters"),
        ("newbie", "\x1b[2J escape sequence", "no control characters"),
    ],
)
def test_bad_names_and_passwords_are_refused_and_change_nothing(
    staffed: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], name: str, password: str,
    message: str,
) -> None:
    code, _, err = operator(monkeypatch, capsys, "add", name, "--role", "viewer", "--as", ADMIN, "--password-stdin",
                            stdin=f"{ADMIN_PW}\n{password}\n")
    assert code == 1 and message in err, err
    assert "Traceback" not in err and (len(password) < 12 or password not in err)
    assert len(audit_records(staffed, AuditEventType.OPERATOR_ADDED)) == 3


def test_sql_looking_and_unicode_passwords_are_just_text(staffed: Path, monkeypatch: pytest.MonkeyPatch,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    for name, password in (("bobby", SQL), ("priya", "पासवर्ड सुरक्षित है")):
        code, _, err = operator(monkeypatch, capsys, "add", name, "--role", "viewer", "--as", ADMIN, "--password-stdin",
                                stdin=f"{ADMIN_PW}\n{password}\n")
        assert code == 0, err
    code, out, _ = operator(monkeypatch, capsys, "list")
    assert "bobby" in out and "priya" in out and len(out.splitlines()) == 6


def test_passwords_asked_without_echo_must_match(home: Path, monkeypatch: pytest.MonkeyPatch,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    answers = iter([ADMIN_PW, "something else entirely"])
    asked: list[str] = []

    def getpass(prompt: str) -> str:
        asked.append(prompt)
        return next(answers)

    monkeypatch.setattr("getpass.getpass", getpass)
    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    monkeypatch.setattr("sys.stdin.isatty", lambda: True)
    assert main(["operator", "add", ADMIN, "--role", "admin"]) == 1
    assert "the two passwords differ: nothing was changed" in capsys.readouterr().err
    assert asked == ["new password for asha: ", "new password for asha again: "]
    answers = iter([ADMIN_PW, ADMIN_PW])
    assert main(["operator", "add", ADMIN, "--role", "admin"]) == 0
    # Without a terminal and without --password-stdin nothing is asked: a clear refusal.
    monkeypatch.setattr("sys.stdin.isatty", lambda: False)
    code, _, err = operator(monkeypatch, capsys, "add", TRADER, "--role", "trader", "--as", ADMIN)
    assert code == 1 and "no terminal to ask for the password" in err


def test_stdin_that_ends_early_is_a_clear_refusal(staffed: Path, monkeypatch: pytest.MonkeyPatch,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = operator(monkeypatch, capsys, "add", "newbie", "--role", "viewer", "--as", ADMIN, "--password-stdin",
                            stdin=f"{ADMIN_PW}\n")
    assert code == 1 and "stdin ended before the password line" in err


def test_operators_can_be_changed_while_a_desk_holds_the_store(staffed: Path, monkeypatch: pytest.MonkeyPatch,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    with DeskLock(url_of(staffed)):
        code, _, err = operator(monkeypatch, capsys, "reset-password", TRADER, "--as", ADMIN, "--password-stdin",
                                  stdin=f"{ADMIN_PW}\nchanged while running\n")
    assert code == 0, err
    assert len(audit_records(staffed, AuditEventType.PASSWORD_RESET)) == 1


def test_five_wrong_admin_passwords_lock_the_admin_out(staffed: Path, monkeypatch: pytest.MonkeyPatch,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    for _ in range(5):
        assert operator(monkeypatch, capsys, "enable", TRADER, "--as", ADMIN, "--password-stdin", stdin="guess guess\n")[0] == 1
    code, _, err = operator(monkeypatch, capsys, "enable", TRADER, "--as", ADMIN, "--password-stdin", stdin=f"{ADMIN_PW}\n")
    assert code == 1 and "this account is locked until" in err
    assert len(audit_records(staffed, AuditEventType.LOGIN_LOCKED)) == 1
    code, out, _ = operator(monkeypatch, capsys, "list")
    locked_until = next(line for line in out.splitlines() if line.startswith("asha")).split()[3]
    assert locked_until != "-"


# -- authority for rearm and restore ---------------------------------------------------------------


def test_rearm_with_no_desk_needs_an_operator_with_the_rearm_permission(staffed: Path) -> None:
    assert run_main(staffed, "panic", "--reason", "runaway").returncode == 0
    refused = run_main(staffed, "rearm", "--reason", "fixed", "--timeout", "0.5")
    assert refused.returncode == 1
    assert "this desk has operators: name one with --operator NAME" in refused.stderr
    trader = run_main(staffed, "rearm", "--reason", "fixed", "--operator", TRADER, "--password-stdin", "--timeout", "0.5",
                      stdin=f"{TRADER_PW}\n")
    assert trader.returncode == 1, trader.stdout + trader.stderr
    assert "rearm refused: tom (trader) does not have the rearm permission" in trader.stderr
    wrong = run_main(staffed, "rearm", "--reason", "fixed", "--operator", RISK, "--password-stdin", "--timeout", "0.5",
                     stdin="not it at all\n")
    assert wrong.returncode == 1 and "rearm refused: wrong name or password" in wrong.stderr
    assert states(staffed)[-1][0] == "HALTED"
    risk = run_main(staffed, "rearm", "--reason", "fixed", "--operator", RISK, "--password-stdin", "--timeout", "0.5",
                    stdin=f"{RISK_PW}\n")
    assert risk.returncode == 0, risk.stdout + risk.stderr
    assert "RE-ARM to ACTIVE: fixed" in risk.stdout and "authorised: rita (risk_officer)" in risk.stdout
    assert states(staffed)[-1] == ("ACTIVE", "re-armed: fixed", "rita")
    rearmed = audit_records(staffed, AuditEventType.REARMED)
    assert [(r["actor"], json.loads(str(r["payload"])).get("refused")) for r in rearmed] == [
        ("tom", "no rearm permission"), ("rita", None)]
    assert [p["purpose"] for p in payloads(staffed, AuditEventType.LOGIN_OK)][-2:] == ["authorise", "authorise"]
    for proc in (trader, wrong, risk):
        assert TRADER_PW not in proc.stdout + proc.stderr and RISK_PW not in proc.stdout + proc.stderr


def test_backup_restore_needs_an_administrator(staffed: Path) -> None:
    created = run_main(staffed, "backup", "create")
    assert created.returncode == 0, created.stderr
    backup = next((staffed / "backups").glob("*"))
    trader = run_main(staffed, "backup", "restore", str(backup), "--operator", TRADER, "--password-stdin", stdin=f"{TRADER_PW}\n")
    assert trader.returncode == 1
    assert "backup restore refused: tom (trader) does not have the restore_backup permission" in trader.stderr
    assert not list(staffed.glob("bulwark.db.pre-restore-*"))
    nobody = run_main(staffed, "backup", "restore", str(backup))
    assert nobody.returncode == 1 and "this desk has operators" in nobody.stderr
    admin = run_main(staffed, "backup", "restore", str(backup), "--operator", ADMIN, "--password-stdin", stdin=f"{ADMIN_PW}\n")
    assert admin.returncode == 0, admin.stderr
    [restored] = audit_records(staffed, AuditEventType.BACKUP_RESTORED)
    assert restored["actor"] == "asha"


def test_commands_keep_todays_behaviour_before_the_first_operator(home: Path) -> None:
    open_store(url_of(home)).dispose()
    assert run_main(home, "panic").returncode == 0
    proc = run_main(home, "rearm", "--reason", "no operators yet", "--timeout", "0.5")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "authorised:" not in proc.stdout


def test_a_tampered_role_is_listed_as_damaged_and_refused_as_authority_without_a_traceback(
    staffed: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    import argparse
    import sqlite3

    from app.cli.authority import AuthorityRefused, authenticate
    from app.store.audit_writer import AuditWriter

    raw = sqlite3.connect(staffed / "bulwark.db")
    try:
        with pytest.raises(sqlite3.IntegrityError, match="CHECK constraint failed"):
            raw.execute("UPDATE operators SET role = 'superuser' WHERE name_key = 'rita'")
        # Past the constraint, as an edit of the file could.
        raw.execute("PRAGMA ignore_check_constraints = ON")
        raw.execute("UPDATE operators SET role = 'superuser' WHERE name_key = 'rita'")
        raw.commit()
    finally:
        raw.close()
    code, out, err = operator(monkeypatch, capsys, "list")
    assert code == 1 and "Traceback" not in err
    assert [line.split()[:4] for line in out.splitlines()[1:]] == [["asha", "admin", "yes", "-"], ["rita", "DAMAGED", "no", "-"],
                                                                   ["tom", "trader", "yes", "-"]]
    assert "operator list: the stored entry of rita is damaged (unknown role 'superuser'): it cannot sign in" in err
    # As an administrator's authority for a change: refused, saying why.
    code, _, err = operator(monkeypatch, capsys, "enable", TRADER, "--as", RISK, "--password-stdin", stdin=f"{RISK_PW}\n")
    assert code == 1 and "Traceback" not in err
    assert "the administrator's authority (--as): this account's entry in the database is damaged (unknown role 'superuser')" in err
    # As the authority of rearm, restore or a calendar change (app.cli.authority).
    store = open_store(url_of(staffed))
    writer = AuditWriter(store)
    writer.start()
    try:
        monkeypatch.setattr("sys.stdin", io.StringIO(f"{RISK_PW}\n"))
        with pytest.raises(AuthorityRefused, match=r"entry in the database is damaged \(unknown role 'superuser'\)"):
            authenticate(store, writer, argparse.Namespace(operator=RISK, password_stdin=True))
    finally:
        writer.close(timeout=5.0)
        store.dispose()
    failed = payloads(staffed, AuditEventType.LOGIN_FAILED)
    assert [(p["name"], p["role"], p["reason"]) for p in failed] == [("rita", None, "stored account invalid")] * 2


def test_an_unknown_name_is_counted_and_never_recorded(staffed: Path, monkeypatch: pytest.MonkeyPatch,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    # A password typed where the administrator's name goes.
    code, _, err = operator(monkeypatch, capsys, "enable", TRADER, "--as", "admin-pass-phrase-1", "--password-stdin",
                            stdin=f"{ADMIN_PW}\n")
    assert code == 1 and "wrong name or password" in err
    [record] = audit_records(staffed, AuditEventType.LOGIN_FAILED)
    assert record["actor"] == "unknown-operator"
    assert json.loads(str(record["payload"])) == {"name": None, "unknown_name": True, "typed_length": 19, "role": None,
                                                  "purpose": "authorise", "reason": "unknown name"}
    code, out, _ = operator(monkeypatch, capsys, "list")
    assert code == 0 and "sign-in attempts with a name no account has, so far: 1" in out
    log = (staffed / "logs" / "bulwark.log").read_text() if (staffed / "logs" / "bulwark.log").exists() else ""
    assert "admin-pass-phrase" not in log + out + err
