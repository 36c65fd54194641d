"""`panic` after a Breeze desk died: it cancels at Breeze because that desk recorded it traded there,
whatever the settings say; `--broker breeze` does the same when told. Subprocesses, a file keyring
and the local Breeze emulator, as in test_breeze_cli.py."""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.store.last_desk import record_last_desk
from tests.breeze_emulator import BreezeEmulator
from tests.support.desk_process import ROOT, desk, run_main

pytestmark = pytest.mark.slow

TOKEN = "48213577"


@pytest.fixture
def emulator() -> Iterator[BreezeEmulator]:
    with BreezeEmulator(tick_interval_s=0.05) as emu:
        yield emu


def keyring_env(home: Path) -> dict[str, str]:
    return {
        "PYTHON_KEYRING_BACKEND": "tests.support.file_keyring.TestFileKeyring",
        "BULWARK_TEST_KEYRING_FILE": str(home.parent / "keyring.json"),
        "PYTHONPATH": str(ROOT),
    }


def main(home: Path, emulator: BreezeEmulator, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return run_main(home, *args, stdin=stdin, env={**keyring_env(home), **emulator.env()})


def store_credentials(home: Path, emulator: BreezeEmulator) -> None:
    proc = main(home, emulator, "credentials", "set", "--broker", "breeze", "--stdin",
                stdin=f"{emulator.api_key}\n{emulator.api_secret}\n")
    assert proc.returncode == 0, proc.stderr


def test_panic_after_a_killed_breeze_desk_cancels_at_breeze_though_the_settings_say_paper(
    tmp_path: Path, emulator: BreezeEmulator
) -> None:
    home = tmp_path / "home"
    store_credentials(home, emulator)
    with desk(home, "--broker", "breeze", "--session-token-stdin", "--orders-per-sec", "4", "--instruments", "6",
              stdin=f"{TOKEN}\n", env={**keyring_env(home), **emulator.env()}) as running:
        running.wait_until(lambda: emulator.working_count() >= 1, "orders working at Breeze")
        running.kill()
    # Prices stand still from here, so nothing fills or is cancelled but by the panic. The walk may
    # have filled the desk's orders before the freeze, so one more order far from the price is put
    # in the dead desk's name: at least one is certainly working when panic runs.
    emulator.freeze_walk()
    emulator.add_order("NSE:RELIANCE", "buy", 1, 100_000)
    assert json.loads((home / "last-desk.json").read_text())["broker"] == "breeze"
    # The settings are paper (the default): the desk ran on Breeze through `simulate --broker breeze`.
    proc = main(home, emulator, "panic", "--timeout", "0.3")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "broker breeze: the last desk in this data folder started on it" in proc.stdout
    assert "the settings say paper" in proc.stdout
    cancelled = re.search(r"cancelled (\d+) working orders at Breeze", proc.stdout)
    assert cancelled is not None and int(cancelled.group(1)) >= 1, proc.stdout
    assert emulator.working_count() == 0
    assert emulator.rate_limit_breaches == 0


def test_panic_with_broker_breeze_cancels_there_though_the_last_desk_was_paper(
    tmp_path: Path, emulator: BreezeEmulator
) -> None:
    home = tmp_path / "home"
    store_credentials(home, emulator)
    record_last_desk(home, "paper")
    ids = [emulator.add_order("NSE:RELIANCE", "buy", 1, 100_000 - 5 * n) for n in range(3)]
    proc = main(home, emulator, "panic", "--timeout", "0.3", "--broker", "breeze", "--session-token-stdin",
                stdin=f"{TOKEN}\n")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "broker breeze: given with --broker" in proc.stdout
    assert "cancelled 3 working orders at Breeze" in proc.stdout
    assert emulator.working_count() == 0
    cancelled = sorted(c.body["order_id"] for c in emulator.calls if c.method == "DELETE" and c.body)
    assert cancelled == sorted(ids)
