"""The sign-in dialog: an operator's name and password, verified off the GUI thread.

Verifying a password is deliberately slow (argon2id, a few hundred milliseconds), so the check runs
in a worker thread (``asyncio.to_thread``) while the window goes on painting and the kill switch
goes on working. A refusal shows the directory's own text (the same for an unknown name and a wrong
password), clears the password and keeps the name. The dialog never blocks the window: it is shown
beside it, and closing it leaves the desk signed out behind the lock screen, not stopped.

The small form helpers here (a heading, a problem line under a field, a password field) are
shared by the first-run, password and operators dialogs and the lock screen.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QFont, QPalette
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from app.domain.actors import Actor
from app.security.accounts import AuthError
from app.ui import theme

log = logging.getLogger(__name__)

# Longer input is refused by the directory anyway; the field stops a 10 kB paste before it gets there.
MAX_FIELD_CHARS = 256

Authenticate = Callable[[str, str], Actor]
"""``authenticate(name, password)``: blocking (argon2); raises ``AuthError`` with a message safe to show."""


def heading(text: str, scale: float = 1.2) -> QLabel:
    """A bold heading line."""
    label = QLabel(text)
    font = QFont(label.font())
    font.setBold(True)
    font.setPointSizeF(font.pointSizeF() * scale)
    label.setFont(font)
    label.setTextFormat(Qt.TextFormat.PlainText)
    return label


def note(text: str) -> QLabel:
    """A muted, wrapped line of explanation."""
    label = QLabel(text)
    label.setWordWrap(True)
    label.setTextFormat(Qt.TextFormat.PlainText)
    label.setForegroundRole(QPalette.ColorRole.PlaceholderText)
    return label


def problem_label() -> QLabel:
    """The red line under a field that says what is wrong with it (hidden while nothing is)."""
    label = QLabel()
    label.setObjectName("fieldProblem")
    label.setWordWrap(True)
    label.setTextFormat(Qt.TextFormat.PlainText)
    label.hide()
    return label


def show_problem(label: QLabel, problems: list[str] | str) -> None:
    """Show ``problems`` (one per line) under their field in a red readable on the theme; empty hides it."""
    text = problems if isinstance(problems, str) else "\n".join(problems)
    label.setStyleSheet(f"color: {theme.colours(theme.is_dark(label.palette())).bad};")
    label.setText(text)
    label.setVisible(bool(text))


def with_problem(field: QWidget, problem: QLabel) -> QWidget:
    """A field with its problem line right under it, as one form row (no gap while there is no problem)."""
    box = QWidget()
    column = QVBoxLayout(box)
    column.setContentsMargins(0, 0, 0, 0)
    column.setSpacing(2)
    column.addWidget(field)
    column.addWidget(problem)
    return box


def name_field(text: str = "") -> QLineEdit:
    field = QLineEdit(text)
    field.setMaxLength(MAX_FIELD_CHARS)
    field.setPlaceholderText("operator name")
    return field


def password_field(placeholder: str = "password") -> QLineEdit:
    field = QLineEdit()
    field.setEchoMode(QLineEdit.EchoMode.Password)
    field.setMaxLength(MAX_FIELD_CHARS)
    field.setPlaceholderText(placeholder)
    # Never offered to an input method's prediction or history.
    field.setInputMethodHints(Qt.InputMethodHint.ImhHiddenText | Qt.InputMethodHint.ImhNoPredictiveText
                              | Qt.InputMethodHint.ImhSensitiveData)
    return field


def failure_text(error: BaseException) -> str:
    """What to show for a failed verification: the directory's own words, or a plain fault line (details in the log)."""
    if isinstance(error, AuthError):
        return str(error) or "The name or password is not right."
    return f"The check could not be made ({type(error).__name__}); see the log. The kill switch still works."



