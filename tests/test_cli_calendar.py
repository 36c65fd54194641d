"""`main.py calendar show|check|import|accept-weekdays` as an operator runs them, on a real data folder.

The years used are relative to the shipped calendar's cover, never to today's date: the outcome is
the same whatever the machine's clock says.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from pathlib import Path

from app.domain.actors import Actor, Role
from app.domain.india_time import IST
from app.engine.risk.calendar_data import SHIPPED_CALENDAR_PATH, load_calendar_file
from app.security.operators import OperatorDirectory
from app.security.passwords import password_hasher
from app.store import calendar_versions
from app.store.db import make_engine
from app.store.export import rows
from app.store.migrate import open_store

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = load_calendar_file(SHIPPED_CALENDAR_PATH)
LAST_SHIPPED = max(SHIPPED.calendars["india"].years)
NEW_YEAR = LAST_SHIPPED + 1
PUBLISHED = f"""format = 1
label = "nse-{NEW_YEAR}"
source = "NSE circular (test copy)"

[calendars.india]
exchanges = ["NSE", "BSE", "NFO", "BFO"]
open = "09:15"
close = "15:30"
weekdays = ["Mon", "Tue", "Wed", "Thu", "Fri"]

[calendars.india.years.{NEW_YEAR}]
holidays = [{dt.date(NEW_YEAR, 1, 26) if dt.date(NEW_YEAR, 1, 26).weekday() < 5 else dt.date(NEW_YEAR, 1, 27)}, {NEW_YEAR}-12-24]
special_sessions = [{{ date = {NEW_YEAR}-11-07, open = "18:00", close = "19:00", name = "Muhurat trading" }}]
"""


def main_py(home: Path, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("BULWARK_")}
    environ["BULWARK_HOME"] = str(home)
    return subprocess.run(
        [sys.executable, str(ROOT / "main.py"), *args], capture_output=True, text=True, env=environ,
        input=stdin, timeout=120, check=False,
    )


def audit_records(home: Path) -> list[dict[str, object]]:
    done = main_py(home, "audit", "export", "--format", "jsonl")
    assert done.returncode == 0, done.stderr
    return [json.loads(line) for line in done.stdout.splitlines() if line.strip()]


def audit_rows(home: Path) -> list[dict[str, object]]:
    """Every audit record of ``home``'s store, read in process (quicker than ``audit export``)."""
    engine = make_engine(f"sqlite:///{home / 'bulwark.db'}")
    try:
        return list(rows(engine))
    finally:
        engine.dispose()


