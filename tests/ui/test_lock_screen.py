"""The lock screen: it covers the desk but never the kill switch; unlock, switch, sign out, idle lock; all audited.

A real desk (store, paper broker, engine) under the window; the operator directory sits on the
desk's store with a cheap hasher, a frozen clock and an in-memory audit sink.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import qasync
from PySide6.QtCore import QEvent, QPointF, Qt
from PySide6.QtGui import QMouseEvent
from PySide6.QtWidgets import QApplication, QWidget
from pytestqt.qtbot import QtBot

from app.domain.actors import Actor, Role
from app.domain.audit import AuditEventType
from app.domain.trading_state import TradingState
from app.ui import theme
from tests.support.calendar import cover_today
from tests.ui.conftest import await_in_qt
from tests.ui.operator_desk import (
    OUTPUT,
    PASSWORDS,
    OperatorDesk,
    close_operator_desk,
    open_operator_desk,
    resting_orders,
)


class FakeMonotonic:
    """The idle watch's clock, moved by the test."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def idle_clock() -> FakeMonotonic:
    return FakeMonotonic()


@pytest.fixture
def run(tmp_path: Path, qtbot: QtBot, qloop: qasync.QEventLoop, idle_clock: FakeMonotonic) -> Iterator[OperatorDesk]:
    desk = open_operator_desk(qtbot, cover_today(tmp_path / "home"), idle_lock_s=60, idle_clock=idle_clock)
    yield desk
    close_operator_desk(qtbot, desk)


def covered(run: OperatorDesk) -> bool:
    """The desk's content is under the lock screen and takes no input; the kill-switch bar is above it."""
    window = run.window
    return (window.lock_screen.isVisible() and not window.orders_dock.isEnabled() and not window.positions_dock.isEnabled()
            and window.kill_bar.kill_button.isVisible() and window.kill_bar.kill_button.isEnabled()
            and window.lock_screen.geometry().top() >= window.kill_bar.mapTo(window, window.kill_bar.rect().bottomLeft()).y())


def test_ctrl_l_locks_and_the_kill_switch_on_the_lock_screen_halts_and_sweeps(
    run: OperatorDesk, qtbot: QtBot, monkeypatch: pytest.MonkeyPatch,
) -> None:
    window = run.window
    run.sign_in(qtbot, "tom")
    ids = resting_orders(qtbot, run, 3)
    assert not covered(run)
    qtbot.waitUntil(lambda: window.orders.model.counts()["working"] == 3, timeout=5000)
    window.orders.table.selectAll()
    qtbot.keyClick(window.orders.table, Qt.Key.Key_L, Qt.KeyboardModifier.ControlModifier)
    assert window.session.locked and covered(run)
    qtbot.waitUntil(lambda: AuditEventType.SCREEN_LOCKED in run.sink.events(), timeout=5000)
    payload, actor = run.sink.last(AuditEventType.SCREEN_LOCKED)
    assert actor == "tom" and "operator" in payload["reason"]
    assert window.kill_bar.operator_label.text() == "tom · trader · locked"
    # Delete aimed at the (disabled, all selected) blotter under the lock screen: no cancel asked for, none
    # started that could land later, every order still working before the kill switch below cancels them.
    spawned: list[str] = []
    asked: list[list[str]] = []
    window.orders.cancel_requested.connect(asked.append)
    monkeypatch.setattr(window, "spawn", lambda coro, what: (spawned.append(what), coro.close()))
    qtbot.keyClick(window.orders.table, Qt.Key.Key_Delete)
    assert asked == [] and spawned == [] and len(run.engine.oms.working()) == 3
    monkeypatch.undo()
    OUTPUT.mkdir(exist_ok=True)
    window.grab().save(str(OUTPUT / "lock_screen_dark.png"))

    qtbot.mouseClick(window.kill_bar.kill_button, Qt.MouseButton.LeftButton)
    assert run.engine.trading_state is TradingState.HALTED
    assert run.engine.halt_reason == "kill switch: kill button on the locked screen"
    assert run.engine.trading_state_actor == "tom"
    await_in_qt(qtbot, run.engine.kill_switch.wait())
    qtbot.waitUntil(lambda: not run.engine.oms.working(), timeout=10_000)
    assert all(run.engine.oms.get(i).status.name == "CANCELLED" for i in ids)  # type: ignore[union-attr]
    qtbot.waitUntil(lambda: window.kill_bar.sweep_label.text().startswith("sweep done"), timeout=10_000)
    assert window.kill_bar.state_banner.text() == "HALTED" and window.session.locked
    window.frame()
    window.grab().save(str(OUTPUT / "lock_screen_halted_dark.png"))
    theme.apply(QApplication.instance(), False)  # type: ignore[arg-type]
    window.set_dark(False)
    QApplication.processEvents()
    window.grab().save(str(OUTPUT / "lock_screen_halted_light.png"))
    window.set_dark(True)


@pytest.mark.parametrize("chord", ["F12", "Ctrl+Shift+K"])
def test_the_kill_chords_work_with_focus_in_the_lock_screens_password_field(run: OperatorDesk, qtbot: QtBot, chord: str) -> None:
    run.sign_in(qtbot, "vic")
    run.window.lock("test")
    field = run.window.lock_screen.password_edit
    field.setFocus()
    key, modifiers = (Qt.Key.Key_F12, Qt.KeyboardModifier.NoModifier) if chord == "F12" else (
        Qt.Key.Key_K, Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier)
    qtbot.keyClick(field, key, modifiers)
    assert run.engine.trading_state is TradingState.HALTED
    assert field.text() == ""


