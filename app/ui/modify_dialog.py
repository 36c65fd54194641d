"""Modify a working order's price or quantity: the ticket's field checks and live preview, then ``Engine.modify``.

The quantity is the order's new total (filled part included), as the broker takes it. The
preview is ``Engine.preview_modify``: exactly what ``modify`` will meet, every check of the gate
with the order's working share replaced rather than added, and the operator's permission.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from decimal import Decimal
from typing import Protocol

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import QKeyEvent
from PySide6.QtWidgets import (
    QDialog,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from app.domain.actors import Actor, Permission
from app.domain.instruments import Instrument
from app.domain.money import paise_to_rupees
from app.domain.orders import Order
from app.engine.results import ModifyResult, OrderPreview
from app.ui import formatting, theme
from app.ui.instrument_search import instrument_label
from app.ui.order_ticket import (
    PREVIEW_INTERVAL_MS,
    PriceBox,
    PriceSource,
    Problem,
    QuantityBox,
    QuantityUnit,
    parse_price,
    parse_quantity,
    price_text,
)
from app.ui.session import OperatorSession, Seat, not_held_text
from app.ui.ticket_preview import (
    FIELD_OF,
    PRICE,
    QUANTITY,
    PreviewPanel,
    value_vs_limit,
)

log = logging.getLogger(__name__)

class ModifyEngine(Protocol):
    """What the dialog needs of the engine."""

    @property
    def instruments(self) -> Mapping[str, Instrument]: ...

    @property
    def market_data(self) -> PriceSource: ...

    def preview_modify(self, client_order_id: str, *, quantity: int | None = None, price: Decimal | str | None = None,
                       operator: Actor | None = None) -> OrderPreview: ...

    async def modify(self, client_order_id: str, *, quantity: int | None = None, price: Decimal | str | None = None,
                     operator: Actor) -> ModifyResult: ...


class ModifyDialog(QDialog):
    """Change the price or quantity of one working order; ``answered(ModifyResult)`` after each attempt."""

    answered = Signal(object)

    def __init__(self, engine: ModifyEngine, order: Order, session: OperatorSession, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.engine = engine
        self.order = order
        self.session = session
        self.instrument = engine.instruments.get(order.instrument_key)
        self.preview: OrderPreview | None = None
        self.answer: ModifyResult | None = None
        self._problems: dict[str, str] = {}
        self._terms: tuple[int, int] | None = None
        self._busy = False
        self._task: asyncio.Task[None] | None = None
        self.setWindowTitle(f"Modify {order.client_order_id}")
        self.setMinimumWidth(520)

        header = QLabel(self)
        header.setObjectName("modifyHeader")
        header.setWordWrap(True)
        name = instrument_label(self.instrument) if self.instrument is not None else order.instrument_key
        header.setText(f"<b>{order.side} {formatting.quantity(order.quantity)} {name} @ {formatting.price(order.price)}</b>"
                       f"<br>{order.client_order_id} · {order.status} · filled {formatting.quantity(order.filled_quantity)}"
                       f" · by {order.actor}")
        self.quantity = QuantityBox(self)
        self.quantity.step = self.instrument.lot_size if self.instrument is not None else 1
        self.quantity.set_text(str(order.quantity))
        self.quantity.setMinimumWidth(110)
        self.quantity_info = QLabel(self)
        self.quantity_message = _message(self)
        self.price = PriceBox(self)
        self.price.tick = self.instrument.tick_size if self.instrument is not None else 5
        self.price.set_text(price_text(order.price))
        self.price.setMinimumWidth(110)
        self.price_info = QLabel(self)
        self.price_message = _message(self)
        for box in (self.quantity, self.price):
            edit = box.lineEdit()
            if edit is not None:
                edit.textChanged.connect(lambda _text: self._changed())
        self.preview_panel = PreviewPanel(self)
        self.note = QLabel(self)
        self.note.setWordWrap(True)
        self.result_label = QLabel(self)
        self.result_label.setWordWrap(True)
        self.result_label.hide()
        self.modify_button = QPushButton("Modify", self)
        self.modify_button.setDefault(True)
        self.modify_button.clicked.connect(self.submit)
        close = QPushButton("Close", self)
        close.setAutoDefault(False)
        close.clicked.connect(self.reject)

        grid = QGridLayout()
        grid.setHorizontalSpacing(8)
        grid.setVerticalSpacing(3)
        grid.setColumnStretch(1, 1)
        grid.addWidget(QLabel("Quantity (total)", self), 0, 0, Qt.AlignmentFlag.AlignRight)
        grid.addLayout(_row(self.quantity, self.quantity_info), 0, 1)
        grid.addWidget(self.quantity_message, 1, 1)
        grid.addWidget(QLabel("Price", self), 2, 0, Qt.AlignmentFlag.AlignRight)
        grid.addLayout(_row(self.price, self.price_info), 2, 1)
        grid.addWidget(self.price_message, 3, 1)
        buttons = QHBoxLayout()
        buttons.addStretch(1)
        buttons.addWidget(close)
        buttons.addWidget(self.modify_button)
        layout = QVBoxLayout(self)
        layout.addWidget(header)
        layout.addLayout(grid)
        layout.addWidget(self.preview_panel)
        layout.addWidget(self.note)
        layout.addWidget(self.result_label)
        layout.addLayout(buttons)

        self._throttle = QTimer(self)
        self._throttle.setSingleShot(True)
        self._throttle.setInterval(PREVIEW_INTERVAL_MS)
        self._throttle.timeout.connect(self.run_preview)
        session.changed.connect(self._update_button)
        self.run_preview()
        self.price.setFocus(Qt.FocusReason.OtherFocusReason)

    def _changed(self) -> None:
        self._read()
        self._update_button()
        if not self._throttle.isActive():
            self._throttle.start()

    def _read(self) -> None:
        problems: dict[str, str] = {}
        quantity = parse_quantity(self.quantity.text_(), self.instrument, QuantityUnit.UNITS)
        if isinstance(quantity, int) and quantity <= self.order.filled_quantity:
            quantity = Problem(f"the new total must be above the {formatting.quantity(self.order.filled_quantity)} already filled")
        if isinstance(quantity, Problem):
            problems[QUANTITY] = quantity.message
        price = parse_price(self.price.text_(), self.instrument)
        if isinstance(price, Problem):
            problems[PRICE] = price.message
        self._problems = problems
        self._terms = (quantity, price) if isinstance(quantity, int) and isinstance(price, int) else None
        lot = self.instrument.lot_size if self.instrument is not None else 1
        if isinstance(quantity, int):
            lots = f"= {formatting.quantity(quantity // lot)} lots · " if lot > 1 else ""
            self.quantity_info.setText(f"{lots}{formatting.quantity(quantity - self.order.filled_quantity)} left to fill")
        else:
            self.quantity_info.setText(f"lot {lot}")
        last = self.engine.market_data.last_price(self.order.instrument_key)
        self.price_info.setText(f"was {formatting.price(self.order.price)}" + (f" · LTP {formatting.price(last)}" if last is not None else ""))

    def run_preview(self) -> None:
        """Ask the engine what ``modify`` would meet with the terms typed now."""
        self._throttle.stop()
        self._read()
        terms = self._terms
        self.preview = None
        note = ""
        if terms is None:
            note = "fix the marked fields to see the checks"
        elif self.instrument is not None:
            quantity, price = terms
            try:
                self.preview = self.engine.preview_modify(
                    self.order.client_order_id, quantity=quantity, price=paise_to_rupees(price), operator=self.session.actor)
            except Exception as exc:  # a preview that fails must block the modify, not crash the desk
                log.exception("modify preview failed")
                note = f"the preview failed ({type(exc).__name__})"
        self.preview_panel.show_preview(self.preview, note)
        by_field: dict[str, list[str]] = {k: [v] for k, v in self._problems.items()}
        for rejection in self.preview.rejections if self.preview is not None else ():
            field = FIELD_OF.get(rejection.reason)
            if field in (QUANTITY, PRICE):
                # The code and the numbers here; the sentence is in the preview list below.
                numbers = value_vs_limit(rejection)
                by_field.setdefault(field, []).append(f"{rejection.reason}  {numbers}" if numbers else
                                                      f"{rejection.reason}: {rejection.message}")
        for field, label in ((QUANTITY, self.quantity_message), (PRICE, self.price_message)):
            texts = by_field.get(field, [])
            label.setText("\n".join(texts))
            label.setVisible(bool(texts))
        self._update_button()
        self._fit()

    def _fit(self) -> None:
        """Grow to show every message and failing check: wrapped text needs more height than the window had."""
        layout = self.layout()
        if layout is None:
            return
        layout.activate()
        width = self.width()
        needed = layout.totalHeightForWidth(width) if layout.hasHeightForWidth() else layout.totalSizeHint().height()
        if needed > self.height():
            self.resize(width, needed)

    def blocker(self) -> str:
        """Why Modify is disabled now ("" when it is not)."""
        actor = self.session.actor
        if self._busy:
            return "modifying…"
        if actor is None or not self.session.can(Permission.TRADE):
            return "only a signed-in trader may modify orders"
        if actor.name != self.order.actor:
            return f"only {self.order.actor} may modify this order (it is theirs)"
        if self._terms is None:
            return "fix the marked fields"
        if self._terms == (self.order.quantity, self.order.price):
            return "nothing changed"
        if self.preview is None or not self.preview.ok:
            return "a check fails"
        return ""

    def _update_button(self) -> None:
        blocker = self.blocker()
        self.modify_button.setEnabled(not blocker)
        self.note.setText("" if blocker in ("", "fix the marked fields", "a check fails") else blocker)
        self.note.setVisible(bool(self.note.text()))

    def keyPressEvent(self, event: QKeyEvent) -> None:
        if event.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter):
            if not event.isAutoRepeat():
                self.submit()
            event.accept()
            return
        super().keyPressEvent(event)

    def submit(self) -> bool:
        """Send the modify if nothing blocks it; whether it started (one press, at most one modify)."""
        if self._busy:
            return False
        self.run_preview()
        actor, terms = self.session.actor, self._terms
        if self.blocker() or actor is None or terms is None:
            return False
        quantity, price = terms
        self._busy = True
        self._update_button()
        self._task = asyncio.ensure_future(self._modify(
            None if quantity == self.order.quantity else quantity,
            None if price == self.order.price else paise_to_rupees(price), actor, self.session.seat,
        ))
        return True

    async def _modify(self, quantity: int | None, price: Decimal | None, actor: Actor, seat: Seat | None) -> None:
        c = theme.colours(theme.is_dark(self.palette()))
        try:
            if not await self.session.confirm(seat):
                self.result_label.setText(f"✘ not modified: {not_held_text(actor.name)}")
                self.result_label.setStyleSheet(f"color: {c.bad}; font-weight: 600;")
                return
            result = await self.engine.modify(self.order.client_order_id, quantity=quantity, price=price, operator=actor)
        except Exception as exc:  # the dialog shows the failure; the engine logs its own
            log.exception("modify failed")
            self.result_label.setText(f"✘ not modified: {type(exc).__name__}: {exc}")
            self.result_label.setStyleSheet(f"color: {c.bad}; font-weight: 600;")
        else:
            self.answer = result
            rejection = result.rejection
            if result.ok:
                text = f"✔ {result.message}"
            elif rejection is not None:
                numbers = value_vs_limit(rejection)
                text = f"✘ {rejection.reason}: {rejection.message}" + (f" ({numbers})" if numbers else "")
            else:
                text = f"✘ {result.message}"
            self.result_label.setText(text)
            self.result_label.setStyleSheet(f"color: {c.good if result.ok else c.bad}; font-weight: 600;")
            self.answered.emit(result)
        finally:
            self.result_label.show()
            self._busy = False
            self._update_button()


def _message(parent: QWidget) -> QLabel:
    label = QLabel(parent)
    label.setWordWrap(True)
    label.setStyleSheet(f"color: {theme.colours(theme.is_dark(parent.palette())).bad};")
    label.hide()
    return label


def _row(*widgets: QWidget) -> QHBoxLayout:
    line = QHBoxLayout()
    line.setSpacing(6)
    for widget in widgets:
        line.addWidget(widget)
    line.addStretch(1)
    return line
