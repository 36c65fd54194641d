"""The desk runs with neither pandas nor exchange-calendars: the calendar is its own data."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from app.engine.risk.calendar_data import load_effective
from tests.support.calendar import cover_today

ROOT = Path(__file__).resolve().parents[1]
# Refuses the two libraries at import, so any code path that still needs them fails loudly.
BLOCKED_RUN = """
import sys
class Refuse:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("pandas", "exchange_calendars"):
            raise ImportError(f"{name} must not be imported at run time")
        return None
sys.meta_path.insert(0, Refuse())
sys.argv = ["main.py", *sys.argv[1:]]
from app.cli import main
code = main()
assert not [m for m in sys.modules if m.split(".")[0] in ("pandas", "exchange_calendars")]
raise SystemExit(code)
"""


def test_simulate_and_calendar_show_run_without_pandas_or_exchange_calendars(tmp_path: Path) -> None:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("BULWARK_")}
    environ["BULWARK_HOME"] = str(cover_today(tmp_path / "desk"))
    for args in (["calendar", "show"], ["simulate", "--seconds", "1", "--json"]):
        done = subprocess.run(
            [sys.executable, "-c", BLOCKED_RUN, *args], cwd=ROOT, capture_output=True, text=True, env=environ,
            timeout=120, check=False,
        )
        assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(done.stdout)
    assert report["orders"]["accepted"] > 0 and report["calendar"]["label"].startswith(load_effective(None).calendar.label)


def test_the_refusal_works(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-c", BLOCKED_RUN.replace("from app.cli import main", "import pandas\nfrom app.cli import main")],
        cwd=ROOT, capture_output=True, text=True, timeout=60, check=False,
    )
    assert done.returncode != 0 and "pandas must not be imported at run time" in done.stderr
