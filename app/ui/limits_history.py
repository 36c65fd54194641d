"""The stored versions of the risk limits (who, when in IST, why), newest first, any two compared field by field."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHeaderView,
    QLabel,
    QSplitter,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from app.domain.india_time import IST
from app.store.document_versions import StoredDocument
from app.ui.limits_diff import LimitsDiffView
from app.ui.limits_document import field_changes

log = logging.getLogger(__name__)

HistoryReader = Callable[[], list[StoredDocument]]
"""Reads the stored versions, newest first; blocking (it runs off the GUI thread)."""


def ist_stamp(ts_ns: int) -> str:
    """'2026-11-30 11:42:07 IST' for an epoch instant in nanoseconds."""
    return dt.datetime.fromtimestamp(ts_ns // 1_000_000_000, IST).strftime("%Y-%m-%d %H:%M:%S IST")


def _document(stored: StoredDocument) -> dict[str, Any]:
    try:
        data = json.loads(stored.document)
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


class LimitsHistory(QWidget):
    """Versions newest first; select one to see what it changed, or two (Ctrl-click) to compare them."""

    def __init__(self, reader: HistoryReader | None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._reader = reader
        self.versions: list[StoredDocument] = []
        self.status = QLabel()
        self.status.setObjectName("limitsHistoryStatus")
        self.status.setWordWrap(True)
        self.table = QTableWidget(0, 4)
        self.table.setObjectName("limitsHistory")
        self.table.setHorizontalHeaderLabels(["Version", "When (IST)", "By", "Why"])
        self.table.verticalHeader().setVisible(False)
        self.table.verticalHeader().setDefaultSectionSize(22)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.table.setWordWrap(False)
        header = self.table.horizontalHeader()
        for column in range(3):
            header.setSectionResizeMode(column, QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(3, QHeaderView.ResizeMode.Stretch)
        self.table.itemSelectionChanged.connect(self._selection_changed)
        self.diff = LimitsDiffView()
        self.diff.clear("Select a version to see what it changed, or two (Ctrl-click) to compare them.")
        split = QSplitter(Qt.Orientation.Vertical)
        split.addWidget(self.table)
        split.addWidget(self.diff)
        split.setStretchFactor(0, 2)
        split.setStretchFactor(1, 3)
        split.setChildrenCollapsible(False)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 6, 6, 6)
        layout.setSpacing(4)
        layout.addWidget(self.status)
        layout.addWidget(split, 1)
        if reader is None:
            self.status.setText("This desk keeps no store, so no history of the limits is kept.")

    async def reload(self) -> None:
        """Read the versions off the GUI thread and show them; a store error is shown, never raised."""
        if self._reader is None:
            return
        self.status.setText("Reading the stored versions…")
        try:
            versions = await asyncio.to_thread(self._reader)
        except Exception as exc:  # noqa: BLE001 - any store failure is shown to the operator, the desk goes on
            log.warning("limits history could not be read: %s", exc)
            self.status.setText(f"Cannot read the stored versions: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}")
            return
        self.show_versions(versions)

    def show_versions(self, versions: list[StoredDocument]) -> None:
        """Show ``versions`` (newest first)."""
        self.versions = sorted(versions, key=lambda stored: stored.version, reverse=True)
        self.table.setRowCount(len(self.versions))
        for row, stored in enumerate(self.versions):
            cells = (str(stored.version), ist_stamp(stored.ts_ns), stored.actor, stored.reason)
            for column, text in enumerate(cells):
                item = QTableWidgetItem(text)
                item.setToolTip(text)
                if column == 0:
                    item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
                self.table.setItem(row, column, item)
        count = len(self.versions)
        self.status.setText(
            f"{count} stored version{'s' if count != 1 else ''}, newest first. Select one to see what it changed, "
            "or two (Ctrl-click) to compare them." if count else "No limits have been stored yet."
        )

    def _selection_changed(self) -> None:
        rows = sorted({index.row() for index in self.table.selectionModel().selectedRows()})
        if len(rows) == 1:
            newer = self.versions[rows[0]]
            older = self.versions[rows[0] + 1] if rows[0] + 1 < len(self.versions) else None
            self.compare(older.version if older is not None else None, newer.version)
        elif len(rows) == 2:
            self.compare(self.versions[rows[1]].version, self.versions[rows[0]].version)
        elif len(rows) > 2:
            self.diff.clear("Select at most two versions to compare.")

    def compare(self, older: int | None, newer: int) -> None:
        """Show what changed from version ``older`` (None: nothing before it) to version ``newer``."""
        by_version = {stored.version: stored for stored in self.versions}
        right = by_version[newer]
        left = by_version[older] if older is not None else None
        before = _document(left) if left is not None else {}
        changes = field_changes(before, _document(right))
        left_title = f"Version {older}" if older is not None else "(nothing before)"
        what = f"version {older} → version {newer}" if older is not None else f"version {newer}, the first stored"
        count = len(changes)
        self.diff.show_changes(
            changes, left_title, f"Version {newer}",
            title=f"{what}: {count} field{'s' if count != 1 else ''} differ. Version {newer}: {right.actor}, "
                  f"{ist_stamp(right.ts_ns)}: {right.reason}",
        )
