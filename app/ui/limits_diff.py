"""Two limits documents side by side, field by field: only what differs, coloured by the kind of change."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QBrush, QColor, QFont
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHeaderView,
    QLabel,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from app.ui import theme
from app.ui.limits_document import FieldChange


class LimitsDiffView(QWidget):
    """The changed fields of two documents: field | before | after.

    A changed value is amber on both sides, a field only on the right (added) green, only on the
    left (removed) red; the colours come from the theme, so they read on either background.
    """

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.title = QLabel()
        self.title.setObjectName("limitsDiffTitle")
        self.title.setWordWrap(True)
        self.table = QTableWidget(0, 3)
        self.table.setObjectName("limitsDiff")
        self.table.verticalHeader().setVisible(False)
        self.table.verticalHeader().setDefaultSectionSize(22)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setWordWrap(False)
        self.table.setMinimumHeight(110)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.Interactive)
        header.setSectionResizeMode(1, QHeaderView.ResizeMode.Stretch)
        header.setSectionResizeMode(2, QHeaderView.ResizeMode.Stretch)
        self.table.setColumnWidth(0, 300)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(3)
        layout.addWidget(self.title)
        layout.addWidget(self.table, 1)
        layout.addStretch(0)
        self.changes: list[FieldChange] = []

    def show_changes(self, changes: list[FieldChange], before: str, after: str, *, title: str) -> None:
        """Show ``changes`` under column titles ``before`` and ``after``; ``title`` says what is compared."""
        self.changes = list(changes)
        self.table.show()
        colours = theme.colours(theme.is_dark(self.palette()))
        self.title.setText(title)
        self.table.setHorizontalHeaderLabels(["Field", before, after])
        self.table.setRowCount(len(changes))
        mono = QFont("monospace")
        mono.setStyleHint(QFont.StyleHint.Monospace)
        for row, change in enumerate(changes):
            kind = "changed" if change.before is not None and change.after is not None else (
                "added" if change.before is None else "removed")
            colour = QColor({"changed": colours.warn, "added": colours.good, "removed": colours.bad}[kind])
            tint = QColor(colour)
            tint.setAlpha(40)
            path = QTableWidgetItem(change.path)
            path.setFont(mono)
            path.setToolTip(f"{change.path}: {kind}")
            self.table.setItem(row, 0, path)
            for column, value in ((1, change.before), (2, change.after)):
                item = QTableWidgetItem("(not set)" if value is None else value)
                item.setToolTip(item.text())
                if value is None:
                    item.setForeground(QBrush(QColor(colours.dim)))
                else:
                    item.setForeground(QBrush(colour if (column == 2) != (kind == "removed") else QColor(colours.text)))
                    item.setBackground(QBrush(tint))
                item.setTextAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter)
                self.table.setItem(row, column, item)
        self.table.resizeColumnToContents(0)
        self.table.setColumnWidth(0, min(max(self.table.columnWidth(0) + 12, 220), 420))

    def clear(self, title: str) -> None:
        """No comparison to show; ``title`` says why."""
        self.changes = []
        self.title.setText(title)
        self.table.setRowCount(0)
        self.table.hide()

    def rows(self) -> list[tuple[str, str, str]]:
        """What the table shows, row by row (field, before, after)."""
        return [(self._cell(row, 0), self._cell(row, 1), self._cell(row, 2)) for row in range(self.table.rowCount())]

    def _cell(self, row: int, column: int) -> str:
        item = self.table.item(row, column)
        return item.text() if item is not None else ""
