"""The alerts panel (newest first, filtered by level, capped) and the tray and sound notifier.

The panel is a list model the window feeds once a frame with ``add_alerts``: one row insert per
batch at the top (a storm's frames gathered into one batch every quarter second), the oldest rows
dropped past the cap, never a reset. A tree view with lazy row heights shows it, so a word-wrapped
row costs a text layout only when it is on screen.

The notifier raises a tray balloon for critical alerts and limit warnings and beeps for critical
ones, at most one balloon per 5 s and one sound per 2 s: a storm of alerts makes one balloon,
then one summary ("(+N more)") when the window reopens.
"""

from __future__ import annotations

import enum
import math
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from PySide6.QtCore import (
    QAbstractListModel,
    QModelIndex,
    QObject,
    QPersistentModelIndex,
    QPointF,
    QRectF,
    QSize,
    QSortFilterProxyModel,
    Qt,
    QTimer,
    Signal,
)
from PySide6.QtGui import (
    QAction,
    QBrush,
    QColor,
    QFont,
    QFontMetrics,
    QKeySequence,
    QPainter,
    QPalette,
    QResizeEvent,
    QTextCharFormat,
    QTextLayout,
    QTextOption,
)
from PySide6.QtWidgets import (
    QAbstractItemView,
    QApplication,
    QComboBox,
    QHBoxLayout,
    QPushButton,
    QStyle,
    QStyledItemDelegate,
    QStyleOptionViewItem,
    QSystemTrayIcon,
    QToolButton,
    QTreeView,
    QVBoxLayout,
    QWidget,
)

from app.domain.events import Alert, AlertLevel
from app.domain.india_time import ist_day
from app.ui.formatting import ist_hms
from app.ui.theme import colours, is_dark

MAX_ALERTS = 2000
INSERT_INTERVAL_S = 0.25
BALLOON_INTERVAL_S = 5.0
SOUND_INTERVAL_S = 2.0

AlertRole = Qt.ItemDataRole.UserRole + 1
UnseenRole = Qt.ItemDataRole.UserRole + 2
# The delegate's one call per row: (the row, whether it is an unseen critical alert).
RowRole = Qt.ItemDataRole.UserRole + 3

_RANK = {AlertLevel.INFO: 0, AlertLevel.WARNING: 1, AlertLevel.CRITICAL: 2}
_BADGE = {AlertLevel.INFO: "INFO", AlertLevel.WARNING: "WARN", AlertLevel.CRITICAL: "CRIT"}

ModelIndex = QModelIndex | QPersistentModelIndex


class AlertFilter(enum.IntEnum):
    """Which alerts the panel shows: the lowest level let through."""

    ALL = 0
    WARNINGS = 1
    CRITICAL = 2

    @property
    def label(self) -> str:
        return {AlertFilter.ALL: "All", AlertFilter.WARNINGS: "Warnings+", AlertFilter.CRITICAL: "Critical"}[self]


def is_limit_warning(alert: Alert) -> bool:
    """A breaker's warning that a desk limit passed one of its warn fractions (80 %, 90 %)."""
    return alert.level is AlertLevel.WARNING and alert.component == "limits" and " of its limit" in alert.message


def is_notable(alert: Alert) -> bool:
    """Worth interrupting the operator for: every critical alert, and limit warnings."""
    return alert.level is AlertLevel.CRITICAL or is_limit_warning(alert)


@dataclass(frozen=True, slots=True)
class _Metrics:
    """What the delegate measures once per font: fonts, the badge's place and size, the line height."""

    tabular: QFont
    badge: QFont
    badge_x: int
    badge_w: int
    badge_h: int
    text_x: int
    line_h: int


@dataclass(frozen=True, slots=True)
class _Row:
    seq: int
    alert: Alert
    time: str


