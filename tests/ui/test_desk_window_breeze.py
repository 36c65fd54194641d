"""The desk window on a Breeze desk (the local emulator): a session that ends mid-day brings up the login by itself.

The engine runs on a qasync loop over the test's QApplication (``qloop``); the window's frame timer
and the engine's tasks both run while ``qtbot.waitUntil`` processes events. The emulator serves on
its own thread. Nothing here calls ``frame()`` or ``open_login()`` by hand: the window finds the
expired session itself.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import pytest
import qasync
from PySide6.QtCore import QPoint, QRect, Qt
from PySide6.QtGui import QColor, QPainter, QPixmap
from PySide6.QtWidgets import QDialog, QWidget
from pytestqt.qtbot import QtBot

from app.domain.actors import Actor, Permission, Role
from app.domain.audit import AuditEventType
from app.domain.events import Alert, AlertLevel
from app.domain.orders import OrderSource, Side
from app.domain.requests import OrderRequest
from app.domain.trading_state import TradingState
from app.ui.breeze_login import BreezeLoginDialog
from app.ui.main_window import DeskWindow
from tests.breeze_emulator import BreezeEmulator
from tests.brokers.breeze.harness import Desk, running_desk
from tests.ui.conftest import await_in_qt

OUTPUT = Path(__file__).resolve().parents[1] / "output"
NEW_TOKEN = "99887766"
# The frame timer runs at 10 Hz; the dialog must come up on the first frame or two after the expiry.
WITHIN_FRAMES = 3

pytestmark = pytest.mark.slow


@dataclass
class Running:
    window: DeskWindow
    desk: Desk
    emulator: BreezeEmulator


@pytest.fixture
def emulator() -> Iterator[BreezeEmulator]:
    with BreezeEmulator(tick_interval_s=0.05) as emu:
        yield emu


@pytest.fixture
def running(tmp_path: Path, qtbot: QtBot, qloop: qasync.QEventLoop, emulator: BreezeEmulator) -> Iterator[Running]:
    window = DeskWindow(settings_path=tmp_path / "desk-window.ini", global_hotkey=False, actor="asha")
    # The login page's address carries the API key: it is offered to a signed-in operator who may trade or re-arm.
    window.session.sign_in(Actor.with_role("asha", Role.ADMIN))
    qtbot.addWidget(window)
    window.resize(1500, 920)
    window.show()
    desk_context = running_desk(emulator, tmp_path)
    desk = await_in_qt(qtbot, desk_context.__aenter__())
    try:
        window.attach(desk.engine)
        qtbot.waitUntil(lambda: window.kill_bar.state_banner.text() == "ACTIVE", timeout=5000)
        yield Running(window, desk, emulator)
    finally:
        window.dispose()
        # Stops the engine and checks that the audit chain verifies.
        await_in_qt(qtbot, desk_context.__aexit__(None, None, None))


def _expire_mid_day(qtbot: QtBot, run: Running) -> None:
    """The emulator ends the session; the desk learns it at its next call (an order) and halts."""
    engine = run.desk.engine
    run.emulator.expire_session()
    key = "NSE:RELIANCE"
    instrument = engine.instruments[key]
    last = engine.market_data.last_price(key)
    assert last is not None
    price = last - 10 * instrument.tick_size
    price -= price % instrument.tick_size
    request = OrderRequest(key, Side.BUY, instrument.lot_size, Decimal(price) / 100, source=OrderSource.STRATEGY, actor="test")
    assert not await_in_qt(qtbot, engine.submit(request)).accepted
    assert engine.session_expired
    assert engine.trading_state is TradingState.HALTED and "session expired" in engine.halt_reason


def _login_dialog(qtbot: QtBot, window: DeskWindow) -> BreezeLoginDialog:
    """The login dialog, once the window has opened it by itself within a few frames."""
    frames_at_expiry = window.frames
    qtbot.waitUntil(lambda: window._login is not None and window._login.isVisible(), timeout=5000)
    assert window.frames - frames_at_expiry <= WITHIN_FRAMES, "the dialog waited for more than a few frames"
    dialog = window._login
    assert dialog is not None
    return dialog


def _listed(window: DeskWindow, level: AlertLevel, component: str, says: str) -> list[Alert]:
    """Alerts shown in the window's alerts panel (not only raised on the bus)."""
    model = window.alerts.model
    alerts = [model.alert(row) for row in range(model.rowCount())]
    return [a for a in alerts if a.level is level and a.component == component and says in a.message]


