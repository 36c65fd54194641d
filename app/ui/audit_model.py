"""The audit viewer's table model: pages of the chain read off the GUI thread, newest first.

The model holds only the pages the operator scrolled through. ``fetchMore`` (Qt asks for it when
the view reaches the bottom) hands one keyset read to a background thread; the rows come back
through a queued signal and are appended on the GUI thread. A filter change starts over under a
new generation, so a page still in flight for the old filter is dropped when it lands.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import shiboken6
from PySide6.QtCore import QAbstractTableModel, QModelIndex, QObject, Qt, Signal

from app.domain.audit import AuditEventType
from app.store.audit_query import PAGE_SIZE, AuditFilter, AuditQuery, AuditRow
from app.ui import formatting
from app.ui.table_view import ModelIndex, Tone, tone_colour

_DISPLAY = int(Qt.ItemDataRole.DisplayRole)
_ALIGN = int(Qt.ItemDataRole.TextAlignmentRole)
_FOREGROUND = int(Qt.ItemDataRole.ForegroundRole)
_TOOLTIP = int(Qt.ItemDataRole.ToolTipRole)
_RIGHT = Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter
_LEFT = Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter

COLUMNS: tuple[str, ...] = ("Seq", "Time (IST)", "Event", "Actor", "Source", "Instrument / summary")
COL_SEQ, COL_TIME, COL_EVENT, COL_ACTOR, COL_SOURCE, COL_SUMMARY = range(len(COLUMNS))

# Only the Event cell is tinted, and only for what deserves a second look: the table stays calm.
_EVENT_TONE: dict[str, Tone] = {
    AuditEventType.GATE_REJECTED.value: Tone.BAD,
    AuditEventType.BROKER_REJECT.value: Tone.BAD,
    AuditEventType.ORDER_THROTTLED.value: Tone.BAD,
    AuditEventType.LOGIN_FAILED.value: Tone.BAD,
    AuditEventType.LOGIN_LOCKED.value: Tone.BAD,
    AuditEventType.BREAKER_TRIPPED.value: Tone.BAD,
    AuditEventType.KILL_SWITCH_ENGAGED.value: Tone.BAD,
    AuditEventType.ALERT_RAISED.value: Tone.WARN,
    AuditEventType.TRADING_STATE_CHANGED.value: Tone.WARN,
    AuditEventType.FLATTEN_REQUESTED.value: Tone.WARN,
    AuditEventType.LIMIT_CHANGED.value: Tone.WARN,
    AuditEventType.REARMED.value: Tone.WARN,
    AuditEventType.FILL.value: Tone.GOOD,
    AuditEventType.GATE_ACCEPTED.value: Tone.WORKING,
}

_REPR_DECIMAL = re.compile(r"^Decimal\('([^']*)'\)$")
_SUMMARY_MAX = 240


def _plain(value: Any) -> str:
    """A payload value as a trader reads it: ``Decimal('1500.05')`` and ``'10'`` (reprs of what arrived) unwrapped."""
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    if (found := _REPR_DECIMAL.match(text)) is not None:
        return found.group(1)
    if len(text) >= 2 and text[0] == text[-1] == "'":
        return text[1:-1]
    return text


def _paise(value: Any) -> str:
    return formatting.price(value) if type(value) is int else _plain(value)


def summary(event_type: str, payload: Any) -> str:
    """One line for the table: the instrument first when the record names one, then what happened."""
    if not isinstance(payload, dict):
        return _plain(payload)[:_SUMMARY_MAX]
    get = payload.get
    parts: list[str] = []
    if "instrument" in payload:
        parts.append(_plain(get("instrument")))
    if {"side", "quantity"} <= payload.keys():
        price = get("price_paise") if "price_paise" in payload else get("price")
        deal = f"{_plain(get('side'))} {_plain(get('quantity'))}"
        parts.append(deal if price is None or _plain(price) == "None" else f"{deal} @ {_paise(price)}")
    if "reason" in payload:
        parts.append(f"{_plain(get('reason'))}: {_plain(get('message'))}" if "message" in payload else _plain(get("reason")))
    if "from" in payload and "to" in payload:
        parts.append(f"{_plain(get('from'))} → {_plain(get('to'))}")
    if "broker_order_id" in payload and get("broker_order_id") is not None:
        parts.append(f"broker {_plain(get('broker_order_id'))}")
    if "client_order_id" in payload:
        parts.append(_plain(get("client_order_id")))
    if not parts:
        shown = [f"{key}={_plain(value)}" for key, value in list(payload.items())[:6]]
        parts.append(" ".join(shown))
    return " · ".join(parts)[:_SUMMARY_MAX]


@dataclass(frozen=True, slots=True)
class ShownRow:
    """A record with its cells' text, worked out on the worker thread (the JSON parse included)."""

    record: AuditRow
    time_text: str
    summary: str


