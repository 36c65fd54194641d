"""The audit viewer: filters over the chain, a paged table, one record's canonical payload, verify and export.

Every read, the chain's verification and the export run on background threads; the window goes on
painting and the kill switch stays live while a million records are walked.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from PySide6.QtCore import QDateTime, QEvent, QItemSelection, Qt, QTimeZone, Signal
from PySide6.QtGui import QAction, QFontDatabase
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QComboBox,
    QDateTimeEdit,
    QFileDialog,
    QGridLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QMenu,
    QPlainTextEdit,
    QProgressBar,
    QPushButton,
    QSplitter,
    QTableView,
    QToolButton,
    QVBoxLayout,
    QWidget,
)
from sqlalchemy import Engine

from app.domain.india_time import IST, IST_OFFSET_S
from app.store.audit_query import (
    KNOWN_EVENT_TYPES,
    KNOWN_SOURCES,
    MAX_ACTOR,
    MAX_INSTRUMENT,
    MAX_ORDER_ID,
    AuditFilter,
    AuditQuery,
    AuditRow,
    ChainCheck,
    FilterError,
    check_chain,
    make_filter,
)
from app.store.chain_key import ChainKeys
from app.ui import theme
from app.ui.audit_model import (
    COL_ACTOR,
    COL_EVENT,
    COL_SEQ,
    COL_SOURCE,
    COL_TIME,
    AuditModel,
    Worker,
    first_line,
)
from app.ui.table_view import is_dark_palette

EXPORT_FORMATS = ("csv", "jsonl")
_ANY_SOURCE = "any source"
_IST_ZONE = QTimeZone(IST_OFFSET_S)

# The event menu's sections: what a compliance officer looks for together.
_SECTIONS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("Orders", ("order.", "gate.", "broker.ack", "broker.reject", "fill", "cancel.")),
    ("Risk", ("kill_switch.", "flatten.", "rearmed", "trading_state.", "limit.", "breaker.", "alert.", "calendar.")),
    ("Operators", ("login.", "logout", "screen.", "password.", "operator.")),
)


def _section_of(kind: str) -> str:
    for title, prefixes in _SECTIONS:
        if any(kind.startswith(prefix) for prefix in prefixes):
            return title
    return "Desk"


def monospace() -> Any:
    return QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont)


def pretty_payload(record: AuditRow) -> str:
    """The canonical payload indented for reading (keys stay sorted, as the hash covers them)."""
    payload = record.payload_object()
    if isinstance(payload, str):
        return payload
    return json.dumps(payload, indent=2, ensure_ascii=False, sort_keys=True)


class RecordDetail(QWidget):
    """One record: its fields, its hashes and key fingerprint, and its payload as pretty JSON (monospace)."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        fixed = monospace()
        self._labels: dict[str, QLabel] = {}
        grid = QGridLayout()
        grid.setContentsMargins(6, 4, 6, 4)
        grid.setHorizontalSpacing(8)
        grid.setVerticalSpacing(2)
        for row, (key, title) in enumerate((("seq", "Record"), ("time", "Time"), ("event", "Event"),
                                            ("who", "Actor / source"), ("key_fp", "Key"), ("prev_hash", "Prev hash"),
                                            ("hash", "Hash"))):
            name = QLabel(title, self)
            name.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignTop)
            value = QLabel("—", self)
            value.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
            value.setTextFormat(Qt.TextFormat.PlainText)
            if key in ("prev_hash", "hash", "key_fp"):
                # Whole, on one line: a hash is compared character by character.
                value.setFont(fixed)
            grid.addWidget(name, row, 0)
            grid.addWidget(value, row, 1)
            self._labels[key] = value
        grid.setColumnStretch(1, 1)
        self.payload_view = QPlainTextEdit(self)
        self.payload_view.setReadOnly(True)
        self.payload_view.setFont(fixed)
        self.payload_view.setLineWrapMode(QPlainTextEdit.LineWrapMode.NoWrap)
        self.payload_view.setPlaceholderText("Select a record to see its payload")
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(2)
        layout.addLayout(grid)
        layout.addWidget(self.payload_view, 1)
        self.record: AuditRow | None = None

    def show_record(self, record: AuditRow | None) -> None:
        self.record = record
        if record is None:
            for label in self._labels.values():
                label.setText("—")
            self.payload_view.clear()
            return
        texts = {
            "seq": f"{record.seq:,}",
            "time": f"{record.ist_text()} IST  (ts_ns {record.ts_ns})",
            "event": record.event_type,
            "who": f"{record.actor} / {record.source}",
            "key_fp": record.key_fp or "none (plain SHA-256 record)",
            "prev_hash": record.prev_hash,
            "hash": record.hash,
        }
        for key, text in texts.items():
            self._labels[key].setText(text)
        self.payload_view.setPlainText(pretty_payload(record))

    def field_text(self, key: str) -> str:
        return self._labels[key].text()


