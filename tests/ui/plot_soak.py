"""A realistic desk session for the exposure charts, and the live-plot soak run on it.

``python -m tests.ui.plot_soak --seconds 60`` shows an ExposurePanel offscreen and drives it from a
QTimer at ~20 Hz, as the desk's frame timer does: each tick adds a one-second point, new per-
underlying figures every second of wall time, and ``refresh()``. It prints ``frames=N paints=M``
and exits 0; PySide6 6.12 on Python 3.11 aborted here within seconds (none_dealloc, DESIGN.md), so
tests/ui/test_plot_soak.py runs it in a subprocess and treats any other exit as a failure.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
from collections.abc import Sequence

import numpy as np

from app.domain.india_time import IST

CRORE = 10_000_000 * 100  # paise
LAKH = 100_000 * 100
GROSS_CAP = 5 * CRORE
NET_CAP = 2 * CRORE
DAILY_LOSS_LIMIT = 10 * LAKH
SESSION_OPEN = dt.datetime(2026, 11, 16, 9, 15, tzinfo=IST)
SESSION_OPEN_NS = int(SESSION_OPEN.timestamp()) * 1_000_000_000

_NAMES = (
    "NIFTY", "BANKNIFTY", "FINNIFTY", "MIDCPNIFTY", "SENSEX", "RELIANCE", "HDFCBANK", "ICICIBANK",
    "INFY", "TCS", "SBIN", "AXISBANK", "KOTAKBANK", "LT", "ITC", "HINDUNILVR", "BHARTIARTL",
    "BAJFINANCE", "MARUTI", "ASIANPAINT", "SUNPHARMA", "TITAN", "ULTRACEMCO", "WIPRO", "HCLTECH",
    "TECHM", "NTPC", "POWERGRID", "ONGC", "COALINDIA", "TATASTEEL", "JSWSTEEL", "HINDALCO", "ADANIENT",
    "ADANIPORTS", "GRASIM", "CIPLA", "DRREDDY", "DIVISLAB", "EICHERMOT", "HEROMOTOCO", "BAJAJ-AUTO",
    "M&M", "TATAMOTORS", "BPCL", "IOC", "BRITANNIA", "NESTLEIND", "APOLLOHOSP", "INDUSINDBK",
)


def session(points: int, seed: int = 7) -> list[tuple[int, int, int, int]]:
    """``points`` one-second samples from 09:15 IST: (ts_ns, gross, net, P&L) in paise.

    Gross builds up through the morning and settles near 84 % of its cap; net wanders around
    ₹1.1 Cr; P&L walks. The last sample is exactly ₹4.20 Cr / ₹1.10 Cr / +₹3.41 L."""
    rng = np.random.default_rng(seed)
    t = np.arange(points, dtype=np.float64)
    build_up = 1.0 - np.exp(-t / 2_400.0)
    gross = 0.9 * CRORE + (4.2 - 0.9) * CRORE * build_up + np.cumsum(rng.normal(0, 0.004 * CRORE, points))
    gross -= np.linspace(0.0, gross[-1] - 4.2 * CRORE, points)  # land on ₹4.20 Cr
    net = 0.2 * CRORE + 0.9 * CRORE * build_up + np.cumsum(rng.normal(0, 0.003 * CRORE, points))
    net -= np.linspace(0.0, net[-1] - 1.1 * CRORE, points)
    pnl = np.cumsum(rng.normal(0, 0.02 * LAKH, points))
    pnl -= np.linspace(0.0, pnl[-1] - 3.41 * LAKH, points)
    ts = SESSION_OPEN_NS + np.arange(points, dtype=np.int64) * 1_000_000_000
    return [
        (int(a), int(b), int(c), int(d))
        for a, b, c, d in zip(ts, np.round(gross), np.round(net), np.round(pnl), strict=True)
    ]


def underlyings(count: int = 50, seed: int = 11) -> list[tuple[str, int, int | None]]:
    """``count`` underlyings (name, gross paise, cap paise or None): most with room, NIFTY amber,
    BANKNIFTY red, FINNIFTY over its cap and MIDCPNIFTY without one."""
    rng = np.random.default_rng(seed)
    fixed: dict[str, tuple[int, int | None]] = {
        "NIFTY": (int(0.86 * 2 * CRORE), 2 * CRORE),
        "BANKNIFTY": (int(0.93 * 1.5 * CRORE), int(1.5 * CRORE)),
        "FINNIFTY": (int(1.04 * 40 * LAKH), 40 * LAKH),
        "MIDCPNIFTY": (12 * LAKH, None),
    }
    rows: list[tuple[str, int, int | None]] = []
    for name in _NAMES[:count]:
        if name in fixed:
            gross, cap = fixed[name]
        else:
            cap = int(rng.choice([25, 50, 75, 100])) * LAKH
            gross = int(cap * rng.uniform(0.0, 0.78))
        rows.append((name, gross, cap))
    return rows


def _drift(rows: Sequence[tuple[str, int, int | None]], rng: np.random.Generator) -> list[tuple[str, int, int | None]]:
    return [(name, max(0, int(gross * rng.uniform(0.97, 1.03))), cap) for name, gross, cap in rows]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--hz", type=float, default=20.0)
    args = parser.parse_args(argv)
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

    from PySide6.QtCore import QEvent, QObject, QTimer
    from PySide6.QtWidgets import QApplication

    from app.ui.charts import DEFAULT_CAPACITY, ExposurePanel

    app = QApplication.instance() or QApplication(sys.argv[:1])
    panel = ExposurePanel()
    panel.resize(1100, 720)
    panel.set_limits(GROSS_CAP, NET_CAP, DAILY_LOSS_LIMIT)
    # Late in the day: the buffer is full from the first frame, the heaviest case.
    history = session(DEFAULT_CAPACITY + 600)
    for point in history[:DEFAULT_CAPACITY]:
        panel.add_point(*point)
    live = iter(history[DEFAULT_CAPACITY:] + session(100_000, seed=8))
    rows = underlyings()
    panel.set_underlyings(rows)
    panel.show()

    class PaintCounter(QObject):
        paints = 0

        def eventFilter(self, watched: QObject, event: QEvent) -> bool:
            if event.type() == QEvent.Type.Paint:
                PaintCounter.paints += 1
            return False

    counter = PaintCounter()
    panel.session_chart.viewport().installEventFilter(counter)
    rng = np.random.default_rng(5)
    ticks = 0
    frames = 0
    base_ts = history[-1][0]

    def tick() -> None:
        nonlocal ticks, frames, rows
        ticks += 1
        _ts, gross, net, pnl = next(live)
        # Times keep rising after the history, as a live feed does.
        panel.add_point(base_ts + ticks * 1_000_000_000, gross, net, pnl)
        if ticks % int(args.hz) == 0:
            rows = _drift(rows, rng)
            panel.set_underlyings(rows)
        if ticks % 600 == 0:
            panel.set_dark(ticks % 1200 != 0)
        if panel.refresh():
            frames += 1

    timer = QTimer()
    timer.setInterval(round(1000 / args.hz))
    timer.timeout.connect(tick)
    timer.start()
    QTimer.singleShot(round(args.seconds * 1000), app.quit)
    app.exec()
    timer.stop()
    print(f"frames={frames} paints={PaintCounter.paints} ticks={ticks}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