async def verified(check: Authenticate, name: str, password: QLineEdit, message: QLabel,
                   set_busy: Callable[[bool], None], what: str) -> Actor | None:
    """Run ``check`` on the typed password in a worker thread (argon2 must not freeze the window): the
    operator, or ``None`` with why shown under the field. The password field is cleared either way."""
    set_busy(True)
    try:
        actor = await asyncio.to_thread(check, name, password.text())
    except Exception as error:  # noqa: BLE001 - every refusal or fault is shown, never raised into Qt
        if not isinstance(error, AuthError):
            log.error("%s check failed: %s", what, type(error).__name__)
        set_busy(False)
        password.clear()
        show_problem(message, failure_text(error))
        password.setFocus()
        return None
    set_busy(False)
    password.clear()
    show_problem(message, "")
    return actor

class SignInDialog(QDialog):
    """Name and password; Enter signs in. Emits ``signed_in(Actor)`` and accepts on success.

    ``authenticate`` is blocking and runs in a worker thread. ``name`` pre-fills the name field;
    ``fixed_name`` makes it read-only (an unlock or an authorisation for a known operator).
    """

    signed_in = Signal(object)

    def __init__(
        self,
        authenticate: Authenticate,
        parent: QWidget | None = None,
        *,
        title: str = "Sign in — Bulwark",
        prompt: str = "Sign in to the desk",
        explanation: str = "The kill switch above (F12) works whether anyone is signed in or not.",
        name: str = "",
        fixed_name: bool = False,
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle(title)
        self.setMinimumWidth(400)
        self._authenticate = authenticate
        self._task: asyncio.Task[Actor | None] | None = None
        self.busy = False

        self.name_edit = name_field(name)
        self.name_edit.setReadOnly(fixed_name)
        self.password_edit = password_field()
        self.message = problem_label()
        self.status = note("")
        self.status.hide()

        form = QFormLayout()
        form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        form.addRow("Name", self.name_edit)
        form.addRow("Password", with_problem(self.password_edit, self.message))

        buttons = QDialogButtonBox()
        self.sign_in_button: QPushButton = buttons.addButton("Sign in", QDialogButtonBox.ButtonRole.AcceptRole)
        self.cancel_button: QPushButton = buttons.addButton(QDialogButtonBox.StandardButton.Cancel)
        self.sign_in_button.setDefault(True)
        self.sign_in_button.clicked.connect(self.submit)
        self.cancel_button.clicked.connect(self.reject)

        layout = QVBoxLayout(self)
        layout.setSpacing(8)
        layout.addWidget(heading(prompt))
        if explanation:
            layout.addWidget(note(explanation))
        layout.addLayout(form)
        layout.addWidget(self.status)
        layout.addWidget(buttons)
        self.name_edit.textChanged.connect(self._refresh)
        self.password_edit.textChanged.connect(self._refresh)
        self._refresh()
        (self.password_edit if name else self.name_edit).setFocus()

    def _refresh(self) -> None:
        ready = bool(self.name_edit.text().strip()) and bool(self.password_edit.text()) and not self.busy
        self.sign_in_button.setEnabled(ready)

    def submit(self) -> None:
        """Start the check (Enter or the button); nothing happens while one runs or a field is empty."""
        if self.busy or not self.sign_in_button.isEnabled():
            return
        self._task = asyncio.ensure_future(self.attempt())

    async def attempt(self) -> Actor | None:
        """Verify what is typed in a worker thread; the operator on success, ``None`` (and why, shown) on refusal."""
        actor = await verified(self._authenticate, self.name_edit.text().strip(), self.password_edit, self.message,
                               self._set_busy, "sign-in")
        if actor is None:
            return None
        self.signed_in.emit(actor)
        self.accept()
        return actor

    def _set_busy(self, busy: bool) -> None:
        self.busy = busy
        self.status.setText("Signing in…" if busy else "")
        self.status.setVisible(busy)
        if busy:
            show_problem(self.message, "")
        self.password_edit.setReadOnly(busy)
        self._refresh()