class EventPicker(QWidget):
    """Event types as text (comma-separated, ``order.*`` allowed) with a menu of every known type to tick."""

    changed = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.edit = QLineEdit(self)
        self.edit.setPlaceholderText("events: any  (e.g. order.*, fill)")
        self.edit.setClearButtonEnabled(True)
        self.button = QToolButton(self)
        self.button.setText("▾")
        self.button.setToolTip("Pick event types")
        self.button.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
        self.menu = QMenu(self)
        self.kind_actions: dict[str, QAction] = {}
        by_section: dict[str, list[str]] = {}
        for kind in sorted(KNOWN_EVENT_TYPES):
            by_section.setdefault(_section_of(kind), []).append(kind)
        for title in [section for section, _ in _SECTIONS] + ["Desk"]:
            self.menu.addSection(title)
            for kind in by_section.get(title, []):
                action = QAction(kind, self.menu)
                action.setCheckable(True)
                action.toggled.connect(self._ticked)
                self.menu.addAction(action)
                self.kind_actions[kind] = action
        self.button.setMenu(self.menu)
        self.menu.aboutToShow.connect(self._sync_ticks)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(0)
        layout.addWidget(self.edit, 1)
        layout.addWidget(self.button)
        self._syncing = False

    def typed(self) -> list[str]:
        return [part for part in self.edit.text().split(",") if part.strip()]

    def _sync_ticks(self) -> None:
        chosen = {part.strip() for part in self.typed()}
        self._syncing = True
        try:
            for kind, action in self.kind_actions.items():
                action.setChecked(kind in chosen)
        finally:
            self._syncing = False

    def _ticked(self, _checked: bool) -> None:
        if self._syncing:
            return
        others = [part.strip() for part in self.typed() if part.strip() not in self.kind_actions]
        ticked = [kind for kind, action in self.kind_actions.items() if action.isChecked()]
        self.edit.setText(", ".join(others + ticked))
        self.changed.emit()


