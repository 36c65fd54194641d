"""`main.py keyring status|use-file`, and every command unlocking the encrypted keyring file first (panic never asking).

In-process runs use a cheap argon2id cost and in-memory keyrings; the last test runs a desk and
``panic`` as processes, the desk unlocking the file from a descriptor and panic never asked.
"""

from __future__ import annotations

import getpass
import io
import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import keyring
import pytest
from keyring.backends import fail

from app.cli import keyring_setup, main
from app.domain.audit import AuditSource
from app.security import file_keyring as fk
from app.security import vault
from app.security.file_keyring import (
    KdfCost,
    create_file_keyring,
    keyring_file,
    open_file_keyring,
    record_in_settings,
)
from app.security.memory_keyring import MemoryKeyring
from app.store.audit_writer import AuditWriter
from app.store.chain_key import ChainKeys, entry_name
from app.store.migrate import open_store
from tests.support.calendar import cover_today
from tests.support.desk_process import audit_records, desk, run_main, states, url_of
from tests.support.memory_keyring import RaisingKeyring

FAST = KdfCost(time_cost=1, memory_kib=8, parallelism=1)
PASSPHRASE = "correct horse battery staple"
API_KEY, API_SECRET = "key-4f1c2e", "secret-9ab7d3"


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in [n for n in os.environ if n.startswith("BULWARK_")]:
        monkeypatch.delenv(name)
    monkeypatch.delenv("PYTHON_KEYRING_BACKEND", raising=False)
    monkeypatch.setenv("BULWARK_HOME", str(tmp_path))
    monkeypatch.setattr(fk, "DEFAULT_COST", FAST)
    return tmp_path


@pytest.fixture
def prompts(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """What getpass would be asked (and answers nothing): no test here may reach a real terminal."""
    asked: list[str] = []

    def refuse(prompt: str = "") -> str:
        asked.append(prompt)
        raise EOFError

    monkeypatch.setattr(getpass, "getpass", refuse)
    monkeypatch.setattr(keyring_setup, "_terminal_available", lambda: False)
    return asked


def cli(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *args: str,
        stdin: str = "") -> tuple[int, str, str]:
    monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def offer(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[str], None]]:
    """Puts a passphrase on a pipe and names its reading end in BULWARK_KEYRING_PASSPHRASE_FD, as a script would."""
    opened: list[int] = []

    def put(passphrase: str) -> None:
        reader, writer = os.pipe()
        os.write(writer, f"{passphrase}\n".encode())
        os.close(writer)
        opened.append(reader)
        monkeypatch.setenv(fk.PASSPHRASE_FD_ENV, str(reader))

    yield put
    for fd in opened:
        os.close(fd)


def set_up_file(home: Path) -> None:
    """The encrypted keyring file with the Breeze credentials in it, and the setting that says to use it."""
    made = create_file_keyring(home, PASSPHRASE, cost=FAST)
    made.set_password(vault.SERVICE, vault.BREEZE_API_KEY, API_KEY)
    made.set_password(vault.SERVICE, vault.BREEZE_API_SECRET, API_SECRET)
    record_in_settings(home / "bulwark.toml")


def keyed_chain(home: Path, backend: keyring.backend.KeyringBackend) -> str:
    """A store whose chain is keyed with a key kept in ``backend``; returns the key's fingerprint."""
    engine = open_store(url_of(home))
    writer = AuditWriter(engine, keys=ChainKeys(backend), create_key=True)
    writer.start()
    try:
        writer.append_blocking("order.proposed", {"i": 1}, actor="alice", source=AuditSource.API)
    finally:
        writer.close()
        engine.dispose()
    assert writer.key_fingerprint is not None
    return writer.key_fingerprint


# -- status -----------------------------------------------------------------------------------------


