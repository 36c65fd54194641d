"""What each role may do in the window: greyed where the permission table says no, refused by the engine anyway.

The kill switch is never greyed. A trader's desk can be re-armed with a risk officer's name and
password (four eyes), recorded as the risk officer.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import qasync
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QApplication, QDialog
from pytestqt.qtbot import QtBot
from sqlalchemy import update

from app.domain.actors import Actor, Permission, Role
from app.domain.audit import AuditEventType
from app.domain.trading_state import TradingState
from app.security.names import name_key
from app.store.models import OperatorRow
from app.ui import theme
from app.ui.flatten_dialog import FlattenDialog
from app.ui.operators_dialog import OperatorsDialog
from app.ui.rearm_dialog import RearmDialog
from app.ui.session_controller import RECHECK_MS
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


@pytest.fixture
def run(tmp_path: Path, qtbot: QtBot, qloop: qasync.QEventLoop) -> Iterator[OperatorDesk]:
    desk = open_operator_desk(qtbot, cover_today(tmp_path / "home"))
    yield desk
    close_operator_desk(qtbot, desk)


def halt(qtbot: QtBot, run: OperatorDesk) -> None:
    run.window.engage_kill_switch("test")
    await_in_qt(qtbot, run.engine.kill_switch.wait())
    run.window.frame()


def test_a_trader_cannot_rearm_or_flatten_greyed_in_the_window_and_refused_by_the_engine(run: OperatorDesk, qtbot: QtBot) -> None:
    window, bar = run.window, run.window.kill_bar
    tom = run.sign_in(qtbot, "tom")
    halt(qtbot, run)
    assert bar.state_banner.text() == "HALTED"
    assert bar.kill_button.isEnabled()
    assert not bar.rearm_button.isEnabled() and not bar.flatten_button.isEnabled()
    assert "rearm" in bar.rearm_button.toolTip() and "tom" in bar.rearm_button.toolTip()
    assert not window.rearm_action.isEnabled() and not window.flatten_action.isEnabled()
    assert window.rearm_authorised_action.isEnabled()
    assert not window.operators_action.isVisible()
    # The trading state changing under the guard does not bring the button back.
    bar.show_state("REDUCING", "", "tom", None)
    assert not bar.rearm_button.isEnabled()
    window._show_state()
    # Forced past the window: the menu slot refuses, and the engine refuses the trader's own actor.
    window.open_rearm()
    window.open_flatten()
    assert not any(isinstance(w, QDialog) and w.isVisible() for w in QApplication.topLevelWidgets())
    with pytest.raises(PermissionError):
        await_in_qt(qtbot, run.engine.rearm(tom, "forced"))
    with pytest.raises(PermissionError):
        await_in_qt(qtbot, run.engine.flatten(tom, confirmed=True))
    assert run.engine.trading_state is TradingState.HALTED
    OUTPUT.mkdir(exist_ok=True)
    window.grab().save(str(OUTPUT / "roles_trader_dark.png"))
    theme.apply(QApplication.instance(), False)  # type: ignore[arg-type]
    window.set_dark(False)
    QApplication.processEvents()
    window.grab().save(str(OUTPUT / "roles_trader_light.png"))
    window.set_dark(True)


def test_a_risk_officer_rearms_and_the_buttons_follow_the_operator(run: OperatorDesk, qtbot: QtBot) -> None:
    bar = run.window.kill_bar
    run.sign_in(qtbot, "tom")
    halt(qtbot, run)
    assert not bar.rearm_button.isEnabled()
    run.window.switch_operator()
    dialog = run.window._sign_in
    assert dialog is not None
    dialog.name_edit.setText("rita")
    dialog.password_edit.setText(PASSWORDS["rita"])
    await_in_qt(qtbot, dialog.attempt())
    assert bar.rearm_button.isEnabled() and bar.flatten_button.isEnabled()
    run.window.open_rearm()
    rearm = run.window.rearm_dialog
    rearm.reason_edit.setPlainText("positions checked with the broker")
    qtbot.mouseClick(rearm.rearm_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: run.engine.trading_state is TradingState.ACTIVE, timeout=5000)
    assert run.engine.trading_state_actor == "rita"
    # Locked, even a risk officer's buttons grey out and an open dialog closes; the kill button never does.
    run.window.open_flatten()
    assert run.window.flatten_dialog.isVisible()
    run.window.lock("test")
    assert not bar.flatten_button.isEnabled() and bar.kill_button.isEnabled()
    assert not run.window.flatten_dialog.isVisible()


def test_four_eyes_a_trader_desk_is_rearmed_with_a_risk_officers_password_and_recorded_as_them(run: OperatorDesk, qtbot: QtBot) -> None:
    run.sign_in(qtbot, "tom")
    halt(qtbot, run)
    dialog = run.window.open_rearm_authorised()
    assert dialog is not None and dialog.isVisible()
    dialog.reason_edit.setPlainText("feed back, book reconciled")
    assert not dialog.rearm_button.isEnabled()  # nobody has authorised it yet
    # A trader cannot authorise a re-arm, even with the right password.
    dialog.authoriser_name.setText("tom")
    dialog.authoriser_password.setText(PASSWORDS["tom"])
    qtbot.mouseClick(dialog.rearm_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: dialog.authoriser_problem.isVisible(), timeout=5000)
    assert "may not re-arm" in dialog.authoriser_problem.text()
    assert run.engine.trading_state is TradingState.HALTED and dialog.authoriser_password.text() == ""
    # A wrong password: the directory's words, password cleared, name kept.
    dialog.authoriser_name.setText("rita")
    dialog.authoriser_password.setText("not rita's")
    qtbot.mouseClick(dialog.rearm_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: dialog.authoriser_problem.text() == "wrong name or password", timeout=5000)
    assert dialog.authoriser_name.text() == "rita" and run.engine.trading_state is TradingState.HALTED
    dialog.authoriser_password.setText(PASSWORDS["rita"])
    qtbot.mouseClick(dialog.rearm_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: run.engine.trading_state is TradingState.ACTIVE, timeout=5000)
    assert run.engine.trading_state_actor == "rita"
    payload, actor = run.sink.last(AuditEventType.LOGIN_OK)
    assert actor == "rita" and payload["purpose"] == "authorise"
    assert run.window.session.actor == Actor.with_role("tom", Role.TRADER)  # tom stays signed in


def test_a_viewer_cannot_cancel_greyed_and_refused(run: OperatorDesk, qtbot: QtBot, monkeypatch: pytest.MonkeyPatch) -> None:
    window = run.window
    ids = resting_orders(qtbot, run, 2)
    vic = run.sign_in(qtbot, "vic")
    qtbot.waitUntil(lambda: window.orders.model.counts()["working"] == 2, timeout=5000)
    window.orders.table.selectAll()
    assert not window.orders.cancel_selected_button.isEnabled() and not window.orders.cancel_all_button.isEnabled()
    assert not window.cancel_all_action.isEnabled()
    # The Delete key bypasses the buttons: the window refuses it and says so.
    spawned: list[str] = []
    monkeypatch.setattr(window, "spawn", lambda coro, what: (spawned.append(what), coro.close()))
    with qtbot.waitSignal(window.orders.cancel_requested, timeout=1000):
        qtbot.keyClick(window.orders.table, Qt.Key.Key_Delete)
    window.cancel_all_working()
    # Refused on the spot: no cancel was started, so none can land later.
    assert spawned == [] and len(run.engine.oms.working()) == 2
    # The panel inserts alerts at most every so often; list the pending ones now rather than wait for its timer.
    window.alerts.flush()
    assert any("cancel: refused" in window.alerts.model.alert(r).message for r in range(window.alerts.model.rowCount()))
    monkeypatch.undo()
    result = await_in_qt(qtbot, run.engine.cancel(ids[0], actor="vic", operator=vic))
    assert not result.ok
    # Signed in as the trader who entered them: the buttons come back, and the cancel goes through.
    window.sign_out()
    run.sign_in(qtbot, "tom")
    window.orders.table.selectAll()
    assert window.orders.cancel_selected_button.isEnabled() and window.orders.cancel_all_button.isEnabled()
    qtbot.mouseClick(window.orders.cancel_all_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not run.engine.oms.working(), timeout=10_000)


def test_a_trader_cancel_all_cancels_only_the_traders_own_orders(run: OperatorDesk, qtbot: QtBot) -> None:
    mine = resting_orders(qtbot, run, 1, actor="tom")
    theirs = resting_orders(qtbot, run, 1, actor="rita", first=3)
    run.sign_in(qtbot, "tom")
    run.window.cancel_all_working()
    qtbot.waitUntil(lambda: run.engine.oms.get(mine[0]) not in run.engine.oms.working(), timeout=10_000)
    assert [o.client_order_id for o in run.engine.oms.working()] == theirs


def test_the_kill_button_is_never_greyed(run: OperatorDesk, qtbot: QtBot) -> None:
    bar = run.window.kill_bar
    assert bar.kill_button.isEnabled()  # nobody signed in
    for name in ("vic", "tom"):
        run.sign_in(qtbot, name)
        assert bar.kill_button.isEnabled()
        run.window.lock("test")
        assert bar.kill_button.isEnabled()
        run.window.sign_out()


@pytest.mark.parametrize("role_name", ["asha", "rita", "tom", "vic"])
def test_each_roles_menu_matches_the_permission_table(run: OperatorDesk, qtbot: QtBot, role_name: str) -> None:
    window = run.window
    actor = run.sign_in(qtbot, role_name)
    assert window.rearm_action.isEnabled() is actor.can(Permission.REARM)
    assert window.flatten_action.isEnabled() is actor.can(Permission.FLATTEN)
    assert window.cancel_all_action.isEnabled() is (actor.can(Permission.CANCEL_OWN) or actor.can(Permission.CANCEL_ANY))
    assert window.operators_action.isVisible() is actor.can(Permission.MANAGE_OPERATORS)
    assert window.lock_action.isEnabled() and window.password_action.isEnabled()


def test_an_admin_manages_operators_with_problems_next_to_each_field(run: OperatorDesk, qtbot: QtBot) -> None:
    run.sign_in(qtbot, "asha")
    dialog = run.window.open_operators()
    assert dialog is not None
    qtbot.waitUntil(lambda: len(dialog.rows) == 4, timeout=5000)
    dialog.add_name.setText("TOM")
    dialog.add_password.setText("short")
    dialog.add_repeat.setText("short")
    assert "already" in dialog.add_name_problem.text() and "at least 12" in dialog.add_password_problem.text()
    assert not dialog.add_button.isEnabled()
    dialog.add_name.setText("bharat")
    dialog.add_password.setText("bharat trader phrase 5")
    dialog.add_repeat.setText("bharat trader phrase 5")
    assert dialog.add_button.isEnabled()
    assert await_in_qt(qtbot, dialog.add())
    operator = run.directory.operator("bharat")
    assert operator is not None and operator.role is Role.TRADER
    assert dialog.selected() is not None and dialog.selected().name == "bharat"  # type: ignore[union-attr]
    assert await_in_qt(qtbot, dialog.set_enabled("bharat", False))
    assert not run.directory.operator("bharat").enabled  # type: ignore[union-attr]
    dialog.select("asha")
    assert not dialog.disable_button.isEnabled()  # not your own account
    dialog.select("tom")
    dialog.reset_password.setText("tom new phrase 999")
    dialog.reset_repeat.setText("tom new phrase 999")
    assert await_in_qt(qtbot, dialog.reset())
    assert run.directory.authenticate("tom", "tom new phrase 999") == Actor.with_role("tom", Role.TRADER)
    events = run.sink.events()
    assert AuditEventType.OPERATOR_ADDED in events and AuditEventType.OPERATOR_DISABLED in events
    assert AuditEventType.PASSWORD_RESET in events
    OUTPUT.mkdir(exist_ok=True)
    dialog.adjustSize()
    dialog.grab().save(str(OUTPUT / "operators_dialog_dark.png"))


def test_change_password_wrong_current_is_said_next_to_it_then_the_new_one_works(run: OperatorDesk, qtbot: QtBot) -> None:
    run.sign_in(qtbot, "tom")
    dialog = run.window.open_change_password()
    assert dialog is not None
    dialog.old_edit.setText("not the current")
    dialog.new_edit.setText("tom")
    assert "at least 12" in dialog.new_problem.text() and not dialog.change_button.isEnabled()
    dialog.new_edit.setText("tom fresh phrase 77")
    dialog.repeat_edit.setText("tom fresh phrase 7")
    assert "differ" in dialog.repeat_problem.text()
    dialog.repeat_edit.setText("tom fresh phrase 77")
    assert not await_in_qt(qtbot, dialog.attempt())
    assert dialog.old_problem.text() == "wrong name or password" and dialog.old_edit.text() == ""
    assert dialog.new_edit.text() == "tom fresh phrase 77"  # nothing else lost
    dialog.old_edit.setText(PASSWORDS["tom"])
    assert await_in_qt(qtbot, dialog.attempt())
    assert run.directory.authenticate("tom", "tom fresh phrase 77").name == "tom"
    assert AuditEventType.PASSWORD_CHANGED in run.sink.events()


# -- authority never outlives the operator ---------------------------------------------------------


def _fill_add(dialog: OperatorsDialog, name: str, role: Role) -> None:
    dialog.add_name.setText(name)
    dialog.add_role.setCurrentIndex(dialog.add_role.findData(role))
    dialog.add_password.setText(f"{name} sneaky phrase 42")
    dialog.add_repeat.setText(f"{name} sneaky phrase 42")


def test_an_admin_who_signs_out_leaves_no_operators_dialog_for_the_next_person(run: OperatorDesk, qtbot: QtBot) -> None:
    window = run.window
    run.sign_in(qtbot, "asha")
    dialog = window.open_operators()
    assert dialog is not None
    qtbot.waitUntil(lambda: len(dialog.rows) == 4, timeout=5000)
    _fill_add(dialog, "mallory", Role.ADMIN)
    assert dialog.add_button.isEnabled()
    window.sign_out()
    assert not dialog.isVisible()
    # The next person at the desk (signed in or not) cannot act through the old dialog object.
    assert not await_in_qt(qtbot, dialog.add())
    assert "no longer the operator" in dialog.message.text()
    run.sign_in(qtbot, "tom")
    assert not await_in_qt(qtbot, dialog.add())
    assert not await_in_qt(qtbot, dialog.set_enabled("rita", False))
    assert run.directory.operator("mallory") is None and run.directory.operator("rita").enabled  # type: ignore[union-attr]
    assert AuditEventType.OPERATOR_ADDED not in run.sink.events()[4:]


def _risk_officer_with_dialogs(run: OperatorDesk, qtbot: QtBot) -> tuple[RearmDialog, FlattenDialog]:
    run.sign_in(qtbot, "rita")
    halt(qtbot, run)
    run.window.open_rearm()
    rearm = run.window.rearm_dialog
    rearm.reason_edit.setPlainText("positions checked with the broker")
    run.window.open_flatten()
    flatten = run.window.flatten_dialog
    assert rearm.isVisible() and flatten.isVisible() and rearm.rearm_button.isEnabled()
    return rearm, flatten


def _refused_on_the_old_dialogs(run: OperatorDesk, rearm: RearmDialog, flatten: FlattenDialog) -> None:
    assert not rearm.isVisible() and not flatten.isVisible()
    confirmed: list[bool] = []
    flatten.accepted.connect(lambda: confirmed.append(True))
    flatten.accept()
    assert confirmed == [] and "no longer the operator" in flatten.refusal.text()
    rearm.rearm_button.click()
    # Refused before anything is sent: no re-arm task exists to land later.
    assert rearm._task is None and "rita is no longer the operator" in rearm._error.text()
    assert run.engine.trading_state is TradingState.HALTED


def test_a_risk_officers_rearm_and_flatten_dialogs_close_and_refuse_after_sign_out(run: OperatorDesk, qtbot: QtBot) -> None:
    rearm, flatten = _risk_officer_with_dialogs(run, qtbot)
    run.window.sign_out()
    _refused_on_the_old_dialogs(run, rearm, flatten)


def test_switching_operator_closes_and_disarms_the_previous_operators_dialogs(run: OperatorDesk, qtbot: QtBot) -> None:
    rearm, flatten = _risk_officer_with_dialogs(run, qtbot)
    run.window.switch_operator()
    _refused_on_the_old_dialogs(run, rearm, flatten)
    run.sign_in(qtbot, "tom")
    _refused_on_the_old_dialogs(run, rearm, flatten)
    # rita again, at the window: a dialog opened for her earlier session still belongs to that session only.
    run.sign_in(qtbot, "rita")
    rearm.rearm_button.click()
    assert rearm._task is None and run.engine.trading_state is TradingState.HALTED
    OUTPUT.mkdir(exist_ok=True)
    rearm.adjustSize()
    rearm.grab().save(str(OUTPUT / "rearm_refused_after_switch_dark.png"))


# -- the signed-in account is re-read ---------------------------------------------------------------


def _set_role(run: OperatorDesk, name: str, role: Role) -> None:
    """An administrator's change made elsewhere (another window, the CLI), straight in the store."""
    assert run.desk.writer is not None
    with run.desk.writer.engine.begin() as connection:
        connection.execute(update(OperatorRow).where(OperatorRow.name_key == name_key(name)).values(role=str(role)))


