"""What the desk's tables share: the sort role, the status tones, a model over named columns, a free-text
filter proxy and the compact, row-selecting table view."""

from __future__ import annotations

import enum
from collections.abc import Sequence
from typing import Any

from PySide6.QtCore import (
    QAbstractTableModel,
    QModelIndex,
    QPersistentModelIndex,
    QSortFilterProxyModel,
    Qt,
)
from PySide6.QtGui import QColor, QPalette
from PySide6.QtWidgets import QAbstractItemView, QHeaderView, QTableView

from app.ui import theme

ModelIndex = QModelIndex | QPersistentModelIndex

# Raw, sortable values (ints for amounts and times) behind the formatted text.
SORT_ROLE = int(Qt.ItemDataRole.UserRole)
_DISPLAY = int(Qt.ItemDataRole.DisplayRole)
_ALIGN = int(Qt.ItemDataRole.TextAlignmentRole)
RIGHT = Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter
LEFT = Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter


def is_dark_palette(palette: QPalette) -> bool:
    """True when the palette paints light text on a dark base (a table's background)."""
    return theme.is_dark(palette, QPalette.ColorRole.Base)


class Tone(enum.Enum):
    """Semantic text colours shared by the desk's tables."""

    WORKING = "working"
    GOOD = "good"
    MUTED = "muted"
    BAD = "bad"
    WARN = "warn"


# Picked for contrast on #1e1f22 (dark) and on white (light); blue rather than green for working
# orders so "live" and "filled" never read alike for a red-green colour-blind trader.
_TONES: dict[bool, dict[Tone, QColor]] = {
    True: {
        Tone.WORKING: QColor("#5cb8ff"),
        Tone.GOOD: QColor("#62c47c"),
        Tone.MUTED: QColor("#8b8e94"),
        Tone.BAD: QColor("#ff6e6e"),
        Tone.WARN: QColor("#f2b53d"),
    },
    False: {
        Tone.WORKING: QColor("#0a5dbf"),
        Tone.GOOD: QColor("#16803a"),
        Tone.MUTED: QColor("#6c727a"),
        Tone.BAD: QColor("#c3261f"),
        Tone.WARN: QColor("#9a5b00"),
    },
}


def tone_colour(tone: Tone, dark: bool) -> QColor:
    """The colour of a tone on a dark or a light background."""
    return _TONES[dark][tone]


class ColumnsModel(QAbstractTableModel):
    """A table of ``_rows`` under fixed column titles, the ``numeric`` ones right-aligned.

    Subclasses keep ``_rows`` and answer ``data`` and ``matches``.
    """

    def __init__(self, columns: Sequence[str], numeric: frozenset[int], parent: Any = None) -> None:
        super().__init__(parent)
        self._columns = tuple(columns)
        self._numeric = numeric
        self._rows: Sequence[object] = []

    def rowCount(self, parent: ModelIndex = QModelIndex()) -> int:  # noqa: B008 - Qt's default argument
        return 0 if parent.isValid() else len(self._rows)

    def columnCount(self, parent: ModelIndex = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self._columns)

    def headerData(self, section: int, orientation: Qt.Orientation, role: int = _DISPLAY) -> Any:
        if orientation is not Qt.Orientation.Horizontal:
            return None
        if role == _DISPLAY:
            return self._columns[section]
        if role == _ALIGN:
            return self.alignment(section)
        return None

    def alignment(self, column: int) -> Qt.AlignmentFlag:
        return RIGHT if column in self._numeric else LEFT

    def matches(self, row: int, needle: str) -> bool:
        """Whether a lower-case needle occurs in the row's searchable text."""
        raise NotImplementedError


class TextFilter(QSortFilterProxyModel):
    """Narrows a ``ColumnsModel`` by free text (case-insensitive); sorts on ``SORT_ROLE``."""

    def __init__(self, parent: Any = None) -> None:
        super().__init__(parent)
        self._needle = ""
        self.setSortRole(SORT_ROLE)
        self.setDynamicSortFilter(True)

    @property
    def text(self) -> str:
        return self._needle

    def set_text(self, text: str) -> None:
        needle = text.strip().lower()
        if needle == self._needle:
            return
        self.beginFilterChange()
        self._needle = needle
        self.endFilterChange(QSortFilterProxyModel.Direction.Rows)

    def filterAcceptsRow(self, source_row: int, source_parent: ModelIndex) -> bool:
        model = self.sourceModel()
        if not isinstance(model, ColumnsModel):
            return True
        return self.accepts(model, source_row) and (not self._needle or model.matches(source_row, self._needle))

    def accepts(self, model: ColumnsModel, row: int) -> bool:
        """A filter besides the text (none here)."""
        return True


def compact_table(table: QTableView, sort_column: int, order: Qt.SortOrder, *, stretch_last: bool) -> None:
    """The desk's table look: sortable, whole rows selected, read-only, no grid, 20 px rows, movable columns."""
    table.setSortingEnabled(True)
    table.sortByColumn(sort_column, order)
    table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
    table.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
    table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
    table.setShowGrid(False)
    table.setAlternatingRowColors(True)
    table.setWordWrap(False)
    vertical = table.verticalHeader()
    vertical.setVisible(False)
    vertical.setSectionResizeMode(QHeaderView.ResizeMode.Fixed)
    vertical.setDefaultSectionSize(20)
    vertical.setMinimumSectionSize(16)
    header = table.horizontalHeader()
    header.setStretchLastSection(stretch_last)
    header.setHighlightSections(False)
    header.setSectionsMovable(True)
