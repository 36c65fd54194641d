"""The order ticket over a real engine and the paper broker (frozen clock, no random walk), offscreen.

Reference prices are ticks the test publishes (``tests/engine/ticket_desk.py``): RELIANCE at
₹1,500 (lot 1, tick 5 paise), its future at ₹1,510 (lot 500); RELIANCE's caps are 100 lots an
order, ₹2,00,000 an order, a 5 % collar, 300 lots of position.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
import qasync
import shiboken6
from PySide6.QtCore import QEvent, Qt
from PySide6.QtGui import QKeyEvent
from PySide6.QtWidgets import QApplication, QWidget
from pytestqt.qtbot import QtBot

from app.domain.actors import Actor, Role
from app.domain.audit import AuditSource
from app.domain.instruments import (
    Exchange,
    Instrument,
    OptionRight,
    Segment,
    instrument_key,
)
from app.domain.orders import OrderType, Side
from app.domain.rejections import RejectReason
from app.engine.engine import Engine
from app.engine.portfolio import PositionView
from app.ui import theme
from app.ui.instrument_search import SYNC_BUILD_LIMIT, InstrumentIndex, InstrumentSearch
from app.ui.order_ticket import (
    OrderTicket,
    Problem,
    QuantityUnit,
    parse_price,
    parse_quantity,
    snap_step,
)
from app.ui.positions_table import PositionsView
from app.ui.session import OperatorSession
from tests.engine.ticket_desk import (
    ALICE,
    INSTRUMENTS,
    REL,
    REL_FUT,
    RISK,
    VIEWER,
    make_engine,
    started,
)
from tests.ui.conftest import await_in_qt

OUTPUT = Path(__file__).resolve().parents[1] / "output"
EXPIRY = date(2026, 12, 29)


@dataclass
class Ticket:
    ticket: OrderTicket
    engine: Engine
    session: OperatorSession


@pytest.fixture
def desk(qtbot: QtBot, qloop: qasync.QEventLoop) -> Iterator[Ticket]:
    engine = await_in_qt(qtbot, started(make_engine()[0]))
    session = OperatorSession()
    session.sign_in(ALICE)
    ticket = OrderTicket(engine, session)
    qtbot.addWidget(ticket)
    ticket.resize(440, 620)
    ticket.show()
    qtbot.waitExposed(ticket)
    yield Ticket(ticket, engine, session)
    await_in_qt(qtbot, engine.stop())


def fill(ticket: OrderTicket, key: str, quantity: str, price: str = "", *, unit: QuantityUnit = QuantityUnit.LOTS,
         order_type: OrderType = OrderType.LIMIT) -> None:
    """Set the fields as a trader would leave them, then let the preview run (as its throttle would)."""
    ticket.choose(key)
    ticket.set_unit(unit)
    ticket.order_type.setCurrentText(str(order_type))
    ticket.quantity.set_text(quantity)
    ticket.price.set_text(price)
    ticket.run_preview()


# -- the instrument search -----------------------------------------------------------------------


def _option(symbol: str, strike_rupees: int, right: OptionRight, expiry: date = EXPIRY) -> Instrument:
    strike = strike_rupees * 100
    return Instrument(instrument_key(Exchange.NFO, symbol, expiry, strike, right), Exchange.NFO, symbol, symbol,
                      Segment.OPTIONS, 75, 5, 1800, expiry, strike, right)


def _future(symbol: str, expiry: date = EXPIRY) -> Instrument:
    return Instrument(instrument_key(Exchange.NFO, symbol, expiry), Exchange.NFO, symbol, symbol, Segment.FUTURES, 75, 5, 1800, expiry)


def _cash(symbol: str, exchange: Exchange = Exchange.NSE) -> Instrument:
    return Instrument(f"{exchange}:{symbol}", exchange, symbol, symbol, Segment.CASH, 1, 5, 100_000)


SMALL = [
    _cash("NIFTYBEES"), _cash("RELIANCE"), _cash("RELIANCE", Exchange.BSE), _future("NIFTY"), _future("NIFTY", date(2027, 1, 26)),
    _option("NIFTY", 24000, OptionRight.CALL), _option("NIFTY", 24000, OptionRight.PUT), _option("NIFTY", 24050, OptionRight.CALL),
    _option("NIFTY", 24000, OptionRight.CALL, date(2027, 1, 26)), _option("BANKNIFTY", 24000, OptionRight.CALL),
]


def keys(found: list[Instrument]) -> list[str]:
    return [i.key for i in found]


def test_search_finds_by_each_field_with_tokens_in_any_order() -> None:
    index = InstrumentIndex(SMALL)
    ce = "NFO:NIFTY:2026-12-29:24000:CE"
    assert keys(index.search("NIFTY 24000 CE")) == [ce, "NFO:NIFTY:2027-01-26:24000:CE"]
    assert keys(index.search("ce 24000 nifty")) == keys(index.search("NIFTY 24000 CE"))
    assert keys(index.search("NIFTY 29-Dec 24000 CE")) == [ce]
    assert keys(index.search("nifty DEC 24000 ce")) == [ce]
    assert keys(index.search("NIFTY JAN CALL")) == ["NFO:NIFTY:2027-01-26:24000:CE"]
    assert set(keys(index.search("24000 PE"))) == {"NFO:NIFTY:2026-12-29:24000:PE"}
    # Strike prefix: 2405 finds the 24050 strike only.
    assert keys(index.search("2405")) == ["NFO:NIFTY:2026-12-29:24050:CE"]
    # The underlying and the symbol; an exact symbol comes before a longer one that starts with it.
    found = keys(index.search("NIFTY"))
    assert found[0] == "NFO:NIFTY:2026-12-29:FUT" and "NSE:NIFTYBEES" in found and found.index("NSE:NIFTYBEES") > 5
    assert keys(index.search("NIFTY FUT")) == ["NFO:NIFTY:2026-12-29:FUT", "NFO:NIFTY:2027-01-26:FUT"]
    assert keys(index.search("BANKNIFTY")) == ["NFO:BANKNIFTY:2026-12-29:24000:CE"]
    assert keys(index.search("reliance bse")) == ["BSE:RELIANCE"]
    # A pasted desk key, a label, and nothing at all.
    assert keys(index.search(ce)) == [ce]
    assert index.exact("nifty 29-Dec-2026 24000 CE · NFO") is not None
    assert index.search("NOPE") == [] and index.search("") == [] and index.search("   ") == []
    assert index.search("NIFTY 99999") == []


def test_the_search_field_picks_a_unique_match_and_names_an_unknown_one(qtbot: QtBot) -> None:
    field = InstrumentSearch({i.key: i for i in SMALL})
    qtbot.addWidget(field)
    seen: list[object] = []
    field.chosen.connect(seen.append)
    qtbot.keyClicks(field, "nifty 24050")
    assert field.instrument is not None and field.instrument.key == "NFO:NIFTY:2026-12-29:24050:CE"
    assert seen[-1] is field.instrument and field.problem() == ""
    field.clear()
    qtbot.keyClicks(field, "NIFTY 24000")
    assert field.instrument is None and len(field.results) == 3
    assert field.problem() == "3 instruments match: pick one from the list"
    assert field.choose_first() and field.instrument is not None and field.instrument.key == "NFO:NIFTY:2026-12-29:24000:CE"
    field.clear()
    qtbot.keyClicks(field, "ZZTOP")
    assert field.instrument is None and field.problem() == "no instrument matches “ZZTOP”"


def _master(count: int) -> list[Instrument]:
    """A Breeze-shaped master: per underlying a cash line, 5 weekly expiries, each a future and 50 strikes x CE/PE."""
    out: list[Instrument] = []
    expiries = [EXPIRY + timedelta(days=7 * k) for k in range(5)]
    n = 0
    while len(out) < count:
        name = "NIFTY" if n == 0 else f"UND{n:04d}"
        out.append(_cash(name))
        for expiry in expiries:
            out.append(_future(name, expiry))
            for step in range(50):
                for right in OptionRight:
                    out.append(_option(name, 23_000 + 50 * step, right, expiry))
        n += 1
    return out[:count]


@pytest.mark.slow
def test_search_over_a_100k_master_answers_each_keystroke_quickly(qtbot: QtBot) -> None:
    master = {i.key: i for i in _master(100_000)}
    started_at = time.perf_counter()
    field = InstrumentSearch(master)
    constructed_ms = (time.perf_counter() - started_at) * 1000
    qtbot.addWidget(field)
    # The index is built off the GUI thread: constructing the field does not wait for it.
    qtbot.waitUntil(lambda: field.ready, timeout=20_000)
    built_ms = (time.perf_counter() - started_at) * 1000
    times: list[float] = []
    for text in ("NIFTY 24000 CE", "UND0042 DEC 23500 PE", "2", "N"):
        field.clear()
        for ch in text:
            started_at = time.perf_counter()
            qtbot.keyClick(field, ch)
            times.append((time.perf_counter() - started_at) * 1000)
    field.clear()
    qtbot.keyClicks(field, "NIFTY 24000 CE 29-Dec")
    assert field.instrument is not None and field.instrument.key == "NFO:NIFTY:2026-12-29:24000:CE"
    times.sort()
    print(f"100k master: field constructed in {constructed_ms:.0f} ms, index ready in {built_ms:.0f} ms; "
          f"keystroke to results median {times[len(times) // 2]:.1f} ms, worst {times[-1]:.1f} ms")
    assert constructed_ms < 1_000
    assert times[-1] < 150, times[-5:]


def test_a_field_deleted_before_its_index_is_built_takes_nothing_down(qtbot: QtBot, monkeypatch: pytest.MonkeyPatch) -> None:
    master = {i.key: i for i in _master(SYNC_BUILD_LIMIT + 10_000)}
    raised: list[threading.ExceptHookArgs] = []
    monkeypatch.setattr(threading, "excepthook", raised.append)
    owner = QWidget()
    field = InstrumentSearch(master, owner)
    builders = [t for t in threading.enumerate() if t.name == "instrument-index"]
    assert builders and not field.ready
    # The ticket closes while the index is still being built: the field goes with it.
    shiboken6.delete(owner)
    assert not shiboken6.isValid(field)
    for thread in builders:
        thread.join(timeout=30)
        assert not thread.is_alive()
    QApplication.sendPostedEvents()
    QApplication.processEvents()
    assert raised == [], [f"{r.exc_type.__name__}: {r.exc_value}" for r in raised]


# -- reading the fields --------------------------------------------------------------------------

FUT = INSTRUMENTS[REL_FUT]  # lot 500
CASH = INSTRUMENTS[REL]


@pytest.mark.parametrize(("text", "unit", "expected"), [
    ("", QuantityUnit.LOTS, "enter a quantity in lots"),
    ("   ", QuantityUnit.UNITS, "enter a quantity in units"),
    ("0", QuantityUnit.LOTS, "quantity must be at least 1 lot"),
    ("-3", QuantityUnit.LOTS, "quantity must be positive: BUY or SELL gives the direction"),
    ("1.5", QuantityUnit.LOTS, "quantity must be a whole number of lots: “1.5”"),
    ("abc", QuantityUnit.LOTS, "quantity must be a number: “abc”"),
    ("1e30", QuantityUnit.LOTS, "write the quantity in plain digits (no exponent): “1e30”"),
    ("99999999999999999999", QuantityUnit.LOTS,
     "quantity is absurdly large (20 digits); one order takes at most 20,000 units (40 lots)"),
    ("750", QuantityUnit.UNITS, "750 units is not a whole number of lots (lot 500): 500 or 1,000"),
    ("NaN", QuantityUnit.UNITS, "quantity must be a number: “NaN”"),
])
def test_a_quantity_that_cannot_be_used_gets_a_message(text: str, unit: QuantityUnit, expected: str) -> None:
    assert parse_quantity(text, FUT, unit) == Problem(expected)


def test_quantities_are_read_in_lots_or_units_with_commas() -> None:
    assert parse_quantity("3", FUT, QuantityUnit.LOTS) == 1_500
    assert parse_quantity("1,500", FUT, QuantityUnit.UNITS) == 1_500
    assert parse_quantity("1,50,000", CASH, QuantityUnit.UNITS) == 150_000
    assert parse_quantity(" 2 ", CASH, QuantityUnit.LOTS) == 2


@pytest.mark.parametrize(("text", "expected"), [
    ("", "enter a price, or choose MARKET"),
    ("1500.03", "1,500.03 is off the tick (₹0.05): 1,500.00 or 1,500.05"),
    ("-1500", "price must be above zero"),
    ("0", "price must be above zero"),
    ("NaN", "price must be a number: “NaN”"),
    ("inf", "price must be a number: “inf”"),
    ("1e3", "write the price in plain digits (no exponent): “1e3”"),
    ("15OO", "price must be a number: “15OO”"),
    ("1500.001", "₹1500.001 is finer than one paisa"),
])
def test_a_price_that_cannot_be_used_gets_a_message_never_a_rounding(text: str, expected: str) -> None:
    assert parse_price(text, CASH) == Problem(expected)


@pytest.mark.parametrize("text", ["1500", "1,500.00", "₹1,500.00", "₹ 1,500", "Rs. 1,500", "INR 1500.0", " 1500.00 "])
def test_prices_are_accepted_as_traders_paste_them(text: str) -> None:
    assert parse_price(text, CASH) == 150_000


def test_price_steps_snap_to_the_tick_in_the_direction_of_the_step() -> None:
    assert snap_step(150_003, 5, 1, None) == 150_005
    assert snap_step(150_003, 5, -1, None) == 150_000
    assert snap_step(150_000, 5, 1, None) == 150_005
    assert snap_step(150_003, 5, 2, None) == 150_010
    assert snap_step(None, 5, 1, 150_000) == 150_000  # from nothing, the first step lands on the last price
    assert snap_step(5, 5, -3, None) == 5  # never below one tick


def test_typed_bad_inputs_show_next_to_their_field_and_block_send(desk: Ticket, qtbot: QtBot) -> None:
    t = desk.ticket
    fill(t, REL_FUT, "750", "1510", unit=QuantityUnit.UNITS)
    assert t.quantity_message.isVisible() and "not a whole number of lots" in t.quantity_message.text()
    assert not t.send_button.isEnabled() and not t.can_send()
    for text in ("", "0", "-5", "1e30", "99999999999999999999", "abc"):
        t.quantity.set_text(text)
        t.run_preview()
        assert t.quantity_message.isVisible() and t.quantity_message.text(), text
        assert t.request is None and not t.can_send()
    t.set_unit(QuantityUnit.LOTS)
    t.quantity.set_text("1")
    for text in ("1510.03", "-1", "NaN", "₹ abc"):
        t.price.set_text(text)
        t.run_preview()
        assert t.price_message.isVisible() and t.price_message.text(), text
        assert not t.can_send()
    t.price.set_text("₹1,510.00")
    t.run_preview()
    assert not t.price_message.isVisible() and t.request is not None and t.request.price == Decimal("1510.00")
    # Pasted with ₹ and commas, on RELIANCE cash within every limit: Send is on.
    fill(t, REL, "10", "₹1,500.00")
    assert t.request is not None and t.request.quantity == 10 and t.request.price == Decimal("1500.00")
    assert t.can_send() and t.send_button.isEnabled()
    # Unknown instrument text.
    t.search.clear()
    qtbot.keyClicks(t.search, "NOSUCHTHING")
    t.run_preview()
    assert t.instrument_message.isVisible() and "no instrument matches" in t.instrument_message.text()
    assert not t.can_send()


def test_lots_and_units_both_show_and_the_toggle_keeps_the_order(desk: Ticket) -> None:
    t = desk.ticket
    fill(t, REL_FUT, "3", "1510")
    assert t.quantity_info.text() == "3 lots = 1,500 units"
    t.set_unit(QuantityUnit.UNITS)
    assert t.quantity.text_() == "1500" and t.quantity_info.text() == "1,500 units = 3 lots"
    assert t.request is not None and t.request.quantity == 1_500


# -- the preview ---------------------------------------------------------------------------------


def test_several_failing_checks_show_with_values_and_limits_next_to_their_fields(desk: Ticket) -> None:
    t = desk.ticket
    fill(t, REL, "250", "1700")
    assert t.preview is not None and not t.preview.ok
    codes = [r.reason for r in t.preview.rejections]
    assert RejectReason.ORDER_QUANTITY_LIMIT in codes and RejectReason.PRICE_COLLAR in codes
    assert RejectReason.ORDER_VALUE_LIMIT in codes
    assert t.quantity_message.text() == "ORDER_QUANTITY_LIMIT  value 250 · limit 100"
    assert "PRICE_COLLAR" in t.price_message.text() and "1,700" in t.price_message.text()
    panel = t.preview_panel
    assert panel.verdict.text().startswith(f"✘ {len(codes)} of {t.preview.checks} checks fail")
    assert any(line.startswith("ORDER_VALUE_LIMIT  value") and "limit" in line for line in panel.lines)
    assert not t.send_button.isEnabled() and t.send_blocker() == f"{len(codes)} checks fail"


def test_a_passing_preview_enables_send_and_shows_the_headroom(desk: Ticket) -> None:
    t = desk.ticket
    fill(t, REL, "10", "1500")
    assert t.preview is not None and t.preview.ok
    assert t.send_button.isEnabled() and t.send_button.text() == "BUY 10 RELIANCE @ 1,500.00  (Enter)"
    assert t.preview_panel.verdict.text().startswith("✔ passes all")
    assert t.preview_panel.headroom_lines and any("desk gross" in line for line in t.preview_panel.headroom_lines)


def test_the_preview_follows_typing_at_most_once_per_throttle_interval(desk: Ticket, qtbot: QtBot) -> None:
    t = desk.ticket
    fill(t, REL, "", "1500")
    before = t.previews_run
    t.quantity.setFocus()
    qtbot.keyClicks(t.quantity, "25")  # typed without the loop running: no preview yet
    assert t.previews_run == before
    qtbot.keyClicks(t.quantity, "0")
    qtbot.waitUntil(lambda: t.previews_run > before, timeout=2000)
    assert t.previews_run == before + 1  # three keystrokes, one preview
    assert t.preview is not None and RejectReason.ORDER_QUANTITY_LIMIT in [r.reason for r in t.preview.rejections]
    qtbot.keyClick(t.quantity, Qt.Key.Key_Backspace)  # 25
    qtbot.waitUntil(lambda: t.preview is not None and t.preview.ok, timeout=2000)


def test_a_market_order_shows_the_protected_price_it_goes_out_at(desk: Ticket) -> None:
    t = desk.ticket
    fill(t, REL, "10", order_type=OrderType.MARKET)
    assert t.preview is not None and t.preview.price is not None and t.request is not None and t.request.price is None
    assert t.price_info.text() == f"goes out at ₹{t.preview.price // 100:,}.{t.preview.price % 100:02d} (protected)"
    assert t.preview.price > 150_000  # a buy is protected above the reference
    assert not t.price.isEnabled()


# -- who may send --------------------------------------------------------------------------------


def test_a_viewer_or_nobody_cannot_send(desk: Ticket, qtbot: QtBot) -> None:
    t = desk.ticket
    fill(t, REL, "10", "1500")
    assert t.can_send()
    desk.session.sign_in(VIEWER)
    assert not t.send_button.isEnabled() and "vic (viewer) may not trade" in t.send_note.text()
    qtbot.keyClick(t.quantity, Qt.Key.Key_Return)
    assert not t.send() and desk.engine.oms.orders() == []
    desk.session.sign_in(RISK)
    assert not t.can_send()
    desk.session.sign_out()
    assert not t.send_button.isEnabled() and t.send_note.text() == "sign in to send orders"
    desk.session.sign_in(ALICE)
    desk.session.lock()
    assert not t.can_send() and t.send_note.text() == "the desk is locked"


def test_enter_sends_once_and_the_answer_shows_in_the_ticket(desk: Ticket, qtbot: QtBot) -> None:
    t = desk.ticket
    fill(t, REL, "10", "1490")
    answers: list[object] = []
    t.submitted.connect(answers.append)
    t.quantity.setFocus()
    # Two Enters before the loop turns, and a held key's auto-repeat: one order.
    qtbot.keyClick(t.quantity, Qt.Key.Key_Return)
    qtbot.keyClick(t.price, Qt.Key.Key_Enter)
    QApplication.sendEvent(t.quantity, QKeyEvent(QEvent.Type.KeyPress, Qt.Key.Key_Return, Qt.KeyboardModifier.NoModifier,
                                                 "\r", True))
    assert t.sending and not t.send_button.isEnabled()
    qtbot.waitUntil(lambda: bool(answers), timeout=10_000)
    orders = desk.engine.oms.orders()
    assert len(orders) == 1 and orders[0].actor == "alice" and orders[0].quantity == 10 and orders[0].price == 149_000
    assert t.result_label.isVisible() and t.result_label.text() == f"✔ accepted: {orders[0].client_order_id}"
    assert not t.sending


def test_a_halt_after_the_last_preview_is_caught_by_enter(desk: Ticket, qtbot: QtBot) -> None:
    t = desk.ticket
    fill(t, REL, "10", "1490")
    assert t.can_send()
    desk.engine.engage_kill_switch("test", "alice", AuditSource.OPERATOR)
    # The halt came after the last preview: Enter previews again first, and the ticket refuses without a round trip.
    t._previewed = False
    assert not t.send() and desk.engine.oms.orders() == []
    assert any(line.startswith("TRADING_HALTED") for line in t.preview_panel.lines)


def test_escape_clears_the_ticket_and_says_so(desk: Ticket, qtbot: QtBot) -> None:
    t = desk.ticket
    fill(t, REL, "10", "1500")
    dismissed: list[bool] = []
    t.dismissed.connect(lambda: dismissed.append(True))
    qtbot.keyClick(t.price, Qt.Key.Key_Escape)
    assert dismissed == [True]
    assert t.search.instrument is None and t.search.text() == "" and t.quantity.text_() == "" and t.price.text_() == ""
    assert t.request is None and not t.can_send() and not t.result_label.isVisible()


def test_f_key_entry_points_set_the_side_and_focus_the_next_field(desk: Ticket, qtbot: QtBot) -> None:
    t = desk.ticket
    t.activateWindow()
    t.open_sell()
    assert t.side is Side.SELL and t.sell_button.isChecked() and t.send_button.text().startswith("SELL")
    qtbot.waitUntil(t.search.hasFocus, timeout=2000)
    t.choose(REL)
    t.open_buy()
    assert t.side is Side.BUY and t.buy_button.isChecked()
    qtbot.waitUntil(t.quantity.hasFocus, timeout=2000)


def test_prefill_close_from_a_position_double_click(desk: Ticket, qtbot: QtBot) -> None:
    t = desk.ticket
    view = PositionsView()
    qtbot.addWidget(view)
    view.close_requested.connect(t.prefill_close)
    view.model.update([
        PositionView(REL, "RELIANCE", 150, 149_000.0, 150_000, 150 * 150_000, 0, 150_000),
        PositionView(REL_FUT, "RELIANCE", -1_000, 151_500.0, 151_000, -1_000 * 151_000, 0, 500_000),
    ])
    view.show()
    qtbot.waitExposed(view)
    for key, side, unit, quantity in ((REL, Side.SELL, QuantityUnit.LOTS, "150"), (REL_FUT, Side.BUY, QuantityUnit.LOTS, "2")):
        row = view.model.row_of(key)
        assert row is not None
        index = view.proxy.mapFromSource(view.model.index(row, 0))
        rect = view.table.visualRect(index)
        # A double-click is a press and a double-click event on the same cell (QTest sends only the second).
        qtbot.mouseClick(view.table.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
        qtbot.mouseDClick(view.table.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
        assert t.search.instrument is not None and t.search.instrument.key == key
        assert (t.side, t.unit, t.quantity.text_()) == (side, unit, quantity)
        assert t.price.text_() == ("1500.00" if key == REL else "1510.00")
    t.prefill_close("NSE:NOPE", 5)
    assert "NSE:NOPE is not in the desk's instrument list" in t.instrument_message.text()


# -- screenshots ---------------------------------------------------------------------------------


def _shoot(widget: QWidget, name: str) -> Path:
    OUTPUT.mkdir(parents=True, exist_ok=True)
    path = OUTPUT / name
    assert widget.grab().save(str(path))
    return path


@pytest.mark.parametrize("dark", [True, False], ids=["dark", "light"])
def test_screenshots_of_a_failing_and_a_passing_ticket(desk: Ticket, qtbot: QtBot, qapp: QApplication, dark: bool) -> None:
    theme.apply(qapp, dark)
    try:
        t = desk.ticket
        t.resize(400, 640)
        fill(t, REL, "250", "1700")
        qtbot.wait(20)
        assert _shoot(t, f"ticket_failing_preview_{'dark' if dark else 'light'}.png").stat().st_size > 0
        fill(t, REL, "100", "1500")
        t.set_side(Side.SELL)
        t.run_preview()
        assert t.can_send()
        qtbot.wait(20)
        assert _shoot(t, f"ticket_ok_{'dark' if dark else 'light'}.png").stat().st_size > 0
    finally:
        theme.apply(qapp, True)


def test_an_actor_of_another_name_is_refused_by_the_engine_even_if_the_ticket_let_it(desk: Ticket, qtbot: QtBot) -> None:
    # The ticket names the signed-in operator; the engine checks the operator it is handed.
    t = desk.ticket
    fill(t, REL, "10", "1490")
    assert t.request is not None and t.request.actor == "alice"
    mallory = Actor.with_role("mallory", Role.TRADER)
    result = await_in_qt(qtbot, desk.engine.submit(t.request, operator=mallory))
    assert not result.accepted and result.rejection is not None and result.rejection.reason is RejectReason.NOT_AUTHORISED


def test_enter_in_the_instrument_field_picks_the_instrument_and_never_sends(desk: Ticket, qtbot: QtBot) -> None:
    t = desk.ticket
    fill(t, REL, "10", "1500")
    assert t.can_send()
    t.search.clear()
    t.search.setFocus()
    qtbot.keyClicks(t.search, "reliance")
    assert t.search.instrument is None and len(t.search.results) == 2  # the cash line and the future
    popup = t.search.completer_.popup()
    if popup is not None:
        popup.hide()
    qtbot.keyClick(t.search, Qt.Key.Key_Return)
    assert t.search.instrument is not None and t.search.instrument.key == REL
    qtbot.waitUntil(t.quantity.hasFocus, timeout=2000)
    assert desk.engine.oms.orders() == [] and not t.sending


def test_a_label_chosen_in_the_popup_picks_its_instrument(qtbot: QtBot) -> None:
    field = InstrumentSearch({i.key: i for i in SMALL})
    qtbot.addWidget(field)
    qtbot.keyClicks(field, "NIFTY 24000")
    label = "NIFTY 29-Dec-2026 24000 PE · NFO"
    assert label in field.completer_.model().stringList()  # type: ignore[union-attr]
    field.completer_.activated.emit(label)
    assert field.instrument is not None and field.instrument.key == "NFO:NIFTY:2026-12-29:24000:PE"
    assert field.text() == label


def test_up_and_down_step_the_price_by_the_tick_and_the_quantity_by_a_lot(desk: Ticket, qtbot: QtBot) -> None:
    t = desk.ticket
    fill(t, REL_FUT, "3", "1510.03", unit=QuantityUnit.UNITS)
    assert "off the tick" in t.price_message.text()  # typed: a message, not a silent rounding
    qtbot.keyClick(t.price, Qt.Key.Key_Up)
    assert t.price.text_() == "1510.05"
    qtbot.keyClick(t.price, Qt.Key.Key_Down)
    qtbot.keyClick(t.price, Qt.Key.Key_Down)
    assert t.price.text_() == "1509.95"
    qtbot.keyClick(t.quantity, Qt.Key.Key_Up)  # 3 units of a 500 lot: up to the next whole lot
    assert t.quantity.text_() == "500"
    qtbot.keyClick(t.quantity, Qt.Key.Key_Up)
    assert t.quantity.text_() == "1000"
    t.set_unit(QuantityUnit.LOTS)
    assert t.quantity.text_() == "2"
    qtbot.keyClick(t.quantity, Qt.Key.Key_Down)
    qtbot.keyClick(t.quantity, Qt.Key.Key_Down)
    assert t.quantity.text_() == "1"  # never below one lot
