"""API clients… (administrators only): the programs that may call the desk's local API, and their tokens.

Everything goes through the desk's ``ApiClientDirectory``, which checks the acting administrator's
permission again and audits each change under their name; its database work runs in a worker
thread, and a change takes effect in this desk's API at once. A new or rotated token is shown once,
in a read-only field with a Copy button, and forgotten when the dialog closes or the next change is
made: only its hash is kept anywhere. Rotating asks first, inline (never a modal box: the kill
switch stays clickable whatever is open).

As the Operators… dialog does, this one acts only while the administrator it was opened for is
still the operator signed in at an unlocked window, re-reading their account before every change
(``OperatorSession.confirm``); the window's session controller closes it when they leave.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from PySide6.QtCore import QEvent, Qt
from PySide6.QtGui import QColor, QFontDatabase, QGuiApplication, QPalette
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QDialog,
    QFormLayout,
    QFrame,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from app.domain.actors import Actor, ApiScope, Permission
from app.domain.india_time import IST
from app.security.api_clients import ApiClient, ApiClientError
from app.security.names import name_problems
from app.ui import theme
from app.ui.session import OperatorSession, not_held_text
from app.ui.sign_in_dialog import (
    MAX_FIELD_CHARS,
    heading,
    note,
    problem_label,
    show_problem,
    with_problem,
)

if TYPE_CHECKING:
    from app.security.api_clients import ApiClientDirectory
    from app.ui.main_window import DeskWindow

log = logging.getLogger(__name__)

_COLUMNS = ("Name", "Scopes", "Status", "Created by", "Created", "Token")
SCOPE_TEXT = {
    ApiScope.READ: "read: status, quotes, positions, orders, alerts and the event stream",
    ApiScope.TRADE: "trade: submit, modify and cancel its own orders, through the risk gate",
    ApiScope.KILL: "kill: engage the kill switch (no token can re-arm)",
}
SHOWN_ONCE = ("Shown once: copy it into the program's configuration now. Bulwark keeps only its hash, so it cannot "
              "be shown again; closing this dialog forgets it. Lost? Rotate the token.")


def _when(ts_ns: int) -> str:
    return dt.datetime.fromtimestamp(ts_ns / 1e9, IST).strftime("%d %b %Y %H:%M")


class ApiClientsDialog(QDialog):
    """The administrator's view of the API clients, acting as ``by`` (the signed-in administrator)."""

    def __init__(self, clients: ApiClientDirectory, by: Actor, parent: QWidget | None = None, *,
                 session: OperatorSession | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("API clients — Bulwark")
        self.setMinimumWidth(720)
        self._clients = clients
        self._by = by
        self._session = session
        # The administrator's stay this dialog was opened in: it acts for nobody else, nor for a later sign-in.
        self._seat = session.seat if session is not None else None
        self._tasks: set[asyncio.Task[object]] = set()
        self.busy = False
        self.rows: list[ApiClient] = []
        self._rotating: str | None = None

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
        header.setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        header.setStretchLastSection(True)
        header.setDefaultAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter)
        self.table.setMinimumHeight(self.table.verticalHeader().defaultSectionSize() * 6 + 30)
        self.table.itemSelectionChanged.connect(self._refresh)

        self.disable_button = QPushButton("Disable")
        self.enable_button = QPushButton("Enable")
        self.rotate_button = QPushButton("Rotate token…")
        row_actions = QHBoxLayout()
        for button in (self.disable_button, self.enable_button, self.rotate_button):
            button.setAutoDefault(False)
            row_actions.addWidget(button)
        row_actions.addStretch(1)
        self.disable_button.clicked.connect(lambda: self._on_selected(False))
        self.enable_button.clicked.connect(lambda: self._on_selected(True))
        self.rotate_button.clicked.connect(self.ask_rotate)

        # Rotating asks first, inline.
        self.rotate_question = QLabel()
        self.rotate_question.setWordWrap(True)
        self.rotate_confirm = QPushButton("Rotate now")
        self.rotate_cancel = QPushButton("Keep the token")
        for button in (self.rotate_confirm, self.rotate_cancel):
            button.setAutoDefault(False)
        self.rotate_confirm.clicked.connect(lambda: self._spawn(self.rotate()))
        self.rotate_cancel.clicked.connect(self.cancel_rotate)
        self.rotate_bar = QFrame()
        self.rotate_bar.setFrameShape(QFrame.Shape.StyledPanel)
        bar = QHBoxLayout(self.rotate_bar)
        bar.setContentsMargins(8, 6, 8, 6)
        bar.addWidget(self.rotate_question, 1)
        bar.addWidget(self.rotate_confirm)
        bar.addWidget(self.rotate_cancel)
        self.rotate_bar.hide()

        # Add a client.
        self.add_name = QLineEdit()
        self.add_name.setMaxLength(MAX_FIELD_CHARS)
        self.add_name.setPlaceholderText("client name, e.g. momentum-bot")
        self.add_name_problem = problem_label()
        self.scope_boxes = {scope: QCheckBox(SCOPE_TEXT[scope]) for scope in ApiScope}
        scopes = QWidget()
        scope_column = QVBoxLayout(scopes)
        scope_column.setContentsMargins(0, 0, 0, 0)
        scope_column.setSpacing(2)
        for box in self.scope_boxes.values():
            scope_column.addWidget(box)
            box.toggled.connect(self._refresh)
        self.add_scope_problem = problem_label()
        self.add_button = QPushButton("Add client")
        self.add_button.setAutoDefault(False)
        add_form = QFormLayout()
        add_form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        add_form.addRow("Name", with_problem(self.add_name, self.add_name_problem))
        add_form.addRow("Scopes", with_problem(scopes, self.add_scope_problem))
        add_form.addRow("", self.add_button)
        add_box = QGroupBox("Add a client")
        add_box.setLayout(add_form)

        # The token just made: shown once.
        self.token_field = QLineEdit()
        self.token_field.setReadOnly(True)
        self.token_field.setFont(QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont))
        self.token_field.setMinimumWidth(self.token_field.fontMetrics().horizontalAdvance("x" * 50))
        self.copy_button = QPushButton("Copy")
        self.copy_button.setAutoDefault(False)
        self.copy_button.clicked.connect(self.copy_token)
        self.token_note = QLabel(SHOWN_ONCE)
        self.token_note.setWordWrap(True)
        token_row = QHBoxLayout()
        token_row.addWidget(self.token_field, 1)
        token_row.addWidget(self.copy_button)
        self.token_box = QGroupBox("New token")
        token_column = QVBoxLayout(self.token_box)
        token_column.addLayout(token_row)
        token_column.addWidget(self.token_note)
        self.token_box.hide()

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
        layout.addWidget(heading("API clients"))
        layout.addWidget(note("Programs that call this desk's local API (strategy scripts, stop buttons), each with its own "
                              "token and scopes. Their orders pass the same risk gate as yours. Every change is recorded "
                              "in the audit trail under your name; a disabled client's token is refused."))
        layout.addWidget(self.table)
        layout.addLayout(row_actions)
        layout.addWidget(self.rotate_bar)
        layout.addWidget(add_box)
        layout.addWidget(self.token_box)
        layout.addWidget(self.message)
        layout.addLayout(bottom)

        self.add_name.textChanged.connect(self._refresh)
        self.add_button.clicked.connect(self._on_add)
        self._recolour()
        self._refresh()

    # -- reading -----------------------------------------------------------------------------------

    async def load(self) -> None:
        """Re-read the clients (in a worker thread: the CLI may have changed them) and show them."""
        await asyncio.to_thread(self._clients.reload)
        self.show_clients(self._clients.list())

    def show_clients(self, clients: list[ApiClient]) -> None:
        selected = self.selected()
        self.rows = sorted(clients, key=lambda c: c.name.casefold())
        self.table.setRowCount(len(self.rows))
        for row, client in enumerate(self.rows):
            cells = (client.name, client.scope_text(), "enabled" if client.enabled else "disabled", client.created_by,
                     _when(client.created_ns), f"…{client.token_hint}")
            for column, text in enumerate(cells):
                self.table.setItem(row, column, QTableWidgetItem(text))
            if selected is not None and client.name == selected.name:
                self.table.selectRow(row)
        # Fitted to the contents with room between columns: names and scopes must not run together.
        self.table.resizeColumnsToContents()
        gap = self.table.fontMetrics().horizontalAdvance("mm")
        for column in range(len(_COLUMNS) - 1):
            self.table.setColumnWidth(column, self.table.columnWidth(column) + gap)
        damaged = self._clients.damaged
        if damaged:
            show_problem(self.message, f"Damaged entries that cannot authenticate: {', '.join(damaged)} "
                                       "(restore a backup made before the damage).")
        self._refresh()

    def selected(self) -> ApiClient | None:
        model = self.table.selectionModel()
        rows = model.selectedRows() if model is not None else []
        if not rows or rows[0].row() >= len(self.rows):
            return None
        return self.rows[rows[0].row()]

    def select(self, name: str) -> None:
        """Select a client's row by name."""
        for row, client in enumerate(self.rows):
            if client.name == name:
                self.table.selectRow(row)
                return

    @property
    def token(self) -> str:
        """The token on show (empty: none)."""
        return self.token_field.text()

    # -- problems ----------------------------------------------------------------------------------

    def chosen_scopes(self) -> list[ApiScope]:
        return [scope for scope, box in self.scope_boxes.items() if box.isChecked()]

    def add_problems(self) -> dict[str, list[str]]:
        name = self.add_name.text().strip()
        found = {"name": name_problems(name) if name else [], "scopes": []}
        if name and any(c.name.casefold() == name.casefold() for c in self.rows):
            found["name"] = [*found["name"], f"There is already a client named {name}."]
        if name and not self.chosen_scopes():
            found["scopes"] = ["Tick at least one scope."]
        return found

    def _refresh(self) -> None:
        problems = self.add_problems()
        show_problem(self.add_name_problem, problems["name"])
        show_problem(self.add_scope_problem, problems["scopes"])
        self.add_button.setEnabled(not self.busy and bool(self.add_name.text().strip()) and bool(self.chosen_scopes())
                                   and not any(problems.values()))
        target = self.selected()
        self.disable_button.setEnabled(not self.busy and target is not None and target.enabled)
        self.enable_button.setEnabled(not self.busy and target is not None and not target.enabled)
        self.rotate_button.setEnabled(not self.busy and target is not None and self._rotating is None)
        self.rotate_confirm.setEnabled(not self.busy)

    def _recolour(self) -> None:
        """The "shown once" note and the token in colours readable on the theme now in use."""
        dark = theme.is_dark(self.palette())
        colours = theme.colours(dark)
        self.token_note.setStyleSheet(f"color: {colours.warn};")
        for box in self.scope_boxes.values():
            # Fusion draws a box's outline from the window colour: on the dark theme an empty box all but vanishes.
            palette = box.palette()
            palette.setColor(QPalette.ColorRole.Window, QColor(colours.dim if dark else colours.window))
            box.setPalette(palette)
        self.token_field.setStyleSheet(f"QLineEdit {{ border: 1px solid {colours.accent}; border-radius: 3px; padding: 3px; }}")

    def changeEvent(self, event: QEvent) -> None:
        super().changeEvent(event)
        if event.type() == QEvent.Type.PaletteChange:
            # The desk's View menu switched the theme while the dialog is open.
            self._recolour()

    # -- the token ---------------------------------------------------------------------------------

    def _show_token(self, name: str, token: str, what: str) -> None:
        self.token_box.setTitle(f"{what} for {name}")
        self.token_field.setText(token)
        self.token_field.setCursorPosition(0)
        self.token_box.show()
        self.token_field.selectAll()
        self.token_field.setFocus()

    def _forget_token(self) -> None:
        self.token_field.clear()
        self.token_box.hide()

    def copy_token(self) -> None:
        """Put the token on show on the clipboard."""
        if self.token:
            QGuiApplication.clipboard().setText(self.token)
            self.status.setText("Token copied to the clipboard.")

    def done(self, result: int) -> None:
        # Closing forgets the token: it is shown once, not for as long as the dialog object lives.
        self._forget_token()
        self.cancel_rotate()
        super().done(result)

    # -- acting ------------------------------------------------------------------------------------

    def _spawn(self, coro: Awaitable[object]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _on_add(self) -> None:
        if self.add_button.isEnabled():
            self._spawn(self.add())

    def _on_selected(self, enabled: bool) -> None:
        target = self.selected()
        if target is not None:
            self._spawn(self.set_enabled(target.name, enabled))

    async def add(self) -> bool:
        """Add the client in the form and show its token once; ``True`` once added (the form then clears)."""
        name, scopes = self.add_name.text().strip(), self.chosen_scopes()
        made: list[str] = []

        def call() -> None:
            made.append(self._clients.add(name, scopes, by=self._by)[1])

        if not await self._run(f"Adding {name}…", call, f"Added {name}."):
            return False
        self.add_name.clear()
        for box in self.scope_boxes.values():
            box.setChecked(False)
        self.select(name)
        self._show_token(name, made[0], "Token")
        return True

    async def set_enabled(self, name: str, enabled: bool) -> bool:
        """Disable or enable a client."""
        if enabled:
            return await self._run(f"Enabling {name}…", lambda: self._clients.enable(name, by=self._by),
                                   f"{name} is enabled: its token is accepted again.")
        return await self._run(f"Disabling {name}…", lambda: self._clients.disable(name, by=self._by),
                               f"{name} is disabled: its token is refused from now on.")

    def ask_rotate(self) -> None:
        """Ask, inline, before rotating the selected client's token."""
        target = self.selected()
        if target is None:
            return
        self._rotating = target.name
        self.rotate_question.setText(f"Rotate the token of {target.name}? Its current token stops working at once; "
                                     "every program using it must be given the new one.")
        self.rotate_bar.show()
        self._refresh()

    def cancel_rotate(self) -> None:
        self._rotating = None
        self.rotate_bar.hide()
        self._refresh()

    async def rotate(self) -> bool:
        """Rotate the token of the client asked about (``ask_rotate``) and show the new one once."""
        name = self._rotating
        if name is None:
            return False
        self.rotate_bar.hide()
        made: list[str] = []

        def call() -> None:
            made.append(self._clients.rotate(name, by=self._by))

        ok = await self._run(f"Rotating {name}'s token…", call, f"{name} has a new token; the old one is refused.")
        self._rotating = None
        self._refresh()
        if ok:
            self._show_token(name, made[0], "New token")
        return ok

    async def _run(self, doing: str, call: Callable[[], object], done: str) -> bool:
        self.busy = True
        # A token on show belongs to the change before: one change, one token, never two on screen.
        self._forget_token()
        self.status.setText(doing)
        show_problem(self.message, "")
        self._refresh()
        try:
            if self._session is not None and not await self._session.confirm(self._seat):
                show_problem(self.message, not_held_text(self._by.name))
                return False
            await asyncio.to_thread(call)
        except ApiClientError as error:
            label = {"name": self.add_name_problem, "scopes": self.add_scope_problem}.get(error.field or "", self.message)
            show_problem(label if doing.startswith("Adding") else self.message, str(error))
            return False
        except Exception as error:  # noqa: BLE001 - a store fault is shown, not raised into Qt
            log.error("API clients: %s failed: %s", doing, type(error).__name__)
            show_problem(self.message, f"That failed ({type(error).__name__}); see the log.")
            return False
        finally:
            self.busy = False
            self.status.setText("")
            self._refresh()
        self.status.setText(done)
        self.show_clients(self._clients.list())
        return True


def open_api_clients_dialog(window: DeskWindow, clients: ApiClientDirectory | None) -> ApiClientsDialog | None:
    """API clients… for the window's signed-in operator, if they may manage them (else refused in the alerts)."""
    from app.ui.main_window import show_beside

    actor = window.session.actor
    if actor is None or clients is None or window.refused("API clients", (Permission.MANAGE_API_CLIENTS,)):
        return None
    # A child of the window: the session controller closes it when the administrator leaves.
    dialog = ApiClientsDialog(clients, actor, window, session=window.session)
    show_beside(dialog)
    window.spawn(dialog.load(), "reading the API clients")
    return dialog
