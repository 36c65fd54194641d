"""`main.py limits check|history` as an operator runs them: subprocesses on a real data folder."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
from pathlib import Path

from sqlalchemy import text

from app.brokers.paper import load_universe
from app.engine.risk.calendar import TradingCalendar
from app.engine.risk.calendar_data import load_effective
from app.engine.risk.limits import DEFAULT_LIMITS_PATH
from app.store import limit_versions
from app.store.db import make_engine
from app.store.limit_versions import StoredLimits
from app.store.migrate import open_store, upgrade
from app.store.models import LEGACY_DESK_ID

ROOT = Path(__file__).resolve().parents[1]


def main_py(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("BULWARK_")}
    environ["BULWARK_HOME"] = str(home)
    return subprocess.run(
        [sys.executable, str(ROOT / "main.py"), *args], capture_output=True, text=True, env=environ, timeout=120, check=False
    )


def shipped() -> str:
    return DEFAULT_LIMITS_PATH.read_text(encoding="utf-8")


def test_check_without_a_file_checks_the_shipped_default(tmp_path: Path) -> None:
    proc = main_py(tmp_path, "limits", "check")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0] == f"{DEFAULT_LIMITS_PATH}: valid"
    assert lines[1] == "covers 27 of 27 paper instruments"
    assert "gross exposure cap ₹25,00,000.00, net ₹20,00,000.00" in lines
    assert "daily loss limit ₹25,000.00, trailing ₹15,000.00" in lines
    assert "warning" not in proc.stdout


def test_check_prefers_the_data_folders_file_and_reports_warnings(tmp_path: Path) -> None:
    own = tmp_path / "limits.toml"
    edited = shipped().replace("daily_loss_limit_inr = 25000", 'daily_loss_limit_inr = "30000.50"')
    own.write_text(edited.replace("[underlyings.SENSEX]", "[underlyings.SENSEX_OLD]"), encoding="utf-8")
    proc = main_py(tmp_path, "limits", "check")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith(f"{own}: valid\ncovers 26 of 27 paper instruments\n")
    assert "daily loss limit ₹30,000.50" in proc.stdout
    assert "warning: underlyings.SENSEX_OLD: no instrument in the desk's list has this underlying" in proc.stdout
    # The SENSEX future rolls monthly: its key is whatever contract trades today, as the command sees it.
    calendar = TradingCalendar(load_effective(tmp_path).calendar)
    sensex = next(e.instrument.key for e in load_universe(is_session=calendar.is_session_day)
                  if e.instrument.key.startswith("BFO:SENSEX:"))
    assert f"warning: 1 of 27 instruments have no limits, so their orders are refused: {sensex}" in proc.stdout


def test_check_lists_every_problem_and_exits_1(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text(
        shipped().replace("max_open_orders = 20", "max_open_orders = 0").replace("price_collar_pct = 5", "price_collar_pct = 500"),
        encoding="utf-8",
    )
    proc = main_py(tmp_path, "limits", "check", str(bad))
    assert proc.returncode == 1
    assert f"2 problems in limits {bad}:" in proc.stderr
    assert "  - desk.max_open_orders = 0: out of range; allowed: a whole number from 1 to 1000000000" in proc.stderr
    assert "  - defaults.price_collar_pct = 500: out of range; allowed: a percentage above 0" in proc.stderr
    assert proc.stdout == ""


def test_check_of_a_missing_file_exits_1(tmp_path: Path) -> None:
    proc = main_py(tmp_path, "limits", "check", str(tmp_path / "nope.toml"))
    assert proc.returncode == 1
    assert f"invalid limits in {tmp_path / 'nope.toml'}: file not found" in proc.stderr


def test_history_without_a_database_exits_1_and_creates_none(tmp_path: Path) -> None:
    proc = main_py(tmp_path, "limits", "history")
    assert proc.returncode == 1
    assert "no database at" in proc.stderr
    assert not (tmp_path / "bulwark.db").exists()


def test_history_lists_versions_newest_first_in_india_time(tmp_path: Path) -> None:
    nine_in_india = int(dt.datetime(2026, 11, 23, 3, 30, tzinfo=dt.UTC).timestamp()) * 1_000_000_000
    engine = open_store(f"sqlite:///{tmp_path}/bulwark.db")
    with engine.begin() as connection:
        # No desk has started from this folder yet: its versions are the ones from before desks had ids.
        limit_versions.insert(connection, StoredLimits(1, nine_in_india, "system", "first limits", "{}"), LEGACY_DESK_ID)
        limit_versions.insert(connection, StoredLimits(2, nine_in_india + 3_600_000_000_000, "rita", "tighter", "{}"),
                              LEGACY_DESK_ID)
        limit_versions.insert(connection, StoredLimits(3, nine_in_india, "bob", "another desk's", "{}"), "BBBBBB")
    engine.dispose()
    proc = main_py(tmp_path, "limits", "history")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].split() == ["version", "time", "(IST)", "actor", "reason"]
    assert lines[1].split() == ["2", "2026-11-23", "10:00:00", "rita", "tighter"]
    assert lines[2].split() == ["1", "2026-11-23", "09:00:00", "system", "first", "limits"]
    assert len(lines) == 3
    limited = main_py(tmp_path, "limits", "history", "--limit", "1")
    assert limited.returncode == 0 and len(limited.stdout.splitlines()) == 2


def test_history_of_an_empty_store(tmp_path: Path) -> None:
    open_store(f"sqlite:///{tmp_path}/bulwark.db").dispose()
    proc = main_py(tmp_path, "limits", "history")
    assert proc.returncode == 0 and proc.stdout == "no limits have been stored yet\n"


def test_history_never_migrates_the_database(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path}/bulwark.db")
    upgrade(engine, "0001")  # before limit versions existed
    proc = main_py(tmp_path, "limits", "history")
    assert proc.returncode == 1
    assert "written by an older Bulwark, before limits were kept per desk" in proc.stderr
    with engine.connect() as connection:
        assert connection.execute(text("SELECT version_num FROM alembic_version")).scalar_one() == "0001"
    engine.dispose()