def test_the_kill_switch_works_when_nobody_is_signed_in(run: OperatorDesk, qtbot: QtBot) -> None:
    window = run.window
    assert window.session.actor is None and covered(run)
    assert window.lock_screen.title.text() == "Nobody is signed in"
    qtbot.mouseClick(window.kill_bar.kill_button, Qt.MouseButton.LeftButton)
    assert run.engine.trading_state is TradingState.HALTED
    # Nobody signed in: the record names the OS user, as `main.py panic` does.
    assert run.engine.trading_state_actor == "os-user"


def test_only_the_same_operators_password_unlocks_and_both_are_audited(run: OperatorDesk, qtbot: QtBot) -> None:
    window = run.window
    tom = run.sign_in(qtbot, "tom")
    window.lock("test")
    screen = window.lock_screen
    screen.password_edit.setText(PASSWORDS["rita"])  # another operator's password is not tom's
    assert await_in_qt(qtbot, screen.attempt()) is None
    assert window.session.locked and screen.message.text() == "wrong name or password" and screen.password_edit.text() == ""
    payload, actor = run.sink.last(AuditEventType.LOGIN_FAILED)
    assert actor == "tom" and payload["purpose"] == "unlock"
    qtbot.keyClicks(screen.password_edit, PASSWORDS["tom"])
    qtbot.keyClick(screen.password_edit, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: not window.session.locked, timeout=10_000)
    assert window.session.actor == tom and not covered(run) and not window.lock_screen.isVisible()
    payload, actor = run.sink.last(AuditEventType.SCREEN_UNLOCKED)
    assert actor == "tom" and payload["purpose"] == "unlock"
    assert window.orders_dock.isEnabled()


def test_another_operator_signing_in_on_the_lock_screen_switches_and_the_first_is_signed_out(run: OperatorDesk, qtbot: QtBot) -> None:
    window = run.window
    run.sign_in(qtbot, "tom")
    window.switch_operator()
    assert window.session.locked and covered(run)
    dialog = window._sign_in
    assert dialog is not None and dialog.isVisible() and dialog.windowTitle().startswith("Switch operator")
    dialog.name_edit.setText("rita")
    dialog.password_edit.setText(PASSWORDS["rita"])
    assert await_in_qt(qtbot, dialog.attempt()) == Actor.with_role("rita", Role.RISK_OFFICER)
    assert window.session.actor == Actor.with_role("rita", Role.RISK_OFFICER) and not window.session.locked
    qtbot.waitUntil(lambda: AuditEventType.LOGOUT in run.sink.events(), timeout=5000)
    assert run.sink.last(AuditEventType.LOGOUT)[1] == "tom"
    events = run.sink.events()
    assert events.index(AuditEventType.SCREEN_LOCKED) < len(events) - 1
    assert window.kill_bar.operator_label.text() == "rita · risk_officer".replace("_", " ")


def test_sign_out_covers_the_desk_audits_and_asks_who_is_next(run: OperatorDesk, qtbot: QtBot) -> None:
    window = run.window
    run.sign_in(qtbot, "tom")
    window.sign_out()
    assert window.session.actor is None and covered(run)
    assert window.lock_screen.title.text() == "Nobody is signed in"
    qtbot.waitUntil(lambda: AuditEventType.LOGOUT in run.sink.events(), timeout=5000)
    assert run.sink.last(AuditEventType.LOGOUT)[1] == "tom"
    assert window._sign_in is not None and window._sign_in.isVisible()
    assert not window.lock_action.isEnabled() and not window.sign_out_action.isEnabled()


def _move_mouse(target: QWidget) -> None:
    event = QMouseEvent(QEvent.Type.MouseMove, QPointF(5, 5), QPointF(5, 5), Qt.MouseButton.NoButton,
                        Qt.MouseButton.NoButton, Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(target, event)


def test_idle_lock_fires_after_the_timeout_and_not_while_input_keeps_arriving(
    run: OperatorDesk, qtbot: QtBot, idle_clock: FakeMonotonic,
) -> None:
    window = run.window
    run.sign_in(qtbot, "tom")
    idle = window.idle
    assert idle.timeout_s == 60
    # Input every 50 s for five minutes: never idle for a minute, never locked.
    for n in range(6):
        idle_clock.now += 50
        assert not idle.check()
        if n % 2:
            qtbot.keyClick(window.orders.table, Qt.Key.Key_Down)
        else:
            _move_mouse(window.positions)
    assert not window.session.locked
    idle_clock.now += 59
    assert not idle.check() and not window.session.locked
    idle_clock.now += 2
    assert idle.check()
    assert window.session.locked and covered(run)
    qtbot.waitUntil(lambda: AuditEventType.SCREEN_LOCKED in run.sink.events(), timeout=5000)
    payload, actor = run.sink.last(AuditEventType.SCREEN_LOCKED)
    assert actor == "tom" and payload["reason"] == "no input for 1 min"
    # Locked: the engine and the kill switch go on.
    idle_clock.now += 600
    assert not idle.check()  # one lock per idle spell
    window.engage_kill_switch("test")
    assert run.engine.trading_state is TradingState.HALTED


def test_idle_lock_set_to_zero_never_locks(tmp_path: Path, qtbot: QtBot, qloop: qasync.QEventLoop, idle_clock: FakeMonotonic) -> None:
    run = open_operator_desk(qtbot, cover_today(tmp_path / "home"), idle_lock_s=0, idle_clock=idle_clock, people=("asha",))
    try:
        run.sign_in(qtbot, "asha")
        idle_clock.now += 86_400
        assert not run.window.idle.check() and not run.window.session.locked
    finally:
        close_operator_desk(qtbot, run)