class AuditViewer(QWidget):
    """Filters, the paged table and the detail pane; "Verify chain" and "Export…" off the GUI thread.

    ``store`` is the desk's SQLAlchemy engine (read only here); ``keys`` the chain's keys as
    ``audit verify`` finds them; ``checkpoint_files`` the checkpoint files verify compares against
    (the data folder's ``audit-checkpoints.jsonl``). ``clock_ns`` only sets the default time range.
    """

    verify_finished = Signal(object)
    export_finished = Signal(object)

    def __init__(
        self, store: Engine, *, keys: ChainKeys | None = None, checkpoint_files: Sequence[Path] = (),
        clock_ns: Callable[[], int] = time.time_ns, parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.store = store
        self.query = AuditQuery(store)
        self._keys = keys
        self._checkpoint_files = tuple(checkpoint_files)
        self._tasks = Worker("audit-tasks", self)
        self._task_running = False
        self.last_check: ChainCheck | None = None
        self.last_export: int | str | None = None

        self.model = AuditModel(self.query, parent=self, start=False, dark=is_dark_palette(self.palette()))
        self.model.loaded.connect(self._update_status)
        self.model.failed.connect(self._show_failure)

        self._build_filters(clock_ns)
        self._build_table()
        self.detail = RecordDetail(self)

        self.splitter = QSplitter(Qt.Orientation.Horizontal, self)
        self.splitter.addWidget(self.table)
        self.splitter.addWidget(self.detail)
        self.splitter.setStretchFactor(0, 3)
        self.splitter.setStretchFactor(1, 2)
        self.splitter.setChildrenCollapsible(False)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.setSpacing(4)
        layout.addLayout(self._filter_row)
        layout.addLayout(self._action_row)
        layout.addWidget(self.filter_error)
        layout.addWidget(self.splitter, 1)
        self.apply_filters()

    # -- construction ------------------------------------------------------------------------------

    def _line(self, placeholder: str, limit: int, width: int) -> QLineEdit:
        edit = QLineEdit(self)
        edit.setPlaceholderText(placeholder)
        edit.setClearButtonEnabled(True)
        # Room for a pasted 10 kB line: it is refused with a message, not cut silently.
        edit.setMaxLength(max(limit * 100, 32_767))
        edit.setMinimumWidth(width)
        edit.returnPressed.connect(self.apply_filters)
        return edit

    def _build_filters(self, clock_ns: Callable[[], int]) -> None:
        self.events = EventPicker(self)
        self.events.edit.returnPressed.connect(self.apply_filters)
        self.events.setMinimumWidth(220)
        self.actor_edit = self._line("actor", MAX_ACTOR, 90)
        self.source_combo = QComboBox(self)
        self.source_combo.addItems([_ANY_SOURCE, *sorted(KNOWN_SOURCES)])
        self.instrument_edit = self._line("instrument, e.g. NSE:RELIANCE", MAX_INSTRUMENT, 170)
        self.order_edit = self._line("client order id", MAX_ORDER_ID, 130)
        self.apply_button = QPushButton("Apply", self)
        self.apply_button.setDefault(True)
        self.apply_button.clicked.connect(self.apply_filters)
        self.clear_button = QPushButton("Clear", self)
        self.clear_button.clicked.connect(self.clear_filters)

        row = QHBoxLayout()
        row.setSpacing(4)
        row.addWidget(self.events, 3)
        row.addWidget(self.actor_edit, 1)
        row.addWidget(self.source_combo)
        row.addWidget(self.instrument_edit, 2)
        row.addWidget(self.order_edit, 2)
        row.addWidget(self.apply_button)
        row.addWidget(self.clear_button)
        self._filter_row = row

        self.time_check = QCheckBox("Time (IST)", self)
        day = dt.datetime.fromtimestamp(clock_ns() / 1e9, IST).replace(hour=0, minute=0, second=0, microsecond=0)
        self.since_edit = self._time_edit(day)
        self.until_edit = self._time_edit(day + dt.timedelta(days=1))
        self.time_check.toggled.connect(self._time_toggled)
        self._time_toggled(False)
        self.status_label = QLabel(self)
        self.status_label.setTextFormat(Qt.TextFormat.PlainText)
        self.verify_button = QPushButton("Verify chain", self)
        self.verify_button.setToolTip("Recompute every hash under the chain's key, and compare the checkpoints")
        self.verify_button.clicked.connect(self.verify)
        self.export_button = QPushButton("Export…", self)
        self.export_button.setToolTip("Write the filtered records to CSV or JSON lines")
        self.export_button.clicked.connect(self._export_dialog)
        self.progress = QProgressBar(self)
        self.progress.setMaximumWidth(160)
        self.progress.setMaximumHeight(16)
        self.progress.setTextVisible(False)
        self.progress.hide()
        self.result_label = QLabel(self)
        self.result_label.setTextFormat(Qt.TextFormat.PlainText)
        self.result_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)

        actions = QHBoxLayout()
        actions.setSpacing(4)
        actions.addWidget(self.time_check)
        actions.addWidget(self.since_edit)
        actions.addWidget(QLabel("to", self))
        actions.addWidget(self.until_edit)
        actions.addSpacing(10)
        actions.addWidget(self.status_label, 1)
        actions.addWidget(self.result_label, 2)
        actions.addWidget(self.progress)
        actions.addWidget(self.verify_button)
        actions.addWidget(self.export_button)
        self._action_row = actions

        self.filter_error = QLabel(self)
        self.filter_error.setTextFormat(Qt.TextFormat.PlainText)
        self.filter_error.setWordWrap(True)
        self.filter_error.hide()
        self._fields: dict[str, QWidget] = {
            "event_types": self.events.edit, "actor": self.actor_edit, "source": self.source_combo,
            "instrument": self.instrument_edit, "client_order_id": self.order_edit, "until": self.until_edit,
        }
        self._titles = {"event_types": "Events", "actor": "Actor", "source": "Source", "instrument": "Instrument",
                        "client_order_id": "Order id", "until": "Time range"}

    def _time_edit(self, moment: dt.datetime) -> QDateTimeEdit:
        edit = QDateTimeEdit(self)
        edit.setTimeZone(_IST_ZONE)
        edit.setDisplayFormat("yyyy-MM-dd HH:mm")
        edit.setCalendarPopup(True)
        edit.setDateTime(QDateTime.fromSecsSinceEpoch(int(moment.timestamp()), _IST_ZONE))
        return edit

    def _build_table(self) -> None:
        self.table = QTableView(self)
        table = self.table
        table.setModel(self.model)
        table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        table.setShowGrid(False)
        table.setAlternatingRowColors(True)
        table.setWordWrap(False)
        table.setHorizontalScrollMode(QAbstractItemView.ScrollMode.ScrollPerPixel)
        vertical = table.verticalHeader()
        vertical.setVisible(False)
        vertical.setSectionResizeMode(QHeaderView.ResizeMode.Fixed)
        vertical.setDefaultSectionSize(20)
        header = table.horizontalHeader()
        header.setStretchLastSection(True)
        header.setHighlightSections(False)
        metrics = table.fontMetrics()
        samples = {COL_SEQ: "10,000,000", COL_TIME: "2026-11-02 10:00:00.000", COL_EVENT: "kill_switch.sweep_done",
                   COL_ACTOR: "operator", COL_SOURCE: "simulation"}
        for column, sample in samples.items():
            header.resizeSection(column, metrics.horizontalAdvance(sample) + 18)
        table.selectionModel().selectionChanged.connect(self._selected)

    # -- filters -----------------------------------------------------------------------------------

    def _time_toggled(self, on: bool) -> None:
        self.since_edit.setEnabled(on)
        self.until_edit.setEnabled(on)

    def current_filter(self) -> AuditFilter:
        """The filter the fields describe; ``FilterError`` names each bad field."""
        source = self.source_combo.currentText()
        since = until = None
        if self.time_check.isChecked():
            since = dt.datetime.fromtimestamp(self.since_edit.dateTime().toSecsSinceEpoch(), IST)
            until = dt.datetime.fromtimestamp(self.until_edit.dateTime().toSecsSinceEpoch(), IST)
        return make_filter(
            event_types=self.events.typed(), actor=self.actor_edit.text(),
            source=None if source == _ANY_SOURCE else source, instrument=self.instrument_edit.text(),
            client_order_id=self.order_edit.text(), since=since, until=until,
        )

    def apply_filters(self) -> bool:
        """Read the first page under the fields' filter; a bad field gets its message and nothing is read."""
        for widget in self._fields.values():
            widget.setStyleSheet("")
            widget.setToolTip("")
        try:
            flt = self.current_filter()
        except FilterError as exc:
            self._show_problems(exc.problems)
            return False
        self.filter_error.hide()
        self.detail.show_record(None)
        self.model.set_filter(flt)
        self._update_status()
        return True

    def _show_problems(self, problems: dict[str, str]) -> None:
        bad = theme.colours(is_dark_palette(self.palette())).bad
        for name, message in problems.items():
            widget = self._fields.get(name)
            if widget is not None:
                widget.setStyleSheet(f"border: 1px solid {bad};")
                widget.setToolTip(message)
        self.filter_error.setStyleSheet(f"color: {bad};")
        self.filter_error.setText("   ".join(f"{self._titles.get(name, name)}: {message}"
                                            for name, message in problems.items()))
        self.filter_error.show()

    def clear_filters(self) -> None:
        """Every field back to "any", and the newest records shown."""
        self._reset_fields()
        self.apply_filters()

    def show_order(self, client_order_id: str) -> None:
        """Every record naming one order, newest first (the viewer's side of an order's story)."""
        self._reset_fields()
        self.order_edit.setText(client_order_id)
        self.apply_filters()

    def _reset_fields(self) -> None:
        for edit in (self.events.edit, self.actor_edit, self.instrument_edit, self.order_edit):
            edit.clear()
        self.source_combo.setCurrentIndex(0)
        self.time_check.setChecked(False)

    # -- table and detail --------------------------------------------------------------------------

    def _selected(self, _selected: QItemSelection, _deselected: QItemSelection) -> None:
        rows = self.table.selectionModel().selectedRows()
        self.detail.show_record(self.model.record(rows[0].row()) if rows else None)

    def select_row(self, row: int) -> None:
        self.table.selectRow(row)
        self.table.scrollTo(self.model.index(row, 0), QAbstractItemView.ScrollHint.EnsureVisible)

    def _update_status(self) -> None:
        count = self.model.rowCount()
        if self.model.error is not None:
            return
        if self.model.loading:
            text = f"{count:,} shown · searching…"
        elif self.model.exhausted:
            text = "no matching records" if count == 0 else f"{count:,} shown · all matching"
        else:
            text = f"{count:,} shown · more below"
        self.status_label.setText(text)

    def _show_failure(self, message: str) -> None:
        self.status_label.setText(message)
        self.status_label.setStyleSheet(f"color: {theme.colours(is_dark_palette(self.palette())).bad};")

    # -- verify ------------------------------------------------------------------------------------

    def verify(self) -> None:
        """Verify the whole chain off the GUI thread; the result lands in ``result_label`` and ``verify_finished``."""
        if self._task_running:
            return
        self._begin_task("verifying the chain…", 0)
        keys, files, store, query = self._keys, self._checkpoint_files, self.store, self.query
        progress = self._tasks.from_thread(self._set_progress)
        announce = self._tasks.from_thread(self._set_total)

        def run() -> ChainCheck:
            announce(query.last_seq())
            return check_chain(store, keys=keys, checkpoint_files=files, progress=progress)

        self._tasks.submit(run, self._verified, self._verify_failed)

    def _set_progress(self, done: int) -> None:
        if self._task_running:
            self.progress.setValue(done)

    def _set_total(self, total: int) -> None:
        if self._task_running:
            self.progress.setRange(0, total)
            self.result_label.setText(f"verifying {total:,} records…")

    def _begin_task(self, text: str, total: int) -> None:
        self._task_running = True
        self.verify_button.setEnabled(False)
        self.export_button.setEnabled(False)
        # No total (an export's count is unknown until written): a busy bar.
        self.progress.setRange(0, total)
        self.progress.setValue(0)
        self.progress.show()
        self.result_label.setStyleSheet("")
        self.result_label.setText(text)

    def _end_task(self, text: str, ok: bool) -> None:
        self._task_running = False
        self.verify_button.setEnabled(True)
        self.export_button.setEnabled(True)
        self.progress.hide()
        colours = theme.colours(is_dark_palette(self.palette()))
        self.result_label.setStyleSheet(f"color: {colours.good if ok else colours.bad}; font-weight: 600;")
        self.result_label.setText(text)

    def _verified(self, check: ChainCheck) -> None:
        self.last_check = check
        tooltip = "\n".join(check.problems + [f"note: {note}" for note in check.notes])
        self.result_label.setToolTip(tooltip)
        self._end_task(check.headline, check.ok)
        self.verify_finished.emit(check)

    def _verify_failed(self, exc: Exception) -> None:
        check = ChainCheck(False, 0, f"Cannot verify: {first_line(exc)}", problems=[first_line(exc)])
        self._verified(check)

    # -- export ------------------------------------------------------------------------------------

    def _export_dialog(self) -> None:
        path, chosen = QFileDialog.getSaveFileName(
            self, "Export the filtered audit records", "audit-export.csv", "CSV (*.csv);;JSON lines (*.jsonl)")
        if path:
            self.export_to(Path(path), "jsonl" if "jsonl" in chosen or path.endswith(".jsonl") else "csv")

    def export_to(self, path: Path, fmt: str) -> bool:
        """Write the records the filters match (all of them, not only the loaded ones) to ``path``.

        Off the GUI thread; ``export_finished`` carries the count, or the message when it failed.
        False when the filters are bad or another task is running.
        """
        if self._task_running or fmt not in EXPORT_FORMATS:
            return False
        try:
            flt = self.current_filter()
        except FilterError as exc:
            self._show_problems(exc.problems)
            return False
        self._begin_task(f"exporting to {path.name}…", 0)
        query, progress = self.query, self._tasks.from_thread(self._set_progress)

        def write() -> int:
            # Written beside the target and moved into place: a failed export never leaves half a file.
            partial = path.with_name(path.name + ".partial")
            try:
                with partial.open("w", encoding="utf-8", newline="") as out:
                    count = query.export(flt, out, fmt, progress=progress)
                partial.replace(path)
            finally:
                partial.unlink(missing_ok=True)
            return count

        self._tasks.submit(write, lambda count: self._exported(path, count), self._export_failed)
        return True

    def _exported(self, path: Path, count: int) -> None:
        self.last_export = count
        self._end_task(f"Exported {count:,} records to {path}", True)
        self.export_finished.emit(count)

    def _export_failed(self, exc: Exception) -> None:
        message = f"Export failed: {first_line(exc)}"
        self.last_export = message
        self._end_task(message, False)
        self.export_finished.emit(message)

    # -- lifetime ----------------------------------------------------------------------------------

    def changeEvent(self, event: QEvent) -> None:
        if event.type() in (QEvent.Type.PaletteChange, QEvent.Type.ApplicationPaletteChange):
            self.model.set_dark(is_dark_palette(self.palette()))
        super().changeEvent(event)

    def close_store_readers(self) -> None:
        """Stop the background readers (the window is closing); answers still in flight are dropped."""
        self.model.close()
        self._tasks.close()

