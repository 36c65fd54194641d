"""The flatten confirmation: names every order the flatten will send before the operator commits to it.

Given the window's ``session``, the confirmation belongs to the operator signed in when it opened:
once that operator has signed out, switched or locked the screen, confirming it is refused.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from PySide6.QtCore import Qt, QTimer
from PySide6.QtGui import QBrush, QColor, QFont, QShowEvent
from PySide6.QtWidgets import (
    QAbstractItemView,
    QDialog,
    QDialogButtonBox,
    QHeaderView,
    QLabel,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from app.ui import formatting, theme
from app.ui.session import OperatorSession, not_held_text

_VISIBLE_ROWS = 10
_COLUMNS = ("Instrument", "Side", "Qty", "≈ Value at mark")
_RIGHT = Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter


@dataclass(frozen=True)
class FlattenLine:
    """One closing order the flatten will send: ``side`` is the order's side, ``mark`` the last price in paise."""

    instrument_key: str
    side: str
    quantity: int
    mark: int | None


def _plural(count: int, one: str, many: str) -> str:
    return f"{formatting.quantity(count)} {one if count == 1 else many}"


def consequences(positions: int, working_orders: int) -> str:
    """What a flatten does, in one sentence."""
    if working_orders:
        cancels = f"cancels {_plural(working_orders, 'working order', 'working orders')}"
    else:
        cancels = "cancels working orders (none now)"
    what = "this position" if positions == 1 else "these positions"
    return (
        f"The desk goes to REDUCING, {cancels}, sends protected marketable orders to close {what}, "
        "and ends HALTED."
    )


def _side_colour(side: str, dark: bool) -> str:
    if side == "BUY":
        return "#6cb6ff" if dark else "#1456b8"
    return "#ff8a80" if dark else "#b3261e"