class AlertsModel(QAbstractListModel):
    """Alerts newest first (row 0), at most ``cap``; critical ones added since ``mark_seen`` are unseen."""

    unseen_critical_changed = Signal(int)

    def __init__(self, cap: int = MAX_ALERTS, parent: QObject | None = None) -> None:
        super().__init__(parent)
        if cap < 1:
            raise ValueError(f"the alerts cap must be at least 1, got {cap}")
        self.cap = cap
        self._rows: deque[_Row] = deque()
        self._seq = 0
        self._seen_seq = 0
        self._unseen_critical = 0

    @property
    def unseen_critical(self) -> int:
        """Critical alerts added since the operator last looked (kept when the cap drops their rows)."""
        return self._unseen_critical

    def rowCount(self, parent: ModelIndex = QModelIndex()) -> int:  # noqa: B008 - Qt's signature
        return 0 if parent.isValid() else len(self._rows)

    def data(self, index: ModelIndex, role: int = Qt.ItemDataRole.DisplayRole) -> object:
        if not index.isValid() or index.row() >= len(self._rows):
            return None
        row = self._rows[index.row()]
        if role == RowRole:
            return row, row.seq > self._seen_seq and row.alert.level is AlertLevel.CRITICAL
        if role == Qt.ItemDataRole.DisplayRole:
            return f"{row.time} {_BADGE[row.alert.level]} {row.alert.component}: {row.alert.message}"
        if role == AlertRole:
            return row.alert
        if role == UnseenRole:
            return row.seq > self._seen_seq and row.alert.level is AlertLevel.CRITICAL
        if role == Qt.ItemDataRole.ToolTipRole:
            alert = row.alert
            return f"{ist_day(alert.ts_ns).isoformat()} {row.time} IST · {alert.level} · {alert.component}\n{alert.message}"
        return None

    def alert(self, row: int) -> Alert:
        return self._rows[row].alert

    def add(self, alerts: Sequence[Alert]) -> None:
        """Put ``alerts`` (oldest first, as they arrived) at the top: one insert, and one removal past the cap."""
        if not alerts:
            return
        fresh = list(alerts[-self.cap:])
        drop = min(len(self._rows), len(self._rows) + len(fresh) - self.cap)
        if drop > 0:
            keep = len(self._rows) - drop
            self.beginRemoveRows(QModelIndex(), keep, len(self._rows) - 1)
            for _ in range(drop):
                self._rows.pop()
            self.endRemoveRows()
        rows = []
        for alert in fresh:
            self._seq += 1
            rows.append(_Row(self._seq, alert, ist_hms(alert.ts_ns)))
        self.beginInsertRows(QModelIndex(), 0, len(rows) - 1)
        self._rows.extendleft(rows)
        self.endInsertRows()
        critical = sum(1 for alert in alerts if alert.level is AlertLevel.CRITICAL)
        if critical:
            self._unseen_critical += critical
            self.unseen_critical_changed.emit(self._unseen_critical)

    def mark_seen(self) -> None:
        """The operator has seen everything listed: unseen marks go, only from the rows that had them."""
        if self._seen_seq == self._seq and not self._unseen_critical:
            return
        # Newest first: the rows added since the last look are the top ones.
        unseen_rows = 0
        for row in self._rows:
            if row.seq <= self._seen_seq:
                break
            unseen_rows += 1
        self._seen_seq = self._seq
        if unseen_rows:
            self.dataChanged.emit(self.index(0), self.index(unseen_rows - 1), [UnseenRole, RowRole])
        if self._unseen_critical:
            self._unseen_critical = 0
            self.unseen_critical_changed.emit(0)

    def clear(self) -> None:
        """Forget every alert (the operator's Clear): counts as seeing them."""
        self.beginResetModel()
        self._rows.clear()
        self._seen_seq = self._seq
        self.endResetModel()
        if self._unseen_critical:
            self._unseen_critical = 0
            self.unseen_critical_changed.emit(0)


