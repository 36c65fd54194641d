"""`main.py --version` and `main.py --self-test`: what an installer runs to prove the desk works on a machine."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from importlib.metadata import version as installed_version
from pathlib import Path

import pytest

import app
from app.cli import main
from app.version import version_line

ROOT = Path(__file__).resolve().parents[1]
CHECKS = ("data folder", "modules", "Breeze SDK", "calendar", "window", "desk", "local API", "order placed", "order cancelled",
          "kill switch", "cancel sweep", "kill bar", "halted desk refuses orders", "desk closed", "audit chain",
          "audit records")


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    trader = tmp_path / "trader"
    trader.mkdir(exist_ok=True)
    (trader / "bulwark.toml").write_text('broker = "breeze"\n', encoding="utf-8")
    environ = {k: v for k, v in os.environ.items() if not k.startswith("BULWARK_")}
    scratch = tmp_path / "scratch"
    scratch.mkdir(exist_ok=True)
    environ.update({
        # The trader's own desk: the self-test must neither read nor change any of it.
        "BULWARK_HOME": str(trader),
        "BULWARK_DB_URL": "postgresql+psycopg://nobody@127.0.0.1:9/firm",
        "BULWARK_BROKER": "breeze",
        # Any use of the system keyring would fail: the chain can be keyed only by the self-test's own keyring.
        "PYTHON_KEYRING_BACKEND": "keyring.backends.fail.Keyring",
        "TMPDIR": str(scratch),
        "QT_QPA_PLATFORM": "xcb",
    })
    environ.update(extra)
    return environ


def _self_test(tmp_path: Path, *prefix: str, **extra: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, *prefix] if prefix else [sys.executable, str(ROOT / "main.py"), "--self-test"]
    return subprocess.run(command, capture_output=True, text=True, env=_env(tmp_path, **extra), cwd=ROOT,
                          timeout=180, check=False)


def _checks(out: str) -> dict[str, list[str]]:
    seen: dict[str, list[str]] = {}
    for match in re.finditer(r"^(ok  |FAIL)  ([^:]+): ", out, re.MULTILINE):
        seen.setdefault(match.group(2), []).append(match.group(1).strip())
    return seen


@pytest.mark.slow
def test_the_self_test_runs_every_check_leaves_nothing_behind_and_never_touches_the_traders_desk(tmp_path: Path) -> None:
    trader_before = sorted(p.name for p in (tmp_path / "trader").iterdir()) if (tmp_path / "trader").exists() else None
    result = _self_test(tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    seen = _checks(result.stdout)
    assert set(seen) == set(CHECKS), result.stdout
    assert all(outcome == "ok" for outcomes in seen.values() for outcome in outcomes), result.stdout
    assert "on Qt's offscreen platform" in result.stdout
    assert re.search(r"audit chain: \d+ records verified, keyed with [0-9a-f]{16}", result.stdout), result.stdout
    assert re.search(r"^self-test passed: 18 checks in [\d.]+ s$", result.stdout, re.MULTILINE), result.stdout
    # Qt's own chatter goes to the (removed) log, not the terminal.
    assert "propagateSizeHints" not in result.stderr
    # Its temporary data folder is gone, and the trader's folder holds exactly what it held.
    assert list((tmp_path / "scratch").iterdir()) == []
    assert trader_before is None or trader_before == ["bulwark.toml"]
    assert sorted(p.name for p in (tmp_path / "trader").iterdir()) == ["bulwark.toml"]


@pytest.mark.slow
def test_a_failed_check_exits_1_names_it_and_keeps_the_folder_with_its_log(tmp_path: Path) -> None:
    # The installation is fine; the self-test is told to expect a fill that a resting order never gets.
    code = ("import sys; from app.cli import self_test; self_test.EXPECTED_RECORDS['order.filled'] = 1; "
            "sys.exit(self_test.run())")
    result = _self_test(tmp_path, "-c", code)
    assert result.returncode == 1, result.stdout + result.stderr
    assert re.search(r"^FAIL  audit records: missing or too few: \{.order.filled.: 0\}$", result.stdout, re.MULTILINE), result.stdout
    kept = re.search(r"^self-test FAILED: 1 of 18 checks; the data folder and its log are kept in (\S+)$",
                     result.stdout, re.MULTILINE)
    assert kept is not None, result.stdout
    folder = Path(kept.group(1))
    assert folder.parent == tmp_path / "scratch"
    log = (folder / "logs" / "bulwark.log").read_text(encoding="utf-8")
    assert re.search(r" INFO app\.engine\.engine: engine running", log)
    # What Qt itself said is in the log, under its own logger, rather than lost on a terminal.
    assert re.search(r" WARNING qt\.\S+: This plugin does not support", log)


def test_no_temporary_folder_is_a_clear_failure(tmp_path: Path) -> None:
    missing = tmp_path / "no" / "such" / "folder"
    code = (f"import sys, tempfile; tempfile.tempdir = {str(missing)!r}; from app.cli import self_test; "
            "sys.exit(self_test.run())")
    result = _self_test(tmp_path, "-c", code)
    assert result.returncode == 1
    assert f"FAIL  data folder: no temporary folder could be made in {missing}: " in result.stdout
    assert "self-test FAILED: set TMPDIR to a folder this user can write to" in result.stdout
    assert not missing.exists()


@pytest.mark.parametrize("argv", [
    ["--self-test", "simulate"],
    ["--self-test", "--broker", "breeze"],
    ["--self-test", "--demo"],
    ["--self-test", "--instruments", "300"],
])
def test_the_self_test_runs_alone(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("main.py: --self-test runs alone, on its own paper desk; not with ")
    assert argv[1] in err


def test_version_is_the_packages_version_and_says_where_it_came_from(tmp_path: Path) -> None:
    # A narrow terminal: the line stays whole (argparse's own --version would rewrap it).
    result = subprocess.run([sys.executable, str(ROOT / "main.py"), "--version"], capture_output=True, text=True,
                            cwd=ROOT, timeout=60, check=False, env={**os.environ, "COLUMNS": "30"})
    assert result.returncode == 0
    assert result.stdout.startswith(f"Bulwark {app.__version__} (from source; Python ")
    assert result.stdout.count("\n") == 1
    # pyproject.toml reads its version from app.__version__: one number, whatever asks.
    assert installed_version("bulwark") == app.__version__
    info = tmp_path / "build-info.json"
    info.write_text(json.dumps({"commit": "abc1234", "built": "2026-11-30", "platform": "debian-12-x86_64"}))
    assert version_line(info).startswith(
        f"Bulwark {app.__version__} (packaged: commit abc1234, built 2026-11-30, on debian-12-x86_64; Python ")
    info.write_text("{not json")
    assert "(from source;" in version_line(info)


@pytest.mark.slow
def test_a_build_without_the_breeze_sdks_pandas_fails_the_sdk_check(tmp_path: Path) -> None:
    # What a packaged build that excluded pandas looked like: the desk modules import (they load the SDK only when
    # a desk starts on Breeze), the paper desk runs, and only loading the SDK as the adapter does finds it.
    code = "import sys; sys.modules['pandas'] = None; from app.cli import self_test; sys.exit(self_test.run())"
    result = _self_test(tmp_path, "-c", code)
    assert result.returncode == 1, result.stdout
    failed = [line for line in result.stdout.splitlines() if line.startswith("FAIL")]
    assert len(failed) == 1, result.stdout
    assert failed[0].startswith("FAIL  Breeze SDK: does not load: BrokerError: ")
    assert "pandas" in failed[0]