class FlattenDialog(QDialog):
    """Shows what a flatten will send and asks for one deliberate click.

    Cancel is the default button, so Enter never flattens; the confirm button stays disabled for
    ``arm_delay_ms`` after the dialog shows, so the double-click that opened it cannot also confirm it.
    ``exec()`` returns ``Accepted`` only on that click. With an empty plan there is nothing to confirm:
    the dialog says so and offers only Close.
    """

    def __init__(
        self,
        plan: Sequence[FlattenLine],
        working_orders: int,
        parent: QWidget | None = None,
        *,
        arm_delay_ms: int = 1000,
        session: OperatorSession | None = None,
    ) -> None:
        super().__init__(parent)
        self.setModal(True)
        self._session = session
        # The operator's stay this confirmation was opened in: nobody else's authority (nor a later sign-in) confirms it.
        self.seat = session.seat if session is not None else None
        self.refusal = QLabel(self)
        self.refusal.setWordWrap(True)
        self.refusal.setStyleSheet(f"color: {theme.colours(theme.is_dark(self.palette())).bad};")
        self.refusal.hide()
        self._plan = tuple(plan)
        self._arm_delay_ms = arm_delay_ms
        self._arm_timer = QTimer(self)
        self._arm_timer.setSingleShot(True)
        self._arm_timer.timeout.connect(self._arm)
        dark = theme.is_dark(self.palette())

        self.setMinimumWidth(380)
        layout = QVBoxLayout(self)
        layout.setSpacing(8)
        heading = QLabel()
        font = QFont(heading.font())
        font.setBold(True)
        font.setPointSizeF(font.pointSizeF() * 1.15)
        heading.setFont(font)
        layout.addWidget(heading)

        self._buttons = QDialogButtonBox()
        self.cancel_button: QPushButton
        self.confirm_button: QPushButton | None = None
        self.table: QTableWidget | None = None
        if not self._plan:
            self.setWindowTitle("Flatten")
            heading.setText("Nothing to flatten")
            note = "The desk has no open positions."
            if working_orders:
                note += f" Its {_plural(working_orders, 'working order stays', 'working orders stay')} as they are."
            layout.addWidget(_wrapped(note))
            close = self._buttons.addButton(QDialogButtonBox.StandardButton.Close)
            close.setDefault(True)
            close.clicked.connect(self.reject)
            self.cancel_button = close
            layout.addWidget(self._buttons)
            return

        count = len(self._plan)
        self.setWindowTitle("Flatten the desk")
        heading.setText(f"Flatten {_plural(count, 'position', 'positions')}?")
        layout.addWidget(_wrapped(consequences(count, working_orders)))

        self.table = self._table(dark)
        layout.addWidget(self.table)
        layout.addWidget(_wrapped(self._totals()))

        self.confirm_button = self._buttons.addButton(
            f"Flatten {_plural(count, 'position', 'positions')}", QDialogButtonBox.ButtonRole.AcceptRole
        )
        self.cancel_button = self._buttons.addButton(QDialogButtonBox.StandardButton.Cancel)
        # Enter must never flatten: Cancel is the default, and the confirm button never becomes one on focus.
        self.confirm_button.setAutoDefault(False)
        self.confirm_button.setDefault(False)
        self.cancel_button.setDefault(True)
        self.confirm_button.setEnabled(arm_delay_ms <= 0)
        self.confirm_button.clicked.connect(self.accept)
        self.cancel_button.clicked.connect(self.reject)
        layout.addWidget(self.refusal)
        layout.addWidget(self._buttons)
        self.cancel_button.setFocus()

    def accept(self) -> None:
        """Confirm, unless the operator it was opened for no longer holds the window (then say so; nothing is sent)."""
        if self._session is not None and not self._session.holds(self.seat):
            name = self.seat.actor.name if self.seat is not None else "nobody"
            self.refusal.setText(not_held_text(name))
            self.refusal.show()
            return
        super().accept()

    def plan(self) -> tuple[FlattenLine, ...]:
        """The lines shown, in order."""
        return self._plan

    def showEvent(self, event: QShowEvent) -> None:
        super().showEvent(event)
        # The delay counts from when the operator can see the dialog, not from when it was built.
        if self.confirm_button is not None and not self.confirm_button.isEnabled() and not self._arm_timer.isActive():
            self._arm_timer.start(self._arm_delay_ms)

    def _arm(self) -> None:
        if self.confirm_button is not None:
            self.confirm_button.setEnabled(True)

    def _table(self, dark: bool) -> QTableWidget:
        table = QTableWidget(len(self._plan), len(_COLUMNS))
        table.setHorizontalHeaderLabels(list(_COLUMNS))
        table.verticalHeader().hide()
        table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        table.setSelectionMode(QAbstractItemView.SelectionMode.NoSelection)
        table.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        table.setShowGrid(False)
        table.setAlternatingRowColors(True)
        table.setWordWrap(False)
        for row, line in enumerate(self._plan):
            value = "no mark" if line.mark is None else formatting.inr(line.mark * line.quantity)
            cells = (line.instrument_key, line.side, formatting.quantity(line.quantity), value)
            for column, text in enumerate(cells):
                item = QTableWidgetItem(text)
                if column >= 2:
                    item.setTextAlignment(_RIGHT)
                if column == 1:
                    item.setForeground(QBrush(QColor(_side_colour(line.side, dark))))
                table.setItem(row, column, item)
        header = table.horizontalHeader()
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        for column in range(1, len(_COLUMNS)):
            header.setSectionResizeMode(column, QHeaderView.ResizeMode.ResizeToContents)
        header.setDefaultAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter)
        for column in (2, 3):
            header_item = table.horizontalHeaderItem(column)
            if header_item is not None:
                header_item.setTextAlignment(_RIGHT)
        table.verticalHeader().setDefaultSectionSize(table.fontMetrics().lineSpacing() + 6)
        rows = min(len(self._plan), _VISIBLE_ROWS)
        frame = 2 * table.frameWidth()
        table.setFixedHeight(header.sizeHint().height() + rows * table.verticalHeader().defaultSectionSize() + frame)
        table.setMinimumWidth(520)
        return table

    def _totals(self) -> str:
        marked = [line for line in self._plan if line.mark is not None]
        total = sum(line.quantity * (line.mark or 0) for line in marked)
        text = f"About {formatting.inr(total)} at the last marks."
        unmarked = len(self._plan) - len(marked)
        if unmarked:
            text += f" {_plural(unmarked, 'line has', 'lines have')} no mark and {'is' if unmarked == 1 else 'are'} not counted."
        return text


def _wrapped(text: str) -> QLabel:
    label = QLabel(text)
    label.setWordWrap(True)
    return label
