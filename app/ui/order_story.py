"""An order's whole story from the audit chain: proposed, the gate's decision, queued, sent, acks, fills,
modifies and cancels, in the order they were recorded, each with its canonical payload."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QItemSelection, Qt, Signal
from PySide6.QtWidgets import (
    QAbstractItemView,
    QDialog,
    QDialogButtonBox,
    QHeaderView,
    QLabel,
    QSplitter,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)
from sqlalchemy import Engine

from app.domain.audit import AuditEventType as E
from app.store.audit_query import MAX_ORDER_ID, AuditQuery, AuditRow, FilterError
from app.ui import theme
from app.ui.audit_model import Worker, first_line, summary
from app.ui.audit_view import RecordDetail
from app.ui.table_view import Tone, is_dark_palette, tone_colour

STEP_TEXT: dict[str, str] = {
    E.ORDER_PROPOSED.value: "proposed",
    E.GATE_ACCEPTED.value: "gate: accepted",
    E.GATE_REJECTED.value: "gate: rejected",
    E.ORDER_QUEUED.value: "queued",
    E.ORDER_SENT.value: "sent to broker",
    E.ORDER_THROTTLED.value: "throttled",
    E.BROKER_ACK.value: "broker ack",
    E.BROKER_REJECT.value: "broker reject",
    E.ORDER_MODIFY.value: "modify",
    E.ORDER_MODIFY_REFUSED.value: "modify refused",
    E.CANCEL_REQUESTED.value: "cancel requested",
    E.CANCEL_ALREADY_FINAL.value: "cancel: already ended",
    E.CANCELLED.value: "cancelled",
    E.ORDER_UPDATE.value: "update",
    E.FILL.value: "fill",
}
_STEP_TONE: dict[str, Tone] = {
    E.GATE_REJECTED.value: Tone.BAD, E.BROKER_REJECT.value: Tone.BAD, E.ORDER_THROTTLED.value: Tone.BAD,
    E.ORDER_MODIFY_REFUSED.value: Tone.BAD,
    E.FILL.value: Tone.GOOD, E.CANCELLED.value: Tone.MUTED, E.GATE_ACCEPTED.value: Tone.WORKING,
}
HEADERS = ("Seq", "Time (IST)", "Step", "Actor", "Source", "Details")


def step_text(event_type: str) -> str:
    return STEP_TEXT.get(event_type, event_type)


class OrderStory(QDialog):
    """The records of one order, read off the GUI thread; select one to see its payload and hashes.

    ``loaded`` is emitted once the story is shown (or its failure is).
    """

    loaded = Signal()

    def __init__(self, store: Engine | AuditQuery, client_order_id: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.query = store if isinstance(store, AuditQuery) else AuditQuery(store)
        self.client_order_id = client_order_id
        self.records: list[AuditRow] = []
        self.error: str | None = None
        self.setWindowTitle(f"Order story — {client_order_id[:MAX_ORDER_ID]}")
        self.setSizeGripEnabled(True)

        self.heading = QLabel(f"Order {client_order_id[:MAX_ORDER_ID]}", self)
        self.heading.setTextFormat(Qt.TextFormat.PlainText)
        self.heading.setStyleSheet("font-weight: 600; font-size: 14px;")
        self.facts = QLabel("reading the audit trail…", self)
        self.facts.setTextFormat(Qt.TextFormat.PlainText)
        self.facts.setWordWrap(True)

        self.table = QTableWidget(0, len(HEADERS), self)
        table = self.table
        table.setHorizontalHeaderLabels(list(HEADERS))
        table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        table.setShowGrid(False)
        table.setAlternatingRowColors(True)
        table.setWordWrap(False)
        table.verticalHeader().setVisible(False)
        table.verticalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Fixed)
        table.verticalHeader().setDefaultSectionSize(20)
        header = table.horizontalHeader()
        header.setStretchLastSection(True)
        header.setHighlightSections(False)
        metrics = table.fontMetrics()
        for column, sample in enumerate(("1,000,000", "2026-11-02 10:00:00.000", "cancel: already ended",
                                         "operator", "simulation")):
            header.resizeSection(column, metrics.horizontalAdvance(sample) + 18)
        table.selectionModel().selectionChanged.connect(self._selected)

        self.detail = RecordDetail(self)
        splitter = QSplitter(Qt.Orientation.Vertical, self)
        splitter.addWidget(table)
        splitter.addWidget(self.detail)
        splitter.setStretchFactor(0, 3)
        splitter.setStretchFactor(1, 2)
        splitter.setChildrenCollapsible(False)

        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close, self)
        buttons.rejected.connect(self.reject)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(8, 8, 8, 8)
        layout.setSpacing(4)
        layout.addWidget(self.heading)
        layout.addWidget(self.facts)
        layout.addWidget(splitter, 1)
        layout.addWidget(buttons)
        self.resize(980, 620)

        self._worker = Worker("order-story", self)
        query, cid = self.query, client_order_id
        self._worker.submit(lambda: query.story(cid), self._show, self._failed)

    def steps(self) -> list[str]:
        """The story's steps in order (``order.proposed`` → "proposed", ...)."""
        return [step_text(record.event_type) for record in self.records]

    def _show(self, records: list[AuditRow]) -> None:
        self.records = records
        dark = is_dark_palette(self.palette())
        self.table.setRowCount(len(records))
        for row, record in enumerate(records):
            payload = record.payload_object()
            cells = (f"{record.seq:,}", record.ist_text(), step_text(record.event_type), record.actor, record.source,
                     summary(record.event_type, payload))
            for column, text in enumerate(cells):
                item = QTableWidgetItem(text)
                if column == 0:
                    item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
                if column == 2 and (tone := _STEP_TONE.get(record.event_type)) is not None:
                    item.setForeground(tone_colour(tone, dark))
                self.table.setItem(row, column, item)
        self.facts.setText(self._facts(records))
        if records:
            self.table.selectRow(0)
        self.loaded.emit()

    def _facts(self, records: list[AuditRow]) -> str:
        if not records:
            return "The audit trail holds no record of this order."
        order: dict[str, Any] = {}
        for record in records:
            payload = record.payload_object()
            if isinstance(payload, dict) and record.event_type in (E.ORDER_QUEUED.value, E.ORDER_SENT.value):
                order = payload
                break
        filled = sum(int(p.get("quantity", 0)) for r in records if r.event_type == E.FILL.value
                     and isinstance(p := r.payload_object(), dict) and type(p.get("quantity")) is int)
        # The order's status as the broker's last update left it (order.update / order.cancelled "to").
        states = [p["to"] for r in records if r.event_type in (E.ORDER_UPDATE.value, E.CANCELLED.value)
                  and isinstance(p := r.payload_object(), dict) and isinstance(p.get("to"), str)]
        last = f"now {states[-1]}" if states else f"last: {step_text(records[-1].event_type)}"
        head = summary(E.ORDER_QUEUED.value, order) if order else ""
        span = f"{records[0].ist_text()} → {records[-1].ist_text()} IST"
        parts = [part for part in (head, f"{len(records)} records", f"filled {filled:,}" if filled else "",
                                   last, span) if part]
        return "   ·   ".join(parts)

    def _failed(self, exc: Exception) -> None:
        self.error = (f"not a client order id: {exc}" if isinstance(exc, FilterError)
                      else f"cannot read the audit trail: {first_line(exc)}")
        self.facts.setText(self.error)
        self.facts.setStyleSheet(f"color: {theme.colours(is_dark_palette(self.palette())).bad};")
        self.loaded.emit()

    def _selected(self, _selected: QItemSelection, _deselected: QItemSelection) -> None:
        rows = self.table.selectionModel().selectedRows()
        self.detail.show_record(self.records[rows[0].row()] if rows else None)

    def done(self, result: int) -> None:
        self._worker.close()
        super().done(result)