class AlertFilterProxy(QSortFilterProxyModel):
    """Lets through the alerts of ``alerts`` at or above a level; keeps the model's newest-first order."""

    def __init__(self, alerts: AlertsModel, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._alerts = alerts
        self._min_rank = 0
        self.setSourceModel(alerts)

    @property
    def level(self) -> AlertFilter:
        return AlertFilter(self._min_rank)

    def set_level(self, level: AlertFilter) -> None:
        if int(level) == self._min_rank:
            return
        self.beginFilterChange()
        self._min_rank = int(level)
        self.endFilterChange(QSortFilterProxyModel.Direction.Rows)

    def filterAcceptsRow(self, source_row: int, source_parent: ModelIndex) -> bool:
        if not self._min_rank:
            return True
        return _RANK[self._alerts.alert(source_row).level] >= self._min_rank


class AlertDelegate(QStyledItemDelegate):
    """Paints one compact alert: time, a coloured level badge, the component dimmed, the message wrapped.

    A row's wrapped text depends on the width. Heights are cached per alert for the current width,
    so relaying out the whole list after an insert costs dictionary lookups, and the text layouts of
    the rows on screen are kept, so a repaint only draws.
    """

    PAD_X = 6
    PAD_Y = 3
    GAP = 7
    KEEP_LAYOUTS = 300

    def __init__(self, view: QTreeView) -> None:
        super().__init__(view)
        self._view = view
        self._width = -1
        self._font = QFont()
        self._heights: dict[int, int] = {}
        self._layouts: dict[tuple[int, int], QTextLayout] = {}
        self._metrics: dict[str, _Metrics] = {}

    def _measure(self, base: QFont) -> _Metrics:
        key = base.key()
        metrics = self._metrics.get(key)
        if metrics is None:
            tabular = QFont(base)
            # Tabular figures: every time in the column lines up.
            tabular.setFeature(QFont.Tag("tnum"), 1)
            badge = QFont(base)
            badge.setBold(True)
            badge.setPointSizeF(base.pointSizeF() * 0.8)
            line_h = QFontMetrics(base).height()
            badge_x = self.PAD_X + QFontMetrics(tabular).horizontalAdvance("88:88:88") + self.GAP
            badge_w = QFontMetrics(badge).horizontalAdvance("CRIT") + 8
            badge_h = min(line_h, QFontMetrics(badge).height() + 2)
            metrics = _Metrics(tabular, badge, badge_x, badge_w, badge_h, badge_x + badge_w + self.GAP, line_h)
            self._metrics[key] = metrics
        return metrics

    def _width_now(self, font: QFont) -> int:
        # One column spanning the viewport: its width is the row's. Heights and layouts hold for
        # one width and one font.
        width = self._view.viewport().width()
        if width != self._width or font != self._font:
            self._width, self._font = width, QFont(font)
            self._heights.clear()
            self._layouts.clear()
        return width

    def _layout(self, font: QFont, row: _Row, dim: QColor) -> QTextLayout:
        key = (row.seq, dim.rgba())
        layout = self._layouts.get(key)
        if layout is not None:
            return layout
        if len(self._layouts) >= self.KEEP_LAYOUTS:
            self._layouts.clear()
        alert = row.alert
        prefix = alert.component + "  "
        layout = QTextLayout(prefix + alert.message, font)
        component = QTextLayout.FormatRange()
        component.start, component.length = 0, len(prefix)
        fmt = QTextCharFormat()
        fmt.setForeground(QBrush(dim))
        component.format = fmt
        layout.setFormats([component])
        text_option = QTextOption()
        text_option.setWrapMode(QTextOption.WrapMode.WrapAtWordBoundaryOrAnywhere)
        layout.setTextOption(text_option)
        width = max(40, self._width - self._measure(font).text_x - self.PAD_X)
        layout.beginLayout()
        y = 0.0
        while True:
            line = layout.createLine()
            if not line.isValid():
                break
            line.setLineWidth(width)
            line.setPosition(QPointF(0, y))
            y += line.height()
        layout.endLayout()
        self._layouts[key] = layout
        return layout

    def sizeHint(self, option: QStyleOptionViewItem, index: ModelIndex) -> QSize:
        width = self._width_now(option.font)
        row, _unseen = index.data(RowRole)
        height = self._heights.get(row.seq)
        if height is None:
            metrics = self._measure(option.font)
            layout = self._layout(option.font, row, self._dim(option.palette))
            height = max(metrics.line_h, round(layout.boundingRect().height())) + 2 * self.PAD_Y
            self._heights[row.seq] = height
        return QSize(width, height)

    @staticmethod
    def _dim(palette: QPalette) -> QColor:
        return QColor(colours(is_dark(palette, QPalette.ColorRole.Base)).dim)

    def paint(self, painter: QPainter, option: QStyleOptionViewItem, index: ModelIndex) -> None:
        self._width_now(option.font)
        row, unseen = index.data(RowRole)
        alert = row.alert
        widget = option.widget
        style = widget.style() if widget is not None else QApplication.style()
        # The style's own item panel: selection, hover and alternate rows as elsewhere in the desk.
        style.drawPrimitive(QStyle.PrimitiveElement.PE_PanelItemViewItem, option, painter, widget)
        palette = option.palette
        dark = is_dark(palette, QPalette.ColorRole.Base)
        scheme = colours(dark)
        selected = bool(option.state & QStyle.StateFlag.State_Selected)
        text_colour = palette.color(QPalette.ColorRole.HighlightedText if selected else QPalette.ColorRole.Text)
        dim = text_colour if selected else QColor(scheme.dim)
        rect = option.rect
        m = self._measure(option.font)
        top = rect.top() + self.PAD_Y
        painter.save()
        if unseen:
            painter.fillRect(rect.left(), rect.top(), 3, rect.height(), QColor(scheme.bad))
        painter.setFont(m.tabular)
        painter.setPen(dim)
        painter.drawText(QRectF(rect.left() + self.PAD_X, top, m.badge_x - self.PAD_X, m.line_h),
                         Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter, row.time)
        fill, ink = _badge_colours(alert.level, dark)
        badge_rect = QRectF(rect.left() + m.badge_x, top + (m.line_h - m.badge_h) / 2, m.badge_w, m.badge_h)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing, True)
        painter.setPen(Qt.PenStyle.NoPen if fill is not None else QColor(scheme.dim))
        painter.setBrush(QColor(fill) if fill is not None else Qt.BrushStyle.NoBrush)
        painter.drawRoundedRect(badge_rect.adjusted(0.5, 0.5, -0.5, -0.5), 3, 3)
        painter.setFont(m.badge)
        painter.setPen(QColor(ink) if ink is not None else dim)
        painter.drawText(badge_rect, Qt.AlignmentFlag.AlignCenter, _BADGE[alert.level])
        painter.setPen(text_colour)
        self._layout(option.font, row, dim).draw(painter, QPointF(rect.left() + m.text_x, top))
        painter.restore()