def _audited(qtbot: QtBot, run: OperatorDesk, event: AuditEventType) -> tuple[dict[str, Any], str]:
    qtbot.waitUntil(lambda: event in run.sink.events(), timeout=5000)
    return run.sink.last(event)


def test_the_window_rechecks_every_few_seconds_once_it_has_a_directory(run: OperatorDesk) -> None:
    timer = run.window.session_controller.timer
    assert timer.isActive() and timer.interval() == RECHECK_MS == 5000


def test_an_operator_disabled_elsewhere_is_signed_out_at_the_next_check(run: OperatorDesk, qtbot: QtBot) -> None:
    window = run.window
    run.sign_in(qtbot, "tom")
    assert await_in_qt(qtbot, window.session_controller.recheck())  # nothing changed yet
    run.directory.disable("tom", by=Actor.with_role("asha", Role.ADMIN))
    assert window.session.actor is not None  # the window has not looked yet
    assert not await_in_qt(qtbot, window.session_controller.recheck())
    assert window.session.actor is None and window.lock_screen.isVisible()
    assert "tom's account was disabled" in window.lock_screen.message.text()
    _, actor = _audited(qtbot, run, AuditEventType.LOGOUT)
    assert actor == "tom"
    locked, _ = run.sink.last(AuditEventType.SCREEN_LOCKED)
    assert locked["reason"] == "tom's account was disabled by an administrator: signed out"
    events = run.sink.events()
    assert events.index(AuditEventType.SCREEN_LOCKED) < len(events) - 1  # the reason, then the sign-out
    OUTPUT.mkdir(exist_ok=True)
    window.grab().save(str(OUTPUT / "account_disabled_signed_out_dark.png"))
    theme.apply(QApplication.instance(), False)  # type: ignore[arg-type]
    window.set_dark(False)
    QApplication.processEvents()
    window.grab().save(str(OUTPUT / "account_disabled_signed_out_light.png"))
    window.set_dark(True)


