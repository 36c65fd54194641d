"""The order ticket: choose an instrument, side, quantity and price; see the gate's verdict while typing; send.

Keyboard first: ``open_buy``/``open_sell`` (the desk binds F1/F2) put the focus where the next
keystroke belongs, Enter sends when the gate would pass the order, Escape clears the ticket.
What the trader types is read here, strictly: a quantity or a price that cannot be read gets a
message next to its field and is never rounded or guessed. What can be read goes to
``Engine.preview`` (at most 20 times a second) and every check that would fail is shown with
its code, value and limit; Send stays disabled until none fails. The engine still decides: the
submit carries the signed-in operator, whom it checks again.

Pasted prices are accepted as traders copy them: ``1,234.50``, ``₹1,234.50``, ``Rs. 1,234.50``
(any comma grouping, Indian or Western); quantities accept commas too (``1,50,000``).
Exponents (``1e3``), ``NaN`` and fractions of a lot are refused with a message.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Protocol

from PySide6.QtCore import QEvent, Qt, QTimer, Signal
from PySide6.QtGui import QKeyEvent
from PySide6.QtWidgets import (
    QAbstractSpinBox,
    QButtonGroup,
    QComboBox,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from app.domain.actors import Actor, Permission
from app.domain.instruments import Instrument, Segment
from app.domain.money import MoneyError, paise_to_rupees, rupees_to_paise
from app.domain.orders import OrderSource, OrderType, Product, Side, Validity
from app.domain.requests import OrderRequest
from app.engine.results import OrderPreview, SubmitResult
from app.ui import formatting, theme
from app.ui.instrument_search import InstrumentSearch
from app.ui.session import OperatorSession, Seat, not_held_text
from app.ui.ticket_preview import (
    FIELD_OF,
    INSTRUMENT,
    ORDER_TYPE,
    PRICE,
    PRODUCT,
    QUANTITY,
    PreviewPanel,
    value_vs_limit,
)

log = logging.getLogger(__name__)

# At most 20 previews a second however fast the trader types; the last keystroke is always previewed.
PREVIEW_INTERVAL_MS = 50
# Marks move and references go stale: a ticket left open re-asks the gate this often.
REFRESH_MS = 1000
# Beyond 12 digits no exchange takes the quantity; refusing before multiplying keeps the messages short.
_MAX_QUANTITY_DIGITS = 12
_CURRENCY = re.compile(r"^(?:₹|rs\.?|inr)\s*", re.IGNORECASE)
_SPACES = re.compile(r"[\s\u00a0\u2009\u202f]+")


class PriceSource(Protocol):
    """The last traded price of an instrument in paise (``None``: none yet)."""

    def last_price(self, instrument_key: str) -> int | None: ...


class TicketEngine(Protocol):
    """What the ticket needs of the engine: its instruments, its prices, ``preview`` and ``submit``."""

    @property
    def instruments(self) -> Mapping[str, Instrument]: ...

    @property
    def market_data(self) -> PriceSource: ...

    def preview(self, request: OrderRequest) -> OrderPreview: ...

    async def submit(self, request: OrderRequest, *, operator: Actor | None = None) -> SubmitResult: ...


class QuantityUnit(enum.StrEnum):
    """What the quantity field counts."""

    LOTS = "lots"
    UNITS = "units"


@dataclass(frozen=True, slots=True)
class Problem:
    """Why a field's text cannot be used, as shown next to the field."""

    message: str


def _plain(text: str) -> str:
    return _SPACES.sub("", text.strip()).replace(",", "")


def _number(text: str, what: str) -> Decimal | Problem:
    """``text`` (commas and spaces removed) as a finite plain decimal, or why not."""
    if any(ch in text.lower() for ch in "e") and not text.lower().startswith(("nan", "inf")):
        return Problem(f"write the {what} in plain digits (no exponent): “{_cut(text)}”")
    try:
        number = Decimal(text)
    except InvalidOperation:
        return Problem(f"{what} must be a number: “{_cut(text)}”")
    if not number.is_finite():
        return Problem(f"{what} must be a number: “{_cut(text)}”")
    return number