class _AlertsView(QTreeView):
    """A one-column tree (rows get their own heights, computed only when on screen) that re-wraps on resize."""

    def __init__(self) -> None:
        super().__init__()
        self._laid_out_width = -1

    def resizeEvent(self, event: QResizeEvent) -> None:
        super().resizeEvent(event)
        width = self.viewport().width()
        if width != self._laid_out_width:
            self._laid_out_width = width
            # Row heights follow the width; the tree would otherwise keep the ones it has.
            self.scheduleDelayedItemsLayout()


def _badge_colours(level: AlertLevel, dark: bool) -> tuple[str | None, str | None]:
    """(fill, text) of a level's badge; INFO is an outline in the dim colour."""
    scheme = colours(dark)
    if level is AlertLevel.CRITICAL:
        return scheme.bad, "#ffffff"
    if level is AlertLevel.WARNING:
        # The dark theme's amber is light, the light theme's dark: the text takes the other side.
        return scheme.warn, "#1e1f22" if dark else "#ffffff"
    return None, None


class AlertsPanel(QWidget):
    """Alerts newest first with a level filter, Clear, and a count of critical alerts not yet seen.

    ``add_alerts`` once a frame with the alerts that arrived. An insert makes the tree lay out every
    listed row again (about 10 ms at 2,000 rows), so inserts come at most every ``min_interval_s``:
    the first alert after a quiet spell shows at once, a storm's are gathered and shown together
    when the interval has passed (``flush`` shows them now). Clicking the list or the unseen count
    marks everything seen; ``unseen_critical_changed`` lets the window badge the dock's title.
    ``clock`` is monotonic seconds.
    """

    unseen_critical_changed = Signal(int)

    def __init__(
        self,
        parent: QWidget | None = None,
        *,
        cap: int = MAX_ALERTS,
        min_interval_s: float = INSERT_INTERVAL_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(parent)
        self._min_interval_s = min_interval_s
        self._clock = clock
        self._pending: list[Alert] = []
        self._last_insert = -float("inf")
        self._insert_timer = QTimer(self)
        self._insert_timer.setSingleShot(True)
        self._insert_timer.timeout.connect(self.flush)
        self.model = AlertsModel(cap, self)
        self.proxy = AlertFilterProxy(self.model, self)

        self.filter_combo = QComboBox()
        for level in AlertFilter:
            self.filter_combo.addItem(level.label, int(level))
        self.filter_combo.setToolTip("Show every alert, warnings and critical ones, or critical ones only")
        self.filter_combo.currentIndexChanged.connect(self._filter_changed)
        self.unseen_button = QToolButton()
        self.unseen_button.setToolTip("Critical alerts since you last looked; click to mark them seen")
        self.unseen_button.setAutoRaise(True)
        self.unseen_button.clicked.connect(self.mark_seen)
        self.unseen_button.hide()
        self.clear_button = QPushButton("Clear")
        self.clear_button.setToolTip("Empty this list (the audit trail keeps every alert)")
        self.clear_button.clicked.connect(self.clear)

        self.view = _AlertsView()
        self.view.setModel(self.proxy)
        self.view.setHeaderHidden(True)
        self.view.setRootIsDecorated(False)
        self.view.setItemsExpandable(False)
        self.view.setIndentation(0)
        self.view.setUniformRowHeights(False)
        self.view.setWordWrap(True)
        self.view.setAlternatingRowColors(True)
        self.view.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.view.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.view.setVerticalScrollMode(QAbstractItemView.ScrollMode.ScrollPerItem)
        self.delegate = AlertDelegate(self.view)
        self.view.setItemDelegate(self.delegate)
        self.view.pressed.connect(lambda _index: self.mark_seen())
        copy = QAction("Copy", self.view)
        copy.setShortcut(QKeySequence.StandardKey.Copy)
        copy.setShortcutContext(Qt.ShortcutContext.WidgetShortcut)
        copy.triggered.connect(self.copy_selection)
        self.view.addAction(copy)
        self.view.setContextMenuPolicy(Qt.ContextMenuPolicy.ActionsContextMenu)

        top = QHBoxLayout()
        top.setContentsMargins(0, 0, 0, 0)
        top.setSpacing(6)
        top.addWidget(self.filter_combo)
        top.addStretch(1)
        top.addWidget(self.unseen_button)
        top.addWidget(self.clear_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(2, 2, 2, 2)
        layout.setSpacing(3)
        layout.addLayout(top)
        layout.addWidget(self.view, 1)
        self.model.unseen_critical_changed.connect(self._unseen_changed)

    @property
    def unseen_critical(self) -> int:
        return self.model.unseen_critical

    @property
    def pending(self) -> int:
        """Alerts received but not yet listed (they wait for the insert interval)."""
        return len(self._pending)

    def add_alerts(self, alerts: Sequence[Alert]) -> None:
        """Show ``alerts`` (in arrival order) at the top of the list, now or when the insert interval has passed."""
        if not alerts:
            return
        self._pending.extend(alerts)
        wait = self._last_insert + self._min_interval_s - self._clock()
        if wait <= 0:
            self.flush()
        elif not self._insert_timer.isActive():
            self._insert_timer.start(max(1, math.ceil(wait * 1000)))

    def flush(self) -> None:
        """List every alert received so far now, in one insert."""
        self._insert_timer.stop()
        if self._pending:
            pending, self._pending = self._pending, []
            self._last_insert = self._clock()
            self.model.add(pending)

    def set_filter(self, level: AlertFilter) -> None:
        self.filter_combo.setCurrentIndex(self.filter_combo.findData(int(level)))

    def mark_seen(self) -> None:
        self.model.mark_seen()

    def clear(self) -> None:
        self._insert_timer.stop()
        self._pending.clear()
        self.model.clear()

    def copy_selection(self) -> None:
        """Copy the selected alerts as text lines, newest first, to the clipboard."""
        rows = sorted(index.row() for index in self.view.selectionModel().selectedRows())
        lines = [self.proxy.index(row, 0).data(Qt.ItemDataRole.DisplayRole) for row in rows]
        if lines:
            QApplication.clipboard().setText("\n".join(lines))

    def _filter_changed(self, position: int) -> None:
        self.proxy.set_level(AlertFilter(self.filter_combo.itemData(position)))

    def _unseen_changed(self, count: int) -> None:
        if count:
            self.unseen_button.setText(f"● {count} critical unseen")
            dark = is_dark(self.palette())
            self.unseen_button.setStyleSheet(f"color: {colours(dark).bad}; font-weight: 600;")
        self.unseen_button.setVisible(count > 0)
        self.unseen_critical_changed.emit(count)


class AlertNotifier(QObject):
    """Tray balloons for critical alerts and limit warnings, a sound for critical ones, both rate-limited.

    At most one balloon per ``BALLOON_INTERVAL_S`` and one sound per ``SOUND_INTERVAL_S``. Notable
    alerts that arrive while the balloon window is shut are held: the next balloon shows the most
    severe, newest of them with "(+N more)", at the latest when the window reopens. Without a tray,
    or with a hidden one, there are no balloons (the sound still plays). ``clock`` is monotonic seconds.
    """

    def __init__(
        self,
        tray: QSystemTrayIcon | None,
        sound: Callable[[], None] | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self._tray = tray
        self._sound = sound if sound is not None else QApplication.beep
        self._clock = clock
        self._last_balloon = -float("inf")
        self._last_sound = -float("inf")
        self._held: Alert | None = None
        self._held_count = 0
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.timeout.connect(self.flush)
        self.balloons = 0
        self.sounds = 0

    @property
    def held(self) -> int:
        """Notable alerts waiting for the next balloon."""
        return self._held_count

    def notify(self, alerts: Sequence[Alert]) -> None:
        """Consider one frame's alerts: sound for a critical one, a balloon (or hold them for the next)."""
        notable = [alert for alert in alerts if is_notable(alert)]
        if not notable:
            return
        now = self._clock()
        if any(alert.level is AlertLevel.CRITICAL for alert in notable) and now - self._last_sound >= SOUND_INTERVAL_S:
            self._last_sound = now
            self.sounds += 1
            self._sound()
        tray = self._usable_tray()
        if tray is None:
            self._held, self._held_count = None, 0
            return
        # The balloon names the latest of the highest level seen since the last one.
        strongest = max(reversed(notable), key=lambda alert: _RANK[alert.level])
        held = self._held
        if held is None or _RANK[strongest.level] >= _RANK[held.level]:
            held = strongest
        self._held = held
        self._held_count += len(notable)
        wait = self._last_balloon + BALLOON_INTERVAL_S - now
        if wait <= 0:
            self._show(now, held, tray)
        elif not self._timer.isActive():
            self._timer.start(max(1, round(wait * 1000)))

    def flush(self) -> None:
        """Show the held alerts now if the balloon window is open (the timer calls this when it reopens)."""
        now = self._clock()
        held = self._held
        if held is None:
            return
        tray = self._usable_tray()
        if tray is None:
            self._held, self._held_count = None, 0
            return
        wait = self._last_balloon + BALLOON_INTERVAL_S - now
        if wait <= 0:
            self._show(now, held, tray)
        elif not self._timer.isActive():
            self._timer.start(max(1, round(wait * 1000)))

    def _usable_tray(self) -> QSystemTrayIcon | None:
        return self._tray if self._tray is not None and self._tray.isVisible() else None

    def _show(self, now: float, alert: Alert, tray: QSystemTrayIcon) -> None:
        more = self._held_count - 1
        self._held, self._held_count = None, 0
        self._last_balloon = now
        self._timer.stop()
        if alert.level is AlertLevel.CRITICAL:
            title, icon, msecs = f"CRITICAL · {alert.component}", QSystemTrayIcon.MessageIcon.Critical, 10_000
        else:
            title, icon, msecs = f"Limit warning · {alert.component}", QSystemTrayIcon.MessageIcon.Warning, 6_000
        message = alert.message if len(alert.message) <= 240 else alert.message[:239] + "…"
        if more > 0:
            message += f" (+{more} more)"
        self.balloons += 1
        tray.showMessage(title, message, icon, msecs)