def test_a_demoted_operator_is_locked_and_unlocks_with_the_new_role(run: OperatorDesk, qtbot: QtBot) -> None:
    window = run.window
    run.sign_in(qtbot, "rita")
    assert window.rearm_action.isEnabled()
    _set_role(run, "rita", Role.TRADER)
    assert not await_in_qt(qtbot, window.session_controller.recheck())
    assert window.session.locked and not window.session.can(Permission.REARM)
    payload, actor = _audited(qtbot, run, AuditEventType.SCREEN_LOCKED)
    assert actor == "rita" and payload["reason"] == "rita's role changed from risk officer to trader since sign-in"
    assert "role changed" in window.lock_screen.message.text()
    window.lock_screen.password_edit.setText(PASSWORDS["rita"])
    assert await_in_qt(qtbot, window.lock_screen.attempt()) is not None
    assert window.session.actor == Actor.with_role("rita", Role.TRADER) and not window.session.locked
    assert not window.rearm_action.isEnabled()
    assert await_in_qt(qtbot, window.session_controller.recheck())


def test_a_password_reset_elsewhere_locks_until_the_new_password_unlocks(run: OperatorDesk, qtbot: QtBot) -> None:
    window = run.window
    run.sign_in(qtbot, "tom")
    run.clock.advance(60)
    run.directory.reset_password("tom", "tom reset phrase 55", by=Actor.with_role("asha", Role.ADMIN))
    assert not await_in_qt(qtbot, window.session_controller.recheck())
    assert window.session.locked
    payload, _ = _audited(qtbot, run, AuditEventType.SCREEN_LOCKED)
    assert payload["reason"] == "tom's password was changed or reset elsewhere since sign-in"
    # Still locked at the next check: nothing more happens (one lock, one record).
    assert not await_in_qt(qtbot, window.session_controller.recheck())
    assert run.sink.events().count(AuditEventType.SCREEN_LOCKED) == 1
    window.lock_screen.password_edit.setText("tom reset phrase 55")
    assert await_in_qt(qtbot, window.lock_screen.attempt()) is not None and not window.session.locked
    assert await_in_qt(qtbot, window.session_controller.recheck()) and not window.session.locked


