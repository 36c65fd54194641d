"""The keyring dialogs before the desk starts: the passphrase for the encrypted file, and the warning with its offer.

Files are made with a cheap argon2id cost (the file records it). Screenshots of both dialogs, in
the dark and the light theme, go to tests/output/.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import keyring
import pytest
from keyring.backends import fail
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QApplication, QDialog
from pytestqt.qtbot import QtBot

from app.security import file_keyring as fk
from app.security import vault
from app.security.file_keyring import (
    EncryptedFileKeyring,
    KdfCost,
    create_file_keyring,
    keyring_file,
    keyring_status,
    open_file_keyring,
    record_in_settings,
)
from app.security.memory_keyring import MemoryKeyring
from app.settings import Settings, load_settings
from app.ui import keyring_dialog, theme
from app.ui.keyring_dialog import (
    KeyringSetupDialog,
    KeyringUnlockDialog,
    prepare_keyring,
)

OUTPUT = Path(__file__).resolve().parents[1] / "output"
FAST = KdfCost(time_cost=1, memory_kib=8, parallelism=1)
PASSPHRASE = "correct horse battery staple"


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in [n for n in os.environ if n.startswith("BULWARK_")]:
        monkeypatch.delenv(name)
    monkeypatch.setattr(fk, "DEFAULT_COST", FAST)
    return tmp_path


@pytest.fixture
def themed(qapp: QApplication) -> Iterator[QApplication]:
    """The test application; its palette and style sheet are put back after the test switched themes."""
    palette, sheet = qapp.palette(), qapp.styleSheet()
    yield qapp
    qapp.setPalette(palette)
    qapp.setStyleSheet(sheet)


def settings_of(home: Path) -> Settings:
    return load_settings(home=str(home))


def stored_file(home: Path) -> EncryptedFileKeyring:
    made = create_file_keyring(home, PASSPHRASE, cost=FAST)
    made.set_password(vault.SERVICE, vault.BREEZE_API_SECRET, "secret-9ab7d3")
    return EncryptedFileKeyring(keyring_file(home))


def unlock_with(qtbot: QtBot, dialog: KeyringUnlockDialog, passphrase: str) -> None:
    dialog.passphrase_edit.setText(passphrase)
    qtbot.mouseClick(dialog.unlock_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not dialog.busy, timeout=10_000)


def create_with(qtbot: QtBot, dialog: KeyringSetupDialog, passphrase: str, again: str) -> None:
    dialog.passphrase_edit.setText(passphrase)
    dialog.again_edit.setText(again)
    qtbot.mouseClick(dialog.create_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not dialog.busy, timeout=10_000)


# -- the passphrase for the encrypted file ------------------------------------------------------------


def test_the_right_passphrase_unlocks_the_file_and_reads_every_entry(qtbot: QtBot, home: Path) -> None:
    locked = stored_file(home)
    dialog = KeyringUnlockDialog(locked, dark=True)
    qtbot.addWidget(dialog)
    dialog.show()
    unlock_with(qtbot, dialog, PASSPHRASE)
    assert dialog.result() == QDialog.DialogCode.Accepted and not dialog.isVisible()
    assert locked.unlocked
    # Read on the worker thread already: the desk's reads on the GUI thread cost no key derivation.
    assert locked._memory[(vault.SERVICE, vault.BREEZE_API_SECRET)] == "secret-9ab7d3"
    assert dialog.passphrase_edit.text() == ""


def test_a_wrong_passphrase_is_said_next_to_the_field_and_the_dialog_stays(qtbot: QtBot, home: Path) -> None:
    locked = stored_file(home)
    before = keyring_file(home).read_bytes()
    dialog = KeyringUnlockDialog(locked, dark=True)
    qtbot.addWidget(dialog)
    dialog.show()
    unlock_with(qtbot, dialog, "correct horse battery stapler")
    assert dialog.isVisible() and not locked.unlocked
    assert dialog.problem_label.isVisible()
    assert dialog.problem_label.text() == "Wrong passphrase: nothing was read or changed. Try again."
    assert dialog.passphrase_edit.text() == "" and dialog.passphrase_edit.isEnabled()
    assert keyring_file(home).read_bytes() == before
    unlock_with(qtbot, dialog, PASSPHRASE)
    assert locked.unlocked and dialog.result() == QDialog.DialogCode.Accepted


@pytest.mark.parametrize("typed", ["x" * 10_240, "ctrl\x00\x1b[2J", "पासवर्ड ₹"], ids=["10kB", "control", "unicode"])
def test_odd_passphrases_are_refused_without_a_crash(qtbot: QtBot, home: Path, typed: str) -> None:
    dialog = KeyringUnlockDialog(stored_file(home), dark=False)
    qtbot.addWidget(dialog)
    dialog.show()
    unlock_with(qtbot, dialog, typed)
    assert dialog.isVisible() and dialog.problem_label.isVisible()
    assert typed[:6] not in dialog.problem_label.text()


def test_nothing_typed_is_said_without_any_work(qtbot: QtBot, home: Path) -> None:
    dialog = KeyringUnlockDialog(stored_file(home), dark=True)
    qtbot.addWidget(dialog)
    dialog.show()
    qtbot.mouseClick(dialog.unlock_button, Qt.MouseButton.LeftButton)
    assert not dialog.busy and dialog.problem_label.text() == "Type the passphrase first."


def test_while_the_passphrase_is_checked_the_inputs_are_off_and_the_dialog_stays(qtbot: QtBot, home: Path) -> None:
    dialog = KeyringUnlockDialog(stored_file(home), dark=True)
    qtbot.addWidget(dialog)
    dialog.show()
    dialog.passphrase_edit.setText(PASSPHRASE)
    dialog.unlock()
    # The worker's answer is queued to this thread: until Qt runs it, the dialog is busy.
    assert dialog.busy and not dialog.unlock_button.isEnabled() and not dialog.quit_button.isEnabled()
    dialog.reject()
    assert dialog.isVisible()
    qtbot.waitUntil(lambda: not dialog.busy, timeout=10_000)
    assert dialog.result() == QDialog.DialogCode.Accepted


def test_quit_leaves_the_file_locked(qtbot: QtBot, home: Path) -> None:
    locked = stored_file(home)
    dialog = KeyringUnlockDialog(locked, dark=True)
    qtbot.addWidget(dialog)
    dialog.show()
    qtbot.mouseClick(dialog.quit_button, Qt.MouseButton.LeftButton)
    assert dialog.result() == QDialog.DialogCode.Rejected and not locked.unlocked


# -- no secure keyring: the warning and the offer -------------------------------------------------------


@pytest.mark.parametrize(("passphrase", "again", "first", "second"), [
    ("", "", "The passphrase is empty.", ""),
    ("sh0rt!", "sh0rt!", "The passphrase is shorter than 12 characters.", ""),
    ("y" * 10_240, "y" * 10_240, "The passphrase is longer than 1024 characters.", ""),
    ("tab\there in the phrase", "tab\there in the phrase", "The passphrase has a control character in it", ""),
    (PASSPHRASE, PASSPHRASE + "!", "", "The two passphrases differ."),
], ids=["empty", "short", "10kB", "control", "differ"])
def test_each_problem_is_said_next_to_its_field_and_nothing_is_created(
    qtbot: QtBot, home: Path, passphrase: str, again: str, first: str, second: str,
) -> None:
    dialog = KeyringSetupDialog(home, home / "bulwark.toml", keyring_status(fail.Keyring(), advice=False), dark=True)
    qtbot.addWidget(dialog)
    dialog.show()
    create_with(qtbot, dialog, passphrase, again)
    assert dialog.passphrase_problem.isVisible() == bool(first)
    assert dialog.passphrase_problem.text().startswith(first)
    assert dialog.again_problem.isVisible() == bool(second) and dialog.again_problem.text() == second
    assert dialog.isVisible() and dialog.created is None
    assert list(home.iterdir()) == []


def test_create_makes_the_file_records_the_setting_and_hands_it_over_unlocked(qtbot: QtBot, home: Path) -> None:
    dialog = KeyringSetupDialog(home, home / "bulwark.toml", keyring_status(fail.Keyring(), advice=False), dark=True)
    qtbot.addWidget(dialog)
    dialog.show()
    create_with(qtbot, dialog, PASSPHRASE, PASSPHRASE)
    assert dialog.result() == QDialog.DialogCode.Accepted
    assert dialog.created is not None and dialog.created.unlocked
    assert settings_of(home).vault == "encrypted-file"
    assert open_file_keyring(home, PASSPHRASE).unlocked


def test_a_file_already_there_is_not_overwritten_and_that_is_said(qtbot: QtBot, home: Path) -> None:
    stored_file(home)
    before = keyring_file(home).read_bytes()
    dialog = KeyringSetupDialog(home, home / "bulwark.toml", keyring_status(fail.Keyring(), advice=False), dark=True)
    qtbot.addWidget(dialog)
    dialog.show()
    create_with(qtbot, dialog, "a different long passphrase", "a different long passphrase")
    assert dialog.isVisible() and dialog.created is None
    assert dialog.problem_label.text().startswith("Nothing was set up: an encrypted keyring file already exists")
    assert keyring_file(home).read_bytes() == before


def test_continue_without_changes_nothing(qtbot: QtBot, home: Path) -> None:
    dialog = KeyringSetupDialog(home, home / "bulwark.toml", keyring_status(fail.Keyring(), advice=False), dark=True)
    qtbot.addWidget(dialog)
    dialog.show()
    qtbot.mouseClick(dialog.without_button, Qt.MouseButton.LeftButton)
    assert dialog.result() == QDialog.DialogCode.Rejected and dialog.created is None
    assert list(home.iterdir()) == []


# -- prepare_keyring: the one call before the desk starts ---------------------------------------------------


def test_with_no_screen_a_locked_file_stops_the_start_and_a_missing_keyring_is_only_logged(
    qapp: QApplication, home: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    assert prepare_keyring(settings_of(home)) is True  # fail backend, offscreen: logged, the desk starts
    stored_file(home)
    record_in_settings(home / "bulwark.toml")
    assert prepare_keyring(settings_of(home)) is False
    assert "is locked and there is no screen to ask for its passphrase" in capsys.readouterr().err


def test_the_unlocked_file_becomes_the_process_keyring(qtbot: QtBot, home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    stored_file(home)
    record_in_settings(home / "bulwark.toml")
    monkeypatch.setattr(keyring_dialog, "_can_ask", lambda: True)

    def answer(dialog: KeyringUnlockDialog) -> int:
        unlock_with(qtbot, dialog, PASSPHRASE)
        return dialog.result()

    monkeypatch.setattr(KeyringUnlockDialog, "exec", answer)
    assert prepare_keyring(settings_of(home)) is True
    assert vault.get_secret(vault.BREEZE_API_SECRET) == "secret-9ab7d3"
    # Already unlocked: no second dialog.
    monkeypatch.setattr(KeyringUnlockDialog, "exec", lambda dialog: pytest.fail("asked twice"))
    assert prepare_keyring(settings_of(home)) is True


def test_quitting_the_passphrase_dialog_stops_the_start(qtbot: QtBot, home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    stored_file(home)
    record_in_settings(home / "bulwark.toml")
    monkeypatch.setattr(keyring_dialog, "_can_ask", lambda: True)
    monkeypatch.setattr(KeyringUnlockDialog, "exec", lambda dialog: QDialog.DialogCode.Rejected)
    assert prepare_keyring(settings_of(home)) is False
    assert isinstance(keyring.get_keyring(), fail.Keyring)


def test_the_offer_taken_installs_the_new_file_and_a_secure_keyring_needs_no_dialog(
    qtbot: QtBot, home: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(keyring_dialog, "_can_ask", lambda: True)

    def take(dialog: KeyringSetupDialog) -> int:
        assert dialog.windowTitle() == "Bulwark: no secure keyring"
        create_with(qtbot, dialog, PASSPHRASE, PASSPHRASE)
        return dialog.result()

    monkeypatch.setattr(KeyringSetupDialog, "exec", take)
    assert prepare_keyring(settings_of(home)) is True
    assert isinstance(keyring.get_keyring(), EncryptedFileKeyring)
    vault.set_secret(vault.BREEZE_API_KEY, "stored in the new file")
    assert open_file_keyring(home, PASSPHRASE).get_password(vault.SERVICE, vault.BREEZE_API_KEY) == "stored in the new file"

    keyring.set_keyring(MemoryKeyring())
    monkeypatch.setattr(KeyringSetupDialog, "exec", lambda dialog: pytest.fail("a secure keyring needs no warning"))
    assert prepare_keyring(load_settings(home=str(home / "elsewhere"))) is True


# -- screenshots ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dark", [True, False], ids=["dark", "light"])
def test_screenshots(qtbot: QtBot, themed: QApplication, home: Path, dark: bool) -> None:
    OUTPUT.mkdir(exist_ok=True)
    theme.apply(themed, dark)
    suffix = "dark" if dark else "light"

    unlock = KeyringUnlockDialog(stored_file(home), dark=dark)
    qtbot.addWidget(unlock)
    unlock.show()
    unlock_with(qtbot, unlock, "not the passphrase at all")
    unlock.resize(unlock.sizeHint())
    assert unlock.problem_label.isVisible()
    assert unlock.grab().save(str(OUTPUT / f"keyring_unlock_{suffix}.png"))

    setup = KeyringSetupDialog(home / "new", home / "new" / "bulwark.toml", keyring_status(fail.Keyring(), advice=False), dark=dark)
    qtbot.addWidget(setup)
    setup.show()
    create_with(qtbot, setup, "sh0rt!", "sh0rt!")
    setup.resize(setup.sizeHint())
    assert setup.passphrase_problem.isVisible()
    assert setup.grab().save(str(OUTPUT / f"keyring_setup_{suffix}.png"))