def test_status_says_plainly_that_there_is_no_secure_keyring(home: Path, monkeypatch: pytest.MonkeyPatch,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = cli(monkeypatch, capsys, "keyring", "status")
    assert code == 1
    assert out.startswith("No secure keyring: keyring.backends.fail.Keyring stores nothing")
    assert "python main.py keyring use-file" in out


def test_status_of_the_file_needs_no_passphrase(home: Path, monkeypatch: pytest.MonkeyPatch,
                                                capsys: pytest.CaptureFixture[str], prompts: list[str]) -> None:
    set_up_file(home)
    code, out, _ = cli(monkeypatch, capsys, "keyring", "status")
    assert code == 0 and prompts == []
    assert f"Secrets are in the encrypted keyring file {keyring_file(home)}, which is locked" in out
    assert "panic never asks" in out


# -- use-file ---------------------------------------------------------------------------------------


def test_use_file_creates_the_file_records_the_setting_and_copies_the_desks_secrets_and_chain_key(
    home: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], prompts: list[str],
    offer: Callable[[str], None],
) -> None:
    system = MemoryKeyring()
    system.set_password(vault.SERVICE, vault.BREEZE_API_KEY, API_KEY)
    system.set_password(vault.SERVICE, vault.BREEZE_API_SECRET, API_SECRET)
    fingerprint = keyed_chain(home, system)
    keyring.set_keyring(system)

    code, out, err = cli(monkeypatch, capsys, "keyring", "use-file", "--passphrase-stdin", stdin=f"{PASSPHRASE}\n")
    assert code == 0, err
    assert f"created the encrypted keyring file {keyring_file(home)}" in out
    assert f"breeze.api_key, breeze.api_secret, {entry_name(fingerprint)}" in out
    assert 'vault = "encrypted-file"' in (home / "bulwark.toml").read_text()
    for secret in (API_KEY, API_SECRET, PASSPHRASE):
        assert secret not in out + err
    opened = open_file_keyring(home, PASSPHRASE)
    assert opened.get_password(vault.SERVICE, vault.BREEZE_API_SECRET) == API_SECRET
    # The old keyring keeps its entries; the trader removes them once the desk runs on the file.
    assert system.get_password(vault.SERVICE, vault.BREEZE_API_SECRET) == API_SECRET

    # A later command, in a process whose keyring knows nothing: the chain verifies with the key from the file.
    keyring.set_keyring(fail.Keyring())
    offer(PASSPHRASE)
    code, out, err = cli(monkeypatch, capsys, "audit", "verify")
    assert code == 0, out + err
    assert prompts == []


