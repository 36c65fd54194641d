"""The desk's order blotter: every order of the session and every refused request, updated row by row."""

from __future__ import annotations

import datetime as dt
import enum
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from PySide6.QtCore import (
    QEvent,
    QModelIndex,
    QObject,
    QSortFilterProxyModel,
    Qt,
    Signal,
)
from PySide6.QtGui import QKeyEvent
from PySide6.QtWidgets import (
    QAbstractItemView,
    QButtonGroup,
    QHBoxLayout,
    QLineEdit,
    QMenu,
    QPushButton,
    QTableView,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from app.domain.events import OrderRejected, OrderSnapshot
from app.domain.india_time import IST
from app.domain.orders import OrderSource, OrderStatus, OrderType, Product, Side
from app.domain.rejections import REASON_TEXT, Rejection
from app.engine.config import EngineConfig
from app.store.desk_identity import widest_order_id_stem
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

"""Role giving a raw, sortable value for a cell (ints for amounts, quantities and times)."""

# Plain ints: data() runs for every painted cell and every sort comparison, and comparing an int
# role against an enum member costs more than comparing two ints.
_DISPLAY = int(Qt.ItemDataRole.DisplayRole)
_ALIGN = int(Qt.ItemDataRole.TextAlignmentRole)
_FOREGROUND = int(Qt.ItemDataRole.ForegroundRole)
_TOOLTIP = int(Qt.ItemDataRole.ToolTipRole)



def ist_stamp(ts_ns: int) -> str:
    """'2026-12-01 11:42:07.123 IST' for tooltips."""
    moment = dt.datetime.fromtimestamp(ts_ns // 1_000 / 1_000_000, IST)
    return moment.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] + " IST"


class OrdersGroup(enum.Enum):
    """The blotter's tabs. Values are the keys of ``OrdersModel.counts()``."""

    ALL = "all"
    WORKING = "working"
    DONE = "done"
    REJECTED = "rejected"


# NEW counts as working: the order is on its way through the desk and is not finished.
_GROUP_OF: dict[OrderStatus, OrdersGroup] = {
    OrderStatus.NEW: OrdersGroup.WORKING,
    OrderStatus.SENT: OrdersGroup.WORKING,
    OrderStatus.OPEN: OrdersGroup.WORKING,
    OrderStatus.PARTIALLY_FILLED: OrdersGroup.WORKING,
    OrderStatus.UNKNOWN: OrdersGroup.WORKING,
    OrderStatus.FILLED: OrdersGroup.DONE,
    OrderStatus.CANCELLED: OrdersGroup.DONE,
    OrderStatus.EXPIRED: OrdersGroup.DONE,
    OrderStatus.REJECTED: OrdersGroup.REJECTED,
}

_STATUS_TONE: dict[OrderStatus, Tone] = {
    OrderStatus.NEW: Tone.WORKING,
    OrderStatus.SENT: Tone.WORKING,
    OrderStatus.OPEN: Tone.WORKING,
    OrderStatus.PARTIALLY_FILLED: Tone.WORKING,
    OrderStatus.UNKNOWN: Tone.WARN,
    OrderStatus.FILLED: Tone.GOOD,
    OrderStatus.CANCELLED: Tone.MUTED,
    OrderStatus.EXPIRED: Tone.MUTED,
    OrderStatus.REJECTED: Tone.BAD,
}

# Beyond the Status cell, only rows that need a second look are tinted: finished-without-trading
# rows fade, an UNKNOWN row (may still fill) is amber throughout. Live and filled rows keep the
# palette's text colour so that the page stays calm and the Status column carries the state.
_ROW_TONE: dict[OrderStatus, Tone] = {
    OrderStatus.CANCELLED: Tone.MUTED,
    OrderStatus.EXPIRED: Tone.MUTED,
    OrderStatus.UNKNOWN: Tone.WARN,
}

_STATUS_TEXT: dict[OrderStatus, str] = {status: status.value for status in OrderStatus} | {
    OrderStatus.PARTIALLY_FILLED: "PARTIAL",
}


COLUMNS: tuple[str, ...] = (
    "Time",
    "Order",
    "Instrument",
    "Side",
    "Qty",
    "Price",
    "Filled",
    "Status",
    "Source",
    "Actor",
    "Reason",
    "Value / Limit",
    "Message",
)
(
    COL_TIME,
    COL_ORDER,
    COL_INSTRUMENT,
    COL_SIDE,
    COL_QTY,
    COL_PRICE,
    COL_FILLED,
    COL_STATUS,
    COL_SOURCE,
    COL_ACTOR,
    COL_REASON,
    COL_VALUE_LIMIT,
    COL_MESSAGE,
) = range(len(COLUMNS))
_LAST = len(COLUMNS) - 1
_NUMERIC = frozenset({COL_QTY, COL_PRICE, COL_FILLED})


class _Row:
    """One line of the blotter: an order, a refused request, or an order with its refusal."""

    __slots__ = (
        "actor",
        "broker_id",
        "client_id",
        "fill_value",
        "filled",
        "instrument",
        "order_type",
        "placed_ns",
        "price",
        "product",
        "quantity",
        "rejection",
        "side",
        "source",
        "status",
        "ts_ns",
    )

    def __init__(self, client_id: str | None, instrument: str, source: OrderSource, actor: str, ts_ns: int) -> None:
        self.client_id = client_id
        self.broker_id: str | None = None
        self.instrument = instrument
        self.side: Side | None = None
        self.quantity: int | None = None
        self.price: int | None = None
        self.order_type: OrderType | None = None
        self.product: Product | None = None
        self.filled = 0
        self.fill_value = 0
        self.status = OrderStatus.REJECTED
        self.source = source
        self.actor = actor
        self.placed_ns = ts_ns
        self.ts_ns = ts_ns
        self.rejection: Rejection | None = None

    @classmethod
    def of_order(cls, snap: OrderSnapshot) -> _Row:
        row = cls(snap.client_order_id, snap.instrument_key, snap.source, snap.actor, snap.ts_ns)
        row.take(snap)
        return row

    def take(self, snap: OrderSnapshot) -> tuple[int, int] | None:
        """Copy a snapshot in; return the first and last column whose cells changed, None if none did.

        A narrow span matters: a sorting proxy re-sorts a changed row (a layout change for the view)
        only when the sort column is in the span, and most updates are fills that touch one column.
        """
        if snap.status is not self.status:
            span: tuple[int, int] | None = (0, _LAST)  # the row's colours follow its status
        else:
            moved: list[int] = []
            if snap.ts_ns < self.placed_ns:
                moved.append(COL_TIME)
            if snap.broker_order_id != self.broker_id:
                moved.append(COL_ORDER)
            if snap.instrument_key != self.instrument:
                moved.append(COL_INSTRUMENT)
            if snap.side is not self.side:
                moved.append(COL_SIDE)
            if snap.quantity != self.quantity:
                moved.append(COL_QTY)
            if snap.price != self.price or snap.order_type is not self.order_type or snap.product is not self.product:
                moved.append(COL_PRICE)
            if snap.filled_quantity != self.filled or snap.fill_value != self.fill_value:
                moved.append(COL_FILLED)
            if snap.source is not self.source:
                moved.append(COL_SOURCE)
            if snap.actor != self.actor:
                moved.append(COL_ACTOR)
            span = (moved[0], moved[-1]) if moved else None
        self.broker_id = snap.broker_order_id
        self.instrument = snap.instrument_key
        self.side = snap.side
        self.quantity = snap.quantity
        self.price = snap.price
        self.order_type = snap.order_type
        self.product = snap.product
        self.filled = snap.filled_quantity
        self.fill_value = snap.fill_value
        self.status = snap.status
        self.source = snap.source
        self.actor = snap.actor
        self.ts_ns = snap.ts_ns
        self.placed_ns = min(self.placed_ns, snap.ts_ns)
        return span


def _qty_text(value: int | None) -> str:
    return "" if value is None else formatting.quantity(value)


def _value_vs_limit(rejection: Rejection | None) -> str:
    if rejection is None:
        return ""
    if rejection.value is not None and rejection.limit is not None:
        return f"{rejection.value} vs {rejection.limit}"
    return rejection.value or rejection.limit or ""


_DISPLAY_OF: tuple[Callable[[_Row], str], ...] = (
    lambda r: formatting.ist_hms(r.placed_ns),
    lambda r: r.client_id or "",
    lambda r: r.instrument,
    lambda r: r.side.value if r.side is not None else "",
    lambda r: _qty_text(r.quantity),
    lambda r: "" if r.price is None else formatting.price(r.price),
    lambda r: formatting.quantity(r.filled) if r.filled else "",
    lambda r: _STATUS_TEXT[r.status],
    lambda r: r.source.value.replace("_", " "),
    lambda r: r.actor,
    lambda r: r.rejection.reason.value if r.rejection is not None else "",
    lambda r: _value_vs_limit(r.rejection),
    lambda r: r.rejection.message if r.rejection is not None else "",
)

# Missing numbers sort below every real one: a refused request has no quantity or price.
_SORT_OF: tuple[Callable[[_Row], object], ...] = (
    lambda r: r.placed_ns,
    lambda r: r.client_id or "",
    lambda r: r.instrument,
    lambda r: r.side.value if r.side is not None else "",
    lambda r: -1 if r.quantity is None else r.quantity,
    lambda r: -1 if r.price is None else r.price,
    lambda r: r.filled,
    lambda r: r.status.value,
    lambda r: r.source.value,
    lambda r: r.actor,
    lambda r: r.rejection.reason.value if r.rejection is not None else "",
    lambda r: _value_vs_limit(r.rejection),
    lambda r: r.rejection.message if r.rejection is not None else "",
)


def _tooltip(row: _Row, column: int) -> str | None:
    if column == COL_TIME:
        placed = ist_stamp(row.placed_ns)
        return placed if row.ts_ns == row.placed_ns else f"placed {placed}\nlast change {ist_stamp(row.ts_ns)}"
    if column == COL_ORDER and row.client_id is not None:
        return f"{row.client_id}\nbroker id: {row.broker_id or '—'}"
    if column == COL_PRICE and row.order_type is not None and row.product is not None:
        kind = "MARKET (sent as a protected limit)" if row.order_type is OrderType.MARKET else "LIMIT"
        return f"{kind}, {row.product.value}"
    if column == COL_FILLED and row.filled:
        return f"average fill price {formatting.price(round(row.fill_value / row.filled))}"
    if column in (COL_REASON, COL_VALUE_LIMIT, COL_MESSAGE) and row.rejection is not None:
        rejection = row.rejection
        lines = [f"{rejection.reason.value}: {REASON_TEXT[rejection.reason]}", rejection.message]
        if rejection.value is not None or rejection.limit is not None:
            lines.append(f"value {rejection.value or '—'}, limit {rejection.limit or '—'}")
        return "\n".join(lines)
    return None


def _runs(indices: Sequence[int]) -> list[tuple[int, int]]:
    """Sorted row numbers as contiguous (first, last) ranges."""
    runs: list[tuple[int, int]] = []
    for i in indices:
        if runs and runs[-1][1] == i - 1:
            runs[-1] = (runs[-1][0], i)
        else:
            runs.append((i, i))
    return runs


def _widen(changed: dict[int, tuple[int, int]], row: int, span: tuple[int, int]) -> None:
    seen = changed.get(row)
    changed[row] = span if seen is None else (min(seen[0], span[0]), max(seen[1], span[1]))


class OrdersModel(ColumnsModel):
    """Orders and refused requests, one row each, upserted by client order id.

    Rows are only ever appended, changed in place or (past ``max_rows``) trimmed: never a reset.
    A refusal that names an order sits on that order's row whichever of the two arrived first.
    """

    def __init__(self, parent: QObject | None = None, *, max_rows: int = 50_000, dark: bool = True) -> None:
        super().__init__(COLUMNS, _NUMERIC, parent)
        if max_rows < 1:
            raise ValueError("max_rows must be positive")
        self._rows: list[_Row] = []
        self._index: dict[str, int] = {}
        self._counts: dict[OrdersGroup, int] = {OrdersGroup.WORKING: 0, OrdersGroup.DONE: 0, OrdersGroup.REJECTED: 0}
        self._max_rows = max_rows
        # Trim to 90 %: a full table then pays for one trim per tenth of its size, not one per insert.
        self._trim_to = max_rows - max(1, max_rows // 10)
        self._dark = dark
        self._set_colours(dark)

    # Qt's model interface

    def data(self, index: ModelIndex, role: int = _DISPLAY) -> Any:
        if not index.isValid():
            return None
        row = self._rows[index.row()]
        if role == _DISPLAY:
            return _DISPLAY_OF[index.column()](row)
        if role == _FOREGROUND:
            column = index.column()
            if column == COL_STATUS:
                return self._status_colours[row.status]
            if column >= COL_REASON and row.rejection is not None:
                # Red when the refusal ended the order; amber when it did not (a broker timeout on a live order).
                return self._status_colours[OrderStatus.REJECTED if row.status is OrderStatus.REJECTED else OrderStatus.UNKNOWN]
            return self._row_colours.get(row.status)
        if role == SORT_ROLE:
            return _SORT_OF[index.column()](row)
        if role == _ALIGN:
            return self.alignment(index.column())
        if role == _TOOLTIP:
            return _tooltip(row, index.column())
        return None

    # Feeding it

    def apply(self, snapshot: OrderSnapshot) -> None:
        """Insert or update the row of ``snapshot.client_order_id``."""
        at = self._index.get(snapshot.client_order_id)
        if at is None:
            self.apply_many((snapshot,))
            return
        # The common case, an update, without the batch's bookkeeping: it runs once per engine event.
        row = self._rows[at]
        counts = self._counts
        counts[_GROUP_OF[row.status]] -= 1
        span = row.take(snapshot)
        counts[_GROUP_OF[row.status]] += 1
        if span is not None:
            self.dataChanged.emit(self.createIndex(at, span[0]), self.createIndex(at, span[1]))

    def add_rejection(self, event: OrderRejected, ts_ns: int) -> None:
        """Put a refusal on its order's row, or on a row of its own when no such row exists yet."""
        self.apply_many((), ((event, ts_ns),))

    def apply_many(
        self, snapshots: Iterable[OrderSnapshot], rejections: Iterable[tuple[OrderRejected, int]] = ()
    ) -> None:
        """Fold a batch: new rows arrive in one insertion, changed rows in contiguous dataChanged ranges."""
        base = len(self._rows)
        pending: list[_Row] = []
        changed: dict[int, tuple[int, int]] = {}
        counts = self._counts
        for snap in snapshots:
            at = self._index.get(snap.client_order_id)
            if at is None:
                row = _Row.of_order(snap)
                self._index[snap.client_order_id] = base + len(pending)
                pending.append(row)
                counts[_GROUP_OF[row.status]] += 1
                continue
            row = pending[at - base] if at >= base else self._rows[at]
            counts[_GROUP_OF[row.status]] -= 1
            span = row.take(snap)
            counts[_GROUP_OF[row.status]] += 1
            if at < base and span is not None:
                _widen(changed, at, span)
        for event, ts_ns in rejections:
            cid = event.client_order_id
            at = self._index.get(cid) if cid is not None else None
            if at is None:
                row = _Row(cid, event.instrument_key, event.source, event.actor, ts_ns)
                row.rejection = event.rejection
                if cid is not None:
                    self._index[cid] = base + len(pending)
                pending.append(row)
                counts[OrdersGroup.REJECTED] += 1
                continue
            if at >= base:
                pending[at - base].rejection = event.rejection
            else:
                self._rows[at].rejection = event.rejection
                _widen(changed, at, (COL_REASON, COL_MESSAGE))
        if pending:
            self.beginInsertRows(QModelIndex(), base, base + len(pending) - 1)
            self._rows.extend(pending)
            self.endInsertRows()
        if changed:
            self._emit_changed(changed)
        if len(self._rows) > self._max_rows:
            self._trim()

    def _emit_changed(self, changed: dict[int, tuple[int, int]]) -> None:
        """One dataChanged per run of neighbouring rows, over the union of their changed columns."""
        rows = sorted(changed)
        i = 0
        while i < len(rows):
            first = last = rows[i]
            lo, hi = changed[first]
            while i + 1 < len(rows) and rows[i + 1] == last + 1:
                i += 1
                last = rows[i]
                lo = min(lo, changed[last][0])
                hi = max(hi, changed[last][1])
            self.dataChanged.emit(self.createIndex(first, lo), self.createIndex(last, hi))
            i += 1

    def _trim(self) -> None:
        """Drop the oldest finished rows down to 90 % of the cap; working orders always stay."""
        excess = len(self._rows) - self._trim_to
        drop: list[int] = []
        for i, row in enumerate(self._rows):
            if _GROUP_OF[row.status] is not OrdersGroup.WORKING:
                drop.append(i)
                if len(drop) == excess:
                    break
        if not drop:
            return
        # From the bottom up, so the row numbers of the runs still to remove stay valid.
        for first, last in reversed(_runs(drop)):
            self.beginRemoveRows(QModelIndex(), first, last)
            for row in self._rows[first : last + 1]:
                self._counts[_GROUP_OF[row.status]] -= 1
            del self._rows[first : last + 1]
            self.endRemoveRows()
        self._index = {row.client_id: i for i, row in enumerate(self._rows) if row.client_id is not None}

    def _set_colours(self, dark: bool) -> None:
        self._status_colours = {status: tone_colour(tone, dark) for status, tone in _STATUS_TONE.items()}
        self._row_colours = {status: tone_colour(tone, dark) for status, tone in _ROW_TONE.items()}

    def set_dark(self, dark: bool) -> None:
        """Switch the status colours between the dark and the light set."""
        if dark == self._dark:
            return
        self._dark = dark
        self._set_colours(dark)
        if self._rows:
            self.dataChanged.emit(
                self.createIndex(0, 0), self.createIndex(len(self._rows) - 1, _LAST), [Qt.ItemDataRole.ForegroundRole]
            )

    # Reading it

    @property
    def max_rows(self) -> int:
        return self._max_rows

    def client_id(self, row: int) -> str | None:
        """The client order id on a row (None for a refused request that never became an order)."""
        return self._rows[row].client_id

    def status(self, row: int) -> OrderStatus:
        return self._rows[row].status

    def is_working(self, row: int) -> bool:
        """Whether the order on a row is live at the broker and can be cancelled."""
        return self._rows[row].status.is_working

    def group(self, row: int) -> OrdersGroup:
        return _GROUP_OF[self._rows[row].status]

    def row_of(self, client_order_id: str) -> int | None:
        return self._index.get(client_order_id)

    def matches(self, row: int, needle: str) -> bool:
        """Whether a lower-case needle occurs in the row's instrument, ids or reason code."""
        r = self._rows[row]
        return (
            needle in r.instrument.lower()
            or (r.client_id is not None and needle in r.client_id.lower())
            or (r.broker_id is not None and needle in r.broker_id.lower())
            or (r.rejection is not None and needle in r.rejection.reason.value.lower())
        )

    def working_ids(self) -> list[str]:
        """Client ids of every order that can still be cancelled, oldest first."""
        return [r.client_id for r in self._rows if r.client_id is not None and r.status.is_working]

    def counts(self) -> dict[str, int]:
        """Rows per group: keys "working", "done", "rejected"."""
        return {group.value: n for group, n in self._counts.items()}


class OrdersFilter(TextFilter):
    """Shows one group of the blotter, narrowed by free text; sorts on raw values."""

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._group = OrdersGroup.ALL

    @property
    def group(self) -> OrdersGroup:
        return self._group

    def set_group(self, group: OrdersGroup) -> None:
        if group is self._group:
            return
        self.beginFilterChange()
        self._group = group
        self.endFilterChange(QSortFilterProxyModel.Direction.Rows)

    def accepts(self, model: ColumnsModel, row: int) -> bool:
        return self._group is OrdersGroup.ALL or not isinstance(model, OrdersModel) or model.group(row) is self._group


def _group_label(group: OrdersGroup, count: int) -> str:
    return "All" if group is OrdersGroup.ALL else f"{group.value.capitalize()} ({formatting.quantity(count)})"


class OrdersView(QWidget):
    """The blotter: group tabs with counts, a text filter, cancel buttons and the table.

    It never cancels anything itself: it emits the client ids and the owner decides.
    """

    cancel_requested = Signal(list)
    cancel_all_requested = Signal()
    # A client order id: its whole story from the audit chain (double-click or the context menu).
    story_requested = Signal(str)
    # A client order id of a working order to modify (price or quantity) through the gate.
    modify_requested = Signal(str)

    def __init__(self, model: OrdersModel | None = None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.model = model if model is not None else OrdersModel(self)
        self.proxy = OrdersFilter(self)
        self.proxy.setSourceModel(self.model)

        self.group_buttons: dict[OrdersGroup, QToolButton] = {}
        self._group_box = QButtonGroup(self)
        self._group_box.setExclusive(True)
        bar = QHBoxLayout()
        bar.setContentsMargins(4, 2, 4, 2)
        bar.setSpacing(4)
        for group in (OrdersGroup.WORKING, OrdersGroup.DONE, OrdersGroup.REJECTED, OrdersGroup.ALL):
            button = QToolButton(self)
            button.setCheckable(True)
            button.setAutoRaise(True)
            button.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextOnly)
            button.clicked.connect(lambda _checked=False, g=group: self.set_group(g))
            self._group_box.addButton(button)
            self.group_buttons[group] = button
            bar.addWidget(button)
        bar.addSpacing(8)
        self.filter_edit = QLineEdit(self)
        self.filter_edit.setPlaceholderText("filter: instrument, id, reason")
        self.filter_edit.setClearButtonEnabled(True)
        self.filter_edit.setMaximumWidth(260)
        self.filter_edit.textChanged.connect(self.proxy.set_text)
        bar.addWidget(self.filter_edit, 1)
        bar.addStretch(1)
        self.cancel_selected_button = QPushButton("Cancel selected", self)
        self.cancel_selected_button.setToolTip("Cancel the selected working orders (Delete)")
        self.cancel_selected_button.clicked.connect(self.cancel_selected)
        self.cancel_all_button = QPushButton("Cancel all working", self)
        self.cancel_all_button.clicked.connect(self.cancel_all_requested.emit)
        bar.addWidget(self.cancel_selected_button)
        bar.addWidget(self.cancel_all_button)

        self.table = QTableView(self)
        table = self.table
        table.setModel(self.proxy)
        compact_table(table, COL_TIME, Qt.SortOrder.DescendingOrder, stretch_last=True)
        table.setHorizontalScrollMode(QAbstractItemView.ScrollMode.ScrollPerPixel)
        self._size_columns()
        table.installEventFilter(self)
        table.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        table.customContextMenuRequested.connect(self._context_menu)
        table.doubleClicked.connect(self._double_clicked)
        table.selectionModel().selectionChanged.connect(self._selection_changed)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(0)
        layout.addLayout(bar)
        layout.addWidget(table, 1)

        self.set_group(OrdersGroup.ALL)
        self.model.set_dark(is_dark_palette(self.palette()))
        self._selection_changed()
        self.refresh_counts()

    def _size_columns(self) -> None:
        metrics = self.table.fontMetrics()
        samples = {
            COL_TIME: "00:00:00",
            # The desk's stem (its id and start number) and the session's sequence number, as the OMS writes them.
            COL_ORDER: f"{widest_order_id_stem(EngineConfig().client_id_prefix)}-000000",
            COL_INSTRUMENT: "NFO:BANKNIFTY-2026-12-29-52000-CE",
            COL_SIDE: "SELL",
            COL_QTY: "1,50,000",
            COL_PRICE: "1,23,456.00",
            COL_FILLED: "1,50,000",
            COL_STATUS: "CANCELLED",
            COL_SOURCE: "kill switch",
            COL_ACTOR: "operator",
            COL_REASON: "UNDERLYING_GROSS_LIMIT",
            COL_VALUE_LIMIT: "₹1,23,45,678 vs ₹1,00,00,000",
        }
        header = self.table.horizontalHeader()
        for column, sample in samples.items():
            header.resizeSection(column, metrics.horizontalAdvance(sample) + 18)

    def set_group(self, group: OrdersGroup) -> None:
        """Show one group of rows (ALL, WORKING, DONE or REJECTED)."""
        self.group_buttons[group].setChecked(True)
        self.proxy.set_group(group)

    def refresh_counts(self) -> None:
        """Bring the group buttons' counts up to date (once per frame, when the model changed)."""
        counts = self.model.counts()
        for group, button in self.group_buttons.items():
            button.setText(_group_label(group, counts.get(group.value, 0)))
        self.cancel_all_button.setEnabled(counts[OrdersGroup.WORKING.value] > 0)

    def selected_working_ids(self) -> list[str]:
        """Client ids of the selected rows whose order can still be cancelled, in view order."""
        ids: list[str] = []
        rows = sorted(self.table.selectionModel().selectedRows(), key=lambda ix: ix.row())
        for proxy_index in rows:
            source_row = self.proxy.mapToSource(proxy_index).row()
            client_id = self.model.client_id(source_row)
            if client_id is not None and self.model.is_working(source_row):
                ids.append(client_id)
        return ids

    def cancel_selected(self) -> None:
        """Ask for the cancellation of the selected working orders; other selected rows are ignored."""
        ids = self.selected_working_ids()
        if ids:
            self.cancel_requested.emit(ids)

    def _client_id_at(self, proxy_index: QModelIndex) -> tuple[str | None, bool]:
        """The client id of the row under a view index (``None`` for a refused request) and whether it works."""
        if not proxy_index.isValid():
            return None, False
        row = self.proxy.mapToSource(proxy_index).row()
        return self.model.client_id(row), self.model.is_working(row)

    def context_menu_for(self, proxy_index: QModelIndex) -> QMenu | None:
        """The row's menu: "Order story…" and, for a working order, "Modify…" (``None`` off a row)."""
        client_id, working = self._client_id_at(proxy_index)
        if not proxy_index.isValid():
            return None
        menu = QMenu(self)
        story = menu.addAction("Order story…")
        story.setEnabled(client_id is not None)
        modify = menu.addAction("Modify…")
        modify.setEnabled(client_id is not None and working)
        if client_id is not None:
            story.triggered.connect(lambda _checked=False, cid=client_id: self.story_requested.emit(cid))
            modify.triggered.connect(lambda _checked=False, cid=client_id: self.modify_requested.emit(cid))
        return menu

    def _context_menu(self, position: Any) -> None:
        menu = self.context_menu_for(self.table.indexAt(position))
        if menu is not None:
            menu.exec(self.table.viewport().mapToGlobal(position))
            menu.deleteLater()

    def _double_clicked(self, proxy_index: QModelIndex) -> None:
        client_id, _working = self._client_id_at(proxy_index)
        if client_id is not None:
            self.story_requested.emit(client_id)

    def _selection_changed(self) -> None:
        self.cancel_selected_button.setEnabled(self.table.selectionModel().hasSelection())

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if (
            watched is self.table
            and event.type() == QEvent.Type.KeyPress
            and isinstance(event, QKeyEvent)
            and event.key() == Qt.Key.Key_Delete
            # Disabled under the lock screen: no key cancels from under it.
            and self.table.isEnabled()
        ):
            self.cancel_selected()
            return True
        return super().eventFilter(watched, event)

    def changeEvent(self, event: QEvent) -> None:
        if event.type() in (QEvent.Type.PaletteChange, QEvent.Type.ApplicationPaletteChange):
            self.model.set_dark(is_dark_palette(self.palette()))
        super().changeEvent(event)