def _with_dialog(window: DeskWindow, dialog: QWidget) -> QPixmap:
    """The window with the dialog drawn where it sits (a dialog is its own top-level window: ``window.grab()`` omits it)."""
    picture = window.grab()
    at = dialog.mapToGlobal(QPoint(0, 0)) - window.mapToGlobal(QPoint(0, 0))
    shot = dialog.grab()
    if not picture.rect().contains(QRect(at, shot.size())):
        # Offscreen there is no window manager to place it: centre it as one would.
        at = QPoint((picture.width() - shot.width()) // 2, (picture.height() - shot.height()) // 3)
    painter = QPainter(picture)
    # As a window manager shows a modal dialog: the window behind dimmed, the dialog framed.
    painter.fillRect(picture.rect(), QColor(0, 0, 0, 110))
    painter.drawPixmap(at, shot)
    painter.setPen(window.palette().highlight().color())
    painter.drawRect(QRect(at, shot.size()).adjusted(-1, -1, 0, 0))
    painter.end()
    return picture


def test_a_session_ending_mid_day_opens_the_login_once_and_a_new_token_renews_it_without_rearming(
    running: Running, qtbot: QtBot,
) -> None:
    window, engine = running.window, running.desk.engine
    _expire_mid_day(qtbot, running)
    dialog = _login_dialog(qtbot, window)
    # Not modal: the KILL button stays clickable while the trader logs in.
    assert not dialog.isModal() and dialog.parent() is window
    assert "session expired" in dialog.reason_label.text()
    url = engine.broker_login_url()
    assert url is not None and running.emulator.api_key in url

    # The desk tells the trader why it stopped: the bar, and a banner or alert.
    qtbot.waitUntil(lambda: window.kill_bar.state_banner.text() == "HALTED", timeout=2000)
    assert "session expired" in window.kill_bar.state_detail.text()
    assert "by broker" in window.kill_bar.state_detail.text()
    # The whole reason is wider than the bar leaves it: it ends in "…" rather than cut mid-word, whole in the tooltip.
    detail = window.kill_bar.state_detail
    assert detail.elided().endswith("…") and detail.text().startswith(detail.elided()[:-1])
    assert detail.toolTip() == detail.text()
    qtbot.waitUntil(lambda: bool(_listed(window, AlertLevel.CRITICAL, "broker", "session ended")), timeout=5000)
    assert window.fault_banner.isVisible() and "session ended" in window.fault_banner.text()

    # Frames go on while the dialog is open, and do not open a second one.
    frames = window.frames
    qtbot.waitUntil(lambda: window.frames >= frames + 5, timeout=5000)
    assert window._login is dialog and dialog.isVisible()
    assert window.findChildren(BreezeLoginDialog) == [dialog]

    # Until a new session exists the desk cannot be re-armed, and the status bar says the session is gone.
    with pytest.raises(ValueError, match="log in again"):
        await_in_qt(qtbot, engine.rearm(Actor("asha", frozenset({Permission.REARM})), "too early"))
    assert "session expired" in window.status.texts()["broker"]

    OUTPUT.mkdir(exist_ok=True)
    window.frame()
    assert _with_dialog(window, dialog).save(str(OUTPUT / "desk_login_expired.png"))

    # The trader logged in at ICICI and pastes the new token.
    running.emulator.new_session(NEW_TOKEN)
    dialog.token_edit.setText(NEW_TOKEN)
    qtbot.mouseClick(dialog.login_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not dialog.isVisible(), timeout=30_000)
    assert dialog.result() == QDialog.DialogCode.Accepted
    assert not engine.session_expired
    await_in_qt(qtbot, running.desk.audited(AuditEventType.SESSION_RENEWED))
    qtbot.waitUntil(lambda: bool(_listed(window, AlertLevel.INFO, "desk", "re-arm to trade")), timeout=5000)

    # A new session does not re-arm: the desk stays HALTED, frames on, and no dialog comes back.
    frames = window.frames
    qtbot.waitUntil(lambda: window.frames >= frames + 5, timeout=5000)
    assert engine.trading_state is TradingState.HALTED
    assert window.kill_bar.state_banner.text() == "HALTED" and window.kill_bar.rearm_button.isEnabled()
    assert not dialog.isVisible()
    assert window.findChildren(BreezeLoginDialog) == [dialog], "only one login dialog was ever opened"
    # The renewed session serves calls again.
    await_in_qt(qtbot, engine.broker_positions())


def test_f12_on_the_open_login_dialog_engages_the_kill_switch(running: Running, qtbot: QtBot) -> None:
    window, engine, desk = running.window, running.desk.engine, running.desk
    _expire_mid_day(qtbot, running)
    dialog = _login_dialog(qtbot, window)
    assert engine.kill_switch.last is None
    dialog.token_edit.setFocus()

    # The dialog has the keyboard: the chord still reaches the kill switch.
    qtbot.keyClick(dialog, Qt.Key.Key_F12)
    assert engine.trading_state is TradingState.HALTED
    report = engine.kill_switch.last
    assert report is not None, "F12 on a desk already halted by the expiry still engages the kill switch"
    assert report.reason == "shortcut F12" and report.actor == "asha"
    # The press is what the desk now shows and stores as the halt: by asha, not the earlier expiry.
    assert engine.halt_reason == "kill switch: shortcut F12" and engine.trading_state_actor == "asha"
    assert any(a.level is AlertLevel.CRITICAL and a.component == "kill_switch" and "shortcut F12" in a.message
               for a in desk.alerts)
    assert dialog.isVisible(), "the chord halts; it does not dismiss the login"

    # The sweep runs (nothing was working) and reports; the window shows the alert and the sweep's end.
    assert await_in_qt(qtbot, engine.kill_switch.wait()) is report and report.done
    await_in_qt(qtbot, desk.audited(AuditEventType.KILL_SWITCH_ENGAGED))
    qtbot.waitUntil(lambda: bool(_listed(window, AlertLevel.CRITICAL, "kill_switch", "shortcut F12")), timeout=5000)
    qtbot.waitUntil(lambda: window.kill_bar.sweep_label.text().startswith("sweep done"), timeout=5000)
    assert window.kill_bar.state_banner.text() == "HALTED"
    assert window.findChildren(BreezeLoginDialog) == [dialog]
    dialog.reject()