def test_show_reports_the_shipped_calendar(tmp_path: Path) -> None:
    done = main_py(tmp_path, "calendar", "show", "--year", "2026", "--json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    india = report["calendars"]["india"]
    assert report["label"] == SHIPPED.label and report["override"] is None
    assert india["published_through"] == LAST_SHIPPED and india["covered"]
    assert "2026-01-26" in india["holidays"] and india["exchanges"] == ["NSE", "BSE", "NFO", "BFO"]


def test_show_of_a_year_not_covered_says_orders_are_refused(tmp_path: Path) -> None:
    done = main_py(tmp_path, "calendar", "show", "--year", str(NEW_YEAR))
    assert done.returncode == 0, done.stderr
    assert f"{NEW_YEAR}: not covered (no holiday list): new risk is refused on its days" in done.stdout


def test_import_stores_an_audited_version_and_the_year_is_in_force(tmp_path: Path) -> None:
    home = tmp_path / "desk"
    published = tmp_path / "nse.toml"
    published.write_text(PUBLISHED, encoding="utf-8")
    done = main_py(home, "calendar", "import", str(published), "--reason", "NSE published the list")
    assert done.returncode == 0, done.stderr
    assert f"imported {published}: india/{NEW_YEAR}" in done.stdout and "calendar version 1 stored" in done.stdout
    assert "restart it for the change to apply" in done.stdout

    shown = json.loads(main_py(home, "calendar", "show", "--year", str(NEW_YEAR), "--json").stdout)
    india = shown["calendars"]["india"]
    assert india["covered"] and india["published_through"] == NEW_YEAR
    assert f"{NEW_YEAR}-12-24" in india["holidays"]
    assert india["special_sessions"] == [{"date": f"{NEW_YEAR}-11-07", "hours": "18:00-19:00", "name": "Muhurat trading"}]

    changes = [r for r in audit_records(home) if r["event_type"] == "calendar.changed"]
    assert len(changes) == 1
    payload = changes[0]["payload"]
    assert isinstance(payload, dict)
    assert payload["version"] == 1 and payload["changed_years"] and f"india/{NEW_YEAR}" in payload["changed_years"]
    assert "NSE published the list" in str(payload["reason"])
    verify = main_py(home, "audit", "verify")
    assert verify.returncode == 0, verify.stdout + verify.stderr

    again = main_py(home, "calendar", "import", str(published), "--reason", "once more")
    assert again.returncode == 0 and "calendar version 1 stored (unchanged)" in again.stdout
    engine = make_engine(f"sqlite:///{home / 'bulwark.db'}")
    try:
        assert [v.version for v in calendar_versions.history(engine)] == [1]
    finally:
        engine.dispose()


def test_a_bad_import_changes_nothing_and_names_every_problem(tmp_path: Path) -> None:
    home = tmp_path / "desk"
    bad = tmp_path / "bad.toml"
    bad.write_text(PUBLISHED.replace(f"{NEW_YEAR}-12-24", f"{NEW_YEAR - 1}-12-24").replace('open = "18:00"', 'open = "6pm"'))
    done = main_py(home, "calendar", "import", str(bad), "--reason", "typo")
    assert done.returncode == 1
    assert f"{NEW_YEAR - 1}-12-24 is not in {NEW_YEAR}" in done.stderr and "'6pm'" in done.stderr
    assert not (home / "calendar.toml").exists()
    missing = main_py(home, "calendar", "import", str(tmp_path / "nope.toml"), "--reason", "x")
    assert missing.returncode == 1 and "file not found" in missing.stderr


def test_import_needs_a_reason(tmp_path: Path) -> None:
    published = tmp_path / "nse.toml"
    published.write_text(PUBLISHED, encoding="utf-8")
    for reason in ([], ["--reason", "   "]):
        done = main_py(tmp_path / "desk", "calendar", "import", str(published), *reason)
        assert done.returncode == 2, done.stderr
    assert not (tmp_path / "desk" / "calendar.toml").exists()


def test_check_of_a_file_and_of_the_calendar_in_force(tmp_path: Path) -> None:
    published = tmp_path / "nse.toml"
    published.write_text(PUBLISHED, encoding="utf-8")
    good = main_py(tmp_path / "desk", "calendar", "check", str(published))
    assert good.returncode == 0 and f"valid (nse-{NEW_YEAR}); years {NEW_YEAR}" in good.stdout
    bad = tmp_path / "bad.toml"
    bad.write_text(PUBLISHED.replace('"BFO"]', '"MCX"]'))
    refused = main_py(tmp_path / "desk", "calendar", "check", str(bad))
    assert refused.returncode == 1 and "unknown exchange 'MCX'" in refused.stderr
    # A broken override in the data folder: `check` fails, `show` warns and shows the shipped data.
    (tmp_path / "desk").mkdir(exist_ok=True)
    (tmp_path / "desk" / "calendar.toml").write_text(bad.read_text())
    assert main_py(tmp_path / "desk", "calendar", "check").returncode == 1
    shown = main_py(tmp_path / "desk", "calendar", "show")
    assert shown.returncode == 1 and "the override is refused, the shipped calendar is in force" in shown.stdout


def test_accept_weekdays_for_a_year_without_holidays_is_audited_and_shown(tmp_path: Path) -> None:
    home = tmp_path / "desk"
    year = dt.datetime.now(IST).year + 1  # always past the shipped cover: the file ends with 2026
    assert year > LAST_SHIPPED
    done = main_py(home, "calendar", "accept-weekdays", str(year), "--reason", "list due next week")
    assert done.returncode == 0, done.stderr
    shown = json.loads(main_py(home, "calendar", "show", "--year", str(year), "--json").stdout)
    assumed = shown["calendars"]["india"]["assumed_years"][str(year)]
    assert assumed["reason"] == "list due next week" and assumed["by"]
    changes = [r for r in audit_records(home) if r["event_type"] == "calendar.changed"]
    assert len(changes) == 1 and changes[0]["actor"] == assumed["by"]
    twice = main_py(home, "calendar", "accept-weekdays", str(year), "--reason", "again")
    assert twice.returncode == 1 and f"{year} is already assumed" in twice.stderr


def test_accept_weekdays_is_refused_for_a_published_or_distant_year(tmp_path: Path) -> None:
    published = main_py(tmp_path, "calendar", "accept-weekdays", "2016", "--reason", "x")
    assert published.returncode == 2 and "this year or the next" in published.stderr
    far = main_py(tmp_path, "calendar", "accept-weekdays", "2199", "--reason", "x")
    assert far.returncode == 2 and "not 2199" in far.stderr
    assert not (tmp_path / "calendar.toml").exists()


def test_a_reason_must_be_one_line(tmp_path: Path) -> None:
    year = dt.datetime.now(IST).year + 1
    done = main_py(tmp_path, "calendar", "accept-weekdays", str(year), "--reason", "due\nsoon")
    assert done.returncode == 2 and "one line of text" in done.stderr
    assert not (tmp_path / "calendar.toml").exists()


def test_a_change_that_cannot_be_recorded_leaves_the_previous_calendar(tmp_path: Path) -> None:
    home = tmp_path / "desk"
    published = tmp_path / "nse.toml"
    published.write_text(PUBLISHED, encoding="utf-8")
    assert main_py(home, "calendar", "import", str(published), "--reason", "first").returncode == 0
    before = (home / "calendar.toml").read_bytes()
    # A trigger makes the version insert fail, as a full disk would: the override must go back as it was.
    engine = make_engine(f"sqlite:///{home / 'bulwark.db'}")
    try:
        with engine.begin() as connection:
            connection.exec_driver_sql(
                "CREATE TRIGGER test_refuse BEFORE INSERT ON calendar_versions BEGIN SELECT RAISE(ABORT, 'disk full'); END"
            )
    finally:
        engine.dispose()
    other = tmp_path / "other.toml"
    other.write_text(PUBLISHED.replace(str(NEW_YEAR), str(NEW_YEAR + 5)), encoding="utf-8")
    done = main_py(home, "calendar", "import", str(other), "--reason", "x")
    assert done.returncode == 1 and "could not be recorded, the previous calendar stays in force" in done.stderr
    assert (home / "calendar.toml").read_bytes() == before



# -- once the desk has operators ----------------------------------------------------------------------

PASSWORD = {"asha": "admin pass phrase 1", "tom": "trader pass phrase 2", "rita": "risk pass phrase 3"}


def staffed(home: Path) -> Path:
    """asha (admin), tom (trader) and rita (risk officer) in ``home``'s store, hashed cheaply (a verify reads
    the parameters from the hash, so the command checks them as it would the desk's own)."""
    home.mkdir(parents=True, exist_ok=True)
    engine = open_store(f"sqlite:///{home / 'bulwark.db'}")
    try:
        directory = OperatorDirectory(engine, lambda *_: None, hasher=password_hasher(memory_cost_kib=64, time_cost=1))
        directory.add("asha", Role.ADMIN, PASSWORD["asha"], by=None)
        admin = Actor.with_role("asha", Role.ADMIN)
        directory.add("tom", Role.TRADER, PASSWORD["tom"], by=admin)
        directory.add("rita", Role.RISK_OFFICER, PASSWORD["rita"], by=admin)
    finally:
        engine.dispose()
    return home


def authorised(home: Path, *args: str, name: str, password: str) -> subprocess.CompletedProcess[str]:
    return main_py(home, *args, "--operator", name, "--password-stdin", stdin=f"{password}\n")


def test_with_operators_an_import_needs_an_operator_who_may_set_limits(tmp_path: Path) -> None:
    home = staffed(tmp_path / "desk")
    published = tmp_path / "nse.toml"
    published.write_text(PUBLISHED, encoding="utf-8")
    imported = ("calendar", "import", str(published), "--reason", "NSE published the list")
    nobody = main_py(home, *imported)
    assert nobody.returncode == 1
    assert "calendar import refused: this desk has operators: name one with --operator NAME" in nobody.stderr
    trader = authorised(home, *imported, name="tom", password=PASSWORD["tom"])
    assert trader.returncode == 1, trader.stdout + trader.stderr
    assert "calendar import refused: tom (trader) does not have the set_limits permission" in trader.stderr
    wrong = authorised(home, *imported, name="rita", password="not her password")
    assert wrong.returncode == 1 and "calendar import refused: wrong name or password" in wrong.stderr
    assert not (home / "calendar.toml").exists()
    risk = authorised(home, *imported, name="rita", password=PASSWORD["rita"])
    assert risk.returncode == 0, risk.stdout + risk.stderr
    assert "authorised: rita (risk_officer)" in risk.stdout and (home / "calendar.toml").exists()
    records = audit_rows(home)
    assert [r["actor"] for r in records if r["event_type"] == "calendar.changed"] == ["rita"]
    checks = [(r["event_type"], r["actor"]) for r in records if r["event_type"] in ("login.ok", "login.failed")]
    assert checks == [("login.ok", "tom"), ("login.failed", "rita"), ("login.ok", "rita")]
    output = "".join(p.stdout + p.stderr for p in (nobody, trader, wrong, risk)) + json.dumps(records)
    assert not any(password in output for password in PASSWORD.values())


def test_with_operators_accepting_weekdays_is_done_by_a_named_operator(tmp_path: Path) -> None:
    home = staffed(tmp_path / "desk")
    year = dt.datetime.now(IST).year + 1
    accepted = ("calendar", "accept-weekdays", str(year), "--reason", "list due next week")
    trader = authorised(home, *accepted, name="tom", password=PASSWORD["tom"])
    assert trader.returncode == 1 and "tom (trader) does not have the set_limits permission" in trader.stderr
    assert not (home / "calendar.toml").exists()
    admin = authorised(home, *accepted, name="asha", password=PASSWORD["asha"])
    assert admin.returncode == 0, admin.stdout + admin.stderr
    shown = json.loads(main_py(home, "calendar", "show", "--year", str(year), "--json").stdout)
    assert shown["calendars"]["india"]["assumed_years"][str(year)]["by"] == "asha"
    assert [r["actor"] for r in audit_rows(home) if r["event_type"] == "calendar.changed"] == ["asha"]
