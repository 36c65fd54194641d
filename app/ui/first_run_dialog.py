"""The first-run dialog: a desk with no operators yet creates its administrator, then signs them in.

There is no default account and no default password: the first person at a new desk chooses the
administrator's name and password here (or with ``main.py operator add`` before the first start).
Every problem with a field (the name's, the password policy's, the repetition's) is shown next to
that field while typing; Create stays disabled until there is none. Creating and signing in hash
the password (argon2id, slow on purpose) in a worker thread.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from app.domain.actors import Actor
from app.security.accounts import AuthError, OperatorInputError
from app.security.names import name_problems
from app.security.passwords import password_problems
from app.ui.sign_in_dialog import (
    heading,
    name_field,
    note,
    password_field,
    problem_label,
    show_problem,
    with_problem,
)

log = logging.getLogger(__name__)

CreateAdmin = Callable[[str, str], Actor]
"""``create(name, password)``: blocking; adds the administrator and signs them in, or raises ``OperatorInputError``
(a field's problems) or ``PermissionError`` (operators exist already)."""


def repeat_problems(password: str, repeated: str) -> list[str]:
    """Whether the second entry matches the first (only said once something was typed there)."""
    return ["The two passwords differ."] if repeated and password != repeated else []


class FirstRunDialog(QDialog):
    """Name, password, password again, each with its problems under it; Create makes the administrator.

    Emits ``signed_in(Actor)`` (the new administrator) and accepts on success.
    """

    signed_in = Signal(object)

    def __init__(self, create: CreateAdmin, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("First start — Bulwark")
        self.setMinimumWidth(460)
        self._create = create
        self._task: asyncio.Task[Actor | None] | None = None
        self.busy = False

        self.name_edit = name_field()
        self.password_edit = password_field("new password")
        self.repeat_edit = password_field("the same password again")
        self.name_problem = problem_label()
        self.password_problem = problem_label()
        self.repeat_problem = problem_label()
        self.message = problem_label()
        self.status = note("")
        self.status.hide()

        form = QFormLayout()
        form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        form.addRow("Name", with_problem(self.name_edit, self.name_problem))
        form.addRow("Password", with_problem(self.password_edit, self.password_problem))
        form.addRow("Again", with_problem(self.repeat_edit, self.repeat_problem))

        buttons = QDialogButtonBox()
        self.create_button: QPushButton = buttons.addButton("Create administrator and sign in",
                                                            QDialogButtonBox.ButtonRole.AcceptRole)
        self.cancel_button: QPushButton = buttons.addButton(QDialogButtonBox.StandardButton.Cancel)
        self.create_button.setDefault(True)
        self.create_button.clicked.connect(self.submit)
        self.cancel_button.clicked.connect(self.reject)

        layout = QVBoxLayout(self)
        layout.setSpacing(8)
        layout.addWidget(heading("Create the desk's administrator"))
        layout.addWidget(note(
            "This desk has no operators yet. The administrator adds traders, risk officers and viewers "
            "(Operator ▸ Operators…). There is no default password: choose one only you know."
        ))
        layout.addLayout(form)
        layout.addWidget(self.message)
        layout.addWidget(self.status)
        layout.addWidget(buttons)
        for field in (self.name_edit, self.password_edit, self.repeat_edit):
            field.textChanged.connect(self._refresh)
        self._refresh()
        self.name_edit.setFocus()

    def problems(self) -> dict[str, list[str]]:
        """Every problem with the fields as typed, by field (``name``, ``password``, ``repeat``)."""
        name, password, repeated = self.name_edit.text().strip(), self.password_edit.text(), self.repeat_edit.text()
        return {
            "name": name_problems(name) if name else [],
            "password": password_problems(password, name) if password else [],
            "repeat": repeat_problems(password, repeated),
        }

    def complete(self) -> bool:
        """Every field filled in and none with a problem."""
        filled = all((self.name_edit.text().strip(), self.password_edit.text(), self.repeat_edit.text()))
        return filled and not any(self.problems().values())

    def _refresh(self) -> None:
        found = self.problems()
        show_problem(self.name_problem, found["name"])
        show_problem(self.password_problem, found["password"])
        show_problem(self.repeat_problem, found["repeat"])
        self.create_button.setEnabled(self.complete() and not self.busy)

    def submit(self) -> None:
        """Start creating (Enter or the button) once every field is right."""
        if self.busy or not self.complete():
            return
        self._task = asyncio.ensure_future(self.attempt())

    async def attempt(self) -> Actor | None:
        """Create the administrator and sign in, in a worker thread; the new operator, or ``None`` with the problem shown."""
        name, password = self.name_edit.text().strip(), self.password_edit.text()
        self._set_busy(True)
        try:
            actor = await asyncio.to_thread(self._create, name, password)
        except Exception as error:  # noqa: BLE001 - shown in the dialog; the fields keep what was typed
            self._set_busy(False)
            if isinstance(error, OperatorInputError):
                fields = {"name": self.name_problem, "password": self.password_problem}
                show_problem(fields.get(error.field, self.message), error.problems)
            elif isinstance(error, (ValueError, PermissionError, AuthError)):
                show_problem(self.message, str(error))
            else:
                log.error("creating the administrator failed: %s", type(error).__name__)
                show_problem(self.message, f"The administrator could not be created ({type(error).__name__}); see the log.")
            return None
        self._set_busy(False)
        self.password_edit.clear()
        self.repeat_edit.clear()
        self.signed_in.emit(actor)
        self.accept()
        return actor

    def _set_busy(self, busy: bool) -> None:
        self.busy = busy
        self.status.setText("Creating the administrator and signing in…" if busy else "")
        self.status.setVisible(busy)
        if busy:
            show_problem(self.message, "")
        for field in (self.name_edit, self.password_edit, self.repeat_edit):
            field.setReadOnly(busy)
        self._refresh()
