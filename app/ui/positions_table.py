"""The desk's positions: one row per instrument traded this session, diffed in place on every update."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from PySide6.QtCore import (
    QEvent,
    QModelIndex,
    QObject,
    Qt,
    Signal,
)
from PySide6.QtGui import QColor
from PySide6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from app.engine.portfolio import PositionView
from app.ui import formatting
from app.ui.table_view import (
    SORT_ROLE,
    ColumnsModel,
    ModelIndex,
    TextFilter,
    Tone,
    compact_table,
    is_dark_palette,
    tone_colour,
)

_DISPLAY = int(Qt.ItemDataRole.DisplayRole)
_ALIGN = int(Qt.ItemDataRole.TextAlignmentRole)
_FOREGROUND = int(Qt.ItemDataRole.ForegroundRole)
_TOOLTIP = int(Qt.ItemDataRole.ToolTipRole)

COLUMNS: tuple[str, ...] = ("Instrument", "Underlying", "Qty", "Avg", "LTP", "Value", "Realised", "Unrealised", "P&L")
(
    COL_INSTRUMENT,
    COL_UNDERLYING,
    COL_QTY,
    COL_AVG,
    COL_LTP,
    COL_VALUE,
    COL_REALISED,
    COL_UNREALISED,
    COL_PNL,
) = range(len(COLUMNS))
_LAST = len(COLUMNS) - 1
_NUMERIC = frozenset(range(COL_QTY, len(COLUMNS)))
_PNL_COLUMNS = frozenset({COL_REALISED, COL_UNREALISED, COL_PNL})


def signed_inr(paise: int) -> str:
    """A full amount with an explicit sign for P&L: '+₹3,41,000', '-₹12,000', '₹0'."""
    text = formatting.inr(paise)
    return "+" + text if paise > 0 and text != "₹0" else text


def _pnl(v: PositionView) -> int:
    return v.realized + v.unrealized


_DISPLAY_OF: tuple[Callable[[PositionView], str], ...] = (
    lambda v: v.instrument_key,
    lambda v: v.underlying,
    lambda v: formatting.quantity(v.quantity),
    lambda v: "" if v.average_price is None else formatting.price(round(v.average_price)),
    lambda v: "—" if v.mark is None else formatting.price(v.mark),
    lambda v: formatting.inr(v.market_value),
    lambda v: signed_inr(v.realized),
    lambda v: signed_inr(v.unrealized),
    lambda v: signed_inr(_pnl(v)),
)

# Missing numbers (flat: no average; no tick yet: no LTP) sort below every real one.
_SORT_OF: tuple[Callable[[PositionView], object], ...] = (
    lambda v: v.instrument_key,
    lambda v: v.underlying,
    lambda v: v.quantity,
    lambda v: float("-inf") if v.average_price is None else v.average_price,
    lambda v: -1 if v.mark is None else v.mark,
    lambda v: v.market_value,
    lambda v: v.realized,
    lambda v: v.unrealized,
    _pnl,
)

_PNL_OF: dict[int, Callable[[PositionView], int]] = {
    COL_REALISED: lambda v: v.realized,
    COL_UNREALISED: lambda v: v.unrealized,
    COL_PNL: _pnl,
}


@dataclass(frozen=True, slots=True)
class PositionTotals:
    """Sums over every row of the positions table."""

    open_count: int = 0
    realised: int = 0
    unrealised: int = 0

    @property
    def pnl(self) -> int:
        return self.realised + self.unrealised


class PositionsModel(ColumnsModel):
    """Positions by instrument, in first-seen order (a proxy sorts them).

    ``update`` diffs against the current rows: only changed rows emit dataChanged, new instruments
    are inserted, and rows are never removed (a flat position still carries its realised P&L).
    """

    totals_changed = Signal()

    def __init__(self, parent: QObject | None = None, *, dark: bool = True) -> None:
        super().__init__(COLUMNS, _NUMERIC, parent)
        self._rows: list[PositionView] = []
        self._cells: dict[int, tuple[PositionView, tuple[str, ...], tuple[QColor | None, ...]]] = {}
        self._index: dict[str, int] = {}
        self._open = 0
        self._realised = 0
        self._unrealised = 0
        self._dark = dark

    def data(self, index: ModelIndex, role: int = _DISPLAY) -> Any:
        if not index.isValid():
            return None
        row = index.row()
        view = self._rows[row]
        if role == _DISPLAY or role == _FOREGROUND:
            # A repaint asks each cell several times: the row's texts and colours are made once per new view.
            cells = self._cells.get(row)
            if cells is None or cells[0] is not view:
                cells = (view, tuple(f(view) for f in _DISPLAY_OF), tuple(self._foreground(view, c) for c in range(len(_DISPLAY_OF))))
                self._cells[row] = cells
            return cells[1][index.column()] if role == _DISPLAY else cells[2][index.column()]
        if role == SORT_ROLE:
            return _SORT_OF[index.column()](view)
        if role == _ALIGN:
            return self.alignment(index.column())
        if role == _TOOLTIP and index.column() == COL_AVG and view.average_price is not None:
            return f"average entry {view.average_price / 100:,.4f}"
        return None

    def _foreground(self, view: PositionView, column: int) -> QColor | None:
        amount = _PNL_OF.get(column)
        if amount is not None:
            value = amount(view)
            if value > 0:
                return tone_colour(Tone.GOOD, self._dark)
            if value < 0:
                return tone_colour(Tone.BAD, self._dark)
        if view.quantity == 0:
            return tone_colour(Tone.MUTED, self._dark)
        return None

    def update(self, views: Sequence[PositionView]) -> None:
        """Fold the latest views: keys not seen before are appended, keys left out stay as they were."""
        base = len(self._rows)
        pending: list[PositionView] = []
        changed: list[int] = []
        totals = self.totals()
        for view in views:
            at = self._index.get(view.instrument_key)
            if at is None:
                self._index[view.instrument_key] = base + len(pending)
                pending.append(view)
                self._count(view, 1)
                continue
            old = pending[at - base] if at >= base else self._rows[at]
            if old == view:
                continue
            self._count(old, -1)
            self._count(view, 1)
            if at >= base:
                pending[at - base] = view
            else:
                self._rows[at] = view
                changed.append(at)
        if pending:
            self.beginInsertRows(QModelIndex(), base, base + len(pending) - 1)
            self._rows.extend(pending)
            self.endInsertRows()
        changed.sort()
        start = previous = -2
        for i in changed:
            if i != previous + 1:
                if start >= 0:
                    self.dataChanged.emit(self.createIndex(start, 0), self.createIndex(previous, _LAST))
                start = i
            previous = i
        if start >= 0:
            self.dataChanged.emit(self.createIndex(start, 0), self.createIndex(previous, _LAST))
        if self.totals() != totals:
            self.totals_changed.emit()

    def _count(self, view: PositionView, sign: int) -> None:
        self._open += sign if view.quantity else 0
        self._realised += sign * view.realized
        self._unrealised += sign * view.unrealized

    def totals(self) -> PositionTotals:
        return PositionTotals(self._open, self._realised, self._unrealised)

    def instrument_key(self, row: int) -> str:
        return self._rows[row].instrument_key

    def quantity(self, row: int) -> int:
        """The row's signed position in units."""
        return self._rows[row].quantity

    def row_of(self, instrument_key: str) -> int | None:
        return self._index.get(instrument_key)

    def matches(self, row: int, needle: str) -> bool:
        """Whether a lower-case needle occurs in the row's instrument or underlying."""
        view = self._rows[row]
        return needle in view.instrument_key.lower() or needle in view.underlying.lower()

    @property
    def dark(self) -> bool:
        return self._dark

    def set_dark(self, dark: bool) -> None:
        """Switch the P&L colours between the dark and the light set."""
        if dark == self._dark:
            return
        self._dark = dark
        self._cells.clear()
        if self._rows:
            self.dataChanged.emit(
                self.createIndex(0, 0), self.createIndex(len(self._rows) - 1, _LAST), [Qt.ItemDataRole.ForegroundRole]
            )
        self.totals_changed.emit()


