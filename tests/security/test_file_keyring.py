"""The encrypted keyring file: created and unlocked only with its passphrase, never plaintext, never a prompt of its own.

Every file here is made with a cheap argon2id cost (the file records it, so opening uses it too);
the desk's own cost is checked once against OWASP's recommendation.
"""

from __future__ import annotations

import getpass
import logging
import os
import stat
import threading
import unicodedata
from pathlib import Path

import keyring
import pytest
from keyring.backends import fail, null
from keyring.backends.chainer import ChainerBackend
from keyring.errors import KeyringError
from keyrings.cryptfile.cryptfile import CryptFileKeyring
from keyrings.cryptfile.file import EncryptedKeyring, PlaintextKeyring

from app.security import file_keyring as fk
from app.security import vault
from app.security.file_keyring import (
    EncryptedFileKeyring,
    FileKeyringError,
    KdfCost,
    KeyringLocked,
    WrongPassphrase,
    create_file_keyring,
    keyring_file,
    keyring_status,
    open_file_keyring,
    passphrase_problems,
    read_passphrase_fd,
    record_in_settings,
)
from app.security.keyring_choice import select_system_keyring
from app.security.memory_keyring import MemoryKeyring
from app.settings import load_settings
from app.store.chain_key import ChainKeys, is_secure_backend
from tests.support import file_keyring as plaintext_test_backend
from tests.support.memory_keyring import RaisingKeyring

FAST = KdfCost(time_cost=1, memory_kib=8, parallelism=1)
PASSPHRASE = "correct horse battery staple"
SECRET = "api-secret-\u20b9-7f3a9c"


@pytest.fixture(autouse=True)
def no_prompt(monkeypatch: pytest.MonkeyPatch) -> None:
    """keyrings.cryptfile prompts with getpass when it wants a passphrase: here it must never get that far."""
    def refuse(prompt: str = "") -> str:
        raise AssertionError(f"prompted: {prompt}")

    monkeypatch.setattr(getpass, "getpass", refuse)


def made(home: Path, passphrase: str = PASSPHRASE) -> EncryptedFileKeyring:
    return create_file_keyring(home, passphrase, cost=FAST)


# -- create and unlock ------------------------------------------------------------------------------


def test_a_secret_stored_in_the_file_reads_back_after_unlocking_it_again(tmp_path: Path) -> None:
    made(tmp_path).set_password("bulwark", "breeze.api_secret", SECRET)
    reopened = open_file_keyring(tmp_path, PASSPHRASE)
    assert reopened.unlocked
    assert reopened.get_password("bulwark", "breeze.api_secret") == SECRET
    assert reopened.get_password("bulwark", "breeze.api_key") is None


def test_the_file_holds_neither_the_secret_nor_the_passphrase_and_only_its_owner_may_read_it(tmp_path: Path) -> None:
    made(tmp_path).set_password("bulwark", "breeze.api_secret", SECRET)
    raw = keyring_file(tmp_path).read_bytes()
    for text in (SECRET, "api-secret", PASSPHRASE, "horse"):
        assert text.encode("utf-8") not in raw
    if os.name == "posix":
        assert stat.S_IMODE(keyring_file(tmp_path).stat().st_mode) == 0o600
    # Nothing half-written is left beside it; the lock that serialises writers holds nothing.
    assert sorted(p.name for p in tmp_path.iterdir()) in (["keyring.cfg"], ["keyring.cfg", "keyring.cfg.lock"])
    lock = tmp_path / "keyring.cfg.lock"
    assert not lock.exists() or lock.read_bytes() == b""


def test_the_cost_is_recorded_so_the_file_opens_with_the_cost_it_was_made_with(tmp_path: Path) -> None:
    made(tmp_path)
    assert "argon2id t=1 m=8 p=1" in keyring_file(tmp_path).read_text()
    assert open_file_keyring(tmp_path, PASSPHRASE).time_cost == 1


def test_the_desks_own_cost_is_at_or_above_owasps_argon2id_recommendation() -> None:
    cost = fk.DEFAULT_COST
    # OWASP: argon2id, 19 MiB and 2 iterations, or more memory with fewer (46 MiB, 1).
    assert (cost.memory_kib >= 19 * 1024 and cost.time_cost >= 2) or (cost.memory_kib >= 46 * 1024)