def parse_quantity(text: str, instrument: Instrument | None, unit: QuantityUnit) -> int | Problem:
    """The quantity in units that ``text`` asks for (in lots or units), or why it cannot be read.

    Commas and spaces are ignored (``1,50,000``). Refused with a message: empty, not a number,
    an exponent, a fraction, zero, negative, absurdly long, and in units a non-multiple of the lot.
    The freeze quantity and the desk's limits are the gate's to check (the preview shows them).
    """
    raw = _plain(text)
    noun = "lots" if unit is QuantityUnit.LOTS else "units"
    if not raw:
        return Problem(f"enter a quantity in {noun}")
    if len(raw.lstrip("+-").split(".")[0].lstrip("0")) > _MAX_QUANTITY_DIGITS:
        return Problem(f"quantity is absurdly large ({len(raw.lstrip('+-'))} digits)" + _freeze_hint(instrument))
    number = _number(raw, "quantity")
    if isinstance(number, Problem):
        return number
    if number != number.to_integral_value():
        return Problem(f"quantity must be a whole number of {noun}: “{_cut(text.strip())}”")
    count = int(number)
    if count < 0:
        return Problem("quantity must be positive: BUY or SELL gives the direction")
    if count == 0:
        return Problem(f"quantity must be at least 1 {'lot' if unit is QuantityUnit.LOTS else 'unit'}")
    if instrument is None:
        return count
    if unit is QuantityUnit.LOTS:
        return count * instrument.lot_size
    if count % instrument.lot_size:
        lower = count // instrument.lot_size * instrument.lot_size
        choices = f"{formatting.quantity(lower)} or {formatting.quantity(lower + instrument.lot_size)}" if lower else \
            formatting.quantity(instrument.lot_size)
        return Problem(f"{formatting.quantity(count)} units is not a whole number of lots (lot {instrument.lot_size}): {choices}")
    return count


def _freeze_hint(instrument: Instrument | None) -> str:
    if instrument is None:
        return ""
    freeze = instrument.freeze_quantity
    return f"; one order takes at most {formatting.quantity(freeze)} units ({formatting.quantity(freeze // instrument.lot_size)} lots)"


def parse_price(text: str, instrument: Instrument | None) -> int | Problem:
    """The price in paise that ``text`` (rupees) asks for, or why it cannot be used. Never rounded.

    Accepted as pasted: ``2456.35``, ``2,456.35``, ``₹2,456.35``, ``Rs. 2456.35``. Refused with a
    message: empty, not a number, NaN, an exponent, zero or negative, finer than a paisa, and a
    price off the instrument's tick (the message names the two nearest ticks).
    """
    raw = _plain(_CURRENCY.sub("", text.strip()))
    if not raw:
        return Problem("enter a price, or choose MARKET")
    number = _number(raw, "price")
    if isinstance(number, Problem):
        return number
    if number <= 0:
        return Problem("price must be above zero")
    try:
        paise = rupees_to_paise(number)
    except MoneyError as exc:
        text_ = str(exc)
        if "finer than one paisa" in text_:
            return Problem(f"₹{_cut(raw)} is finer than one paisa")
        return Problem(f"price is not usable: {text_}")
    if instrument is not None and paise % instrument.tick_size:
        low = paise // instrument.tick_size * instrument.tick_size
        high = low + instrument.tick_size
        lower = f"{formatting.price(low)} or " if low > 0 else ""
        return Problem(f"{formatting.price(paise)} is off the tick (₹{formatting.price(instrument.tick_size)}): "
                       f"{lower}{formatting.price(high)}")
    return paise


def price_text(paise: int) -> str:
    """A price as the price box shows it: '2456.35' (no grouping, so it pastes back unchanged)."""
    return str(paise_to_rupees(paise))


def snap_step(paise: int | None, tick: int, steps: int, start: int | None) -> int:
    """The price ``steps`` ticks from ``paise``; a price off the tick snaps to the tick in the step's direction first.

    With no price yet the step starts from ``start`` (the last price) or one tick. Never below one tick.
    """
    if paise is None:
        base = start if start is not None else tick
        base = base // tick * tick or tick
        return max(tick, base + (steps - 1 if steps > 0 else steps + 1) * tick) if steps else base
    if paise % tick:
        down = paise // tick * tick
        snapped = down if steps < 0 else down + tick
        steps += -1 if steps > 0 else 1 if steps < 0 else 0
        paise = snapped
    return max(tick, paise + steps * tick)


