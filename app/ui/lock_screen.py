"""The lock screen: an opaque layer over the window's docks and charts, under the kill-switch bar.

It is a child widget of the window, not a modal dialog, so it hides positions, orders and the
ticket without blocking anything else: the kill-switch bar above it (KILL, its F12/Ctrl+Shift+K
chords, the state banner) stays visible and clickable, and the tray and the OS-wide hotkey go on
working. The engine, the breakers and the kill switch run underneath as before; the lock only
decides what the person at the keyboard can see and do.

Two faces: *locked* (the same operator's password unlocks; anyone else signs in to switch) and
*signed out* (nobody is at the desk: sign in).
"""

from __future__ import annotations

import asyncio
import enum
import logging
from collections.abc import Callable

from PySide6.QtCore import Signal
from PySide6.QtGui import QPalette
from PySide6.QtWidgets import (
    QFrame,
    QHBoxLayout,
    QLineEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from app.domain.actors import Actor
from app.ui import theme
from app.ui.sign_in_dialog import (
    heading,
    note,
    password_field,
    problem_label,
    show_problem,
    verified,
)

log = logging.getLogger(__name__)

Unlock = Callable[[str, str], Actor]
"""``unlock(name, password)``: blocking (argon2), audited by the directory as an unlock; raises ``AuthError``."""


class LockFace(enum.Enum):
    """What the lock screen asks for."""

    SIGNED_OUT = "signed out"
    LOCKED = "locked"


class LockScreen(QWidget):
    """The layer over the window's content. ``unlocked(Actor)`` after the right password; ``switch_requested``
    and ``sign_in_requested`` when the person at the desk wants the sign-in dialog."""

    unlocked = Signal(object)
    switch_requested = Signal()
    sign_in_requested = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("lockScreen")
        self.setAutoFillBackground(True)
        self.setBackgroundRole(QPalette.ColorRole.Window)
        self.face = LockFace.SIGNED_OUT
        self._name = ""
        self._unlock: Unlock | None = None
        self._task: asyncio.Task[Actor | None] | None = None
        self.busy = False

        card = QFrame(self)
        card.setObjectName("lockCard")
        card.setFrameShape(QFrame.Shape.StyledPanel)
        card.setMaximumWidth(460)
        card.setMinimumWidth(400)
        self.title = heading("Nobody is signed in", 1.35)
        self.detail = note("")
        self.password_edit: QLineEdit = password_field()
        self.unlock_button = QPushButton("Unlock")
        self.unlock_button.setDefault(True)
        self.message = problem_label()
        self.status = note("")
        self.status.hide()
        self.switch_button = QPushButton("Switch operator…")
        self.sign_in_button = QPushButton("Sign in…")
        self.kill_note = note("The KILL button above works while the screen is locked or nobody is signed in: "
                              "F12 or Ctrl+Shift+K from anywhere in the desk, or the tray menu.")

        entry = QHBoxLayout()
        entry.setSpacing(6)
        entry.addWidget(self.password_edit, 1)
        entry.addWidget(self.unlock_button)
        others = QHBoxLayout()
        others.addWidget(self.switch_button)
        others.addWidget(self.sign_in_button)
        others.addStretch(1)
        inner = QVBoxLayout(card)
        inner.setContentsMargins(22, 18, 22, 18)
        inner.setSpacing(10)
        inner.addWidget(self.title)
        inner.addWidget(self.detail)
        inner.addLayout(entry)
        inner.addWidget(self.message)
        inner.addWidget(self.status)
        inner.addLayout(others)
        inner.addSpacing(6)
        inner.addWidget(self.kill_note)

        outer = QVBoxLayout(self)
        outer.addStretch(2)
        row = QHBoxLayout()
        row.addStretch(1)
        row.addWidget(card)
        row.addStretch(1)
        outer.addLayout(row)
        outer.addStretch(3)

        self.unlock_button.clicked.connect(self.submit)
        self.password_edit.returnPressed.connect(self.submit)
        self.password_edit.textChanged.connect(self._refresh)
        self.switch_button.clicked.connect(self.switch_requested.emit)
        self.sign_in_button.clicked.connect(self.sign_in_requested.emit)
        self.show_signed_out()

    def set_dark(self, dark: bool) -> None:
        """The card's frame in the theme's colours."""
        c = theme.colours(dark)
        self.setStyleSheet(f"QFrame#lockCard {{ background: {c.alt_base}; border: 1px solid {c.dim}; border-radius: 6px; }}")

    def show_signed_out(self) -> None:
        """Nobody is at the desk: offer the sign-in dialog."""
        self.face = LockFace.SIGNED_OUT
        self._name, self._unlock = "", None
        self.title.setText("Nobody is signed in")
        self.detail.setText("Sign in to see positions, orders and the ticket.")
        for widget in (self.password_edit, self.unlock_button, self.switch_button):
            widget.hide()
        self.sign_in_button.show()
        self.password_edit.clear()
        show_problem(self.message, "")
        self._refresh()

    def show_locked(self, name: str, who: str, since: str, unlock: Unlock) -> None:
        """Locked for ``name`` (``who`` is how to show them, ``since`` when): their password unlocks."""
        self.face = LockFace.LOCKED
        self._name, self._unlock = name, unlock
        self.title.setText("Screen locked")
        self.detail.setText(f"{who} — locked at {since}. Enter {name}'s password to unlock, or switch operator.")
        for widget in (self.password_edit, self.unlock_button, self.switch_button):
            widget.show()
        self.sign_in_button.hide()
        self.password_edit.clear()
        show_problem(self.message, "")
        self._refresh()
        self.password_edit.setFocus()

    def _refresh(self) -> None:
        self.unlock_button.setEnabled(bool(self.password_edit.text()) and not self.busy)

    def submit(self) -> None:
        """Try the password typed (Enter or Unlock)."""
        if self.face is LockFace.LOCKED and not self.busy and self.password_edit.text():
            self._task = asyncio.ensure_future(self.attempt())

    async def attempt(self) -> Actor | None:
        """Check the password in a worker thread; the operator on success (``unlocked`` emitted), else ``None``."""
        unlock = self._unlock
        if unlock is None:
            return None
        actor = await verified(unlock, self._name, self.password_edit, self.message, self._set_busy, "unlock")
        if actor is None:
            return None
        self.unlocked.emit(actor)
        return actor

    def _set_busy(self, busy: bool) -> None:
        self.busy = busy
        self.status.setText("Checking…" if busy else "")
        self.status.setVisible(busy)
        if busy:
            show_problem(self.message, "")
        self.password_edit.setReadOnly(busy)
        self._refresh()