def test_a_wrong_passphrase_is_refused_clearly_and_changes_nothing(tmp_path: Path) -> None:
    made(tmp_path).set_password("bulwark", "breeze.api_secret", SECRET)
    before = keyring_file(tmp_path).read_bytes()
    attempt = EncryptedFileKeyring(keyring_file(tmp_path))
    with pytest.raises(WrongPassphrase) as refused:
        attempt.unlock("correct horse battery stapler")
    assert "wrong passphrase" in str(refused.value) and "nothing was read or changed" in str(refused.value)
    assert "stapler" not in str(refused.value)
    assert not attempt.unlocked
    with pytest.raises(KeyringLocked):
        attempt.get_password("bulwark", "breeze.api_secret")
    assert keyring_file(tmp_path).read_bytes() == before


@pytest.mark.parametrize(("passphrase", "problem"), [
    ("", "empty"),
    (" " * 20, "empty"),
    ("sh0rt!", "shorter than 12"),
    ("x" * 10_240, "longer than 1024"),
    ("tab\tinside the phrase", "control character"),
    ("escape \x1b[31m red", "control character"),
    ("two\nlines of phrase", "control character"),
    (" leading space phrase", "starts or ends with a space"),
], ids=["empty", "spaces", "short", "10kB", "tab", "escape", "newline", "leading-space"])
def test_a_passphrase_that_cannot_protect_the_file_is_refused_and_nothing_is_created(
    tmp_path: Path, passphrase: str, problem: str,
) -> None:
    with pytest.raises(FileKeyringError) as refused:
        made(tmp_path, passphrase)
    assert problem in str(refused.value)
    if passphrase.strip():
        assert passphrase.strip() not in str(refused.value)
    assert list(tmp_path.iterdir()) == []


def test_a_unicode_passphrase_opens_the_file_whichever_way_it_was_typed(tmp_path: Path) -> None:
    composed = unicodedata.normalize("NFC", "पासवर्ड सुरक्षित है ₹ Ärger")
    made(tmp_path, composed).set_password("bulwark", "breeze.api_key", "कुंजी")
    decomposed = unicodedata.normalize("NFD", composed)
    assert decomposed != composed
    assert open_file_keyring(tmp_path, decomposed).get_password("bulwark", "breeze.api_key") == "कुंजी"


@pytest.mark.parametrize("attempt", ["", "x" * 10_240, "ctrl\x00\x07\x1b", "पासवर्ड"], ids=["empty", "10kB", "control", "unicode"])
def test_bad_passphrases_at_unlock_are_refused_without_changing_the_file(tmp_path: Path, attempt: str) -> None:
    made(tmp_path)
    before = keyring_file(tmp_path).read_bytes()
    with pytest.raises(WrongPassphrase) as refused:
        open_file_keyring(tmp_path, attempt)
    if attempt:
        assert attempt[:8] not in str(refused.value)
    assert keyring_file(tmp_path).read_bytes() == before


def test_an_existing_file_is_never_overwritten(tmp_path: Path) -> None:
    made(tmp_path).set_password("bulwark", "breeze.api_key", "kept")
    before = keyring_file(tmp_path).read_bytes()
    with pytest.raises(FileKeyringError, match="already exists"):
        made(tmp_path, "another long passphrase")
    assert keyring_file(tmp_path).read_bytes() == before


def test_opening_a_file_that_is_not_there_says_so_and_creates_nothing(tmp_path: Path) -> None:
    with pytest.raises(FileKeyringError, match="no encrypted keyring file"):
        open_file_keyring(tmp_path, PASSPHRASE)
    assert list(tmp_path.iterdir()) == []


def test_a_locked_file_refuses_reads_and_writes_without_prompting(tmp_path: Path) -> None:
    made(tmp_path).set_password("bulwark", "breeze.api_key", "stored")
    locked = EncryptedFileKeyring(keyring_file(tmp_path))
    with pytest.raises(KeyringLocked, match="locked"):
        locked.get_password("bulwark", "breeze.api_key")
    with pytest.raises(KeyringLocked):
        locked.set_password("bulwark", "breeze.api_key", "replaced")
    assert open_file_keyring(tmp_path, PASSPHRASE).get_password("bulwark", "breeze.api_key") == "stored"


def test_a_locked_file_that_does_not_exist_yet_is_not_created_by_a_write(tmp_path: Path) -> None:
    locked = EncryptedFileKeyring(keyring_file(tmp_path))
    with pytest.raises(KeyringLocked):
        locked.set_password("bulwark", "breeze.api_key", "value")
    assert list(tmp_path.iterdir()) == []


def test_a_change_by_another_process_is_read_not_the_old_value_kept_in_memory(tmp_path: Path) -> None:
    desk = made(tmp_path)
    desk.set_password("bulwark", "breeze.api_key", "old")
    assert desk.get_password("bulwark", "breeze.api_key") == "old"
    other = open_file_keyring(tmp_path, PASSPHRASE)
    other.set_password("bulwark", "breeze.api_key", "new value, longer")
    assert desk.get_password("bulwark", "breeze.api_key") == "new value, longer"
    other.delete_password("bulwark", "breeze.api_key")
    assert desk.get_password("bulwark", "breeze.api_key") is None


