"""Before the desk starts: unlock the encrypted keyring file, or say plainly that there is no secure keyring.

:func:`prepare_keyring` is the one call: when the settings say ``vault = "encrypted-file"`` it asks for the
passphrase (:class:`KeyringUnlockDialog`) and installs the unlocked file as the process's keyring;
when the keyring in use does not protect secrets it says so and offers to create the encrypted file
(:class:`KeyringSetupDialog`), never a plaintext one. The argon2id work (about a second to unlock
and read every entry) runs on a worker thread, so the dialog keeps painting.

The passphrase is never logged, never shown in an error, and the fields are cleared once used.
"""

from __future__ import annotations

import logging
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import keyring
from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import (
    QApplication,
    QCheckBox,
    QDialog,
    QDialogButtonBox,
    QGridLayout,
    QLabel,
    QLineEdit,
    QVBoxLayout,
    QWidget,
)

from app.security.file_keyring import (
    MIN_PASSPHRASE,
    EncryptedFileKeyring,
    FileKeyringError,
    WrongPassphrase,
    create_file_keyring,
    keyring_file,
    keyring_status,
    normalise,
    passphrase_problems,
    record_in_settings,
)
from app.store.chain_key import is_secure_backend
from app.ui import theme

if TYPE_CHECKING:
    from PySide6.QtGui import QCloseEvent, QKeyEvent

    from app.settings import Settings

log = logging.getLogger(__name__)

# Platforms where nobody can answer a dialog (it would wait forever).
_NO_SCREEN = ("offscreen", "minimal")
_SENSITIVE = Qt.InputMethodHint.ImhSensitiveData | Qt.InputMethodHint.ImhNoPredictiveText


def _passphrase_edit(placeholder: str) -> QLineEdit:
    edit = QLineEdit()
    edit.setEchoMode(QLineEdit.EchoMode.Password)
    edit.setInputMethodHints(_SENSITIVE)
    edit.setPlaceholderText(placeholder)
    edit.setMinimumWidth(320)
    return edit


def _problem_label(dark: bool) -> QLabel:
    label = QLabel()
    label.setWordWrap(True)
    label.setTextFormat(Qt.TextFormat.PlainText)
    label.setStyleSheet(f"color: {theme.colours(dark).bad};")
    label.hide()
    return label


def _dim_label(text: str, dark: bool) -> QLabel:
    label = QLabel(text)
    label.setWordWrap(True)
    label.setTextFormat(Qt.TextFormat.PlainText)
    label.setStyleSheet(f"color: {theme.colours(dark).dim};")
    return label


class _Worker(QDialog):
    """A dialog whose argon2id work runs on a thread; while it runs the inputs are off and it cannot be dismissed."""

    _finished = Signal(object)  # None on success, else the message to show

    def __init__(self, parent: QWidget | None) -> None:
        super().__init__(parent)
        self._busy = False
        self._inputs: list[QWidget] = []
        self._settle: Callable[[FileKeyringError | None], None] = lambda _failure: None
        self._finished.connect(self._done)

    @property
    def busy(self) -> bool:
        return self._busy

    def _start(self, work: Callable[[], object], settle: Callable[[FileKeyringError | None], None]) -> None:
        self._busy = True
        self._settle = settle
        self._enable(False)

        def run() -> None:
            try:
                work()
            except FileKeyringError as exc:
                self._finished.emit(exc)
                return
            except Exception as exc:  # noqa: BLE001 - shown by type only: a message could quote what was typed
                log.error("keyring work failed: %s", type(exc).__name__)
                self._finished.emit(FileKeyringError(f"the keyring file could not be used ({type(exc).__name__})"))
                return
            self._finished.emit(None)

        threading.Thread(target=run, name="keyring-kdf", daemon=True).start()

    def _done(self, failure: FileKeyringError | None) -> None:
        self._busy = False
        self._enable(True)
        self._settle(failure)

    def _enable(self, enabled: bool) -> None:
        for widget in self._inputs:
            widget.setEnabled(enabled)

    def reject(self) -> None:
        if not self._busy:
            super().reject()

    def closeEvent(self, event: QCloseEvent) -> None:
        if self._busy:
            event.ignore()
            return
        super().closeEvent(event)

    def keyPressEvent(self, event: QKeyEvent) -> None:
        if self._busy and event.key() == Qt.Key.Key_Escape:
            return
        super().keyPressEvent(event)


