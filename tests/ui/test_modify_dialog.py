"""The modify dialog over a real engine and the paper broker (frozen clock, no random walk), offscreen."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import qasync
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QApplication
from pytestqt.qtbot import QtBot

from app.domain.actors import Actor
from app.domain.orders import Order, Side
from app.domain.rejections import RejectReason
from app.engine.engine import Engine
from app.engine.results import ModifyResult
from app.ui import theme
from app.ui.modify_dialog import ModifyDialog
from app.ui.session import OperatorSession
from tests.engine.ticket_desk import ALICE, BOB, RISK, make_engine, started, ticket
from tests.ui.conftest import await_in_qt

OUTPUT = Path(__file__).resolve().parents[1] / "output"


@dataclass
class Working:
    engine: Engine
    order: Order
    session: OperatorSession


@pytest.fixture
def working(qtbot: QtBot, qloop: qasync.QEventLoop) -> Iterator[Working]:
    """Alice's resting buy of 10 RELIANCE at ₹1,490 (the reference is ₹1,500), acknowledged by the broker."""
    engine = await_in_qt(qtbot, started(make_engine()[0]))
    result = await_in_qt(qtbot, engine.submit(ticket(Side.BUY, 10, "1490"), operator=ALICE))
    assert result.accepted and result.client_order_id is not None
    order = engine.oms.get(result.client_order_id)
    assert order is not None
    qtbot.waitUntil(lambda: order.broker_order_id is not None, timeout=5000)
    session = OperatorSession()
    session.sign_in(ALICE)
    yield Working(engine, order, session)
    await_in_qt(qtbot, engine.stop())


def _dialog(qtbot: QtBot, run: Working) -> ModifyDialog:
    dialog = ModifyDialog(run.engine, run.order, run.session)
    qtbot.addWidget(dialog)
    dialog.show()
    qtbot.waitExposed(dialog)
    return dialog


def test_a_new_price_passes_the_preview_and_the_engine_modifies_the_order(working: Working, qtbot: QtBot) -> None:
    dialog = _dialog(qtbot, working)
    assert dialog.blocker() == "nothing changed" and not dialog.modify_button.isEnabled()
    dialog.price.set_text("1,495.00")
    dialog.run_preview()
    assert dialog.blocker() == "" and dialog.modify_button.isEnabled()
    answers: list[ModifyResult] = []
    dialog.answered.connect(answers.append)
    # Enter twice before the loop turns: one modify.
    qtbot.keyClick(dialog.price, Qt.Key.Key_Return)
    qtbot.keyClick(dialog.quantity, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: bool(answers), timeout=10_000)
    assert len(answers) == 1 and answers[0].ok, answers
    assert working.order.price == 149_500 and working.order.quantity == 10
    assert dialog.result_label.isVisible() and dialog.result_label.text().startswith("✔ modified")


def test_bad_inputs_get_messages_next_to_their_fields(working: Working, qtbot: QtBot) -> None:
    dialog = _dialog(qtbot, working)
    cases = [
        ("quantity", "0", "quantity must be at least 1 unit"),
        ("quantity", "-5", "quantity must be positive: BUY or SELL gives the direction"),
        ("quantity", "1e30", "write the quantity in plain digits (no exponent): “1e30”"),
        ("price", "1490.03", "1,490.03 is off the tick (₹0.05): 1,490.00 or 1,490.05"),
        ("price", "NaN", "price must be a number: “NaN”"),
        ("price", "-1", "price must be above zero"),
    ]
    for field, text, message in cases:
        dialog.quantity.set_text("10")
        dialog.price.set_text("1490")
        (dialog.quantity if field == "quantity" else dialog.price).set_text(text)
        dialog.run_preview()
        label = dialog.quantity_message if field == "quantity" else dialog.price_message
        assert label.isVisible() and label.text() == message, (text, label.text())
        assert not dialog.modify_button.isEnabled()


def test_a_price_outside_the_collar_is_refused_before_any_round_trip(working: Working, qtbot: QtBot) -> None:
    dialog = _dialog(qtbot, working)
    dialog.price.set_text("1700")
    dialog.run_preview()
    assert dialog.preview is not None and [r.reason for r in dialog.preview.rejections] == [RejectReason.PRICE_COLLAR]
    assert dialog.price_message.text().startswith("PRICE_COLLAR")
    assert not dialog.modify_button.isEnabled() and not dialog.submit()
    assert working.order.price == 149_000


@pytest.mark.parametrize("actor", [BOB, RISK], ids=["another trader", "risk officer"])
def test_only_the_orders_own_trader_may_modify_it(working: Working, qtbot: QtBot, actor: Actor) -> None:
    working.session.sign_in(actor)
    dialog = _dialog(qtbot, working)
    dialog.price.set_text("1495")
    dialog.run_preview()
    assert not dialog.modify_button.isEnabled() and dialog.note.isVisible()
    assert not dialog.submit() and working.order.price == 149_000


@pytest.mark.parametrize("dark", [True, False], ids=["dark", "light"])
def test_screenshot_of_a_modify_with_a_failing_check(working: Working, qtbot: QtBot, qapp: QApplication, dark: bool) -> None:
    theme.apply(qapp, dark)
    try:
        dialog = _dialog(qtbot, working)
        dialog.price.set_text("1700")
        dialog.quantity.set_text("15")
        dialog.run_preview()
        qtbot.wait(20)
        OUTPUT.mkdir(parents=True, exist_ok=True)
        assert dialog.grab().save(str(OUTPUT / f"modify_dialog_{'dark' if dark else 'light'}.png"))
    finally:
        theme.apply(qapp, True)


def test_the_preview_counts_the_orders_new_terms_instead_of_its_old_ones_not_beside_them(
        qtbot: QtBot, qloop: qasync.QEventLoop) -> None:
    # Desk gross capped at ₹1,40,000 with a working buy of 90 @ ₹1,490 (₹1,34,100): a preview that
    # added the new terms to the working order would refuse even a smaller quantity.
    engine = await_in_qt(qtbot, started(make_engine(desk={"max_gross_exposure_inr": 140_000, "max_net_exposure_inr": 140_000})[0]))
    try:
        result = await_in_qt(qtbot, engine.submit(ticket(Side.BUY, 90, "1490"), operator=ALICE))
        assert result.accepted and result.client_order_id is not None
        order = engine.oms.get(result.client_order_id)
        assert order is not None
        qtbot.waitUntil(lambda: order.broker_order_id is not None, timeout=5000)
        session = OperatorSession()
        session.sign_in(ALICE)
        dialog = _dialog(qtbot, Working(engine, order, session))
        dialog.quantity.set_text("80")
        dialog.run_preview()
        assert dialog.preview is not None and dialog.preview.ok, dialog.preview
        assert dialog.modify_button.isEnabled()
        dialog.quantity.set_text("95")
        dialog.run_preview()
        assert dialog.preview is not None
        assert RejectReason.GROSS_EXPOSURE_LIMIT in [r.reason for r in dialog.preview.rejections]
        assert not dialog.modify_button.isEnabled()
    finally:
        await_in_qt(qtbot, engine.stop())
