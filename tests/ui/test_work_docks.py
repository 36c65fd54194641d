"""The ticket, the limits panel and the audit viewer inside the desk window: F1/F2, the blotter's and the
positions' hooks, roles, and screenshots of the whole desk with them (real desk, paper broker, offscreen)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import qasync
import shiboken6
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QApplication
from pytestqt.qtbot import QtBot

from app.domain.audit import AuditEventType
from app.domain.orders import OrderSource, Side
from app.engine.results import SubmitResult
from app.store.chain_key import ChainKeys
from app.store.checkpoints import checkpoint_file
from app.ui import theme
from app.ui.modify_dialog import ModifyDialog
from app.ui.order_story import OrderStory
from app.ui.work_docks import WorkDocks
from tests.ui.operator_desk import (
    OUTPUT,
    OperatorDesk,
    close_operator_desk,
    open_operator_desk,
    resting_orders,
)


@pytest.fixture
def run(qtbot: QtBot, qloop: qasync.QEventLoop, tmp_path: Path) -> Iterator[OperatorDesk]:
    desk = open_operator_desk(qtbot, tmp_path)
    try:
        yield desk
    finally:
        close_operator_desk(qtbot, desk)


def _docks(run: OperatorDesk, home: Path) -> WorkDocks:
    assert run.desk.writer is not None
    return run.window.add_work_docks(run.desk.writer.engine, limits_path=home / "limits.toml", keys=ChainKeys(),
                                     checkpoint_files=(checkpoint_file(home),))


def test_f1_and_f2_open_the_ticket_for_a_signed_in_operator_and_never_over_the_lock_screen(
        run: OperatorDesk, qtbot: QtBot, tmp_path: Path) -> None:
    work = _docks(run, tmp_path)
    # Nobody signed in: the lock screen covers the desk and the keys do nothing.
    work.ticket.set_side(Side.SELL)
    qtbot.keyClick(run.window.orders.table, Qt.Key.Key_F1)
    assert work.ticket.side is Side.SELL
    run.sign_in(qtbot, "tom")
    work.ticket_dock.hide()
    qtbot.keyClick(run.window.orders.table, Qt.Key.Key_F1)
    assert work.ticket.side is Side.BUY and work.ticket_dock.isVisible()
    qtbot.keyClick(run.window.orders.table, Qt.Key.Key_F2)
    assert work.ticket.side is Side.SELL
    run.window.lock("test")
    qtbot.keyClick(run.window.orders.table, Qt.Key.Key_F1)
    assert work.ticket.side is Side.SELL


def test_a_trader_sends_from_the_ticket_in_the_window_and_the_order_is_theirs(
        run: OperatorDesk, qtbot: QtBot, tmp_path: Path) -> None:
    work = _docks(run, tmp_path)
    resting_orders(qtbot, run, 0)
    run.sign_in(qtbot, "tom")
    work.open_ticket(buy=True)
    key = "NSE:TCS"
    work.ticket.choose(key)
    last = run.engine.market_data.last_price(key)
    assert last is not None
    tick = run.engine.instruments[key].tick_size
    work.ticket.quantity.set_text("1")
    work.ticket.price.set_text(f"{(last * 98 // 100) // tick * tick / 100:.2f}")
    work.ticket.run_preview()
    assert work.ticket.can_send(), work.ticket.send_blocker()
    results: list[SubmitResult] = []
    work.ticket.submitted.connect(results.append)
    assert work.ticket.send()
    qtbot.waitUntil(lambda: bool(results), timeout=10_000)
    assert results[0].accepted, results[0]
    assert results[0].client_order_id is not None
    order = run.engine.oms.get(results[0].client_order_id)
    assert order is not None and order.actor == "tom" and order.source is OrderSource.TICKET


def test_a_viewer_sees_the_ticket_but_cannot_send(run: OperatorDesk, qtbot: QtBot, tmp_path: Path) -> None:
    work = _docks(run, tmp_path)
    resting_orders(qtbot, run, 0)
    run.sign_in(qtbot, "vic")
    work.ticket.choose("NSE:TCS")
    work.ticket.quantity.set_text("1")
    work.ticket.run_preview()
    assert not work.ticket.can_send() and not work.ticket.send()
    assert work.limits is None, "built only when its tab is first shown"
    work.limits_dock.raise_()
    qtbot.waitUntil(lambda: work.limits is not None, timeout=5000)
    assert work.limits is not None and not work.limits.editable


def test_a_position_double_clicked_prefills_the_closing_order(run: OperatorDesk, qtbot: QtBot, tmp_path: Path) -> None:
    work = _docks(run, tmp_path)
    resting_orders(qtbot, run, 0)
    run.sign_in(qtbot, "tom")
    run.window.positions.close_requested.emit("NSE:INFY", 3)
    assert work.ticket.side is Side.SELL and work.ticket.search.instrument is not None
    assert work.ticket.search.instrument.key == "NSE:INFY" and work.ticket_dock.isVisible()


def test_the_blotter_opens_an_orders_story_and_its_modify_dialog(run: OperatorDesk, qtbot: QtBot, tmp_path: Path) -> None:
    _docks(run, tmp_path)
    [cid] = resting_orders(qtbot, run, 1)
    run.sign_in(qtbot, "tom")
    run.window.orders.story_requested.emit(cid)
    stories = run.window.findChildren(OrderStory)
    assert len(stories) == 1
    story = stories[0]
    qtbot.waitUntil(lambda: bool(story.records), timeout=10_000)
    events = [record.event_type for record in story.records]
    assert AuditEventType.GATE_ACCEPTED in events and AuditEventType.ORDER_SENT in events
    run.window.orders.modify_requested.emit(cid)
    dialogs = run.window.findChildren(ModifyDialog)
    assert len(dialogs) == 1 and dialogs[0].order.client_order_id == cid


@pytest.mark.parametrize("dark", [True, False], ids=["dark", "light"])
def test_screenshot_of_the_desk_with_its_work_docks(
        run: OperatorDesk, qtbot: QtBot, qapp: QApplication, tmp_path: Path, dark: bool) -> None:
    work = _docks(run, tmp_path)
    resting_orders(qtbot, run, 4)
    run.sign_in(qtbot, "tom")
    theme.apply(qapp, dark)
    run.window.set_dark(dark)
    work.open_ticket(buy=True)
    work.ticket.choose("NSE:RELIANCE")
    work.ticket.quantity.set_text("2")
    last = run.engine.market_data.last_price("NSE:RELIANCE")
    assert last is not None
    work.ticket.price.set_text(f"{last / 100:.2f}")
    work.ticket.run_preview()
    for _ in range(3):
        run.window.frame()
        qtbot.wait(50)
    OUTPUT.mkdir(exist_ok=True)
    assert run.window.grab().save(str(OUTPUT / f"desk_work_docks_{'dark' if dark else 'light'}.png"))


def test_the_work_docks_start_tabbed_with_the_blotter_and_come_back_where_the_trader_left_them(
        run: OperatorDesk, qtbot: QtBot, tmp_path: Path) -> None:
    work = _docks(run, tmp_path)
    window = run.window
    assert window.dockWidgetArea(work.ticket_dock) is Qt.DockWidgetArea.RightDockWidgetArea
    assert work.limits_dock in window.tabifiedDockWidgets(window.orders_dock)
    assert work.audit_dock in window.tabifiedDockWidgets(window.orders_dock)
    assert not work.ticket_dock.isHidden() and not work.limits_dock.isHidden()
    # The trader moves the ticket to the left and closes the audit viewer; the next window restores both.
    window.addDockWidget(Qt.DockWidgetArea.LeftDockWidgetArea, work.ticket_dock)
    assert work.audit_dock is not None
    work.audit_dock.hide()
    window.save_layout()
    work.close()
    again = open_operator_desk(qtbot, tmp_path / "again", people=("asha",))
    try:
        (tmp_path / "desk-window.ini").replace(tmp_path / "again" / "desk-window.ini")
        from app.ui.main_window import DeskWindow
        restored = DeskWindow(settings_path=tmp_path / "again" / "desk-window.ini", global_hotkey=False, actor="os-user")
        qtbot.addWidget(restored)
        restored.attach(again.engine)
        assert again.desk.writer is not None
        docks = restored.add_work_docks(again.desk.writer.engine, limits_path=None)
        assert restored.dockWidgetArea(docks.ticket_dock) is Qt.DockWidgetArea.LeftDockWidgetArea
        assert docks.audit_dock is not None and docks.audit_dock.isHidden() and not docks.limits_dock.isHidden()
        restored.dispose()
    finally:
        close_operator_desk(qtbot, again)


def test_an_account_disabled_behind_the_windows_back_can_no_longer_send_modify_or_change_limits(
        run: OperatorDesk, qtbot: QtBot, tmp_path: Path) -> None:
    work = _docks(run, tmp_path)
    [cid] = resting_orders(qtbot, run, 1)
    run.sign_in(qtbot, "tom")
    work.ticket.choose("NSE:TCS")
    work.ticket.quantity.set_text("1")
    last = run.engine.market_data.last_price("NSE:TCS")
    assert last is not None
    tick = run.engine.instruments["NSE:TCS"].tick_size
    work.ticket.price.set_text(f"{(last * 97 // 100) // tick * tick / 100:.2f}")
    work.ticket.run_preview()
    assert work.ticket.can_send(), work.ticket.send_blocker()
    order = run.engine.oms.get(cid)
    assert order is not None
    dialog = work.open_modify(cid)
    assert dialog is not None
    # An administrator disables tom elsewhere (the CLI, another window) before the timer's re-check.
    admin = run.directory.authenticate("asha", "asha admin phrase 1")
    run.directory.disable("tom", by=admin)
    orders_before = len(run.engine.oms.working())
    assert work.ticket.send()
    qtbot.waitUntil(lambda: not work.ticket.sending, timeout=10_000)
    assert "no longer the operator" in work.ticket.result_label.text()
    assert len(run.engine.oms.working()) == orders_before
    # The check that refused the send also signed tom out, and closed the modify dialog opened in his seat.
    assert run.window.session.actor is None
    assert not shiboken6.isValid(dialog) or not dialog.isVisible()