class PriceBox(QAbstractSpinBox):
    """A price in rupees: typed freely (checked, never rounded), stepped by the tick with the arrows, wheel or Up/Down."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.tick = 5
        self.start: int | None = None
        self.setAccelerated(True)
        self.setCorrectionMode(QAbstractSpinBox.CorrectionMode.CorrectToPreviousValue)
        self.setKeyboardTracking(True)
        self.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)

    def text_(self) -> str:
        edit = self.lineEdit()
        return edit.text() if edit is not None else ""

    def set_text(self, text: str) -> None:
        edit = self.lineEdit()
        if edit is not None:
            edit.setText(text)

    def stepBy(self, steps: int) -> None:
        current = parse_price(self.text_(), None)
        paise = current if isinstance(current, int) else None
        self.set_text(price_text(snap_step(paise, self.tick, steps, self.start)))

    def stepEnabled(self) -> QAbstractSpinBox.StepEnabledFlag:
        return QAbstractSpinBox.StepEnabledFlag.StepUpEnabled | QAbstractSpinBox.StepEnabledFlag.StepDownEnabled


class QuantityBox(QAbstractSpinBox):
    """A quantity typed freely (checked, never rounded), stepped by one lot (or one lot's units) with the arrows."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.step = 1
        self.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)

    def text_(self) -> str:
        edit = self.lineEdit()
        return edit.text() if edit is not None else ""

    def set_text(self, text: str) -> None:
        edit = self.lineEdit()
        if edit is not None:
            edit.setText(text)

    def stepBy(self, steps: int) -> None:
        raw = _plain(self.text_())
        current = int(raw) if raw.isdigit() and len(raw) <= _MAX_QUANTITY_DIGITS else 0
        # Off a whole step, the first step lands on one.
        snapped = current // self.step * self.step if steps < 0 and current % self.step else current
        if steps < 0 and current % self.step:
            steps += 1
        elif steps > 0 and current % self.step:
            snapped = (current // self.step + 1) * self.step
            steps -= 1
        self.set_text(str(max(self.step, snapped + steps * self.step)))

    def stepEnabled(self) -> QAbstractSpinBox.StepEnabledFlag:
        return QAbstractSpinBox.StepEnabledFlag.StepUpEnabled | QAbstractSpinBox.StepEnabledFlag.StepDownEnabled


def _cut(text: str, width: int = 24) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def _message_label(parent: QWidget) -> QLabel:
    label = QLabel(parent)
    label.setObjectName("fieldMessage")
    label.setWordWrap(True)
    label.hide()
    return label


class OrderTicket(QWidget):
    """A dock-able order ticket over one engine and the window's operator session.

    Signals: ``submitted(SubmitResult)`` after each send; ``dismissed`` when Escape clears the
    ticket (the desk may hide the dock or hand the focus back to the blotter).
    """

    submitted = Signal(object)
    dismissed = Signal()

    def __init__(self, engine: TicketEngine, session: OperatorSession, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("orderTicket")
        self.engine = engine
        self.session = session
        self.side = Side.BUY
        self.unit = QuantityUnit.LOTS
        self.preview: OrderPreview | None = None
        self.request: OrderRequest | None = None
        self.previews_run = 0
        self.result: SubmitResult | None = None
        self._problems: dict[str, str] = {}
        self._previewed = False  # whether ``preview`` answers the fields as they are now
        self._sending = False
        self._task: asyncio.Task[None] | None = None
        self._build()
        self._throttle = QTimer(self)
        self._throttle.setSingleShot(True)
        self._throttle.setInterval(PREVIEW_INTERVAL_MS)
        self._throttle.timeout.connect(self.run_preview)
        self._refresh = QTimer(self)
        self._refresh.setInterval(REFRESH_MS)
        self._refresh.timeout.connect(self._refresh_tick)
        self._refresh.start()
        session.changed.connect(self._update_send)
        self._restyle()
        self._changed()
        self.run_preview()

    # -- construction ------------------------------------------------------------------------------

    def _build(self) -> None:
        self.search = InstrumentSearch(self.engine.instruments, self)
        self.search.chosen.connect(self._instrument_chosen)
        self.search.textEdited.connect(lambda _text: self._changed())
        self.instrument_info = QLabel(self)
        self.instrument_info.setObjectName("instrumentInfo")
        self.instrument_message = _message_label(self)

        self.buy_button = QPushButton("BUY", self)
        self.sell_button = QPushButton("SELL", self)
        self.side_group = QButtonGroup(self)
        for button, side in ((self.buy_button, Side.BUY), (self.sell_button, Side.SELL)):
            button.setCheckable(True)
            button.setObjectName("sideButton")
            button.setProperty("side", str(side))
            button.setMinimumHeight(34)
            button.setFocusPolicy(Qt.FocusPolicy.TabFocus)
            self.side_group.addButton(button)
            button.clicked.connect(lambda _checked=False, s=side: self.set_side(s))
        self.buy_button.setChecked(True)
        self.buy_button.setToolTip("Buy (F1)")
        self.sell_button.setToolTip("Sell (F2)")

        self.quantity = QuantityBox(self)
        self.quantity.setToolTip("quantity; Up/Down step by one lot")
        quantity_edit = self.quantity.lineEdit()
        if quantity_edit is not None:
            quantity_edit.textChanged.connect(lambda _text: self._changed())
        self.unit_box = QComboBox(self)
        self.unit_box.addItems([str(QuantityUnit.LOTS), str(QuantityUnit.UNITS)])
        self.unit_box.setToolTip("count the quantity in lots or in units")
        self.unit_box.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToContents)
        self.unit_box.currentTextChanged.connect(lambda text: self.set_unit(QuantityUnit(text)))
        self.quantity_info = QLabel(self)
        self.quantity_info.setObjectName("quantityInfo")
        self.quantity_message = _message_label(self)

        self.price = PriceBox(self)
        self.price.setToolTip("limit price in rupees; Up/Down step by one tick")
        price_edit = self.price.lineEdit()
        if price_edit is not None:
            price_edit.textChanged.connect(lambda _text: self._changed())
        self.price_info = QLabel(self)
        self.price_info.setObjectName("priceInfo")
        self.price_message = _message_label(self)

        self.order_type = QComboBox(self)
        self.order_type.addItems([str(OrderType.LIMIT), str(OrderType.MARKET)])
        self.order_type.currentTextChanged.connect(lambda _text: self._order_type_changed())
        self.product = QComboBox(self)
        self.product.currentTextChanged.connect(lambda _text: self._changed())
        self.validity = QComboBox(self)
        self.validity.addItems([str(Validity.DAY), str(Validity.IOC)])
        self.validity.currentTextChanged.connect(lambda _text: self._changed())
        self.terms_message = _message_label(self)
        self._fill_products(None)

        self.preview_panel = PreviewPanel(self)
        self.send_button = QPushButton("BUY", self)
        self.send_button.setObjectName("sendButton")
        self.send_button.setMinimumHeight(32)
        self.send_button.clicked.connect(self.send)
        self.send_note = QLabel(self)
        self.send_note.setObjectName("sendNote")
        self.send_note.setWordWrap(True)
        self.result_label = QLabel(self)
        self.result_label.setObjectName("resultLabel")
        self.result_label.setWordWrap(True)
        self.result_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.result_label.hide()

        sides = QHBoxLayout()
        sides.setSpacing(6)
        sides.addWidget(self.buy_button)
        sides.addWidget(self.sell_button)

        grid = QGridLayout()
        grid.setHorizontalSpacing(8)
        grid.setVerticalSpacing(3)
        grid.setColumnStretch(1, 1)
        row = 0

        def add(label: str, *widgets: QWidget | QHBoxLayout) -> None:
            nonlocal row
            name = QLabel(label, self)
            name.setObjectName("fieldName")
            grid.addWidget(name, row, 0, Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
            line = QHBoxLayout()
            line.setSpacing(6)
            for widget in widgets:
                if isinstance(widget, QHBoxLayout):
                    line.addLayout(widget)
                else:
                    line.addWidget(widget)
            grid.addLayout(line, row, 1)
            row += 1

        def message(label: QLabel) -> None:
            nonlocal row
            grid.addWidget(label, row, 1)
            row += 1

        add("Instrument", self.search)
        grid.addWidget(self.instrument_info, row, 1)
        row += 1
        message(self.instrument_message)
        add("Side", sides)
        add("Quantity", self.quantity, self.unit_box, self.quantity_info)
        message(self.quantity_message)
        add("Price", self.price, self.price_info)
        message(self.price_message)
        add("Type", self.order_type, self.product, self.validity)
        message(self.terms_message)
        self.quantity.setMinimumWidth(96)
        self.price.setMinimumWidth(110)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(8, 6, 8, 8)
        layout.setSpacing(6)
        layout.addLayout(grid)
        layout.addWidget(self.preview_panel)
        layout.addWidget(self.send_button)
        layout.addWidget(self.send_note)
        layout.addWidget(self.result_label)
        layout.addStretch(1)
        self.setTabOrder(self.search, self.quantity)
        self.setTabOrder(self.quantity, self.price)
        self.setTabOrder(self.price, self.order_type)

    def _fill_products(self, instrument: Instrument | None) -> None:
        current = self.product.currentText()
        if instrument is None or instrument.segment is Segment.CASH:
            choices = [Product.INTRADAY, Product.DELIVERY]
        else:
            choices = [Product.INTRADAY, Product.CARRY]
        if [self.product.itemText(i) for i in range(self.product.count())] == [str(c) for c in choices]:
            return
        self.product.blockSignals(True)
        self.product.clear()
        self.product.addItems([str(c) for c in choices])
        at = self.product.findText(current)
        self.product.setCurrentIndex(max(at, 0))
        self.product.blockSignals(False)

    # -- the trader's entry points -----------------------------------------------------------------

    def open_buy(self) -> None:
        """F1: a buy, focus where the next keystroke belongs (the instrument, else the quantity)."""
        self._open(Side.BUY)

    def open_sell(self) -> None:
        """F2: a sell, focus where the next keystroke belongs."""
        self._open(Side.SELL)

    def _open(self, side: Side) -> None:
        self.set_side(side)
        self._show_result(None)
        if self.search.instrument is None:
            self.search.setFocus(Qt.FocusReason.ShortcutFocusReason)
            self.search.selectAll()
        else:
            self.quantity.setFocus(Qt.FocusReason.ShortcutFocusReason)
            self.quantity.selectAll()

    def prefill_close(self, instrument_key: str, position_qty: int) -> None:
        """The order that closes a position: the opposite side, the position's whole quantity, a limit at the last price."""
        self._show_result(None)
        instrument = self.engine.instruments.get(instrument_key)
        if instrument is None:
            self.search.choose(None)
            self.search.setText(instrument_key)
            self.instrument_message.setText(f"{instrument_key} is not in the desk's instrument list")
            self.instrument_message.show()
            self._changed()
            return
        self.search.choose(instrument)
        self.set_side(Side.SELL if position_qty > 0 else Side.BUY)
        units = abs(position_qty)
        lots, rest = divmod(units, instrument.lot_size)
        self.set_unit(QuantityUnit.LOTS if rest == 0 and lots else QuantityUnit.UNITS)
        self.quantity.set_text(str(lots if self.unit is QuantityUnit.LOTS else units))
        self.order_type.setCurrentText(str(OrderType.LIMIT))
        last = self.engine.market_data.last_price(instrument.key)
        self.price.set_text(price_text(last) if last is not None else "")
        if position_qty == 0:
            self.send_note.setText(f"no open position in {instrument.key} to close")
        self.price.setFocus(Qt.FocusReason.OtherFocusReason)
        self.price.selectAll()
        self._changed()

    def set_side(self, side: Side) -> None:
        if side is self.side and (self.buy_button if side is Side.BUY else self.sell_button).isChecked():
            return
        self.side = side
        (self.buy_button if side is Side.BUY else self.sell_button).setChecked(True)
        self._restyle()
        self._changed()

    def set_unit(self, unit: QuantityUnit) -> None:
        """Count the quantity in lots or units; a readable quantity is converted, so the order stays the same."""
        if unit is self.unit:
            return
        instrument = self.search.instrument
        parsed = parse_quantity(self.quantity.text_(), instrument, self.unit)
        self.unit = unit
        if self.unit_box.currentText() != str(unit):
            self.unit_box.setCurrentText(str(unit))
        if instrument is not None and isinstance(parsed, int):
            self.quantity.set_text(str(parsed // instrument.lot_size if unit is QuantityUnit.LOTS else parsed))
        self._changed()

    def choose(self, instrument_key: str) -> None:
        """Pick an instrument by desk key (a quote's double-click, a test)."""
        instrument = self.engine.instruments.get(instrument_key)
        if instrument is not None:
            self.search.choose(instrument)

    def clear(self) -> None:
        """Back to an empty ticket on the same side."""
        self._throttle.stop()
        self.search.choose(None)
        self.quantity.set_text("")
        self.price.set_text("")
        self.order_type.setCurrentText(str(OrderType.LIMIT))
        self.send_note.setText("")
        self._show_result(None)
        self._changed()
        self.run_preview()

    # -- keys --------------------------------------------------------------------------------------

    def keyPressEvent(self, event: QKeyEvent) -> None:
        key = event.key()
        if key in (Qt.Key.Key_Return, Qt.Key.Key_Enter):
            # Auto-repeat of a held Enter is not a second order.
            if event.isAutoRepeat():
                pass
            elif self.search.hasFocus():
                # Enter in the instrument field picks the instrument and moves on; it never sends, so
                # an order left filled in does not go out while the trader is choosing the next contract.
                self.search.choose_first()
                if self.search.instrument is not None:
                    self.quantity.setFocus(Qt.FocusReason.OtherFocusReason)
                    self.quantity.selectAll()
            else:
                self.send()
            event.accept()
            return
        if key == Qt.Key.Key_Escape:
            self.clear()
            self.search.setFocus(Qt.FocusReason.OtherFocusReason)
            self.dismissed.emit()
            event.accept()
            return
        super().keyPressEvent(event)

    # -- reading the fields ------------------------------------------------------------------------

    def _instrument_chosen(self, instrument: Instrument | None) -> None:
        self._fill_products(instrument)
        if instrument is not None:
            self.price.tick = instrument.tick_size
            self.price.start = self.engine.market_data.last_price(instrument.key)
            self.quantity.step = 1 if self.unit is QuantityUnit.LOTS else instrument.lot_size
        self._changed()

    def _order_type_changed(self) -> None:
        self.price.setEnabled(self.order_type.currentText() == str(OrderType.LIMIT))
        self._changed()

    def _changed(self) -> None:
        """A field changed: read them all now, ask the gate soon (throttled)."""
        self._previewed = False
        self._read_fields()
        self._update_send()
        if not self._throttle.isActive():
            self._throttle.start()

    def _refresh_tick(self) -> None:
        if self.isVisible() and self.request is not None and not self._sending:
            self._previewed = False
            self.run_preview()

    def _read_fields(self) -> None:
        instrument = self.search.instrument
        problems: dict[str, str] = {}
        instrument_problem = self.search.problem()
        if instrument_problem:
            problems[INSTRUMENT] = instrument_problem
        quantity = parse_quantity(self.quantity.text_(), instrument, self.unit)
        if isinstance(quantity, Problem):
            problems[QUANTITY] = quantity.message
        market = self.order_type.currentText() == str(OrderType.MARKET)
        price: int | Problem | None = None
        if not market:
            price = parse_price(self.price.text_(), instrument)
            if isinstance(price, Problem):
                problems[PRICE] = price.message
        self._problems = problems
        self._show_info(instrument, quantity, price)
        if problems or instrument is None or not isinstance(quantity, int) or isinstance(price, Problem):
            self.request = None
            return
        actor = self.session.actor
        self.request = OrderRequest(
            instrument.key, self.side, quantity, None if price is None else paise_to_rupees(price),
            order_type=self.order_type.currentText(), product=self.product.currentText(),
            validity=self.validity.currentText(), source=OrderSource.TICKET,
            actor=actor.name if actor is not None else "nobody",
        )

    def _show_info(self, instrument: Instrument | None, quantity: int | Problem, price: int | Problem | None) -> None:
        if instrument is None:
            self.instrument_info.setText("")
            self.quantity_info.setText("")
            self.price_info.setText("")
            self.quantity.step = 1
            return
        lot = instrument.lot_size
        last = self.engine.market_data.last_price(instrument.key)
        expiry = f" · expires {instrument.expiry.isoformat()}" if instrument.expiry is not None else ""
        self.instrument_info.setText(f"{instrument.key} · lot {lot} · tick ₹{formatting.price(instrument.tick_size)}{expiry}")
        self.quantity.step = 1 if self.unit is QuantityUnit.LOTS else lot
        if isinstance(quantity, int):
            lots = quantity // lot
            lot_word = "lot" if lots == 1 else "lots"
            unit_word = "unit" if quantity == 1 else "units"
            self.quantity_info.setText(
                f"{formatting.quantity(lots)} {lot_word} = {formatting.quantity(quantity)} {unit_word}" if self.unit is QuantityUnit.LOTS
                else f"{formatting.quantity(quantity)} {unit_word} = {formatting.quantity(lots)} {lot_word}")
        else:
            self.quantity_info.setText(f"lot {lot}")
        self.price_info.setText(f"LTP {formatting.price(last)}" if last is not None else "no LTP yet")

    # -- the preview -------------------------------------------------------------------------------

    def run_preview(self) -> None:
        """Ask the gate about the fields as they are now (the throttle calls this; so does Enter before sending)."""
        self._throttle.stop()
        self._read_fields()
        request = self.request
        preview: OrderPreview | None = None
        note = ""
        if request is None:
            note = "fix the marked fields to see the checks" if self.search.instrument is not None else \
                "choose an instrument to see the checks"
        else:
            try:
                preview = self.engine.preview(request)
                self.previews_run += 1
            except Exception as exc:  # a preview that fails must block the send, not crash the desk
                log.exception("order preview failed")
                note = f"the preview failed ({type(exc).__name__}): Send is disabled"
        self.preview = preview
        self._previewed = True
        self.preview_panel.show_preview(preview, note)
        self._show_field_messages()
        self._show_market_price()
        self._update_send()

    def _show_field_messages(self) -> None:
        by_field: dict[str, list[str]] = {name: [text] for name, text in self._problems.items()}
        if self.preview is not None:
            for rejection in self.preview.rejections:
                name = FIELD_OF.get(rejection.reason)
                if name is None:
                    continue
                # The code and the numbers here; the sentence is in the preview list below.
                numbers = value_vs_limit(rejection)
                by_field.setdefault(name, []).append(f"{rejection.reason}  {numbers}" if numbers else
                                                     f"{rejection.reason}: {rejection.message}")
        if not self.search.text().strip() and INSTRUMENT in by_field and len(by_field) == 1:
            # An empty ticket is not an error: its placeholder already says what to type.
            by_field.pop(INSTRUMENT)
        for name, label in ((INSTRUMENT, self.instrument_message), (QUANTITY, self.quantity_message),
                            (PRICE, self.price_message)):
            texts = by_field.get(name, [])
            if name == QUANTITY and not self.quantity.text_().strip() and self.search.instrument is None:
                texts = []
            label.setText("\n".join(texts))
            label.setVisible(bool(texts))
        terms = by_field.get(ORDER_TYPE, []) + by_field.get(PRODUCT, [])
        self.terms_message.setText("\n".join(terms))
        self.terms_message.setVisible(bool(terms))

    def _show_market_price(self) -> None:
        edit = self.price.lineEdit()
        market = self.order_type.currentText() == str(OrderType.MARKET)
        if edit is not None:
            edit.setPlaceholderText("market" if market else "price ₹")
        if not market or self.search.instrument is None:
            return
        protected = self.preview.price if self.preview is not None else None
        text = (f"goes out at ₹{formatting.price(protected)} (protected)" if protected is not None
                else "no reference price: the gate will refuse a market order")
        self.price_info.setText(text)

    # -- sending -----------------------------------------------------------------------------------

    def send_blocker(self) -> str:
        """Why Send is disabled now ("" when it is not)."""
        if self._sending:
            return "sending…"
        actor = self.session.actor
        if actor is None:
            return "sign in to send orders"
        if self.session.locked:
            return "the desk is locked"
        if not self.session.can(Permission.TRADE):
            return f"{actor.name} ({actor.role or 'no role'}) may not trade"
        if self.request is None:
            return "fix the marked fields"
        if not self._previewed:
            return "checking…"
        if self.preview is None:
            return "no preview: Send is disabled"
        if not self.preview.ok:
            return f"{len(self.preview.rejections)} check{'s' if len(self.preview.rejections) != 1 else ''} fail"
        return ""

    def can_send(self) -> bool:
        return not self.send_blocker()

    def _update_send(self) -> None:
        blocker = self.send_blocker()
        # Checking… is a moment's state: the button keeps its look, and Enter checks before sending.
        self.send_button.setEnabled(not blocker or blocker == "checking…")
        self.send_button.setText(self._send_text())
        # The fields and the preview already say what fails; the note is for what they cannot show (who, locked).
        quiet = not blocker or blocker in ("checking…", "fix the marked fields") or blocker.endswith(("check fails", "checks fail"))
        self.send_note.setText("" if quiet else blocker)
        self.send_note.setVisible(bool(self.send_note.text()))

    def _send_text(self) -> str:
        instrument = self.search.instrument
        request = self.request
        if instrument is None or request is None or not isinstance(request.quantity, int):
            return f"{self.side}  (Enter)"
        lots = request.quantity // instrument.lot_size
        what = f"{lots} lot{'s' if lots != 1 else ''}" if instrument.lot_size > 1 else formatting.quantity(request.quantity)
        at = "MARKET" if request.price is None else f"@ {formatting.price(rupees_to_paise(str(request.price)))}"
        return f"{self.side} {what} {instrument.symbol} {at}  (Enter)"

    def send(self) -> bool:
        """Send the order as typed if nothing blocks it; whether a submit started. One call, at most one order."""
        if self._sending:
            return False
        if not self._previewed:
            self.run_preview()
        blocker = self.send_blocker()
        request, operator = self.request, self.session.actor
        if blocker or request is None or operator is None:
            self._update_send()
            return False
        self._sending = True
        self._update_send()
        self._task = asyncio.ensure_future(self._submit(request, operator, self.session.seat))
        return True

    async def _submit(self, request: OrderRequest, operator: Actor, seat: Seat | None) -> None:
        result: SubmitResult | None = None
        try:
            # The account as it is now (disabled or demoted since sign-in: not sent), not as it was at sign-in.
            if not await self.session.confirm(seat):
                self._show_result(f"✘ not sent: {not_held_text(operator.name)}", ok=False)
                return
            result = await self.engine.submit(request, operator=operator)
        except Exception as exc:
            log.exception("ticket submit failed")
            self._show_result(f"✘ not sent: {type(exc).__name__}: {exc}", ok=False)
        else:
            self.result = result
            if result.accepted:
                self._show_result(f"✔ accepted: {result.client_order_id}", ok=True)
            else:
                rejection = result.rejection
                why = f"{rejection.reason}: {rejection.message}" if rejection is not None else "refused"
                numbers = value_vs_limit(rejection) if rejection is not None else ""
                order = f" ({result.client_order_id})" if result.client_order_id else ""
                self._show_result(f"✘ refused{order}: {why}" + (f" ({numbers})" if numbers else ""), ok=False)
        finally:
            self._sending = False
            self._previewed = False
            self.run_preview()
            if result is not None:
                self.submitted.emit(result)

    def _show_result(self, text: str | None, ok: bool = True) -> None:
        if text is None:
            self.result_label.hide()
            self.result_label.setText("")
            return
        c = theme.colours(theme.is_dark(self.palette()))
        self.result_label.setStyleSheet(f"color: {c.good if ok else c.bad}; font-weight: 600;")
        self.result_label.setText(text)
        self.result_label.show()

    # -- look --------------------------------------------------------------------------------------

    def _restyle(self) -> None:
        dark = theme.is_dark(self.palette())
        c = theme.colours(dark)
        buy, sell = c.accent, c.bad
        side_colour = buy if self.side is Side.BUY else sell
        self.setStyleSheet(
            f"QPushButton#sideButton {{ font-weight: 700; font-size: 14px; letter-spacing: 1px; border-radius: 4px;"
            f" border: 1px solid {c.dim}; color: {c.dim}; background: {c.base}; }}"
            f"QPushButton#sideButton[side=\"BUY\"]:checked {{ background: {buy}; color: white; border-color: {buy}; }}"
            f"QPushButton#sideButton[side=\"SELL\"]:checked {{ background: {sell}; color: white; border-color: {sell}; }}"
            f"QPushButton#sendButton {{ font-weight: 700; border-radius: 4px; padding: 4px 10px; color: white;"
            f" background: {side_colour}; border: 1px solid {side_colour}; }}"
            f"QPushButton#sendButton:disabled {{ background: {c.alt_base}; color: {c.dim}; border: 1px solid {c.dim}; }}"
            f"QLabel#fieldMessage {{ color: {c.bad}; }}"
            f"QLabel#fieldName {{ color: {c.dim}; }}"
            f"QLabel#instrumentInfo, QLabel#quantityInfo, QLabel#priceInfo, QLabel#sendNote {{ color: {c.dim}; }}"
        )

    def changeEvent(self, event: QEvent) -> None:
        if event.type() in (QEvent.Type.PaletteChange, QEvent.Type.ApplicationPaletteChange) and hasattr(self, "send_button"):
            self._restyle()
        super().changeEvent(event)

    @property
    def sending(self) -> bool:
        """Whether a submit is in flight (Send and Enter do nothing until it answers)."""
        return self._sending