class PositionsFilter(TextFilter):
    """Narrows positions by free text over instrument and underlying; sorts on raw values."""


class PositionsView(QWidget):
    """Positions table with a text filter and a totals line.

    A double-click on a row asks for the order that closes it: ``close_requested(instrument_key, quantity)``
    with the signed position (the ticket's ``prefill_close``).
    """

    close_requested = Signal(str, int)

    def __init__(self, model: PositionsModel | None = None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.model = model if model is not None else PositionsModel(self)
        self.proxy = PositionsFilter(self)
        self.proxy.setSourceModel(self.model)

        bar = QHBoxLayout()
        bar.setContentsMargins(4, 2, 4, 2)
        bar.setSpacing(8)
        self.filter_edit = QLineEdit(self)
        self.filter_edit.setPlaceholderText("filter: instrument, underlying")
        self.filter_edit.setClearButtonEnabled(True)
        self.filter_edit.setMaximumWidth(260)
        self.filter_edit.textChanged.connect(self.proxy.set_text)
        bar.addWidget(self.filter_edit, 1)
        bar.addStretch(1)
        self.totals_label = QLabel(self)
        self.totals_label.setTextFormat(Qt.TextFormat.RichText)
        bar.addWidget(self.totals_label)

        self.table = QTableView(self)
        table = self.table
        table.setModel(self.proxy)
        # Last column not stretched: a right-aligned P&L stays next to Unrealised instead of at the far edge.
        compact_table(table, COL_INSTRUMENT, Qt.SortOrder.AscendingOrder, stretch_last=False)
        header = table.horizontalHeader()
        metrics = table.fontMetrics()
        samples = {
            COL_INSTRUMENT: "NFO:BANKNIFTY-2026-12-29-52000-CE",
            COL_UNDERLYING: "TATAMOTORS",
            COL_QTY: "-1,50,000",
            COL_AVG: "1,23,456.00",
            COL_LTP: "1,23,456.00",
            COL_VALUE: "-₹12,34,56,789",
            COL_REALISED: "+₹1,23,45,678",
            COL_UNREALISED: "+₹1,23,45,678",
            COL_PNL: "+₹1,23,45,678",
        }
        for column, sample in samples.items():
            header.resizeSection(column, metrics.horizontalAdvance(sample) + 18)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(0)
        layout.addLayout(bar)
        layout.addWidget(table, 1)

        self.model.totals_changed.connect(self.refresh_totals)
        self.model.set_dark(is_dark_palette(self.palette()))
        self.refresh_totals()
        table.doubleClicked.connect(self._double_clicked)

    def _double_clicked(self, index: QModelIndex) -> None:
        row = self.proxy.mapToSource(index).row()
        if 0 <= row < self.model.rowCount():
            self.close_requested.emit(self.model.instrument_key(row), self.model.quantity(row))

    def refresh_totals(self) -> None:
        """Rewrite the totals line (the model asks for it once per update that moved a total)."""
        totals = self.model.totals()
        dark = self.model.dark

        def amount(paise: int) -> str:
            text = formatting.signed_inr_short(paise)
            if paise == 0:
                return text
            colour = tone_colour(Tone.GOOD if paise > 0 else Tone.BAD, dark).name()
            return f'<span style="color:{colour}">{text}</span>'

        self.totals_label.setText(
            f"{totals.open_count} open &nbsp;&nbsp; realised {amount(totals.realised)}"
            f" &nbsp;&nbsp; unrealised {amount(totals.unrealised)} &nbsp;&nbsp; <b>P&amp;L {amount(totals.pnl)}</b>"
        )

    def changeEvent(self, event: QEvent) -> None:
        if event.type() in (QEvent.Type.PaletteChange, QEvent.Type.ApplicationPaletteChange):
            self.model.set_dark(is_dark_palette(self.palette()))
        super().changeEvent(event)