def first_line(exc: BaseException) -> str:
    """An exception's first line for the operator (its type when it has no message)."""
    text = str(getattr(exc, "orig", None) or exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def shown(record: AuditRow) -> ShownRow:
    return ShownRow(record, record.ist_text(), summary(record.event_type, record.payload_object()))


class _Relay(QObject):
    """Carries answers from worker threads to the GUI thread. One for the process, never deleted: a
    worker thread never touches a QObject that the GUI thread might be deleting at that moment."""

    answer = Signal(object, object)


_relay: _Relay | None = None


def _the_relay() -> _Relay:
    global _relay
    if _relay is None:
        _relay = _Relay()
        _relay.answer.connect(_call)
    return _relay


def _call(callback: Callable[[Any], None], value: Any) -> None:
    callback(value)


class Worker:
    """One background thread for blocking store calls; each answer is handed back on the GUI thread.

    Calls run one at a time, in the order given. Made on the GUI thread by ``owner``; an answer that
    lands after ``close`` or after ``owner`` was deleted is dropped, and the thread ends with ``owner``.
    """

    def __init__(self, name: str, owner: QObject) -> None:
        self._owner = owner
        self._closed = False
        self._relay = _the_relay()
        pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix=name)
        self._pool = pool
        # Captures the pool only: the owner's destruction ends the thread without keeping the owner alive.
        owner.destroyed.connect(lambda *_: pool.shutdown(wait=False, cancel_futures=True))

    def submit(self, call: Callable[[], Any], done: Callable[[Any], None],
               failed: Callable[[Exception], None]) -> None:
        """Run ``call`` off the GUI thread; then ``done(result)`` or ``failed(exception)`` on the GUI thread."""
        relay = self._relay

        def job() -> None:
            try:
                answer: tuple[Callable[[Any], None], Any] = (done, call())
            except Exception as exc:  # noqa: BLE001 - every failure is shown to the operator, not raised in a pool
                answer = (failed, exc)
            relay.answer.emit(lambda value: self._deliver(answer[0], value), answer[1])

        if not self._closed:
            self._pool.submit(job)

    def from_thread(self, callback: Callable[[Any], None]) -> Callable[[Any], None]:
        """A function a worker thread may call (progress, say): ``callback`` runs with the value on the GUI thread."""
        relay = self._relay

        def relayed(value: Any) -> None:
            relay.answer.emit(lambda landed: self._deliver(callback, landed), value)

        return relayed

    def _deliver(self, callback: Callable[[Any], None], value: Any) -> None:
        if not self._closed and shiboken6.isValid(self._owner):
            callback(value)

    def close(self) -> None:
        """Stop taking calls; one already running finishes on its own and its answer is dropped."""
        self._closed = True
        self._pool.shutdown(wait=False, cancel_futures=True)