def test_an_operators_own_password_change_at_the_window_does_not_lock_them(run: OperatorDesk, qtbot: QtBot) -> None:
    window = run.window
    run.sign_in(qtbot, "tom")
    run.clock.advance(60)
    dialog = window.open_change_password()
    assert dialog is not None
    dialog.old_edit.setText(PASSWORDS["tom"])
    dialog.new_edit.setText("tom fresh phrase 77")
    dialog.repeat_edit.setText("tom fresh phrase 77")
    assert await_in_qt(qtbot, dialog.attempt())
    assert await_in_qt(qtbot, window.session_controller.recheck()) and not window.session.locked


def test_a_rearm_by_an_operator_disabled_since_sign_in_is_refused_before_it_acts(run: OperatorDesk, qtbot: QtBot) -> None:
    window = run.window
    run.sign_in(qtbot, "rita")
    halt(qtbot, run)
    window.open_rearm()
    rearm = window.rearm_dialog
    rearm.reason_edit.setPlainText("positions checked with the broker")
    run.directory.disable("rita", by=Actor.with_role("asha", Role.ADMIN))
    rearm.rearm_button.click()
    task = rearm._task
    assert task is not None
    qtbot.waitUntil(task.done, timeout=5000)
    assert run.engine.trading_state is TradingState.HALTED and window.session.actor is None
    assert not rearm.isVisible()