class KeyringUnlockDialog(_Worker):
    """Asks for the passphrase of the data folder's encrypted keyring file and unlocks ``file_keyring`` with it.

    A wrong passphrase is said next to the field, which is cleared; nothing is read or changed.
    Accepted once the file is unlocked and every entry decrypted; Quit rejects (the desk does not start).
    """

    def __init__(self, file_keyring: EncryptedFileKeyring, *, dark: bool, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.keyring = file_keyring
        self._dark = dark
        self.setWindowTitle("Bulwark: unlock the keyring")
        headline = QLabel("The desk's secrets are in an encrypted keyring file.")
        font = headline.font()
        font.setBold(True)
        headline.setFont(font)
        where = _dim_label(str(file_keyring.path), dark)
        where.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        what = QLabel("Type its passphrase to start the desk. Stopping trading from outside the desk "
                      "(python main.py panic) never needs it.")
        what.setWordWrap(True)
        self.passphrase_edit = _passphrase_edit("passphrase")
        self.show_toggle = QCheckBox("Show")
        self.show_toggle.toggled.connect(self._show_text)
        self.problem_label = _problem_label(dark)
        self.passphrase_edit.textEdited.connect(lambda _text: self.problem_label.hide())
        self.status_label = _dim_label("", dark)
        self.status_label.hide()

        grid = QGridLayout()
        grid.setHorizontalSpacing(8)
        grid.addWidget(QLabel("Passphrase"), 0, 0)
        grid.addWidget(self.passphrase_edit, 0, 1)
        grid.addWidget(self.show_toggle, 0, 2)
        grid.addWidget(self.problem_label, 1, 1, 1, 2)
        grid.setColumnStretch(1, 1)

        self.buttons = QDialogButtonBox()
        self.unlock_button = self.buttons.addButton("Unlock", QDialogButtonBox.ButtonRole.AcceptRole)
        self.quit_button = self.buttons.addButton("Quit", QDialogButtonBox.ButtonRole.RejectRole)
        self.unlock_button.setDefault(True)
        self.unlock_button.clicked.connect(self.unlock)
        self.quit_button.clicked.connect(self.reject)

        layout = QVBoxLayout(self)
        layout.setSpacing(6)
        layout.addWidget(headline)
        layout.addWidget(where)
        layout.addWidget(what)
        layout.addSpacing(4)
        layout.addLayout(grid)
        layout.addWidget(self.status_label)
        layout.addSpacing(4)
        layout.addWidget(self.buttons)
        self._inputs = [self.passphrase_edit, self.show_toggle, self.unlock_button, self.quit_button]
        self.passphrase_edit.setFocus()

    def unlock(self) -> None:
        """Unlock with what was typed, on a worker thread."""
        if self.busy:
            return
        passphrase = self.passphrase_edit.text()
        if not passphrase:
            self._problem("Type the passphrase first.")
            return
        self.problem_label.hide()
        self.status_label.setText("Checking the passphrase and reading the keyring…")
        self.status_label.show()
        self._start(lambda: self.keyring.unlock(passphrase, prewarm=True), self._unlocked)

    def _unlocked(self, failure: FileKeyringError | None) -> None:
        self.status_label.hide()
        self.passphrase_edit.clear()
        if failure is None:
            self.accept()
            return
        if isinstance(failure, WrongPassphrase):
            self._problem("Wrong passphrase: nothing was read or changed. Try again.")
        else:
            self._problem(str(failure))
        self.passphrase_edit.setFocus()

    def _problem(self, text: str) -> None:
        self.problem_label.setText(text)
        self.problem_label.show()

    def _show_text(self, shown: bool) -> None:
        self.passphrase_edit.setEchoMode(QLineEdit.EchoMode.Normal if shown else QLineEdit.EchoMode.Password)


class KeyringSetupDialog(_Worker):
    """No secure keyring: says so, and offers to create the encrypted keyring file in the data folder.

    ``created`` holds the new, unlocked file keyring once Create succeeded (the settings then say
    ``vault = "encrypted-file"``); "Continue without" leaves everything as it was.
    """

    def __init__(self, home: Path, settings_file: Path, status: str, *, dark: bool,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.home = home
        self.settings_file = settings_file
        self.created: EncryptedFileKeyring | None = None
        self.setWindowTitle("Bulwark: no secure keyring")
        headline = QLabel("This computer has no secure keyring.")
        font = headline.font()
        font.setBold(True)
        headline.setFont(font)
        headline.setStyleSheet(f"color: {theme.colours(dark).warn};")
        said = QLabel(status)
        said.setWordWrap(True)
        said.setTextFormat(Qt.TextFormat.PlainText)
        why = _dim_label(
            "Without a key the audit trail could be rewritten unnoticed by anyone who can write the database. Bulwark "
            "can keep its secrets in an encrypted file in the data folder instead, protected by a passphrase asked at "
            "every start; never in plain text.", dark)
        self.passphrase_edit = _passphrase_edit(f"at least {MIN_PASSPHRASE} characters")
        self.again_edit = _passphrase_edit("the same passphrase again")
        self.passphrase_problem = _problem_label(dark)
        self.again_problem = _problem_label(dark)
        self.passphrase_edit.textEdited.connect(lambda _text: self.passphrase_problem.hide())
        self.again_edit.textEdited.connect(lambda _text: self.again_problem.hide())
        self.problem_label = _problem_label(dark)
        self.status_label = _dim_label("", dark)
        self.status_label.hide()

        grid = QGridLayout()
        grid.setHorizontalSpacing(8)
        grid.addWidget(QLabel("Passphrase"), 0, 0)
        grid.addWidget(self.passphrase_edit, 0, 1)
        grid.addWidget(self.passphrase_problem, 1, 1)
        grid.addWidget(QLabel("Again"), 2, 0)
        grid.addWidget(self.again_edit, 2, 1)
        grid.addWidget(self.again_problem, 3, 1)
        grid.setColumnStretch(1, 1)

        self.buttons = QDialogButtonBox()
        self.create_button = self.buttons.addButton("Create encrypted keyring", QDialogButtonBox.ButtonRole.AcceptRole)
        self.without_button = self.buttons.addButton("Continue without", QDialogButtonBox.ButtonRole.RejectRole)
        self.create_button.setDefault(True)
        self.create_button.clicked.connect(self.create_keyring)
        self.without_button.clicked.connect(self.reject)

        layout = QVBoxLayout(self)
        layout.setSpacing(6)
        layout.addWidget(headline)
        layout.addWidget(said)
        layout.addWidget(why)
        layout.addSpacing(4)
        layout.addLayout(grid)
        layout.addWidget(self.problem_label)
        layout.addWidget(self.status_label)
        layout.addSpacing(4)
        layout.addWidget(self.buttons)
        self.setMinimumWidth(560)
        self._inputs = [self.passphrase_edit, self.again_edit, self.create_button, self.without_button]
        self.passphrase_edit.setFocus()

    def create_keyring(self) -> None:
        """Check both fields (each problem next to its field), then create the file on a worker thread."""
        if self.busy:
            return
        passphrase, again = self.passphrase_edit.text(), self.again_edit.text()
        problems = passphrase_problems(passphrase)
        mismatch = not problems and normalise(again) != normalise(passphrase)
        self.passphrase_problem.setText(_sentence(problems))
        self.passphrase_problem.setVisible(bool(problems))
        self.again_problem.setText("The two passphrases differ." if mismatch else "")
        self.again_problem.setVisible(mismatch)
        self.problem_label.hide()
        if problems or mismatch:
            return
        self.status_label.setText("Creating the encrypted keyring file…")
        self.status_label.show()

        def work() -> None:
            made = create_file_keyring(self.home, passphrase)
            record_in_settings(self.settings_file)
            self.created = made

        self._start(work, self._created)

    def _created(self, failure: FileKeyringError | None) -> None:
        self.status_label.hide()
        if failure is None:
            self.passphrase_edit.clear()
            self.again_edit.clear()
            self.accept()
            return
        self.problem_label.setText(f"Nothing was set up: {failure}")
        self.problem_label.show()


def _sentence(problems: list[str]) -> str:
    if not problems:
        return ""
    text = "; ".join(problems)
    return text[0].upper() + text[1:] + "."


def _can_ask() -> bool:
    return QGuiApplication.platformName() not in _NO_SCREEN


def prepare_keyring(settings: Settings, *, dark: bool = True, parent: QWidget | None = None) -> bool:
    """Make the desk's keyring ready before the desk starts; ``False`` when it must not start.

    Call it before the desk reads any secret (the Breeze login reads the credentials) and outside a
    running qasync loop: the dialogs run modally with ``exec()``. Creates the ``QApplication`` when
    there is none yet. Where no dialog can be shown (offscreen), a locked file is refused on stderr
    and a missing secure keyring only logged.
    """
    current = keyring.get_keyring()
    if isinstance(current, EncryptedFileKeyring) and current.unlocked:
        return True
    if QApplication.instance() is None:
        QApplication(sys.argv[:1])
    if settings.vault == "encrypted-file":
        file_keyring = current if isinstance(current, EncryptedFileKeyring) else \
            EncryptedFileKeyring(keyring_file(settings.home))
        if not _can_ask():
            print(f"Bulwark: the encrypted keyring file {file_keyring.path} is locked and there is no screen to ask "
                  "for its passphrase", file=sys.stderr)
            return False
        unlock = KeyringUnlockDialog(file_keyring, dark=dark, parent=parent)
        if unlock.exec() != QDialog.DialogCode.Accepted:
            log.warning("the encrypted keyring file was not unlocked: the desk does not start")
            return False
        keyring.set_keyring(file_keyring)
        return True
    if is_secure_backend(current):
        return True
    status = keyring_status(current, advice=False)
    if not _can_ask():
        log.warning("%s", status)
        return True
    setup = KeyringSetupDialog(settings.home, settings.settings_file, status, dark=dark, parent=parent)
    setup.exec()
    if setup.created is not None:
        keyring.set_keyring(setup.created)
    else:
        log.warning("%s", status)
    return True