class AuditModel(QAbstractTableModel):
    """Pages of the audit chain, newest first, under an ``AuditFilter``.

    ``loaded`` is emitted after each page lands (rows appended or not); ``failed`` with a message
    when the store cannot be read. Sorting is the chain's own order: a paged model is never sorted
    client-side, which would mean reading all of it.
    """

    loaded = Signal()
    failed = Signal(str)

    def __init__(self, query: AuditQuery, *, page_size: int = PAGE_SIZE, dark: bool = True,
                 parent: QObject | None = None, start: bool = True) -> None:
        super().__init__(parent)
        self.query = query
        self.page_size = page_size
        self._rows: list[ShownRow] = []
        self._filter = AuditFilter()
        self._cursor: int | None = None
        self._started = False
        self._busy = False
        self._generation = 0
        # Rows wanted by the last request: a sparse filter's partial pages keep coming until it is met.
        self._wanted = 0
        self._dark = dark
        self.error: str | None = None
        self._worker = Worker("audit-pages", self)
        if start:
            self.set_filter(AuditFilter())

    # -- Qt's table interface ----------------------------------------------------------------------

    def rowCount(self, parent: ModelIndex = QModelIndex()) -> int:  # noqa: B008 - Qt's default argument
        return 0 if parent.isValid() else len(self._rows)

    def columnCount(self, parent: ModelIndex = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(COLUMNS)

    def headerData(self, section: int, orientation: Qt.Orientation, role: int = _DISPLAY) -> Any:
        if orientation is not Qt.Orientation.Horizontal:
            return None
        if role == _DISPLAY:
            return COLUMNS[section]
        if role == _ALIGN:
            return _RIGHT if section == COL_SEQ else _LEFT
        return None

    def data(self, index: ModelIndex, role: int = _DISPLAY) -> Any:
        if not index.isValid():
            return None
        item = self._rows[index.row()]
        column = index.column()
        if role == _DISPLAY:
            record = item.record
            if column == COL_SEQ:
                return f"{record.seq:,}"
            if column == COL_TIME:
                return item.time_text
            if column == COL_EVENT:
                return record.event_type
            if column == COL_ACTOR:
                return record.actor
            if column == COL_SOURCE:
                return record.source
            return item.summary
        if role == _ALIGN:
            return _RIGHT if column == COL_SEQ else _LEFT
        if role == _FOREGROUND and column == COL_EVENT:
            tone = _EVENT_TONE.get(item.record.event_type)
            return tone_colour(tone, self._dark) if tone is not None else None
        if role == _TOOLTIP and column == COL_SUMMARY:
            return item.summary
        return None

    def canFetchMore(self, parent: ModelIndex = QModelIndex()) -> bool:  # noqa: B008
        return not parent.isValid() and self._started and self._cursor is not None and not self._busy

    def fetchMore(self, parent: ModelIndex = QModelIndex()) -> None:  # noqa: B008
        if not self.canFetchMore(parent):
            return
        self._wanted = len(self._rows) + self.page_size
        self._fetch()

    # -- paging ------------------------------------------------------------------------------------

    @property
    def filter(self) -> AuditFilter:
        return self._filter

    @property
    def loading(self) -> bool:
        return self._busy

    @property
    def exhausted(self) -> bool:
        """Every matching record is in the model."""
        return self._started and self._cursor is None and not self._busy

    @property
    def cursor(self) -> int | None:
        """Where the next read starts (records below this sequence number); ``None``: nothing left."""
        return self._cursor

    def set_filter(self, flt: AuditFilter) -> None:
        """Start over: drop every row and read the first page under ``flt``."""
        self.beginResetModel()
        self._generation += 1
        self._rows = []
        self._filter = flt
        self._cursor = None
        self._busy = False
        self._started = True
        self.error = None
        self.endResetModel()
        self._wanted = self.page_size
        self._fetch(first=True)

    def refresh(self) -> None:
        """Read again from the newest record, keeping the filter (records appended since show)."""
        self.set_filter(self._filter)

    def _fetch(self, first: bool = False) -> None:
        generation, flt, before = self._generation, self._filter, self._cursor
        query, size = self.query, self.page_size
        self._busy = True

        def read() -> list[Any]:
            page = query.newest(flt, before=None if first else before, limit=size)
            return [page.cursor, [shown(record) for record in page.rows]]

        self._worker.submit(read, lambda answer: self._landed(generation, answer),
                            lambda exc: self._broke(generation, exc))

    def _landed(self, generation: int, answer: list[Any]) -> None:
        if generation != self._generation:
            return
        cursor, rows = answer
        self._busy = False
        self._cursor = cursor
        if rows:
            start = len(self._rows)
            self.beginInsertRows(QModelIndex(), start, start + len(rows) - 1)
            self._rows.extend(rows)
            self.endInsertRows()
        if self._cursor is not None and len(self._rows) < self._wanted:
            self._fetch()
        self.loaded.emit()

    def _broke(self, generation: int, exc: Exception) -> None:
        if generation != self._generation:
            return
        self._busy = False
        self._cursor = None
        self.error = f"cannot read the audit trail: {first_line(exc)}"
        self.failed.emit(self.error)
        self.loaded.emit()

    # -- rows --------------------------------------------------------------------------------------

    def record(self, row: int) -> AuditRow:
        return self._rows[row].record

    def shown_row(self, row: int) -> ShownRow:
        return self._rows[row]

    def records(self) -> list[AuditRow]:
        """The records loaded so far, in the table's order."""
        return [item.record for item in self._rows]

    def set_dark(self, dark: bool) -> None:
        if dark != self._dark:
            self._dark = dark
            if self._rows:
                self.dataChanged.emit(self.index(0, COL_EVENT), self.index(len(self._rows) - 1, COL_EVENT))

    def close(self) -> None:
        """Stop reading: pages in flight are dropped."""
        self._generation += 1
        self._worker.close()