def test_no_copy_leaves_the_new_file_empty(home: Path, monkeypatch: pytest.MonkeyPatch,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    system = MemoryKeyring()
    system.set_password(vault.SERVICE, vault.BREEZE_API_KEY, API_KEY)
    keyring.set_keyring(system)
    code, out, _ = cli(monkeypatch, capsys, "keyring", "use-file", "--no-copy", "--passphrase-stdin",
                       stdin=f"{PASSPHRASE}\n")
    assert code == 0 and "copied" not in out
    assert open_file_keyring(home, PASSPHRASE).get_password(vault.SERVICE, vault.BREEZE_API_KEY) is None


def test_nothing_is_copied_out_of_a_keyring_that_does_not_protect_secrets(
    home: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, _ = cli(monkeypatch, capsys, "keyring", "use-file", "--passphrase-stdin", stdin=f"{PASSPHRASE}\n")
    assert code == 0
    assert "nothing copied from keyring.backends.fail.Keyring: it does not protect secrets" in out


def test_a_keyring_that_raises_while_copying_is_reported_and_the_file_is_still_made(
    home: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    keyring.set_keyring(RaisingKeyring())
    code, out, err = cli(monkeypatch, capsys, "keyring", "use-file", "--passphrase-stdin", stdin=f"{PASSPHRASE}\n")
    assert code == 0
    assert "keyring: breeze.api_key could not be copied: KeyringError" in err
    assert "copied from tests.support.memory_keyring.RaisingKeyring: nothing" in out
    assert keyring_file(home).is_file()


@pytest.mark.parametrize(("typed", "problem"), [
    ("", "the passphrase is empty"),
    ("sh0rt!", "shorter than 12 characters"),
    ("x" * 10_240, "longer than 1024 characters"),
    ("bell\x07 in the phrase", "control character"),
], ids=["empty", "short", "10kB", "control"])
def test_a_passphrase_use_file_cannot_use_creates_nothing_and_records_nothing(
    home: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], typed: str, problem: str,
) -> None:
    code, _, err = cli(monkeypatch, capsys, "keyring", "use-file", "--passphrase-stdin", stdin=f"{typed}\n")
    assert code == 2
    assert problem in err and "nothing was created" in err
    assert not keyring_file(home).exists() and not (home / "bulwark.toml").exists()


def test_a_unicode_passphrase_is_accepted(home: Path, monkeypatch: pytest.MonkeyPatch,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    phrase = "पासवर्ड सुरक्षित है ₹"
    code, _, err = cli(monkeypatch, capsys, "keyring", "use-file", "--passphrase-stdin", stdin=f"{phrase}\n")
    assert code == 0, err
    assert open_file_keyring(home, phrase).unlocked


def test_two_different_passphrases_at_the_terminal_create_nothing(
    home: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    answers = iter(["correct horse battery staple", "correct horse battery stapel"])
    monkeypatch.setattr(getpass, "getpass", lambda prompt="": next(answers))
    code, _, err = cli(monkeypatch, capsys, "keyring", "use-file")
    assert code == 2 and "the two passphrases differ; nothing was created" in err
    assert not keyring_file(home).exists()


def test_use_file_on_an_existing_file_needs_its_passphrase_and_then_records_the_setting(
    home: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    create_file_keyring(home, PASSPHRASE, cost=FAST)
    before = keyring_file(home).read_bytes()
    code, _, err = cli(monkeypatch, capsys, "keyring", "use-file", "--passphrase-stdin", stdin="not the passphrase\n")
    assert code == 1 and "wrong passphrase" in err
    assert keyring_file(home).read_bytes() == before and not (home / "bulwark.toml").exists()
    code, out, _ = cli(monkeypatch, capsys, "keyring", "use-file", "--passphrase-stdin", stdin=f"{PASSPHRASE}\n")
    assert code == 0 and "already exists and this passphrase opens it" in out
    assert 'vault = "encrypted-file"' in (home / "bulwark.toml").read_text()
    code, out, _ = cli(monkeypatch, capsys, "keyring", "use-file", "--passphrase-stdin", stdin="")
    assert code == 0 and "already keeps its secrets" in out


# -- every command unlocks the file first ---------------------------------------------------------


def test_a_command_unlocks_the_file_from_the_descriptor(home: Path, monkeypatch: pytest.MonkeyPatch,
                                                         capsys: pytest.CaptureFixture[str], prompts: list[str],
                                                         offer: Callable[[str], None]) -> None:
    set_up_file(home)
    offer(PASSPHRASE)
    code, out, err = cli(monkeypatch, capsys, "credentials", "status")
    assert code == 0, err
    assert "keyring backend: app.security.file_keyring.EncryptedFileKeyring (secure)" in out
    assert "Breeze API key: stored" in out and prompts == []


def test_a_wrong_passphrase_on_the_descriptor_stops_the_command_and_changes_nothing(
    home: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], offer: Callable[[str], None],
) -> None:
    set_up_file(home)
    before = keyring_file(home).read_bytes()
    offer("correct horse battery stapler")
    code, out, err = cli(monkeypatch, capsys, "credentials", "delete")
    assert code == 1 and out == ""
    assert "wrong passphrase for the encrypted keyring file" in err and "stapler" not in err
    assert keyring_file(home).read_bytes() == before


def test_at_a_terminal_a_command_asks_three_times(home: Path, monkeypatch: pytest.MonkeyPatch,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    set_up_file(home)
    monkeypatch.setattr(keyring_setup, "_terminal_available", lambda: True)
    answers = iter(["wrong one here", "wrong two here", "wrong three here"])
    monkeypatch.setattr(getpass, "getpass", lambda prompt="": next(answers))
    code, _, err = cli(monkeypatch, capsys, "credentials", "status")
    assert code == 1 and "stays locked after 3 wrong passphrases" in err
    assert err.count("try again") == 2

    answers = iter(["wrong one here", PASSPHRASE])
    monkeypatch.setattr(getpass, "getpass", lambda prompt="": next(answers))
    code, out, _ = cli(monkeypatch, capsys, "credentials", "status")
    assert code == 0 and "Breeze API secret: stored" in out


def test_with_no_terminal_and_no_descriptor_a_command_says_how_to_give_the_passphrase(
    home: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], prompts: list[str],
) -> None:
    set_up_file(home)
    code, _, err = cli(monkeypatch, capsys, "credentials", "set", "--stdin", stdin="k\ns\n")
    assert code == 1 and prompts == []
    assert "there is no terminal to ask for its passphrase: give it on a file descriptor named by " \
           "BULWARK_KEYRING_PASSPHRASE_FD" in err


def test_a_setting_naming_a_file_that_is_gone_is_said_and_nothing_else_is_used(
    home: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], prompts: list[str],
) -> None:
    record_in_settings(home / "bulwark.toml")
    code, _, err = cli(monkeypatch, capsys, "credentials", "status")
    assert code == 1
    assert f'the settings say vault = "encrypted-file", but there is no encrypted keyring file at {keyring_file(home)}' in err
    code, _, err = cli(monkeypatch, capsys, "keyring", "status")
    assert code == 1 and "keyring use-file" in err


def test_a_keyring_that_raises_gives_commands_a_clear_message(home: Path, monkeypatch: pytest.MonkeyPatch,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    keyring.set_keyring(RaisingKeyring())
    code, _, err = cli(monkeypatch, capsys, "credentials", "status")
    assert code == 1
    assert "the keyring (tests.support.memory_keyring.RaisingKeyring) could not be read: KeyringError" in err
    assert "Traceback" not in err


# -- panic never asks ---------------------------------------------------------------------------------


def test_panic_never_asks_and_writes_the_halt_even_when_the_chain_key_is_locked_in_the_file(
    home: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], prompts: list[str],
) -> None:
    set_up_file(home)
    keyed_chain(home, open_file_keyring(home, PASSPHRASE))
    keyring.set_keyring(fail.Keyring())
    monkeypatch.setattr(keyring_setup, "_terminal_available", lambda: True)  # a terminal is there: still no prompt
    code, out, err = cli(monkeypatch, capsys, "panic", "--reason", "runaway strategy", "--timeout", "0.1")
    assert code == 0, out + err
    assert prompts == []
    assert "done: the next start of the desk is HALTED" in out
    assert states(home)[-1][:2] == ("HALTED", "runaway strategy")


@pytest.mark.slow
def test_panic_reaches_a_desk_running_on_the_encrypted_file_without_its_passphrase(tmp_path: Path) -> None:
    """A desk unlocks the file from a descriptor (its stdin); panic, with no passphrase and no terminal, halts it."""
    home = cover_today(tmp_path / "desk")
    set_up_file(home)
    with desk(home, stdin=f"{PASSPHRASE}\n", env={fk.PASSPHRASE_FD_ENV: "0"}) as running:
        halted = run_main(home, "panic", "--reason", "stop everything", "--timeout", "20")
        assert halted.returncode == 0, halted.stdout + halted.stderr + running.output()[-2000:]
        assert "the desk confirmed: trading HALTED" in halted.stdout
    # The desk keyed the chain with a key it stored in the file; audit verify finds it there.
    [keyed] = audit_records(home, "audit.chain_keyed")
    fingerprint = json.loads(str(keyed["payload"]))["key"]
    verified = run_main(home, "audit", "verify", stdin=f"{PASSPHRASE}\n", env={fk.PASSPHRASE_FD_ENV: "0"})
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert open_file_keyring(home, PASSPHRASE).get_password(vault.SERVICE, entry_name(fingerprint))
    assert open_file_keyring(home, PASSPHRASE).get_password(vault.SERVICE, vault.BREEZE_API_KEY) == API_KEY
