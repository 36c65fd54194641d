"""Change password: the current one, the new one twice; the policy's problems next to the new one while typing.

The directory checks the current password (argon2, slow on purpose) and stores the new hash in a
worker thread; it audits the change. A wrong current password is said next to that field and
clears it; the new password stays typed so nothing is lost.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QLabel,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from app.security.accounts import AuthError, OperatorInputError
from app.security.passwords import password_problems
from app.ui.first_run_dialog import repeat_problems
from app.ui.sign_in_dialog import (
    failure_text,
    heading,
    note,
    password_field,
    problem_label,
    show_problem,
    with_problem,
)

log = logging.getLogger(__name__)

ChangePassword = Callable[[str, str], None]
"""``change(old, new)``: blocking; raises ``AuthError`` for a wrong current password, ``OperatorInputError`` for a refused new one."""


class PasswordDialog(QDialog):
    """The signed-in operator changes their own password; accepts once the directory has stored it."""

    def __init__(self, name: str, change: ChangePassword, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Change password — Bulwark")
        self.setMinimumWidth(440)
        self._name = name
        self._change = change
        self._task: asyncio.Task[bool] | None = None
        self.busy = False

        self.old_edit = password_field("current password")
        self.new_edit = password_field("new password")
        self.repeat_edit = password_field("the new password again")
        self.old_problem = problem_label()
        self.new_problem = problem_label()
        self.repeat_problem = problem_label()
        self.status = note("")
        self.status.hide()

        form = QFormLayout()
        form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        who = QLabel(name)
        form.addRow("Operator", who)
        form.addRow("Current", with_problem(self.old_edit, self.old_problem))
        form.addRow("New", with_problem(self.new_edit, self.new_problem))
        form.addRow("Again", with_problem(self.repeat_edit, self.repeat_problem))

        buttons = QDialogButtonBox()
        self.change_button: QPushButton = buttons.addButton("Change password", QDialogButtonBox.ButtonRole.AcceptRole)
        self.cancel_button: QPushButton = buttons.addButton(QDialogButtonBox.StandardButton.Cancel)
        self.change_button.setDefault(True)
        self.change_button.clicked.connect(self.submit)
        self.cancel_button.clicked.connect(self.reject)

        layout = QVBoxLayout(self)
        layout.setSpacing(8)
        layout.addWidget(heading("Change your password"))
        layout.addLayout(form)
        layout.addWidget(self.status)
        layout.addWidget(buttons)
        for field in (self.old_edit, self.new_edit, self.repeat_edit):
            field.textChanged.connect(self._refresh)
        self._refresh()
        self.old_edit.setFocus()

    def problems(self) -> dict[str, list[str]]:
        new = self.new_edit.text()
        found = {"new": password_problems(new, self._name) if new else [], "repeat": repeat_problems(new, self.repeat_edit.text())}
        if new and new == self.old_edit.text():
            found["new"] = [*found["new"], "The new password is the current one."]
        return found

    def complete(self) -> bool:
        filled = all((self.old_edit.text(), self.new_edit.text(), self.repeat_edit.text()))
        return filled and not any(self.problems().values())

    def _refresh(self) -> None:
        found = self.problems()
        show_problem(self.new_problem, found["new"])
        show_problem(self.repeat_problem, found["repeat"])
        if self.old_edit.text():
            show_problem(self.old_problem, "")
        self.change_button.setEnabled(self.complete() and not self.busy)

    def submit(self) -> None:
        if self.busy or not self.complete():
            return
        self._task = asyncio.ensure_future(self.attempt())

    async def attempt(self) -> bool:
        """Change it in a worker thread; ``True`` once stored, ``False`` with the problem shown next to its field."""
        old, new = self.old_edit.text(), self.new_edit.text()
        self._set_busy(True)
        try:
            await asyncio.to_thread(self._change, old, new)
        except AuthError as error:
            self._set_busy(False)
            self.old_edit.clear()
            show_problem(self.old_problem, failure_text(error))
            self.old_edit.setFocus()
            return False
        except OperatorInputError as error:
            self._set_busy(False)
            show_problem(self.new_problem, error.problems)
            return False
        except Exception as error:  # noqa: BLE001 - a store fault is shown, not raised into Qt
            log.error("password change failed: %s", type(error).__name__)
            self._set_busy(False)
            show_problem(self.old_problem, failure_text(error))
            return False
        self._set_busy(False)
        for field in (self.old_edit, self.new_edit, self.repeat_edit):
            field.clear()
        self.accept()
        return True

    def _set_busy(self, busy: bool) -> None:
        self.busy = busy
        self.status.setText("Changing the password…" if busy else "")
        self.status.setVisible(busy)
        for field in (self.old_edit, self.new_edit, self.repeat_edit):
            field.setReadOnly(busy)
        self._refresh()
