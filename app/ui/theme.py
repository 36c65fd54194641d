"""The desk's two palettes (dark by default, light) on Qt's Fusion style, and the few colours views pick themselves."""

from __future__ import annotations

from dataclasses import dataclass

from PySide6.QtGui import QColor, QPalette
from PySide6.QtWidgets import QApplication


@dataclass(frozen=True, slots=True)
class Colours:
    """Semantic colours readable on the palette's background."""

    window: str
    base: str
    alt_base: str
    text: str
    dim: str
    accent: str
    good: str
    warn: str
    bad: str
    kill: str
    kill_hover: str
    kill_down: str


DARK = Colours(
    window="#1e1f22", base="#18191b", alt_base="#212226", text="#d8d8d8", dim="#8a8d93", accent="#4aa3ff",
    good="#4caf6a", warn="#e0a030", bad="#ef5350", kill="#c62828", kill_hover="#e53935", kill_down="#8e0000",
)
LIGHT = Colours(
    window="#f3f3f4", base="#ffffff", alt_base="#f5f6f8", text="#1d1f23", dim="#6b6f76", accent="#1565c0",
    good="#2e7d32", warn="#b26a00", bad="#c62828", kill="#c62828", kill_hover="#e53935", kill_down="#8e0000",
)


def colours(dark: bool) -> Colours:
    return DARK if dark else LIGHT


def is_dark(palette: QPalette, role: QPalette.ColorRole = QPalette.ColorRole.Window) -> bool:
    """Whether the palette paints light text on a dark ``role`` (the window's background by default)."""
    return palette.color(role).lightness() < 128


def palette(dark: bool) -> QPalette:
    c = colours(dark)
    pal = QPalette()
    roles = {
        QPalette.ColorRole.Window: c.window,
        QPalette.ColorRole.WindowText: c.text,
        QPalette.ColorRole.Base: c.base,
        QPalette.ColorRole.AlternateBase: c.alt_base,
        QPalette.ColorRole.Text: c.text,
        QPalette.ColorRole.Button: c.alt_base if dark else "#e8e9eb",
        QPalette.ColorRole.ButtonText: c.text,
        QPalette.ColorRole.ToolTipBase: c.alt_base,
        QPalette.ColorRole.ToolTipText: c.text,
        QPalette.ColorRole.Highlight: "#2d5b8a" if dark else "#cfe3fa",
        QPalette.ColorRole.HighlightedText: "#ffffff" if dark else "#000000",
        QPalette.ColorRole.Link: c.accent,
        QPalette.ColorRole.PlaceholderText: c.dim,
        QPalette.ColorRole.Mid: "#3a3c41" if dark else "#c9cbcf",
    }
    for role, value in roles.items():
        pal.setColor(role, QColor(value))
    for role in (QPalette.ColorRole.Text, QPalette.ColorRole.WindowText, QPalette.ColorRole.ButtonText):
        pal.setColor(QPalette.ColorGroup.Disabled, role, QColor(c.dim))
    return pal


def stylesheet(dark: bool) -> str:
    c = colours(dark)
    return f"""
QToolTip {{ color: {c.text}; background: {c.alt_base}; border: 1px solid {c.dim}; }}
QTableView {{ gridline-color: transparent; }}
QHeaderView::section {{ padding: 2px 6px; border: none; border-bottom: 1px solid {c.dim}; background: {c.window}; }}
QDockWidget::title {{ padding: 3px 6px; background: {c.alt_base}; }}
QPushButton#killButton {{
    background: {c.kill}; color: white; font-weight: 800; font-size: 17px; letter-spacing: 1px;
    border: 2px solid {c.kill_down}; border-radius: 6px; padding: 6px 18px; min-height: 34px; min-width: 170px;
}}
QPushButton#killButton:hover {{ background: {c.kill_hover}; }}
QPushButton#killButton:pressed {{ background: {c.kill_down}; }}
QFrame#killBar {{ background: {c.alt_base}; border-bottom: 1px solid {c.dim}; }}
QLabel#stateBanner[state="ACTIVE"] {{ color: white; background: {c.good}; border-radius: 4px; padding: 4px 10px; font-weight: 700; }}
QLabel#stateBanner[state="REDUCING"] {{ color: black; background: {c.warn}; border-radius: 4px; padding: 4px 10px; font-weight: 700; }}
QLabel#stateBanner[state="HALTED"] {{ color: white; background: {c.bad}; border-radius: 4px; padding: 4px 10px; font-weight: 700; }}
QLabel#stateBanner[state="STARTING"] {{ color: {c.text}; background: {c.window}; border: 1px solid {c.dim};
    border-radius: 4px; padding: 4px 10px; font-weight: 700; }}
QLabel#faultBanner {{ color: white; background: {c.bad}; padding: 4px 10px; font-weight: 600; }}
"""


def apply(app: QApplication, dark: bool) -> None:
    """Fusion with the desk's palette: the same look on every platform, dark or light."""
    app.setStyle("Fusion")
    app.setPalette(palette(dark))
    app.setStyleSheet(stylesheet(dark))
