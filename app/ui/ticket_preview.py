"""The order ticket's pre-trade preview: every check that would fail (code, value, limit) and the headroom after the order.

``PreviewPanel`` shows one ``OrderPreview`` (from ``Engine.preview``); ``FIELD_OF`` says which
ticket field a refusal concerns, so the ticket can also put it next to that field.
"""

from __future__ import annotations

from collections.abc import Sequence

from PySide6.QtCore import QEvent, Qt
from PySide6.QtWidgets import QGridLayout, QLabel, QProgressBar, QVBoxLayout, QWidget

from app.domain.rejections import Rejection, RejectReason
from app.engine.results import Headroom, OrderPreview
from app.ui import formatting, theme

QUANTITY = "quantity"
PRICE = "price"
INSTRUMENT = "instrument"
ORDER_TYPE = "order_type"
PRODUCT = "product"
VALIDITY = "validity"
SIDE = "side"

# The ticket field each refusal is about; refusals about the desk as a whole (halted, exposure) have none.
FIELD_OF: dict[RejectReason, str] = {
    RejectReason.UNKNOWN_INSTRUMENT: INSTRUMENT,
    RejectReason.RESTRICTED_INSTRUMENT: INSTRUMENT,
    RejectReason.CONTRACT_EXPIRED: INSTRUMENT,
    RejectReason.NO_LIMIT: INSTRUMENT,
    RejectReason.INVALID_SIDE: SIDE,
    RejectReason.INVALID_ORDER_TYPE: ORDER_TYPE,
    RejectReason.ORDER_TYPE_NOT_ALLOWED: ORDER_TYPE,
    RejectReason.INVALID_PRODUCT: PRODUCT,
    RejectReason.PRODUCT_NOT_ALLOWED: PRODUCT,
    RejectReason.INVALID_VALIDITY: VALIDITY,
    RejectReason.INVALID_QUANTITY: QUANTITY,
    RejectReason.NOT_LOT_MULTIPLE: QUANTITY,
    RejectReason.ABOVE_FREEZE_QUANTITY: QUANTITY,
    RejectReason.ORDER_QUANTITY_LIMIT: QUANTITY,
    RejectReason.POSITION_QUANTITY_LIMIT: QUANTITY,
    RejectReason.INVALID_PRICE: PRICE,
    RejectReason.PRICE_OFF_TICK: PRICE,
    RejectReason.PRICE_COLLAR: PRICE,
    RejectReason.STALE_PRICE: PRICE,
}

_MAX_BARS = 6


def value_vs_limit(rejection: Rejection) -> str:
    """'value 2,700.00 · limit 2,650.00' (whichever of the two the rejection carries)."""
    parts = []
    if rejection.value is not None:
        parts.append(f"value {rejection.value}")
    if rejection.limit is not None:
        parts.append(f"limit {rejection.limit}")
    return " · ".join(parts)


def rejection_line(rejection: Rejection) -> str:
    """One failing check as the ticket shows it: 'PRICE_COLLAR value 2,700 · limit 2,650 — price is too far…'."""
    numbers = value_vs_limit(rejection)
    return f"{rejection.reason}" + (f"  {numbers}" if numbers else "") + f" — {rejection.message}"


def amount(value: int, unit: str) -> str:
    return formatting.inr_short(value) if unit == "paise" else f"{formatting.quantity(value)} units"


def headroom_text(headroom: Headroom) -> str:
    """'desk gross ₹4.50 Cr of ₹5.00 Cr · ₹50.00 L left' (units for quantity limits)."""
    left = headroom.left
    tail = f"{amount(left, headroom.unit)} left" if left >= 0 else f"over by {amount(-left, headroom.unit)}"
    return f"{headroom.name}  {amount(headroom.after, headroom.unit)} of {amount(headroom.limit, headroom.unit)} · {tail}"


def used_fraction(headroom: Headroom) -> float:
    """How much of the limit the order leaves used (1.0 = at the limit; a zero limit is full once anything is used)."""
    if headroom.limit <= 0:
        return 0.0 if headroom.after == 0 else float("inf")
    return abs(headroom.after) / headroom.limit


