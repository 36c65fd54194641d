"""The bar above everything: the kill switch, the trading state, the sweep's progress, re-arm, flatten, the operator and the IST clock.

It lives in the main window's menu-widget slot, so no layout, dock or toolbar action can close,
hide or cover it. It only shows; the window connects its buttons to the engine.
"""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QPainter, QPaintEvent
from PySide6.QtWidgets import (
    QFrame,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSizePolicy,
    QWidget,
)

from app.ui.formatting import ist_hms


def _set(label: QLabel, text: str) -> None:
    if label.text() != text:
        label.setText(text)


class ElidedLabel(QLabel):
    """One line that ends in "…" when it is wider than its room, instead of being cut mid-word.

    ``text()`` keeps the whole text (the bar also puts it in the tooltip); only the painting elides.
    """

    def elided(self) -> str:
        """The text as painted now."""
        return self.fontMetrics().elidedText(self.text(), Qt.TextElideMode.ElideRight, self.contentsRect().width())

    def paintEvent(self, event: QPaintEvent) -> None:
        painter = QPainter(self)
        painter.drawText(self.contentsRect(), int(self.alignment()), self.elided())


class KillSwitchBar(QFrame):
    """Kill button, state banner (state, reason, who, since), sweep progress, Re-arm…, Flatten…, the operator and the IST clock."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("killBar")
        layout = QHBoxLayout(self)
        layout.setContentsMargins(8, 6, 10, 6)
        layout.setSpacing(10)
        self.kill_button = QPushButton("■  KILL   F12")
        self.kill_button.setObjectName("killButton")
        self.kill_button.setToolTip(
            "Halt the desk and cancel every working order now (F12 or Ctrl+Shift+K from anywhere in the window). No confirmation."
        )
        self.kill_button.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.kill_button.setAutoDefault(False)
        self.state_banner = QLabel("STARTING")
        self.state_banner.setObjectName("stateBanner")
        self.state_banner.setProperty("state", "STARTING")
        # Ignored width: a long halt reason must not push the buttons off; it elides, whole in the tooltip.
        self.state_detail = ElidedLabel("")
        self.state_detail.setAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter)
        self.state_detail.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.rearm_button = QPushButton("Re-arm…")
        self.rearm_button.setToolTip("Leave HALTED or REDUCING: a reason is required and recorded")
        self.flatten_button = QPushButton("Flatten…")
        self.flatten_button.setToolTip("Close every open position (asks first, naming every order it will send)")
        self.operator_label = QLabel("not signed in")
        self.operator_label.setObjectName("operatorLabel")
        self.operator_label.setTextFormat(Qt.TextFormat.PlainText)
        self.operator_label.setToolTip("Who is signed in at this desk window (Operator menu: lock, switch, sign out)")
        self.sweep_label = QLabel("sweep: —")
        self.sweep_label.setToolTip("The kill switch's cancel sweep: cancelled of total, and the published time to clear")
        self.clock_label = QLabel("--:--:-- IST")
        mono = self.clock_label.font()
        mono.setFamilies(["DejaVu Sans Mono", "Consolas", "Menlo", "monospace"])
        mono.setPointSizeF(mono.pointSizeF() * 1.1)
        self.clock_label.setFont(mono)
        self.sweep_label.setFont(mono)
        # Fixed widths: a clock ticking or a count changing must not re-lay out the window.
        metrics = self.clock_label.fontMetrics()
        self.clock_label.setFixedWidth(metrics.horizontalAdvance("00:00:00 IST") + 8)
        self.sweep_label.setMinimumWidth(metrics.horizontalAdvance("sweep: 000/000 cleared · ≤ 00.0 s") + 8)
        for widget in (self.kill_button, self.state_banner):
            layout.addWidget(widget)
        layout.addWidget(self.state_detail, 1)
        for widget in (self.sweep_label, self.rearm_button, self.flatten_button, self.operator_label, self.clock_label):
            layout.addWidget(widget)

    def show_state(self, state: str, reason: str, actor: str, since_ns: int | None) -> None:
        if self.state_banner.property("state") != state:
            self.state_banner.setProperty("state", state)
            self.state_banner.setText(state)
            # A dynamic property only restyles after the style is re-polished.
            self.state_banner.style().unpolish(self.state_banner)
            self.state_banner.style().polish(self.state_banner)
        parts = []
        if since_ns is not None:
            parts.append(f"since {ist_hms(since_ns)}")
        if actor:
            parts.append(f"by {actor}")
        detail = " ".join(parts)
        if reason:
            detail = f"{detail} — {reason}" if detail else reason
        _set(self.state_detail, detail)
        self.state_detail.setToolTip(detail)
        self.rearm_button.setEnabled(state in ("HALTED", "REDUCING"))

    def show_operator(self, text: str) -> None:
        """Who is signed in (``asha · trader``), or that nobody is."""
        _set(self.operator_label, text)

    def show_sweep(self, text: str) -> None:
        _set(self.sweep_label, text)

    def show_clock(self, now_ns: int) -> None:
        _set(self.clock_label, f"{ist_hms(now_ns)} IST")


def sweep_text(total: int, working_now: int, remaining_s: float | None, done: bool, outcome: str = "") -> str:
    """'sweep: 12/40 cancelled · ≤ 3.2 s' while it runs; 'sweep done: …' after."""
    if done:
        return f"sweep done: {outcome}" if outcome else "sweep done"
    cleared = max(0, total - working_now)
    clock = f" · ≤ {remaining_s:.1f} s" if remaining_s is not None and remaining_s > 0 else " · overdue" if remaining_s is not None else ""
    return f"sweep: {cleared}/{total} cleared{clock}"