def test_two_writers_at_once_lose_neither_ones_entries(tmp_path: Path) -> None:
    made(tmp_path)
    desk, command = open_file_keyring(tmp_path, PASSPHRASE), open_file_keyring(tmp_path, PASSPHRASE)

    def write(opened: EncryptedFileKeyring, prefix: str) -> None:
        for i in range(15):
            opened.set_password("bulwark", f"{prefix}.{i}", f"value {prefix} {i}")

    threads = [threading.Thread(target=write, args=(desk, "desk")), threading.Thread(target=write, args=(command, "cli"))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    reader = open_file_keyring(tmp_path, PASSPHRASE)
    for prefix in ("desk", "cli"):
        assert [reader.get_password("bulwark", f"{prefix}.{i}") for i in range(15)] == \
            [f"value {prefix} {i}" for i in range(15)]


def test_a_locked_file_deletes_nothing(tmp_path: Path) -> None:
    made(tmp_path).set_password("bulwark", "breeze.api_key", "stored")
    with pytest.raises(KeyringLocked):
        EncryptedFileKeyring(keyring_file(tmp_path)).delete_password("bulwark", "breeze.api_key")
    assert open_file_keyring(tmp_path, PASSPHRASE).get_password("bulwark", "breeze.api_key") == "stored"


def test_a_damaged_entry_is_a_clear_keyring_error_not_a_crash(tmp_path: Path) -> None:
    made(tmp_path).set_password("bulwark", "breeze.api_key", "value")
    path = keyring_file(tmp_path)
    text = path.read_text()
    start = text.index("breeze_2eapi_5fkey = ")
    line_start = text.index("\n", start) + 1
    damaged = text[:line_start] + "\tAAAA" + text[line_start + 5:]
    path.write_text(damaged)
    opened = open_file_keyring(tmp_path, PASSPHRASE)
    with pytest.raises(FileKeyringError, match="changed or damaged"):
        opened.get_password("bulwark", "breeze.api_key")


def test_a_tampered_cost_is_refused_before_any_key_derivation(tmp_path: Path) -> None:
    made(tmp_path)
    path = keyring_file(tmp_path)
    path.write_text(path.read_text().replace("argon2id t=1 m=8 p=1", "argon2id t=999 m=99999999 p=1"))
    with pytest.raises(FileKeyringError, match="unusable key-derivation cost"):
        open_file_keyring(tmp_path, PASSPHRASE)


def test_the_passphrase_is_in_no_log_line_and_no_repr(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    opened = made(tmp_path)
    with pytest.raises(WrongPassphrase):
        open_file_keyring(tmp_path, PASSPHRASE + " wrong")
    for text in (caplog.text, repr(opened), str(opened)):
        assert "horse" not in text
    assert "unlocked" in repr(opened)


# -- installed as the process's keyring -----------------------------------------------------------


def test_the_vault_and_the_chain_keys_use_the_unlocked_file_unchanged(tmp_path: Path) -> None:
    keyring.set_keyring(made(tmp_path))
    assert vault.has_secure_store()
    vault.set_secret(vault.BREEZE_API_KEY, "key-123")
    vault.set_secret(vault.BREEZE_API_SECRET, SECRET)
    key = ChainKeys().create()
    assert key is not None

    # A later process: the file, unlocked with the passphrase, gives back the secrets and the chain key.
    keyring.set_keyring(open_file_keyring(tmp_path, PASSPHRASE, prewarm=True))
    assert vault.get_secret(vault.BREEZE_API_KEY) == "key-123"
    assert sorted(vault.stored_secrets()) == sorted(["key-123", SECRET])
    again = ChainKeys().get(key.fingerprint)
    assert again is not None and again.hexdigest(b"record") == key.hexdigest(b"record")


def test_while_locked_the_vault_says_the_keyring_could_not_be_read_and_the_chain_has_no_key(tmp_path: Path) -> None:
    keyring.set_keyring(made(tmp_path))
    vault.set_secret(vault.BREEZE_API_KEY, "key-123")
    key = ChainKeys().create()
    assert key is not None
    keyring.set_keyring(EncryptedFileKeyring(keyring_file(tmp_path)))
    with pytest.raises(vault.VaultError, match="could not be read: KeyringLocked"):
        vault.get_secret(vault.BREEZE_API_KEY)
    assert ChainKeys().get(key.fingerprint) is None


def test_a_keyring_that_raises_gives_a_clear_message_and_no_crash() -> None:
    raising = RaisingKeyring()
    keyring.set_keyring(raising)
    with pytest.raises(vault.VaultError) as refused:
        vault.get_secret(vault.BREEZE_API_KEY)
    assert "could not be read: KeyringError" in str(refused.value)
    with pytest.raises(vault.VaultError, match="refused to store"):
        vault.set_secret(vault.BREEZE_API_KEY, "value")
    assert vault.stored_secrets() == []
    assert ChainKeys(raising).get("0123456789abcdef") is None
    assert ChainKeys(raising).create() is None
    assert "protected by the operating system" in keyring_status(raising)


# -- which backends protect secrets, and what the desk says about them --------------------------------


def test_the_encrypted_file_counts_as_secure_and_plaintext_fail_null_and_chains_do_not(tmp_path: Path) -> None:
    assert is_secure_backend(made(tmp_path))
    assert is_secure_backend(CryptFileKeyring())
    for insecure in (fail.Keyring(), null.Keyring(), PlaintextKeyring(), ChainerBackend()):
        assert not is_secure_backend(insecure), insecure


@pytest.mark.parametrize(("backend", "said"), [
    (fail.Keyring(), "No secure keyring: keyring.backends.fail.Keyring stores nothing"),
    (null.Keyring(), "No secure keyring: keyring.backends.null.Keyring stores nothing"),
    (PlaintextKeyring(), "The keyring keyrings.cryptfile.file.PlaintextKeyring does not protect secrets (plain text"),
    (MemoryKeyring(), "Secrets are in the keyring app.security.memory_keyring.MemoryKeyring: protected"),
], ids=["fail", "null", "plaintext", "system"])
def test_the_status_says_in_one_sentence_which_keyring_and_whether_it_protects(backend: object, said: str) -> None:
    text = keyring_status(backend)  # type: ignore[arg-type]
    assert text.startswith(said)
    assert "\n" not in text
    if "protected" not in said:
        assert "python main.py keyring use-file" in text
        # A dialog that offers the set-up itself says the same without the command.
        assert keyring_status(backend, advice=False) == text.split(";")[0] + "."  # type: ignore[arg-type]


def test_the_status_of_the_encrypted_file_says_whether_it_is_unlocked(tmp_path: Path) -> None:
    opened = made(tmp_path)
    assert keyring_status(opened) == (f"Secrets are in the encrypted keyring file {keyring_file(tmp_path)}, unlocked "
                                      "with its passphrase: protected.")
    assert "which is locked" in keyring_status(EncryptedFileKeyring(keyring_file(tmp_path)))
    keyring.set_keyring(opened)
    assert keyring_status() == keyring_status(opened)


def test_the_plaintext_test_backend_is_accepted_only_because_a_test_names_it() -> None:
    # tests.support.file_keyring keys subprocess tests' chains when PYTHON_KEYRING_BACKEND names it; the
    # desk never picks it itself: it is never among the chain select_system_keyring chooses from.
    assert is_secure_backend(plaintext_test_backend.TestFileKeyring())


# -- the system's keyring instead of keyring's chain ------------------------------------------------


@pytest.fixture
def chain(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """keyring's chain, as auto-detection installs it once keyrings.cryptfile is there; its members are the test's."""
    members: list[object] = []
    monkeypatch.setattr(ChainerBackend, "backends", members)
    monkeypatch.delenv("PYTHON_KEYRING_BACKEND", raising=False)
    monkeypatch.setattr(keyring.core, "load_config", lambda: None)
    keyring.set_keyring(ChainerBackend())
    return members


def test_the_systems_own_keyring_replaces_the_chain(chain: list[object]) -> None:
    system = MemoryKeyring()
    chain.extend([CryptFileKeyring(), system, PlaintextKeyring()])
    assert select_system_keyring() is system
    assert keyring.get_keyring() is system


def test_without_a_system_keyring_the_chain_becomes_fail_never_a_file_or_plaintext_backend(chain: list[object]) -> None:
    chain.extend([CryptFileKeyring(), EncryptedKeyring(), PlaintextKeyring()])
    chosen = select_system_keyring()
    assert isinstance(chosen, fail.Keyring)
    assert keyring_status().startswith("No secure keyring")


def test_a_chain_chosen_on_purpose_is_left_alone(chain: list[object], monkeypatch: pytest.MonkeyPatch) -> None:
    chain.extend([MemoryKeyring(), PlaintextKeyring()])
    monkeypatch.setenv("PYTHON_KEYRING_BACKEND", "keyring.backends.chainer.ChainerBackend")
    assert isinstance(select_system_keyring(), ChainerBackend)


def test_an_installed_keyring_is_left_alone() -> None:
    installed = MemoryKeyring()
    keyring.set_keyring(installed)
    assert select_system_keyring() is installed


# -- the setting ------------------------------------------------------------------------------------


def test_the_setting_goes_among_the_top_level_keys_and_keeps_the_rest(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    settings_file = tmp_path / "bulwark.toml"
    original = '# my desk\nbroker = "paper"\n\n[paper]\nseed = 7\n'
    settings_file.write_text(original)
    record_in_settings(settings_file)
    assert settings_file.read_text() == '# my desk\nbroker = "paper"\n\nvault = "encrypted-file"\n[paper]\nseed = 7\n'
    for name in [n for n in os.environ if n.startswith("BULWARK_")]:
        monkeypatch.delenv(name)
    settings = load_settings(home=str(tmp_path))
    assert settings.vault == "encrypted-file" and settings.paper.seed == 7


@pytest.mark.parametrize(("before", "after"), [
    ("", 'vault = "encrypted-file"\n'),
    ('vault = "system"\nbroker = "paper"', 'vault = "encrypted-file"\nbroker = "paper"'),
    ('broker = "paper"', 'broker = "paper"\nvault = "encrypted-file"\n'),
], ids=["empty", "replaced", "appended"])
def test_the_setting_replaces_an_earlier_one_or_is_added(tmp_path: Path, before: str, after: str) -> None:
    settings_file = tmp_path / "bulwark.toml"
    settings_file.write_text(before)
    record_in_settings(settings_file)
    assert settings_file.read_text() == after


def test_a_settings_file_the_line_cannot_be_added_to_safely_is_left_unchanged(tmp_path: Path) -> None:
    settings_file = tmp_path / "bulwark.toml"
    tricky = 'note = """\n[not a table]\n"""\n'
    settings_file.write_text(tricky)
    with pytest.raises(FileKeyringError, match="add it yourself"):
        record_in_settings(settings_file)
    assert settings_file.read_text() == tricky


# -- the passphrase on a file descriptor ------------------------------------------------------------


@pytest.mark.parametrize(("sent", "read"), [
    (b"a passphrase here\n", "a passphrase here"),
    (b"windows line end\r\n", "windows line end"),
    (b"no line end", "no line end"),
    ("पासवर्ड ₹\n".encode(), "पासवर्ड ₹"),
], ids=["lf", "crlf", "eof", "unicode"])
def test_a_passphrase_is_read_from_a_file_descriptor(sent: bytes, read: str) -> None:
    reader, writer = os.pipe()
    try:
        os.write(writer, sent)
        os.close(writer)
        assert read_passphrase_fd(reader) == read
    finally:
        os.close(reader)


@pytest.mark.skipif(os.name != "posix", reason="the wait is bounded with select, which pipes support on POSIX only")
def test_a_descriptor_with_nothing_on_it_is_given_up_on_not_waited_for_forever() -> None:
    reader, writer = os.pipe()
    try:
        with pytest.raises(FileKeyringError, match="no passphrase arrived"):
            read_passphrase_fd(reader, timeout_s=0.05)
    finally:
        os.close(reader)
        os.close(writer)


def test_a_descriptor_carrying_other_than_text_or_too_much_is_refused() -> None:
    for sent, problem in ((b"\xff\xfe not utf-8\n", "not UTF-8"), (b"x" * 5000 + b"\n", "longer than 1024")):
        reader, writer = os.pipe()
        try:
            os.write(writer, sent)
            os.close(writer)
            with pytest.raises(FileKeyringError, match=problem):
                read_passphrase_fd(reader)
        finally:
            os.close(reader)


def test_the_descriptor_variable_must_name_a_number(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(fk.PASSPHRASE_FD_ENV, "my secret passphrase")
    with pytest.raises(FileKeyringError, match="must be a file descriptor number") as refused:
        fk.passphrase_fd()
    assert "my secret" not in str(refused.value)
    monkeypatch.setenv(fk.PASSPHRASE_FD_ENV, " 3 ")
    assert fk.passphrase_fd() == 3


def test_passphrase_problems_names_each_problem_and_accepts_a_good_one() -> None:
    assert passphrase_problems(PASSPHRASE) == []
    assert passphrase_problems("x" * fk.MAX_PASSPHRASE) == []
    assert len(passphrase_problems("\tshort ")) == 3


def test_a_keyring_error_from_the_file_is_a_keyring_error_the_vault_and_chain_keys_handle() -> None:
    assert issubclass(WrongPassphrase, KeyringError) and issubclass(KeyringLocked, KeyringError)