def test_an_admin_demoted_elsewhere_cannot_act_through_an_open_operators_dialog(run: OperatorDesk, qtbot: QtBot) -> None:
    window = run.window
    run.sign_in(qtbot, "asha")
    dialog = window.open_operators()
    assert dialog is not None
    qtbot.waitUntil(lambda: len(dialog.rows) == 4, timeout=5000)
    _fill_add(dialog, "mallory", Role.ADMIN)
    _set_role(run, "asha", Role.VIEWER)
    assert not await_in_qt(qtbot, dialog.add())
    assert run.directory.operator("mallory") is None
    assert window.session.locked and not dialog.isVisible()


def test_the_operators_dialog_names_a_damaged_account_instead_of_calling_it_disabled() -> None:
    from app.domain.actors import Role
    from app.security.accounts import Operator
    from app.ui.operators_dialog import status_text

    damaged = Operator("eve", Role.VIEWER, False, 0, None, 1, 1, damaged="unknown role 'god'")
    assert status_text(damaged, 2) == "damaged: unknown role 'god'"
    assert status_text(Operator("eve", Role.VIEWER, False, 0, None, 1, 1), 2) == "disabled"
    locked = Operator("tom", Role.TRADER, True, 5, 10**18, 1, 1)
    assert status_text(locked, 2).startswith("locked out until ")
