"""`main.py credentials`, `simulate --broker breeze` and `panic` as a trader runs them: subprocesses,
a file keyring, and the local Breeze emulator standing in for ICICI's servers."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.breeze_emulator import BreezeEmulator
from tests.brokers.breeze.harness import NIFTY_FUT
from tests.support.calendar import cover_today

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[3]
TOKEN = "48213577"


@pytest.fixture
def emulator() -> Iterator[BreezeEmulator]:
    with BreezeEmulator(tick_interval_s=0.05) as emu:
        yield emu


def run_main(home: Path, *args: str, stdin: str = "", env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("BULWARK_")}
    environ.update(
        BULWARK_HOME=str(cover_today(home)),
        PYTHON_KEYRING_BACKEND="tests.support.file_keyring.TestFileKeyring",
        BULWARK_TEST_KEYRING_FILE=str(home.parent / "keyring.json"),
        PYTHONPATH=str(ROOT),
    )
    environ.update(env or {})
    workdir = home.parent / "cwd"
    workdir.mkdir(exist_ok=True)
    return subprocess.run(
        [sys.executable, str(ROOT / "main.py"), *args], input=stdin, capture_output=True, text=True,
        env=environ, timeout=180, cwd=workdir, check=False,
    )


def store_credentials(home: Path, emulator: BreezeEmulator) -> None:
    proc = run_main(home, "credentials", "set", "--broker", "breeze", "--stdin",
                    stdin=f"{emulator.api_key}\n{emulator.api_secret}\n")
    assert proc.returncode == 0, proc.stderr


def test_credentials_set_status_delete_never_show_the_values(tmp_path: Path) -> None:
    home = tmp_path / "home"
    proc = run_main(home, "credentials", "set", "--broker", "breeze", "--stdin", stdin="AKtest12345\nSECRETvalue987\n")
    assert proc.returncode == 0, proc.stderr
    stored = json.loads((tmp_path / "keyring.json").read_text())
    assert stored["bulwark/breeze.api_key"] == "AKtest12345"
    assert stored["bulwark/breeze.api_secret"] == "SECRETvalue987"
    status = run_main(home, "credentials", "status")
    assert status.returncode == 0
    assert "API key: stored" in status.stdout and "API secret: stored" in status.stdout
    for proc_ in (proc, status):
        assert "SECRETvalue987" not in proc_.stdout + proc_.stderr
        assert "AKtest12345" not in proc_.stdout + proc_.stderr
    assert run_main(home, "credentials", "delete").returncode == 0
    assert "API key: not stored" in run_main(home, "credentials", "status").stdout


@pytest.mark.parametrize("given", ["\n\n", "AK only\nsecret\n", "AK1\n\n"])
def test_credentials_set_refuses_bad_input_and_stores_nothing(tmp_path: Path, given: str) -> None:
    proc = run_main(tmp_path / "home", "credentials", "set", "--stdin", stdin=given)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "nothing was stored" in proc.stderr
    assert not (tmp_path / "keyring.json").exists()


def test_credentials_set_refuses_an_insecure_keyring(tmp_path: Path) -> None:
    proc = run_main(tmp_path / "home", "credentials", "set", "--stdin", stdin="AK1\nSEC1\n",
                    env={"PYTHON_KEYRING_BACKEND": "keyring.backends.fail.Keyring"})
    assert proc.returncode == 1
    assert "no secure keyring" in proc.stderr


def test_simulate_on_breeze_through_the_real_sdk(tmp_path: Path, emulator: BreezeEmulator) -> None:
    home = tmp_path / "home"
    store_credentials(home, emulator)
    proc = run_main(
        home, "simulate", "--broker", "breeze", "--session-token-stdin", "--seconds", "4", "--json",
        "--orders-per-sec", "4", "--instruments", "6", stdin=f"{TOKEN}\n", env={**emulator.env(), "BULWARK_LOG_LEVEL": "DEBUG"},
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(proc.stdout)
    assert report["broker"]["name"] == "breeze"
    assert report["orders"]["submitted"] >= 8 and report["orders"]["accepted"] > 0
    assert report["audit"]["verified"] is True
    assert report["broker"]["total_requests"] == sum(1 for c in emulator.calls)
    # The emulator sends half its prices with float noise (1000.4000000000001): none may be refused.
    assert (report["broker"]["refused_prices"], report["broker"]["malformed_messages"]) == (0, 0), report["broker"]
    assert report["broker"]["handler_errors"] == {} and report["broker"]["unreadable_orders"] == 0
    assert emulator.rate_limit_breaches == 0
    assert "api_key=" in proc.stderr, "the login URL is printed before the token is read"
    # The SDK's ./logs never appears, here or in the working directory.
    assert list((tmp_path / "cwd").iterdir()) == []
    # Today's token is kept in the keyring for panic; the secrets reach no file in the data folder.
    stored = json.loads((tmp_path / "keyring.json").read_text())
    assert stored["bulwark/breeze.session_token"] == TOKEN
    for path in home.rglob("*"):
        if path.is_file() and path.suffix != ".zip":
            data = path.read_bytes()
            for secret in (emulator.api_secret, emulator.api_key, TOKEN):
                assert secret.encode() not in data, f"{secret[:3]}… found in {path}"


def test_simulate_on_breeze_refuses_a_real_broker_endpoint(tmp_path: Path) -> None:
    proc = run_main(tmp_path / "home", "simulate", "--broker", "breeze", "--seconds", "1",
                    env={"BULWARK_BREEZE_API_URL": "https://api.icicidirect.com/breezeapi/api/v1/"})
    assert proc.returncode == 2
    assert "only against a local Breeze emulator" in proc.stderr


def test_simulate_on_breeze_without_credentials_says_how_to_store_them(tmp_path: Path, emulator: BreezeEmulator) -> None:
    proc = run_main(tmp_path / "home", "simulate", "--broker", "breeze", "--seconds", "1", env=emulator.env())
    assert proc.returncode == 2
    assert "credentials set --broker breeze" in proc.stderr


def test_simulate_on_breeze_with_a_wrong_token_fails_cleanly(tmp_path: Path, emulator: BreezeEmulator) -> None:
    home = tmp_path / "home"
    store_credentials(home, emulator)
    proc = run_main(home, "simulate", "--broker", "breeze", "--session-token-stdin", "--seconds", "1",
                    stdin="11111111\n", env=emulator.env())
    assert proc.returncode == 1
    assert "did not connect" in proc.stderr and "Please check session key" in proc.stderr


@pytest.mark.parametrize("every_book_lists_every_order", [False, True], ids=["books-by-exchange", "books-list-all"])
def test_panic_cancels_at_breeze_directly_when_no_desk_answers(
    tmp_path: Path, emulator: BreezeEmulator, every_book_lists_every_order: bool,
) -> None:
    """Found (books-list-all): against a server that listed every order under each exchange, panic
    reported "cancelled 24 working orders" for 6."""
    emulator.faults.books_ignore_exchange = every_book_lists_every_order
    home = tmp_path / "home"
    store_credentials(home, emulator)
    ids = [emulator.add_order("NSE:RELIANCE", "buy", 1, 100_000 - 5 * n) for n in range(5)]
    ids.append(emulator.add_order(NIFTY_FUT, "sell", 65, 3_000_000))
    assert emulator.working_count() == 6
    proc = run_main(home, "panic", "--timeout", "0.3", "--session-token-stdin", stdin=f"{TOKEN}\n",
                    env={**emulator.env(), "BULWARK_BROKER": "breeze"})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert emulator.working_count() == 0
    assert "cancelled 6 working orders at Breeze" in proc.stdout
    cancels = [c for c in emulator.calls if c.method == "DELETE"]
    assert sorted(c.body["order_id"] for c in cancels if c.body) == sorted(ids)
    assert emulator.rate_limit_breaches == 0


def test_panic_without_a_session_token_tells_the_operator_to_act(tmp_path: Path, emulator: BreezeEmulator) -> None:
    home = tmp_path / "home"
    store_credentials(home, emulator)
    emulator.add_order("NSE:RELIANCE", "buy", 1, 100_000)
    proc = run_main(home, "panic", "--timeout", "0.3", env={**emulator.env(), "BULWARK_BROKER": "breeze"})
    assert proc.returncode == 1
    assert "no Breeze session token for today" in proc.stderr
    assert "ACTION NEEDED" in proc.stderr
    assert emulator.working_count() == 1
