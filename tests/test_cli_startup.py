"""`main.py` starts fast: what each command imports before it runs, and what panic loads on its way to the flag.

The timings themselves are a benchmark (``python -m tests.bench.startup_cli``); these tests hold the
cause: building the command line imports no heavy package, and ``panic`` on a migrated store
never loads alembic, pandas, the exchange calendar, the engine or a broker SDK.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from app.cli import COMMANDS
from app.store.migrate import open_store

ROOT = Path(__file__).resolve().parents[1]

# What the command line must not pay for before a command runs: each costs from 50 ms (asyncio)
# to over a second (pandas with exchange-calendars) on a cold start.
HEAVY = ("sqlalchemy", "alembic", "pandas", "numpy", "exchange_calendars", "pydantic", "pydantic_settings",
         "breeze_connect", "keyring", "asyncio", "app.settings", "app.engine", "app.store", "app.brokers",
         "app.security", "app.simulation", "app.ui")
# Not needed to write the HALTED flag on a store already at the head revision.
NOT_FOR_PANIC = ("alembic", "pandas", "exchange_calendars", "breeze_connect", "keyring", "app.engine.engine",
                 "app.brokers", "app.simulation")


def modules_after(code: str, home: Path) -> list[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("BULWARK_")}
    environ["BULWARK_HOME"] = str(home)
    proc = subprocess.run([sys.executable, "-c", f"{code}\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))"],
                          capture_output=True, text=True, env=environ, cwd=ROOT, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    loaded: list[str] = json.loads(proc.stdout.strip().splitlines()[-1])
    return loaded


def heavy_in(modules: list[str], heavy: tuple[str, ...]) -> list[str]:
    return sorted(m for m in modules if any(m == h or m.startswith(h + ".") for h in heavy))


def test_building_the_command_line_imports_nothing_heavy(tmp_path: Path) -> None:
    loaded = modules_after("import app.cli\napp.cli._parser()", tmp_path)
    assert {f"app.cli.{name}" for name in COMMANDS} <= set(loaded)
    assert heavy_in(loaded, HEAVY) == []


def test_panic_reaches_the_flag_without_alembic_pandas_or_the_engine(tmp_path: Path) -> None:
    open_store(f"sqlite:///{tmp_path}/bulwark.db").dispose()
    loaded = modules_after("from app.cli import main\nassert main(['panic', '--timeout', '0.1']) == 0", tmp_path)
    assert heavy_in(loaded, NOT_FOR_PANIC) == []


def test_help_lists_every_command_and_the_desk_windows_options(tmp_path: Path) -> None:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("BULWARK_")}
    environ["BULWARK_HOME"] = str(tmp_path)
    helped = subprocess.run([sys.executable, str(ROOT / "main.py"), "--help"], capture_output=True, text=True,
                            env=environ, timeout=60, check=False)
    assert helped.returncode == 0, helped.stderr
    for command in ("simulate", "panic", "rearm", "audit", "limits"):
        assert command in helped.stdout
    # With no command main.py is the desk window (tests/ui/test_desk_cli.py runs it).
    assert "With no COMMAND: the desk window" in helped.stdout
    for option in ("--demo", "--broker", "--light", "--no-global-hotkey"):
        assert option in helped.stdout
