"""Sign-in and first run: the dialogs over a real operator directory (cheap argon2, frozen clock, in-memory audit sink).

The event-loop lag test alone uses the desk's real argon2 parameters: it is the point of running
the verify in a worker thread.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import qasync
from PySide6.QtCore import Qt, QTimer
from PySide6.QtWidgets import QApplication, QDialog
from pytestqt.qtbot import QtBot
from sqlalchemy import Engine

from app.domain.actors import Actor, Role
from app.domain.audit import AuditEventType
from app.security.operators import MAX_FAILED_ATTEMPTS, OperatorDirectory, format_until
from app.security.passwords import DEFAULT_HASHER
from app.ui import theme
from app.ui.first_run_dialog import FirstRunDialog
from app.ui.main_window import DeskWindow
from app.ui.sign_in_dialog import SignInDialog
from tests.security.conftest import START_NS, FrozenClock, Sink
from tests.ui.conftest import await_in_qt

OUTPUT = Path(__file__).resolve().parents[1] / "output"
TOM = "tom trader phrase 22"


@pytest.fixture
def staffed(directory: OperatorDirectory) -> OperatorDirectory:
    """asha (administrator) and tom (trader)."""
    directory.add("asha", Role.ADMIN, "asha admin phrase 1", by=None)
    directory.add("tom", Role.TRADER, TOM, by=Actor.with_role("asha", Role.ADMIN))
    return directory


@pytest.fixture(params=[True, False], ids=["dark", "light"])
def themed(request: pytest.FixtureRequest, qapp: QApplication) -> Iterator[bool]:
    dark = bool(request.param)
    theme.apply(qapp, dark)
    try:
        yield dark
    finally:
        theme.apply(qapp, True)


def sign_in_dialog(qtbot: QtBot, directory: OperatorDirectory) -> SignInDialog:
    dialog = SignInDialog(lambda name, password: directory.authenticate(name, password, purpose="sign_in"))
    qtbot.addWidget(dialog)
    dialog.show()
    return dialog


def shot(dialog: QDialog, name: str) -> None:
    OUTPUT.mkdir(exist_ok=True)
    dialog.adjustSize()
    assert dialog.grab().save(str(OUTPUT / name))


# -- first run ---------------------------------------------------------------------------------


def test_first_run_refuses_a_weak_password_next_to_its_field_then_creates_and_signs_in_the_admin(
    qtbot: QtBot, qloop: qasync.QEventLoop, directory: OperatorDirectory, sink: Sink,
) -> None:
    created: list[Actor] = []
    dialog = FirstRunDialog(lambda n, p: _create(directory, n, p))
    dialog.signed_in.connect(created.append)
    qtbot.addWidget(dialog)
    dialog.show()
    qtbot.keyClicks(dialog.name_edit, "asha k")
    qtbot.keyClicks(dialog.password_edit, "short")
    qtbot.keyClicks(dialog.repeat_edit, "shorter")
    assert dialog.name_problem.isVisible() and "no spaces" in dialog.name_problem.text()
    assert dialog.password_problem.isVisible() and "at least 12 characters" in dialog.password_problem.text()
    assert dialog.repeat_problem.isVisible() and "differ" in dialog.repeat_problem.text()
    assert not dialog.create_button.isEnabled()
    qtbot.keyClick(dialog.repeat_edit, Qt.Key.Key_Return)
    assert not directory.has_operators()

    dialog.name_edit.setText("asha")
    dialog.password_edit.setText("asha")
    assert "not the operator's name" in dialog.password_problem.text() or "at least" in dialog.password_problem.text()
    dialog.password_edit.setText("asha admin phrase 1")
    dialog.repeat_edit.setText("asha admin phrase 1")
    assert not dialog.name_problem.isVisible() and not dialog.password_problem.isVisible()
    assert not dialog.repeat_problem.isVisible() and dialog.create_button.isEnabled()
    qtbot.keyClick(dialog.repeat_edit, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: dialog.result() == QDialog.DialogCode.Accepted, timeout=10_000)
    assert created == [Actor.with_role("asha", Role.ADMIN)]
    operator = directory.operator("asha")
    assert operator is not None and operator.role is Role.ADMIN
    assert sink.events() == [AuditEventType.OPERATOR_ADDED, AuditEventType.LOGIN_OK]
    assert dialog.password_edit.text() == "" and dialog.repeat_edit.text() == ""


def _create(directory: OperatorDirectory, name: str, password: str) -> Actor:
    directory.add(name, Role.ADMIN, password, by=None)
    return directory.authenticate(name, password)


@pytest.mark.parametrize("name", ["", " ", "a" * 10_000, "ash\x1ba", "аsha", "x'; DROP TABLE operators;--"])
def test_first_run_bad_names_are_said_next_to_the_name_field(qtbot: QtBot, directory: OperatorDirectory, name: str) -> None:
    dialog = FirstRunDialog(lambda n, p: _create(directory, n, p))
    qtbot.addWidget(dialog)
    dialog.show()
    dialog.name_edit.setText(name)
    dialog.password_edit.setText("a good long phrase")
    dialog.repeat_edit.setText("a good long phrase")
    assert not dialog.create_button.isEnabled()
    if name.strip():
        assert dialog.name_problem.isVisible() and dialog.name_problem.text()
    dialog.submit()
    assert not directory.has_operators()


def test_first_run_screenshots(qtbot: QtBot, directory: OperatorDirectory, themed: bool) -> None:
    dialog = FirstRunDialog(lambda n, p: _create(directory, n, p))
    qtbot.addWidget(dialog)
    dialog.show()
    dialog.name_edit.setText("asha")
    dialog.password_edit.setText("asha12")
    dialog.repeat_edit.setText("asha1")
    assert dialog.password_problem.isVisible() and dialog.repeat_problem.isVisible()
    shot(dialog, f"first_run_{'dark' if themed else 'light'}.png")


# -- sign in -----------------------------------------------------------------------------------


def test_enter_signs_in(qtbot: QtBot, qloop: qasync.QEventLoop, staffed: OperatorDirectory, sink: Sink) -> None:
    dialog = sign_in_dialog(qtbot, staffed)
    signed: list[Actor] = []
    dialog.signed_in.connect(signed.append)
    qtbot.keyClicks(dialog.name_edit, "tom")
    qtbot.keyClicks(dialog.password_edit, TOM)
    qtbot.keyClick(dialog.password_edit, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: bool(signed), timeout=10_000)
    assert signed == [Actor.with_role("tom", Role.TRADER)]
    assert dialog.result() == QDialog.DialogCode.Accepted
    payload, actor = sink.last(AuditEventType.LOGIN_OK)
    assert actor == "tom" and payload["purpose"] == "sign_in"


@pytest.mark.parametrize("name", ["tom", "nobody", "' OR 1=1 --"])
def test_a_wrong_password_or_unknown_name_says_so_clears_the_password_and_keeps_the_name(
    qtbot: QtBot, qloop: qasync.QEventLoop, staffed: OperatorDirectory, name: str,
) -> None:
    dialog = sign_in_dialog(qtbot, staffed)
    dialog.name_edit.setText(name)
    dialog.password_edit.setText("not the password")
    assert await_in_qt(qtbot, dialog.attempt()) is None
    assert dialog.message.isVisible() and dialog.message.text() == "wrong name or password"
    assert dialog.password_edit.text() == "" and dialog.name_edit.text() == name
    assert dialog.isVisible() and dialog.result() != QDialog.DialogCode.Accepted
    assert not dialog.sign_in_button.isEnabled()  # nothing to send until a password is typed again


def test_five_failures_lock_the_account_and_the_dialog_says_until_when(
    qtbot: QtBot, qloop: qasync.QEventLoop, staffed: OperatorDirectory, clock: FrozenClock,
) -> None:
    dialog = sign_in_dialog(qtbot, staffed)
    dialog.name_edit.setText("tom")
    for _ in range(MAX_FAILED_ATTEMPTS):
        dialog.password_edit.setText("wrong wrong wrong")
        assert await_in_qt(qtbot, dialog.attempt()) is None
    clock.advance(60)
    dialog.password_edit.setText(TOM)
    assert await_in_qt(qtbot, dialog.attempt()) is None
    until = format_until(START_NS + 15 * 60 * 1_000_000_000)
    assert "locked" in dialog.message.text() and until in dialog.message.text()
    assert dialog.password_edit.text() == ""


@pytest.mark.parametrize("password", ["x" * 10_240, "pass\x00word", "\u202egnp.exe", "' OR '1'='1"])
def test_odd_passwords_are_just_wrong(qtbot: QtBot, qloop: qasync.QEventLoop, staffed: OperatorDirectory, password: str) -> None:
    dialog = sign_in_dialog(qtbot, staffed)
    dialog.name_edit.setText("tom")
    dialog.password_edit.setText(password)  # the field stops at MAX_FIELD_CHARS; the rest is never sent
    assert await_in_qt(qtbot, dialog.attempt()) is None
    assert dialog.message.text() == "wrong name or password"


def test_the_event_loop_keeps_turning_while_the_desks_real_argon2_verifies(
    qtbot: QtBot, qloop: qasync.QEventLoop, store: Engine, sink: Sink,
) -> None:
    directory = OperatorDirectory(store, sink, hasher=DEFAULT_HASHER)
    directory.add("asha", Role.ADMIN, "asha admin phrase 1", by=None)
    dialog = sign_in_dialog(qtbot, directory)
    dialog.name_edit.setText("asha")
    dialog.password_edit.setText("asha admin phrase 1")
    gaps: list[float] = []
    last = [time.perf_counter()]

    def tick() -> None:
        now = time.perf_counter()
        gaps.append(now - last[0])
        last[0] = now

    timer = QTimer()
    timer.setInterval(5)
    timer.timeout.connect(tick)
    timer.start()
    started = time.perf_counter()
    task = asyncio.ensure_future(dialog.attempt())
    qtbot.waitUntil(lambda: dialog.status.text() == "Signing in…", timeout=2000)
    qtbot.waitUntil(task.done, timeout=20_000)
    took = time.perf_counter() - started
    timer.stop()
    assert task.result() == Actor.with_role("asha", Role.ADMIN)
    # A verify takes ~150-300 ms here: a blocking one would show as one gap that long.
    assert took > 0.05
    worst_ms = max(gaps) * 1000
    print(f"sign-in took {took * 1000:.0f} ms; worst event-loop gap {worst_ms:.1f} ms over {len(gaps)} ticks")
    # 30 ms is the target; the bound is generous for a loaded 2-core CI, and still far below a blocking verify.
    assert worst_ms < 100


def test_sign_in_screenshots(qtbot: QtBot, qloop: qasync.QEventLoop, staffed: OperatorDirectory, themed: bool) -> None:
    dialog = sign_in_dialog(qtbot, staffed)
    dialog.name_edit.setText("tom")
    dialog.password_edit.setText("not it")
    await_in_qt(qtbot, dialog.attempt())
    shot(dialog, f"sign_in_{'dark' if themed else 'light'}.png")


# -- the window asks ---------------------------------------------------------------------------


def test_a_desk_without_operators_opens_the_first_run_and_one_with_opens_the_sign_in(
    qtbot: QtBot, qloop: qasync.QEventLoop, directory: OperatorDirectory, sink: Sink,
) -> None:
    window = DeskWindow(global_hotkey=False, actor="os-user")
    qtbot.addWidget(window)
    window.show()
    assert window.lock_screen.isVisible() and window.kill_bar.operator_label.text() == "not signed in"
    await_in_qt(qtbot, window.open_session(directory))
    first = window._first_run
    assert first is not None and first.isVisible() and window._sign_in is None
    first.name_edit.setText("asha")
    first.password_edit.setText("asha admin phrase 1")
    first.repeat_edit.setText("asha admin phrase 1")
    assert await_in_qt(qtbot, first.attempt()) is not None
    assert window.session.actor == Actor.with_role("asha", Role.ADMIN)
    assert not window.lock_screen.isVisible()
    assert window.kill_bar.operator_label.text() == "asha · admin"
    assert window.operators_action.isVisible() and window.operators_action.isEnabled()
    window.dispose()

    again = DeskWindow(global_hotkey=False, actor="os-user")
    qtbot.addWidget(again)
    again.show()
    await_in_qt(qtbot, again.open_session(directory))
    assert again._sign_in is not None and again._sign_in.isVisible() and again._first_run is None
    again.dispose()
