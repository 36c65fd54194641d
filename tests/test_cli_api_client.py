"""`main.py api-client ...`: clients made by a named administrator, tokens printed once, never listed or audited.

The commands run in process through ``app.cli.main`` with stdin replaced (``--password-stdin``), as
tests/test_cli_operator.py runs ``operator``; one run goes through a real ``main.py`` subprocess.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.cli import main
from app.domain.actors import ApiScope
from app.domain.audit import AuditEventType
from app.logs import unconfigure_logging
from app.security.api_clients import ApiClient, ApiClientDirectory, AuthRefusal
from app.store.migrate import open_store
from tests.support.calendar import cover_today
from tests.support.desk_process import audit_records, run_main, url_of

ADMIN, ADMIN_PW = "asha", "admin pass phrase 1"
RISK, RISK_PW = "rita", "risk pass phrase 3"


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    for name in [k for k in os.environ if k.startswith("BULWARK_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("BULWARK_HOME", str(cover_today(tmp_path)))
    yield tmp_path
    unconfigure_logging()


def cli(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *args: str, stdin: str = "") -> tuple[int, str, str]:
    monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def api_client(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *args: str,
               as_admin: str | None = ADMIN, password: str = ADMIN_PW) -> tuple[int, str, str]:
    authority = ("--as", as_admin, "--password-stdin") if as_admin is not None else ()
    return cli(monkeypatch, capsys, "api-client", *args, *authority, stdin=f"{password}\n")


def directory(home: Path) -> ApiClientDirectory:
    return ApiClientDirectory(open_store(url_of(home)), lambda *_: None)


@pytest.fixture
def staffed(home: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Path:
    """asha (admin) and rita (risk officer)."""
    code, out, err = cli(monkeypatch, capsys, "operator", "add", ADMIN, "--role", "admin", "--password-stdin", stdin=f"{ADMIN_PW}\n")
    assert code == 0, out + err
    code, out, err = cli(monkeypatch, capsys, "operator", "add", RISK, "--role", "risk_officer", "--as", ADMIN,
                         "--password-stdin", stdin=f"{ADMIN_PW}\n{RISK_PW}\n")
    assert code == 0, out + err
    return home


def test_no_client_before_the_first_administrator(home: Path, monkeypatch: pytest.MonkeyPatch,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = api_client(monkeypatch, capsys, "list", as_admin=None)
    assert code == 0 and "no API clients yet" in out
    code, out, err = api_client(monkeypatch, capsys, "add", "algo", "--scope", "read", as_admin=None)
    assert code == 1 and out == ""
    assert "create the first administrator first" in err and "always created by a named person" in err
    code, _, err = api_client(monkeypatch, capsys, "add", "algo", "--scope", "read", as_admin="root", password="anything")
    assert code == 1 and "create the first administrator first" in err
    assert directory(home).list() == []


def test_add_prints_the_token_once_and_it_authenticates(staffed: Path, monkeypatch: pytest.MonkeyPatch,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = api_client(monkeypatch, capsys, "add", "Algo-1", "--scope", "read", "--scope", "trade")
    assert code == 0, err
    token = out.strip()
    assert out.count("\n") == 1 and token.startswith("bwk_")
    assert "added API client Algo-1 with scopes read, trade by asha" in err and "will not be shown again" in err
    client = directory(staffed).authenticate(token)
    assert isinstance(client, ApiClient) and client.scopes == frozenset({ApiScope.READ, ApiScope.TRADE})
    assert [json.loads(str(r["payload"])) for r in audit_records(staffed, AuditEventType.API_CLIENT_ADDED)] == [
        {"name": "Algo-1", "scopes": ["read", "trade"], "by": "asha", "reason": "added by an administrator"}]
    # The list shows the hint, never the token or its hash.
    code, out, _ = api_client(monkeypatch, capsys, "list", as_admin=None)
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split() == ["NAME", "SCOPES", "ENABLED", "CREATED", "BY", "CREATED", "TOKEN"]
    assert lines[1].split()[:4] == ["Algo-1", "read,trade", "yes", "asha"] and lines[1].endswith(f"…{token[-4:]}")
    assert token not in out and hashlib.sha256(token.encode()).hexdigest() not in out
    everything = json.dumps([r for kind in ("api_client.added", "login.ok") for r in audit_records(staffed, kind)])
    assert token not in everything and ADMIN_PW not in everything
    assert run_main(staffed, "audit", "verify").returncode == 0


def test_disable_enable_and_rotate(staffed: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    token = api_client(monkeypatch, capsys, "add", "algo", "--scope", "kill")[1].strip()
    code, out, err = api_client(monkeypatch, capsys, "disable", "ALGO")
    assert code == 0 and "disabled API client algo" in out, err
    assert directory(staffed).authenticate(token) is AuthRefusal.DISABLED
    code, _, err = api_client(monkeypatch, capsys, "disable", "algo")
    assert code == 1 and "api-client disable refused: algo is already disabled" in err
    code, out, err = api_client(monkeypatch, capsys, "enable", "algo")
    assert code == 0 and "enabled API client algo" in out, err
    code, out, err = api_client(monkeypatch, capsys, "rotate", "algo")
    assert code == 0 and "rotated the token of API client algo" in err and "will not be shown again" in err
    new = out.strip()
    assert new.startswith("bwk_") and new != token
    clients = directory(staffed)
    assert clients.authenticate(token) is AuthRefusal.UNKNOWN and isinstance(clients.authenticate(new), ApiClient)
    code, _, err = api_client(monkeypatch, capsys, "rotate", "ghost")
    assert code == 1 and "no API client named ghost" in err
    kinds = [AuditEventType.API_CLIENT_DISABLED, AuditEventType.API_CLIENT_ENABLED, AuditEventType.API_CLIENT_ROTATED]
    assert [len(audit_records(staffed, kind)) for kind in kinds] == [1, 1, 1]
    assert all(new not in str(r) and token not in str(r) for kind in kinds for r in audit_records(staffed, kind))


def test_authority_is_checked(staffed: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = api_client(monkeypatch, capsys, "add", "algo", "--scope", "read", as_admin=None)
    assert code == 1 and "an administrator must authorise this with --as NAME" in err and out == ""
    code, out, err = api_client(monkeypatch, capsys, "add", "algo", "--scope", "read", password="wrong one")
    assert code == 1 and "the administrator's authority (--as): wrong name or password" in err and out == ""
    assert "wrong one" not in err
    code, out, err = api_client(monkeypatch, capsys, "add", "algo", "--scope", "read", as_admin=RISK, password=RISK_PW)
    assert code == 1 and "rita may not manage API clients" in err and out == ""
    assert directory(staffed).list() == [] and audit_records(staffed, AuditEventType.API_CLIENT_ADDED) == []


@pytest.mark.parametrize(("args", "message", "exit_code"), [
    (("add", "bad name", "--scope", "read"), "name: no spaces", 1),
    (("add", "api:algo", "--scope", "read"), "only letters a-z", 1),
    (("add", "algo", "--scope", "root"), "invalid choice: 'root'", 2),
    (("add", "algo"), "the following arguments are required: --scope", 2),
])
def test_bad_input_is_refused_and_changes_nothing(staffed: Path, monkeypatch: pytest.MonkeyPatch,
                                                  capsys: pytest.CaptureFixture[str], args: tuple[str, ...], message: str,
                                                  exit_code: int) -> None:
    try:
        code, out, err = api_client(monkeypatch, capsys, *args)
    except SystemExit as exc:  # argparse's own refusals
        code, (out, err) = int(exc.code or 0), capsys.readouterr()
    assert code == exit_code and message in err and out == ""
    assert "Traceback" not in err and directory(staffed).list() == []


def test_a_real_process_adds_a_client(staffed: Path) -> None:
    unconfigure_logging()
    done = run_main(staffed, "api-client", "add", "stop-button", "--scope", "kill", "--as", ADMIN, "--password-stdin",
                    stdin=f"{ADMIN_PW}\n")
    assert done.returncode == 0, done.stderr
    token = done.stdout.strip()
    assert isinstance(directory(staffed).authenticate(token), ApiClient)
    assert token not in done.stderr and "will not be shown again" in done.stderr
    listed = run_main(staffed, "api-client", "list")
    assert listed.returncode == 0 and "stop-button" in listed.stdout and token not in listed.stdout
