"""Operators… (administrators only): the desk's accounts; add one, disable or enable one, reset a password.

Everything goes through the ``OperatorDirectory``, which checks the acting administrator's
permission again and audits each change; its database work and password hashing run in a worker
thread. Each field's problems (name rules, the password policy, the repetition) are shown next to
it while typing, and a refused change says why without losing what was typed.

Given the window's ``session``, the dialog acts only while the administrator it was opened for is
still the operator signed in at an unlocked window, and re-reads their account (``session.confirm``)
before every change: an administrator who signs out with it open leaves nobody their authority.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from app.domain.actors import Actor, Role
from app.domain.india_time import IST
from app.security.accounts import Operator, OperatorInputError
from app.security.names import name_problems
from app.security.passwords import password_problems
from app.ui.first_run_dialog import repeat_problems
from app.ui.formatting import ist_hms
from app.ui.session import OperatorSession, not_held_text
from app.ui.sign_in_dialog import (
    heading,
    name_field,
    note,
    password_field,
    problem_label,
    show_problem,
    with_problem,
)

if TYPE_CHECKING:
    from app.security.operators import OperatorDirectory

log = logging.getLogger(__name__)

_COLUMNS = ("Name", "Role", "Status", "Password set", "Created")
ROLE_LABELS = {Role.VIEWER: "viewer", Role.TRADER: "trader", Role.RISK_OFFICER: "risk officer", Role.ADMIN: "administrator"}


def _day(ts_ns: int) -> str:
    return dt.datetime.fromtimestamp(ts_ns / 1e9, IST).strftime("%d %b %Y")


def status_text(operator: Operator, now_ns: int) -> str:
    """``active``, ``disabled``, ``locked out until 11:57:00 IST``, or what makes a stored account unreadable."""
    if operator.damaged is not None:
        return f"damaged: {operator.damaged}"
    if not operator.enabled:
        return "disabled"
    if operator.locked_until_ns is not None and operator.locked_until_ns > now_ns:
        return f"locked out until {ist_hms(operator.locked_until_ns)} IST"
    return "active"


class OperatorsDialog(QDialog):
    """The administrator's view of the desk's operators, acting as ``by`` (the signed-in administrator)."""

    def __init__(self, directory: OperatorDirectory, by: Actor, parent: QWidget | None = None, *,
                 clock_ns: Callable[[], int] | None = None, session: OperatorSession | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Operators — Bulwark")
        self.setMinimumWidth(640)
        self._directory = directory
        self._by = by
        self._session = session
        # The administrator's stay this dialog was opened in: it acts for nobody else, nor for a later sign-in.
        self._seat = session.seat if session is not None else None
        self._clock_ns = clock_ns
        self._tasks: set[asyncio.Task[object]] = set()
        self.busy = False
        self.rows: list[Operator] = []

        self.table = QTableWidget(0, len(_COLUMNS))
        self.table.setHorizontalHeaderLabels(list(_COLUMNS))
        self.table.verticalHeader().hide()
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setShowGrid(False)
        self.table.setAlternatingRowColors(True)
        self.table.verticalHeader().setDefaultSectionSize(self.table.fontMetrics().lineSpacing() + 6)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        header.setStretchLastSection(True)
        header.setDefaultAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter)
        self.table.setMinimumHeight(self.table.verticalHeader().defaultSectionSize() * 6 + 30)
        self.table.itemSelectionChanged.connect(self._refresh)

        self.disable_button = QPushButton("Disable")
        self.enable_button = QPushButton("Enable")
        row_actions = QHBoxLayout()
        row_actions.addWidget(self.disable_button)
        row_actions.addWidget(self.enable_button)
        row_actions.addStretch(1)
        self.disable_button.clicked.connect(lambda: self._on_selected("disable"))
        self.enable_button.clicked.connect(lambda: self._on_selected("enable"))

        # Add an operator.
        self.add_name = name_field()
        self.add_role = QComboBox()
        for role in (Role.TRADER, Role.VIEWER, Role.RISK_OFFICER, Role.ADMIN):
            self.add_role.addItem(ROLE_LABELS[role], role)
        self.add_password = password_field("initial password")
        self.add_repeat = password_field("again")
        self.add_name_problem = problem_label()
        self.add_password_problem = problem_label()
        self.add_repeat_problem = problem_label()
        self.add_button = QPushButton("Add operator")
        add_form = QFormLayout()
        add_form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        add_form.addRow("Name", with_problem(self.add_name, self.add_name_problem))
        add_form.addRow("Role", self.add_role)
        add_form.addRow("Password", with_problem(self.add_password, self.add_password_problem))
        add_form.addRow("Again", with_problem(self.add_repeat, self.add_repeat_problem))
        add_form.addRow("", self.add_button)
        add_box = QGroupBox("Add an operator")
        add_box.setLayout(add_form)

        # Reset the selected operator's password.
        self.reset_password = password_field("new password")
        self.reset_repeat = password_field("again")
        self.reset_password_problem = problem_label()
        self.reset_repeat_problem = problem_label()
        self.reset_button = QPushButton("Reset password")
        self.reset_for = QLabel("select an operator above")
        reset_form = QFormLayout()
        reset_form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        reset_form.addRow("For", self.reset_for)
        reset_form.addRow("Password", with_problem(self.reset_password, self.reset_password_problem))
        reset_form.addRow("Again", with_problem(self.reset_repeat, self.reset_repeat_problem))
        reset_form.addRow("", self.reset_button)
        reset_box = QGroupBox("Reset a password")
        reset_box.setLayout(reset_form)

        forms = QHBoxLayout()
        forms.addWidget(add_box, 1)
        forms.addWidget(reset_box, 1)

        self.message = problem_label()
        self.status = note("")
        close = QPushButton("Close")
        close.setAutoDefault(False)
        close.clicked.connect(self.reject)
        bottom = QHBoxLayout()
        bottom.addWidget(self.status, 1)
        bottom.addWidget(close)

        layout = QVBoxLayout(self)
        layout.setSpacing(8)
        layout.addWidget(heading("Operators"))
        layout.addWidget(note("Every change is recorded in the audit trail under your name. A disabled operator cannot sign in; "
                              "a reset password should be changed by its owner at the next sign-in."))
        layout.addWidget(self.table)
        layout.addLayout(row_actions)
        layout.addLayout(forms)
        layout.addWidget(self.message)
        layout.addLayout(bottom)

        for field in (self.add_name, self.add_password, self.add_repeat, self.reset_password, self.reset_repeat):
            field.textChanged.connect(self._refresh)
        self.add_button.clicked.connect(self._on_add)
        self.reset_button.clicked.connect(self._on_reset)
        self._refresh()

    # -- reading -----------------------------------------------------------------------------------

    def _now(self) -> int:
        return self._clock_ns() if self._clock_ns is not None else time.time_ns()

    async def load(self) -> None:
        """Read the operators (in a worker thread) and show them."""
        operators = await asyncio.to_thread(self._directory.operators)
        self.show_operators(operators)

    def show_operators(self, operators: list[Operator]) -> None:
        selected = self.selected()
        self.rows = sorted(operators, key=lambda o: o.name.casefold())
        now = self._now()
        self.table.setRowCount(len(self.rows))
        for row, operator in enumerate(self.rows):
            cells = (operator.name, ROLE_LABELS.get(operator.role, str(operator.role)), status_text(operator, now),
                     _day(operator.password_changed_ns), _day(operator.created_ns))
            for column, text in enumerate(cells):
                item = QTableWidgetItem(text)
                self.table.setItem(row, column, item)
            if selected is not None and operator.name == selected.name:
                self.table.selectRow(row)
        self._refresh()

    def selected(self) -> Operator | None:
        rows = self.table.selectionModel().selectedRows() if self.table.selectionModel() is not None else []
        if not rows or rows[0].row() >= len(self.rows):
            return None
        return self.rows[rows[0].row()]

    def select(self, name: str) -> None:
        """Select an operator's row by name."""
        for row, operator in enumerate(self.rows):
            if operator.name == name:
                self.table.selectRow(row)
                return

    # -- problems ----------------------------------------------------------------------------------

    def add_problems(self) -> dict[str, list[str]]:
        name, password = self.add_name.text().strip(), self.add_password.text()
        found = {
            "name": name_problems(name) if name else [],
            "password": password_problems(password, name) if password else [],
            "repeat": repeat_problems(password, self.add_repeat.text()),
        }
        if name and any(o.name.casefold() == name.casefold() for o in self.rows):
            found["name"] = [*found["name"], f"There is already an operator named {name}."]
        return found

    def reset_problems(self) -> dict[str, list[str]]:
        target = self.selected()
        password = self.reset_password.text()
        return {
            "password": password_problems(password, target.name if target is not None else "") if password else [],
            "repeat": repeat_problems(password, self.reset_repeat.text()),
        }

    def _refresh(self) -> None:
        add = self.add_problems()
        show_problem(self.add_name_problem, add["name"])
        show_problem(self.add_password_problem, add["password"])
        show_problem(self.add_repeat_problem, add["repeat"])
        reset = self.reset_problems()
        show_problem(self.reset_password_problem, reset["password"])
        show_problem(self.reset_repeat_problem, reset["repeat"])
        target = self.selected()
        self.reset_for.setText(target.name if target is not None else "select an operator above")
        filled_add = all((self.add_name.text().strip(), self.add_password.text(), self.add_repeat.text()))
        filled_reset = bool(self.reset_password.text() and self.reset_repeat.text())
        self.add_button.setEnabled(not self.busy and filled_add and not any(add.values()))
        self.reset_button.setEnabled(not self.busy and target is not None and filled_reset and not any(reset.values()))
        # Nobody disables their own account from here: the desk would be left without its administrator.
        own = target is not None and target.name == self._by.name
        self.disable_button.setEnabled(not self.busy and target is not None and target.enabled and not own)
        self.enable_button.setEnabled(not self.busy and target is not None and not target.enabled)

    # -- acting ------------------------------------------------------------------------------------

    def _spawn(self, coro: Awaitable[object]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _on_add(self) -> None:
        if self.add_button.isEnabled():
            self._spawn(self.add())

    def _on_reset(self) -> None:
        if self.reset_button.isEnabled():
            self._spawn(self.reset())

    def _on_selected(self, what: str) -> None:
        target = self.selected()
        if target is not None:
            self._spawn(self.set_enabled(target.name, what == "enable"))

    async def add(self) -> bool:
        """Add the operator in the form; ``True`` once added (the form then clears)."""
        name, password, role = self.add_name.text().strip(), self.add_password.text(), self.add_role.currentData()
        ok = await self._run(f"Adding {name}…", lambda: self._directory.add(name, role, password, by=self._by),
                             f"Added {name} as {ROLE_LABELS.get(role, str(role))}.")
        if ok:
            for field in (self.add_name, self.add_password, self.add_repeat):
                field.clear()
            self.select(name)
        return ok

    async def reset(self) -> bool:
        """Set the selected operator's password to the one typed."""
        target = self.selected()
        if target is None:
            return False
        name, password = target.name, self.reset_password.text()
        ok = await self._run(f"Resetting {name}'s password…", lambda: self._directory.reset_password(name, password, by=self._by),
                             f"{name}'s password was reset.")
        if ok:
            self.reset_password.clear()
            self.reset_repeat.clear()
        return ok

    async def set_enabled(self, name: str, enabled: bool) -> bool:
        """Disable or enable an operator."""
        if enabled:
            return await self._run(f"Enabling {name}…", lambda: self._directory.enable(name, by=self._by), f"{name} can sign in again.")
        return await self._run(f"Disabling {name}…", lambda: self._directory.disable(name, by=self._by), f"{name} is disabled.")

    def _field_problem(self, field: str) -> QLabel:
        """Where a refusal about ``field`` is shown: next to the field of the form that was sent."""
        if self.status.text().startswith("Adding"):
            return {"name": self.add_name_problem, "password": self.add_password_problem}.get(field, self.message)
        if self.status.text().startswith("Resetting") and field == "password":
            return self.reset_password_problem
        return self.message

    async def _run(self, doing: str, call: Callable[[], object], done: str) -> bool:
        self.busy = True
        self.status.setText(doing)
        show_problem(self.message, "")
        self._refresh()
        try:
            if self._session is not None and not await self._session.confirm(self._seat):
                show_problem(self.message, not_held_text(self._by.name))
                return False
            await asyncio.to_thread(call)
        except OperatorInputError as error:
            show_problem(self._field_problem(error.field), error.problems)
            return False
        except (ValueError, PermissionError) as error:
            show_problem(self.message, str(error) or type(error).__name__)
            return False
        except Exception as error:  # noqa: BLE001 - a store fault is shown, not raised into Qt
            log.error("operators: %s failed: %s", doing, type(error).__name__)
            show_problem(self.message, f"That failed ({type(error).__name__}); see the log.")
            return False
        finally:
            self.busy = False
            self.status.setText("")
            self._refresh()
        self.status.setText(done)
        await self.load()
        return True
