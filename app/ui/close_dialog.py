"""Asked when the window closes while orders are still working: what becomes of them."""

from __future__ import annotations

import enum

from PySide6.QtGui import QFont
from PySide6.QtWidgets import (
    QDialog,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from app.ui import formatting


class CloseChoice(enum.Enum):
    """What to do with the working orders as the desk closes; ``STAY`` keeps the window open."""

    LEAVE = "leave"
    CANCEL = "cancel"
    HALT = "halt"
    STAY = "stay"


_OPTIONS = (
    (CloseChoice.LEAVE, "Leave orders working", "The broker keeps them; the desk reconciles them at next start."),
    (CloseChoice.CANCEL, "Cancel working orders", "Cancels every working order; trading is not halted."),
    (CloseChoice.HALT, "Halt (kill switch)", "Engages the kill switch (HALTED) and cancels every working order."),
)


def _count(number: int, one: str, many: str) -> str:
    return f"{formatting.quantity(number)} {one if number == 1 else many}"


class CloseDialog(QDialog):
    """Leave, cancel or halt before closing, or don't close. "Don't close" is the default and what Escape means."""

    def __init__(self, working: int, positions: int, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Close Bulwark")
        self.setModal(True)
        self._choice = CloseChoice.STAY

        heading = QLabel(f"{_count(working, 'order is', 'orders are')} still working.")
        font = QFont(heading.font())
        font.setBold(True)
        font.setPointSizeF(font.pointSizeF() * 1.15)
        heading.setFont(font)
        if positions:
            held = f"{_count(positions, 'open position stays', 'open positions stay')} open whatever you choose."
        else:
            held = "No positions are open."

        grid = QGridLayout()
        grid.setHorizontalSpacing(12)
        self.buttons: dict[CloseChoice, QPushButton] = {}
        for row, (choice, text, explanation) in enumerate(_OPTIONS):
            button = QPushButton(text)
            # Only "Don't close" answers Enter; focusing another button must not make it the default.
            button.setAutoDefault(False)
            button.clicked.connect(lambda _=False, c=choice: self._choose(c))
            self.buttons[choice] = button
            grid.addWidget(button, row, 0)
            label = QLabel(explanation)
            label.setWordWrap(True)
            grid.addWidget(label, row, 1)
        grid.setColumnStretch(1, 1)

        stay = QPushButton("Don't close")
        stay.setDefault(True)
        stay.clicked.connect(self.reject)
        self.buttons[CloseChoice.STAY] = stay
        bottom = QHBoxLayout()
        bottom.addStretch(1)
        bottom.addWidget(stay)

        layout = QVBoxLayout(self)
        layout.addWidget(heading)
        layout.addWidget(QLabel(held))
        layout.addSpacing(6)
        layout.addLayout(grid)
        layout.addSpacing(6)
        layout.addLayout(bottom)
        self.setMinimumWidth(600)
        stay.setFocus()

    def choice(self) -> CloseChoice:
        """The operator's answer; ``STAY`` until a closing choice is clicked (and after Escape)."""
        return self._choice

    def _choose(self, choice: CloseChoice) -> None:
        self._choice = choice
        self.accept()
