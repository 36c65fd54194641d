"""The desk's live exposure charts: the session's exposure and P&L, and each underlying against its cap.

Everything here is fed by the bridge and drawn by the lead's frame timer: feeding methods only
store the value and mark the view dirty, ``refresh()`` repaints what changed, once. pyqtgraph's
cost is per curve, so the session chart has three curves and the per-underlying chart one
``BarGraphItem``, however many underlyings there are. Money comes in as paise and is plotted in
rupees (float64).
"""

from __future__ import annotations

import enum
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyqtgraph as pg  # type: ignore[import-untyped]
from PySide6.QtCore import QEvent, Qt
from PySide6.QtGui import QColor, QFontMetrics, QPalette, QResizeEvent
from PySide6.QtWidgets import (
    QApplication,
    QHBoxLayout,
    QLabel,
    QSizePolicy,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from app.domain.india_time import IST_OFFSET_S, ist_day_number
from app.domain.money import PAISE_PER_RUPEE
from app.ui import theme
from app.ui.formatting import inr_short, signed_inr_short
from app.ui.ring_buffer import RingBuffer

DEFAULT_CAPACITY = 24_000
"""A full 6.5 h session of one-second points (23,400) and some pre-open."""
DEFAULT_TOP_N = 20
DEFAULT_WARN_FRACTIONS: tuple[float, ...] = (0.8, 0.9)

# pyqtgraph counts a utcOffset in seconds WEST of UTC: India is east, so the offset is negative.
IST_UTC_OFFSET = -IST_OFFSET_S

_NS_PER_S = 1_000_000_000
_SECONDS_PER_DAY = 86_400
_HOUR = 3_600
# The x axis spans at least the cash session of the newest point's day, so the chart fills from
# the left as the day goes on instead of rescaling every second.
_SESSION_OPEN_S = 9 * _HOUR + 15 * 60
_SESSION_CLOSE_S = 15 * _HOUR + 30 * 60
_X_STEP_S = 15 * 60  # IST is a whole number of quarter hours ahead of UTC: these are IST quarter hours
_BP_PER_UNIT = 10_000  # basis points in 100 %
_BAR_CLAMP_PCT = 200.0  # a bar far over its cap is drawn this long; its label keeps the real figure
_NO_CAP_STUB_PCT = 1.0  # an underlying without a cap gets a grey stub at zero, so its row is not blank
_CURVE_OPTS: dict[str, Any] = {
    "skipFiniteCheck": True,
    "clipToView": True,
    "autoDownsample": True,
    "downsampleMethod": "peak",
    "autoDownsampleFactor": 1.0,
}


class Headroom(enum.Enum):
    """How close an amount is to its cap; the colours of bars and header percentages."""

    OK = "ok"  # below the first warning fraction
    WARN = "warn"  # at or past the first warning fraction
    DANGER = "danger"  # at or past the last warning fraction, up to the cap itself
    BREACH = "breach"  # over the cap
    NO_CAP = "no cap"


def utilisation_bp(used: int, cap: int) -> int:
    """``|used|`` as basis points of a positive ``cap``, rounded down (integer maths: exact at the thresholds)."""
    if cap <= 0:
        raise ValueError(f"a cap must be positive, got {cap}")
    return abs(used) * _BP_PER_UNIT // cap


def headroom(used: int, cap: int | None, warn_fractions: Sequence[float] = DEFAULT_WARN_FRACTIONS) -> Headroom:
    """The headroom level of ``|used|`` against ``cap`` (paise); a cap of None or below 1 is no cap."""
    if cap is None or cap <= 0:
        return Headroom.NO_CAP
    if abs(used) > cap:
        return Headroom.BREACH
    bp = utilisation_bp(used, cap)
    thresholds = sorted(round(fraction * _BP_PER_UNIT) for fraction in warn_fractions)
    crossed = sum(1 for threshold in thresholds if bp >= threshold)
    if crossed == 0:
        return Headroom.OK
    if crossed == len(thresholds) and len(thresholds) >= 2:
        return Headroom.DANGER
    return Headroom.WARN


def percent_text(used: int, cap: int) -> str:
    """'84 %': rounded down below the cap (never shows 90 before 90), up over it (never hides a breach)."""
    bp = utilisation_bp(used, cap)
    pct = bp // 100 if abs(used) <= cap else -(-abs(used) * 100 // cap)
    return f"{pct} %"


# OK, WARN and DANGER are the desk theme's good, warn and bad colours; BREACH is brighter than DANGER.
@dataclass(frozen=True, slots=True)
class _Scheme:
    background: str
    text: str
    gross: str
    net: str
    pnl: str
    headroom: dict[Headroom, str]


_DARK = _Scheme(
    background=theme.DARK.window,
    text=theme.DARK.text,
    gross="#5aa9ff",
    net="#c49bff",
    pnl="#3fd0b8",
    headroom={
        Headroom.OK: theme.DARK.good,
        Headroom.WARN: theme.DARK.warn,
        Headroom.DANGER: theme.DARK.bad,
        Headroom.BREACH: "#ff1a1a",
        Headroom.NO_CAP: "#6f747c",
    },
)
_LIGHT = _Scheme(
    background="#ffffff",
    text="#202124",
    gross="#1f6fd1",
    net="#7e3fbf",
    pnl="#00897b",
    headroom={
        Headroom.OK: theme.LIGHT.good,
        Headroom.WARN: theme.LIGHT.warn,
        Headroom.DANGER: theme.LIGHT.bad,
        Headroom.BREACH: "#ff0000",
        Headroom.NO_CAP: "#9aa0a6",
    },
)


def _scheme(dark: bool) -> _Scheme:
    return _DARK if dark else _LIGHT


def headroom_colour(level: Headroom, dark: bool) -> QColor:
    """The colour of a headroom level on a dark or light background."""
    return QColor(_scheme(dark).headroom[level])


def _surface(widget: QWidget, dark: bool) -> tuple[QColor, QColor]:
    """Background and text colours: the widget's palette when it agrees with ``dark``, else the desk's defaults.

    The palette wins so the charts sit in the lead's theme; the fallback keeps them readable when
    ``set_dark`` and the palette disagree (no theme applied yet, or a test's bare palette)."""
    palette = widget.palette()
    background = palette.color(QPalette.ColorRole.Window)
    text = palette.color(QPalette.ColorRole.WindowText)
    if (background.lightness() < 128) == dark and abs(background.lightness() - text.lightness()) >= 96:
        return background, text
    scheme = _scheme(dark)
    return QColor(scheme.background), QColor(scheme.text)


def _with_alpha(colour: QColor, alpha: int) -> QColor:
    faded = QColor(colour)
    faded.setAlpha(alpha)
    return faded


def _text_width(item: Any, text: str) -> int:
    return QFontMetrics(item.font()).horizontalAdvance(text)


def _rupees(paise: int) -> float:
    return paise / PAISE_PER_RUPEE


class IstDateAxis(pg.DateAxisItem):  # type: ignore[misc]
    """A time axis in India time (IST, UTC+05:30) whatever the machine's time zone.

    ``DateAxisItem(utcOffset=...)`` labels every tick in the given zone, but it places whole-hour
    ticks on the machine's local hours (on a UTC machine they fall at 09:30, 10:30 IST): hour
    ticks are put back on IST hours here."""

    def __init__(self, orientation: str = "bottom", **kwargs: Any) -> None:
        super().__init__(orientation, utcOffset=IST_UTC_OFFSET, **kwargs)

    def tickValues(self, minVal: float, maxVal: float, size: float) -> list[tuple[float, list[float]]]:
        levels: list[tuple[float, list[float]]] = super().tickValues(minVal, maxVal, size)
        placed: list[tuple[float, list[float]]] = []
        seen: set[float] = set()
        for spacing, ticks in levels:
            if spacing == _HOUR:
                spec = next(s for s in self.zoomLevel.tickSpecs if s.spacing == spacing)
                step = _HOUR * spec.skipFactor(self.minSpacing)
                first = math.ceil((minVal + IST_OFFSET_S) / step) * step - IST_OFFSET_S
                ticks = [float(t) for t in range(first, math.floor(maxVal) + 1, step) if float(t) not in seen]
            placed.append((spacing, ticks))
            seen.update(ticks)
        return placed


class InrAxis(pg.AxisItem):  # type: ignore[misc]
    """A money axis in rupees labelled the Indian way: '₹50.00 L', '₹4.20 Cr'.

    Its width fits the widest such label from the start: an axis that grows to fit its labels
    drops them until the next frame and shifts the plot as the figures change."""

    def __init__(self, orientation: str, **kwargs: Any) -> None:
        super().__init__(orientation, **kwargs)
        self.enableAutoSIPrefix(False)
        self.setWidth(_text_width(self, "-₹99.99 Cr") + 14)

    def tickStrings(self, values: Sequence[float], scale: float, spacing: float) -> list[str]:
        return [inr_short(round(value * PAISE_PER_RUPEE)) for value in values]


class SessionChart(pg.PlotWidget):  # type: ignore[misc]
    """The desk's gross and net exposure (left axis) and today's P&L (right axis) through the session.

    Dashed lines mark the gross cap, the net cap either side of zero and the daily loss limit. The
    history is a ring buffer of ``capacity`` points (a full session of one-second points by default).
    """

    def __init__(self, capacity: int = DEFAULT_CAPACITY, parent: QWidget | None = None) -> None:
        self._time_axis = IstDateAxis("bottom")
        self._money_axis = InrAxis("left")
        self._pnl_axis = InrAxis("right")
        super().__init__(
            parent=parent,
            axisItems={"bottom": self._time_axis, "left": self._money_axis, "right": self._pnl_axis},
        )
        self._buffer = RingBuffer(capacity, 4)  # columns: epoch seconds, gross, net, P&L (rupees)
        # pyqtgraph keeps the arrays it is given and re-reads them on later paints, while the ring
        # buffer reuses its memory: the curves get these arrays, rewritten only inside refresh().
        self._x = np.zeros(capacity, dtype=np.float64)
        self._y = np.zeros((3, capacity), dtype=np.float64)
        self._extent = (0.0, 0.0, 0.0, 0.0, 0.0, 0.0)  # min/max of gross, net, P&L over the buffer
        self._last_ts = -math.inf
        self._day: int | None = None
        self._gross_cap: int | None = None
        self._net_cap: int | None = None
        self._loss_limit: int | None = None
        self._dark = True
        self._data_dirty = False
        self._limits_dirty = True
        self._theme_dirty = True
        self._x_range: tuple[float, float] | None = None
        self._money_range: tuple[float, float] | None = None
        self._pnl_range: tuple[float, float] | None = None

        plot = self.getPlotItem()
        plot.setMenuEnabled(False)
        plot.hideButtons()
        plot.setMouseEnabled(x=False, y=False)
        plot.showAxis("right")
        self._main_box = plot.getViewBox()
        self._main_box.disableAutoRange()
        # P&L is lakhs against exposure in crores: it gets its own view box and the right axis.
        self._pnl_box = pg.ViewBox(enableMenu=False)
        self._pnl_box.setMouseEnabled(x=False, y=False)
        self._pnl_box.disableAutoRange()
        plot.scene().addItem(self._pnl_box)
        self._pnl_axis.linkToView(self._pnl_box)
        self._pnl_box.setXLink(self._main_box)
        self._main_box.sigResized.connect(self._fit_pnl_box)

        # One row across the top, above the caps, so it never covers the first minutes of the session.
        self._legend = plot.addLegend(offset=(6, 2), verSpacing=-6, colCount=3)
        self._gross_curve = pg.PlotDataItem(name="Gross", **_CURVE_OPTS)
        self._net_curve = pg.PlotDataItem(name="Net", **_CURVE_OPTS)
        self._pnl_curve = pg.PlotDataItem(name="P&L today (right axis)", **_CURVE_OPTS)
        plot.addItem(self._gross_curve)
        plot.addItem(self._net_curve)
        self._pnl_box.addItem(self._pnl_curve)
        self._legend.addItem(self._pnl_curve, self._pnl_curve.name())

        self._gross_cap_line = self._limit_line(self._main_box, 0.99)
        self._net_cap_line = self._limit_line(self._main_box, 0.99)
        self._net_floor_line = self._limit_line(self._main_box, 0.99)
        self._loss_line = self._limit_line(self._pnl_box, 0.01)
        self._pnl_zero_line = pg.InfiniteLine(pos=0.0, angle=0, movable=False)
        self._pnl_box.addItem(self._pnl_zero_line, ignoreBounds=True)
        self.setMinimumHeight(160)

    @staticmethod
    def _limit_line(box: Any, position: float) -> Any:
        line = pg.InfiniteLine(
            angle=0,
            movable=False,
            label="",
            labelOpts={"position": position, "anchors": [(round(position), 1), (round(position), 1)]},
        )
        line.setVisible(False)
        box.addItem(line, ignoreBounds=True)
        return line

    def _fit_pnl_box(self) -> None:
        self._pnl_box.setGeometry(self._main_box.sceneBoundingRect())
        self._pnl_box.linkedViewChanged(self._main_box, self._pnl_box.XAxis)

    def __len__(self) -> int:
        return len(self._buffer)

    def add_point(self, ts_ns: int, gross: int, net: int, pnl: int) -> None:
        """Store a sample (epoch ns; paise); drawn at the next ``refresh``.

        A sample older than the newest is dropped (clipping to the view needs time in order); the
        first of a new IST day starts the chart afresh, as today's P&L does."""
        ts = ts_ns / _NS_PER_S
        if ts < self._last_ts:
            return
        day = ist_day_number(ts_ns)
        if day != self._day:
            self._day = day
            self._buffer.clear()
        self._last_ts = ts
        self._buffer.append((ts, _rupees(gross), _rupees(net), _rupees(pnl)))
        self._data_dirty = True

    def set_limits(self, gross_cap: int | None, net_cap: int | None, daily_loss_limit: int | None) -> None:
        """Caps in paise (None: no line). The loss limit is a size; its line is drawn below zero."""
        self._gross_cap = gross_cap
        self._net_cap = None if net_cap is None else abs(net_cap)
        self._loss_limit = None if daily_loss_limit is None else abs(daily_loss_limit)
        self._limits_dirty = True

    def set_dark(self, dark: bool) -> None:
        if dark != self._dark:
            self._dark = dark
            self._theme_dirty = True

    def changeEvent(self, event: QEvent) -> None:
        if event.type() == QEvent.Type.PaletteChange:
            self._theme_dirty = True
        super().changeEvent(event)

    def refresh(self) -> bool:
        """Redraw what changed since the last call, once; False when nothing had."""
        if not (self._data_dirty or self._limits_dirty or self._theme_dirty):
            return False
        if self._theme_dirty:
            self._apply_theme()
        if self._data_dirty:
            self._push_data()
        if self._limits_dirty:
            self._place_limit_lines()
        self._fit_ranges()
        self._data_dirty = self._limits_dirty = self._theme_dirty = False
        return True

    def _push_data(self) -> None:
        n = len(self._buffer)
        rows = self._buffer.view()
        x = self._x[:n]
        np.copyto(x, rows[:, 0])
        for column, curve in enumerate((self._gross_curve, self._net_curve, self._pnl_curve)):
            y = self._y[column, :n]
            np.copyto(y, rows[:, column + 1])
            curve.setData(x, y)
        if n:
            ys = self._y[:, :n]
            low, high = ys.min(axis=1), ys.max(axis=1)
            self._extent = (low[0], high[0], low[1], high[1], low[2], high[2])
        else:
            self._extent = (0.0, 0.0, 0.0, 0.0, 0.0, 0.0)

    def _place_limit_lines(self) -> None:
        def place(line: Any, value: int | None, text: str) -> None:
            line.setVisible(value is not None)
            if value is not None:
                line.setValue(_rupees(value))
                line.label.setFormat(text)

        gross, net, loss = self._gross_cap, self._net_cap, self._loss_limit
        place(self._gross_cap_line, gross, "" if gross is None else f"gross cap {inr_short(gross)}")
        place(self._net_cap_line, net, "" if net is None else f"net cap {inr_short(net)}")
        place(self._net_floor_line, None if net is None else -net, "" if net is None else f"net cap -{inr_short(net)}")
        place(self._loss_line, None if loss is None else -loss, "" if loss is None else f"loss limit -{inr_short(loss)}")

    def _fit_ranges(self) -> None:
        # Moving a range re-lays out and repaints the axes, so ranges move in steps, not with
        # every point: time by quarter hours past the session, money only when a figure leaves it.
        n = len(self._buffer)
        if n:
            first, last = float(self._x[0]), float(self._x[n - 1])
        else:
            first = last = time.time()  # nothing yet: today's session
        day = math.floor((last + IST_OFFSET_S) / _SECONDS_PER_DAY) * _SECONDS_PER_DAY - IST_OFFSET_S
        x_range = (
            min(math.floor(first / _X_STEP_S) * _X_STEP_S, day + _SESSION_OPEN_S),
            max(math.ceil(last / _X_STEP_S) * _X_STEP_S, day + _SESSION_CLOSE_S),
        )

        gross_lo, gross_hi, net_lo, net_hi, pnl_lo, pnl_hi = self._extent
        gross_cap = 0.0 if self._gross_cap is None else _rupees(self._gross_cap)
        net_cap = 0.0 if self._net_cap is None else _rupees(self._net_cap)
        loss = 0.0 if self._loss_limit is None else _rupees(self._loss_limit)
        money_range = _settled(
            self._money_range,
            min(0.0, gross_lo, net_lo, -net_cap),
            max(0.0, gross_hi, net_hi, gross_cap, net_cap),
            # Room above the top cap line for its label (about 16 px on a 250 px chart).
            0.1,
        )
        # P&L is padded more, so its loss limit and peaks sit clear of the net floor and gross cap lines.
        pnl_range = _settled(self._pnl_range, min(0.0, pnl_lo, -loss), max(0.0, pnl_hi), 0.16)

        if x_range != self._x_range or money_range != self._money_range:
            self._x_range, self._money_range = x_range, money_range
            self._main_box.setRange(xRange=x_range, yRange=money_range, padding=0)
        if pnl_range != self._pnl_range:
            self._pnl_range = pnl_range
            self._pnl_box.setRange(yRange=pnl_range, padding=0)

    def _apply_theme(self) -> None:
        scheme = _scheme(self._dark)
        background, text = _surface(self, self._dark)
        self.setBackground(background)
        muted = _with_alpha(text, 150)
        for axis in (self._time_axis, self._money_axis, self._pnl_axis):
            axis.setPen(muted)
            axis.setTextPen(text)
        self._pnl_axis.setTextPen(scheme.pnl)
        self._legend.setBrush(_with_alpha(background, 210))
        self._legend.setPen(_with_alpha(text, 60))
        self._legend.setLabelTextColor(text)
        # One-pixel pens: a wider line costs several times as much to draw in software.
        self._gross_curve.setPen(pg.mkPen(scheme.gross, width=1))
        self._net_curve.setPen(pg.mkPen(scheme.net, width=1))
        self._pnl_curve.setPen(pg.mkPen(scheme.pnl, width=1))
        # The legend caches each entry's label text colour: re-set them.
        for _sample, label in self._legend.items:
            label.setText(label.text, color=text)
        red = scheme.headroom[Headroom.DANGER]
        for line, colour in (
            (self._gross_cap_line, scheme.gross),
            (self._net_cap_line, scheme.net),
            (self._net_floor_line, scheme.net),
            (self._loss_line, red),
        ):
            line.setPen(pg.mkPen(colour, width=1.5, style=Qt.PenStyle.DashLine))
            line.label.setColor(colour)
        self._pnl_zero_line.setPen(pg.mkPen(_with_alpha(QColor(scheme.pnl), 110), width=1, style=Qt.PenStyle.DotLine))


def _settled(current: tuple[float, float] | None, low: float, high: float, fraction: float) -> tuple[float, float]:
    """A y range showing ``low..high`` padded by ``fraction`` of the span: ``current`` while it still
    shows them and is not much too wide, else a new one."""
    if high - low <= 0.0:
        high = low + 1_000.0  # an empty chart still shows a scale, in rupees
    pad = (high - low) * fraction
    if current is not None:
        current_low, current_high = current
        fits = current_low <= low and high <= current_high
        if fits and current_high - current_low <= 1.25 * (high - low + 2 * pad):
            return current
    return (low - pad, high + pad)


@dataclass(frozen=True, slots=True)
class UnderlyingRow:
    """One underlying as the bars show it: paise, the headroom level and the label on the right."""

    name: str
    gross: int
    cap: int | None
    level: Headroom
    label: str

    @property
    def percent(self) -> float | None:
        """Gross as a percentage of the cap (None without a cap), for the bar's length."""
        return None if self.cap is None or self.cap <= 0 else 100.0 * abs(self.gross) / self.cap


class UnderlyingBars(pg.PlotWidget):  # type: ignore[misc]
    """Each underlying's gross exposure as a percentage of its cap: horizontal bars coloured by headroom.

    The ``top_n`` most used are shown, fullest first, or fewer when the widget is too short to
    label that many; '+K more' says how many are left out. An underlying without a cap is listed
    after the capped ones, grey, at zero, labelled 'no cap'. One ``BarGraphItem`` draws every bar."""

    def __init__(self, top_n: int = DEFAULT_TOP_N, parent: QWidget | None = None) -> None:
        # Set before the base class, whose constructor already calls resizeEvent.
        # A row needs about a line of text for its name to stay readable.
        self._row_pitch = max(10, round(QFontMetrics(QApplication.font()).height() * 0.85))
        self._fit = 1
        self._rows_dirty = True
        self._name_axis = pg.AxisItem("left")
        self._value_axis = pg.AxisItem("right")
        self._pct_axis = pg.AxisItem("bottom")
        super().__init__(
            parent=parent,
            axisItems={"left": self._name_axis, "right": self._value_axis, "bottom": self._pct_axis},
        )
        if top_n < 1:
            raise ValueError(f"top_n must be at least 1, got {top_n}")
        self._top_n = top_n
        self._rows: Sequence[tuple[str, int, int | None]] = ()
        self._shown: tuple[UnderlyingRow, ...] = ()
        self._hidden = 0
        self._warn_fractions: tuple[float, ...] = DEFAULT_WARN_FRACTIONS
        self._dark = True
        self._theme_dirty = True

        plot = self.getPlotItem()
        plot.setMenuEnabled(False)
        plot.hideButtons()
        plot.setMouseEnabled(x=False, y=False)
        plot.showAxis("right")
        for axis in (self._name_axis, self._value_axis):
            axis.setStyle(tickLength=0)
        self._value_axis.setWidth(_text_width(self._value_axis, "999 %  ₹99.99 Cr") + 10)
        self._names: list[tuple[float, str]] = []
        self._labels: list[tuple[float, str]] = []
        self._box_range: tuple[tuple[float, float], tuple[float, float]] | None = None
        self._box = plot.getViewBox()
        self._box.disableAutoRange()
        self._box.invertY(True)  # the fullest underlying on top
        self._bars = pg.BarGraphItem(x0=[], y=[], width=[], height=0.72, pen=None, brushes=[])
        plot.addItem(self._bars)
        self._threshold_lines: list[Any] = []
        self._empty_text = pg.TextItem("no exposure", anchor=(0.5, 0.5))
        plot.addItem(self._empty_text, ignoreBounds=True)
        self.setMinimumHeight(120)

    @property
    def shown(self) -> tuple[UnderlyingRow, ...]:
        """The rows drawn at the last ``refresh``, top to bottom."""
        return self._shown

    @property
    def hidden(self) -> int:
        """How many underlyings the last ``refresh`` left out ('+K more')."""
        return self._hidden

    def set_rows(self, rows: Sequence[tuple[str, int, int | None]]) -> None:
        """(name, gross paise, cap paise or None) for every underlying; drawn at the next ``refresh``."""
        self._rows = rows
        self._rows_dirty = True

    def set_warn_fractions(self, warn_fractions: Sequence[float]) -> None:
        fractions = tuple(sorted(warn_fractions))
        if fractions != self._warn_fractions:
            self._warn_fractions = fractions
            self._rows_dirty = self._theme_dirty = True

    def set_dark(self, dark: bool) -> None:
        if dark != self._dark:
            self._dark = dark
            self._theme_dirty = self._rows_dirty = True

    def changeEvent(self, event: QEvent) -> None:
        if event.type() == QEvent.Type.PaletteChange:
            self._theme_dirty = self._rows_dirty = True
        super().changeEvent(event)

    def resizeEvent(self, event: QResizeEvent | None) -> None:
        super().resizeEvent(event)
        fit = self._rows_that_fit()
        if fit != self._fit:
            self._fit = fit
            self._rows_dirty = True

    def _rows_that_fit(self) -> int:
        # The height less the percentage axis and margins; one row goes to '+K more'.
        return max(1, (int(self.height()) - 34) // self._row_pitch - 1)

    def refresh(self) -> bool:
        """Redraw what changed since the last call, once; False when nothing had."""
        if not (self._rows_dirty or self._theme_dirty):
            return False
        if self._theme_dirty:
            self._apply_theme()
        if self._rows_dirty:
            self._draw_rows()
        self._rows_dirty = self._theme_dirty = False
        return True

    def _ranked(self) -> list[UnderlyingRow]:
        def key(row: tuple[str, int, int | None]) -> tuple[int, float, str]:
            name, gross, cap = row
            if cap is None or cap <= 0:
                return (1, -abs(gross), name)
            return (0, -abs(gross) / cap, name)

        ranked: list[UnderlyingRow] = []
        for name, gross, cap in sorted(self._rows, key=key)[: min(self._top_n, self._fit)]:
            level = headroom(gross, cap, self._warn_fractions)
            if cap is None or cap <= 0:
                label = f"no cap  {inr_short(abs(gross))}"
            else:
                label = f"{percent_text(gross, cap)}  {inr_short(abs(gross))}"
            ranked.append(UnderlyingRow(name, gross, cap, level, label))
        return ranked

    def _draw_rows(self) -> None:
        self._fit = self._rows_that_fit()
        shown = self._ranked()
        self._shown = tuple(shown)
        self._hidden = len(self._rows) - len(shown)
        scheme = _scheme(self._dark)
        n = len(shown)
        lengths = [_NO_CAP_STUB_PCT if row.percent is None else min(row.percent, _BAR_CLAMP_PCT) for row in shown]
        self._bars.setOpts(
            x0=np.zeros(n),
            y=np.arange(n, dtype=np.float64),
            width=np.asarray(lengths, dtype=np.float64),
            brushes=[scheme.headroom[row.level] for row in shown],
        )
        names = [(float(i), row.name) for i, row in enumerate(shown)]
        if self._hidden:
            names.append((float(n), f"+{self._hidden} more"))
        labels = [(float(i), row.label) for i, row in enumerate(shown)]
        # Axes re-lay out on every setTicks or setRange: only when something moved.
        if names != self._names:
            self._names = names
            self._name_axis.setTicks([names])
            width = max((_text_width(self._name_axis, text) for _, text in names), default=0)
            width = max(width, _text_width(self._name_axis, "MIDCPNIFTY")) + 12
            if width != int(self._name_axis.width()):
                self._name_axis.setWidth(width)
        if labels != self._labels:
            self._labels = labels
            self._value_axis.setTicks([labels])
        x_high = max(110.0, math.ceil((max(lengths, default=0.0) + 5.0) / 10.0) * 10.0)
        # A little room left of zero, so the axis can label 0 and a no-cap row's stub shows.
        box_range = ((-2.0, x_high), (-0.6, max(len(names), 1) - 0.4))
        if box_range != self._box_range:
            self._box_range = box_range
            self._box.setRange(xRange=box_range[0], yRange=box_range[1], padding=0)
        self._empty_text.setVisible(n == 0)
        self._empty_text.setPos(x_high / 2, 0.0)

    def _apply_theme(self) -> None:
        scheme = _scheme(self._dark)
        background, text = _surface(self, self._dark)
        self.setBackground(background)
        muted = _with_alpha(text, 150)
        for axis in (self._name_axis, self._value_axis, self._pct_axis):
            axis.setPen(muted)
            axis.setTextPen(text)
        self._empty_text.setColor(muted)

        plot = self.getPlotItem()
        for line in self._threshold_lines:
            plot.removeItem(line)
        marks = [round(100 * fraction) for fraction in self._warn_fractions if 0 < fraction < 1]
        levels = [headroom(mark, 100, self._warn_fractions) for mark in marks]
        self._threshold_lines = []
        for mark, level in [*zip(marks, levels, strict=True), (100, Headroom.BREACH)]:
            colour = _with_alpha(QColor(scheme.headroom[level]), 200)
            style = Qt.PenStyle.SolidLine if mark == 100 else Qt.PenStyle.DashLine
            line = pg.InfiniteLine(pos=float(mark), angle=90, movable=False, pen=pg.mkPen(colour, width=1, style=style))
            plot.addItem(line, ignoreBounds=True)
            self._threshold_lines.append(line)
        self._pct_axis.setTicks([[(0.0, "0"), (50.0, "50"), *((float(m), str(m)) for m in marks), (100.0, "100 %")]])


class ExposurePanel(QWidget):
    """The desk's exposure at a glance: a header line, the session chart and the per-underlying bars.

    Fed by the bridge (``set_limits``, ``add_point``, ``set_underlyings``), which only store and mark
    dirty; the frame timer calls ``refresh()``, which repaints what changed, once."""

    def __init__(
        self,
        capacity: int = DEFAULT_CAPACITY,
        top_n: int = DEFAULT_TOP_N,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self._gross_cap: int | None = None
        self._net_cap: int | None = None
        self._loss_limit: int | None = None
        self._warn_fractions: tuple[float, ...] = DEFAULT_WARN_FRACTIONS
        self._last: tuple[int, int, int] | None = None  # gross, net, P&L of the newest point
        self._dark = True
        self._header_dirty = True

        self._gross_text = self._header_label("grossText")
        self._gross_pct = self._header_label("grossPct")
        self._net_text = self._header_label("netText")
        self._net_pct = self._header_label("netPct")
        self._pnl_title = self._header_label("pnlTitle")
        self._pnl_value = self._header_label("pnlValue")
        # Room for a changing amount, so a new figure never waits on a re-layout (or clips).
        self._pnl_value.setMinimumWidth(self._pnl_value.fontMetrics().horizontalAdvance("+₹99.99 Cr"))
        self._pnl_limit = self._header_label("pnlLimit")
        header = QHBoxLayout()
        header.setContentsMargins(6, 2, 6, 2)
        header.setSpacing(0)
        groups = (
            (self._gross_text, self._gross_pct),
            (self._net_text, self._net_pct),
            (self._pnl_title, self._pnl_value, self._pnl_limit),
        )
        for index, group in enumerate(groups):
            if index:
                header.addSpacing(24)
            for position, label in enumerate(group):
                if position:
                    header.addSpacing(6)
                header.addWidget(label)
        header.addStretch(1)

        self._chart = SessionChart(capacity)
        self._bars = UnderlyingBars(top_n)
        self._splitter = QSplitter(Qt.Orientation.Vertical)
        self._splitter.setChildrenCollapsible(False)
        self._splitter.addWidget(self._chart)
        self._splitter.addWidget(self._bars)
        self._splitter.setStretchFactor(0, 3)
        self._splitter.setStretchFactor(1, 2)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(2)
        layout.addLayout(header)
        layout.addWidget(self._splitter, 1)

    def _header_label(self, name: str) -> QLabel:
        label = QLabel()
        label.setObjectName(name)
        label.setTextFormat(Qt.TextFormat.PlainText)
        label.setSizePolicy(QSizePolicy.Policy.Fixed, QSizePolicy.Policy.Preferred)
        return label

    @property
    def session_chart(self) -> SessionChart:
        return self._chart

    @property
    def underlying_bars(self) -> UnderlyingBars:
        return self._bars

    @property
    def splitter(self) -> QSplitter:
        return self._splitter

    def set_limits(
        self,
        gross_cap: int | None,
        net_cap: int | None,
        daily_loss_limit: int | None,
        warn_fractions: Sequence[float] = DEFAULT_WARN_FRACTIONS,
    ) -> None:
        """The desk's caps in paise (None: none). The loss limit is a size, shown and drawn below zero."""
        self._gross_cap = gross_cap
        self._net_cap = None if net_cap is None else abs(net_cap)
        self._loss_limit = None if daily_loss_limit is None else abs(daily_loss_limit)
        self._warn_fractions = tuple(sorted(warn_fractions))
        self._chart.set_limits(gross_cap, net_cap, daily_loss_limit)
        self._bars.set_warn_fractions(self._warn_fractions)
        self._header_dirty = True

    def add_point(self, ts_ns: int, gross: int, net: int, pnl: int) -> None:
        """A sample of the desk's totals (epoch ns; paise). Stored only: ``refresh`` draws it."""
        self._chart.add_point(ts_ns, gross, net, pnl)
        self._last = (gross, net, pnl)
        self._header_dirty = True

    def set_underlyings(self, rows: Sequence[tuple[str, int, int | None]]) -> None:
        """(name, gross paise, cap paise or None) for every underlying. Stored only: ``refresh`` draws it."""
        self._bars.set_rows(rows)

    def set_dark(self, dark: bool) -> None:
        """Pick the colours for a dark or a light background."""
        self._dark = dark
        self._chart.set_dark(dark)
        self._bars.set_dark(dark)
        self._header_dirty = True

    def changeEvent(self, event: QEvent) -> None:
        if event.type() == QEvent.Type.PaletteChange:
            self._header_dirty = True
        super().changeEvent(event)

    def refresh(self) -> bool:
        """Repaint only what changed since the last call, at most once each; whether anything was."""
        painted = False
        if self._header_dirty:
            self._update_header()
            self._header_dirty = False
            painted = True
        painted = self._chart.refresh() or painted
        painted = self._bars.refresh() or painted
        return painted

    def header_text(self) -> str:
        """The header line as plain text: 'Gross ₹4.20 Cr / ₹5.00 Cr  84 %   Net ...   P&L today ...'."""
        parts = [
            " ".join(text for text in (self._gross_text.text(), self._gross_pct.text()) if text),
            " ".join(text for text in (self._net_text.text(), self._net_pct.text()) if text),
            " ".join(text for text in (self._pnl_title.text(), self._pnl_value.text(), self._pnl_limit.text()) if text),
        ]
        return "   ".join(parts)

    def _update_header(self) -> None:
        gross, net, pnl = self._last if self._last is not None else (None, None, None)
        fractions = self._warn_fractions

        def cap_text(cap: int | None) -> str:
            return "no cap" if cap is None else inr_short(cap)

        def amount(value: int | None) -> str:
            return "—" if value is None else inr_short(value)

        self._set(self._gross_text, f"Gross {amount(gross)} / {cap_text(self._gross_cap)}")
        self._set_pct(self._gross_pct, gross, self._gross_cap, fractions)
        self._set(self._net_text, f"Net {amount(net)} / {cap_text(self._net_cap)}")
        self._set_pct(self._net_pct, net, self._net_cap, fractions)
        self._set(self._pnl_title, "P&L today")
        loss = self._loss_limit
        if pnl is None:
            self._set(self._pnl_value, "—", None)
        else:
            # Only a loss uses up the limit, and only a warning is coloured: a green loss would read as a profit.
            level = headroom(pnl, loss, fractions) if pnl < 0 and loss is not None else Headroom.OK
            self._set(self._pnl_value, signed_inr_short(pnl), None if level is Headroom.OK else level)
        self._set(self._pnl_limit, "(no loss limit)" if loss is None else f"(loss limit {inr_short(-loss)})")

    def _set_pct(self, label: QLabel, used: int | None, cap: int | None, fractions: Sequence[float]) -> None:
        if used is None or cap is None or cap <= 0:
            self._set(label, "", None)
            return
        self._set(label, percent_text(used, cap), headroom(used, cap, fractions))

    def _set(self, label: QLabel, text: str, level: Headroom | None = None) -> None:
        if label.text() != text:
            label.setText(text)
        value = "" if level is None else level.value
        # The level is a property too, so a theme's style sheet can match QLabel[headroom="warn"].
        style = "" if level is None else f"color: {headroom_colour(level, self._dark).name()}; font-weight: 600;"
        if label.property("headroom") != value or label.styleSheet() != style:
            label.setProperty("headroom", value)
            label.setStyleSheet(style)