class PreviewPanel(QWidget):
    """What the gate would say of the order as typed: a verdict line, the failing checks, the headroom bars."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.verdict = QLabel(self)
        self.verdict.setObjectName("previewVerdict")
        self.verdict.setWordWrap(True)
        self.failures = QLabel(self)
        self.failures.setObjectName("previewFailures")
        self.failures.setWordWrap(True)
        self.failures.setTextFormat(Qt.TextFormat.RichText)
        self.failures.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.bars = QWidget(self)
        self._bars = QGridLayout(self.bars)
        self._bars.setContentsMargins(0, 2, 0, 0)
        self._bars.setHorizontalSpacing(6)
        self._bars.setVerticalSpacing(2)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(4)
        layout.addWidget(self.verdict)
        layout.addWidget(self.failures)
        layout.addWidget(self.bars)
        self._preview: OrderPreview | None = None
        self._note = ""
        self.lines: list[str] = []
        self.headroom_lines: list[str] = []
        self.show_preview(None, "choose an instrument and a quantity")

    def show_preview(self, preview: OrderPreview | None, note: str = "") -> None:
        """Show ``preview``; ``None`` with ``note`` when there is nothing to ask the gate yet (the fields say why)."""
        self._preview, self._note = preview, note
        self._paint()

    def _paint(self) -> None:
        c = theme.colours(theme.is_dark(self.palette()))
        preview = self._preview
        self._clear_bars()
        if preview is None:
            self.lines, self.headroom_lines = [], []
            self.verdict.setText(self._note)
            self.verdict.setStyleSheet(f"color: {c.dim};")
            self.failures.hide()
            self.bars.hide()
            return
        self.lines = [rejection_line(r) for r in preview.rejections]
        self.headroom_lines = [headroom_text(h) for h in preview.headroom]
        if preview.ok:
            self.verdict.setText(f"✔ passes all {preview.checks} checks" + self._value_text(preview))
            self.verdict.setStyleSheet(f"color: {c.good}; font-weight: 600;")
            self.failures.hide()
        else:
            failing = len(preview.rejections)
            self.verdict.setText(f"✘ {failing} of {preview.checks} checks fail" + self._value_text(preview))
            self.verdict.setStyleSheet(f"color: {c.bad}; font-weight: 600;")
            self.failures.setText(self._failure_html(preview.rejections, c))
            self.failures.show()
        self._fill_bars(preview.headroom, c)

    @staticmethod
    def _value_text(preview: OrderPreview) -> str:
        return f" · value {formatting.inr(preview.order_value)}" if preview.order_value is not None else ""

    @staticmethod
    def _failure_html(rejections: Sequence[Rejection], c: theme.Colours) -> str:
        rows = []
        for r in rejections:
            numbers = value_vs_limit(r)
            numbers_html = f' <span style="color:{c.text}">{_escape(numbers)}</span>' if numbers else ""
            rows.append(
                f'<tr><td style="padding:1px 6px 1px 0"><b style="color:{c.bad}">{r.reason}</b>{numbers_html}<br>'
                f'<span style="color:{c.dim}">{_escape(r.message)}</span></td></tr>'
            )
        return "<table cellspacing=0>" + "".join(rows) + "</table>"

    def _clear_bars(self) -> None:
        while self._bars.count():
            item = self._bars.takeAt(0)
            widget = item.widget() if item is not None else None
            if widget is not None:
                widget.deleteLater()

    def _fill_bars(self, headroom: Sequence[Headroom], c: theme.Colours) -> None:
        if not headroom:
            self.bars.hide()
            return
        # The tightest limits first: those are the ones a trader must see.
        ordered = sorted(headroom, key=used_fraction, reverse=True)[:_MAX_BARS]
        for row, item in enumerate(ordered):
            fraction = used_fraction(item)
            colour = c.good if fraction < 0.8 else c.warn if fraction <= 0.9 else c.bad
            bar = QProgressBar(self.bars)
            bar.setRange(0, 1000)
            bar.setValue(int(min(fraction, 1.0) * 1000))
            bar.setTextVisible(False)
            bar.setFixedHeight(8)
            bar.setFixedWidth(64)
            bar.setStyleSheet(f"QProgressBar {{ border: 1px solid {c.dim}; border-radius: 2px; background: {c.base}; }}"
                              f"QProgressBar::chunk {{ background: {colour}; }}")
            label = QLabel(headroom_text(item), self.bars)
            # A narrow dock wraps a long limit name rather than cutting its numbers off.
            label.setWordWrap(True)
            label.setToolTip(f"{item.name}: {amount(item.after, item.unit)} after this order; limit {amount(item.limit, item.unit)}")
            self._bars.addWidget(bar, row, 0, Qt.AlignmentFlag.AlignVCenter)
            self._bars.addWidget(label, row, 1)
        self._bars.setColumnStretch(1, 1)
        self.bars.show()

    def changeEvent(self, event: QEvent) -> None:
        if event.type() in (QEvent.Type.PaletteChange, QEvent.Type.ApplicationPaletteChange):
            self._paint()
        super().changeEvent(event)


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
