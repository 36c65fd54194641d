"""The re-arm, flatten and close dialogs: what they allow, what they send, what they return."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QApplication, QDialog, QLabel, QPushButton

from app.ui import theme
from app.ui.close_dialog import CloseChoice, CloseDialog
from app.ui.flatten_dialog import FlattenDialog, FlattenLine
from app.ui.rearm_dialog import MAX_REASON_CHARS, RearmDialog

OUTPUT = Path(__file__).resolve().parents[1] / "output"


@pytest.fixture
def dark(qapp: QApplication) -> Iterator[None]:
    """The desk's dark palette for the duration of a test (dialogs pick their reds and blues from it)."""
    previous = qapp.palette()
    palette = theme.palette(True)
    qapp.setPalette(palette)
    try:
        yield
    finally:
        qapp.setPalette(previous)


def screenshot(widget: QDialog, name: str) -> None:
    OUTPUT.mkdir(exist_ok=True)
    widget.adjustSize()
    assert widget.grab().save(str(OUTPUT / name))


def rearm(qtbot, state: str = "HALTED", **kwargs) -> RearmDialog:
    dialog = RearmDialog("asha", "kill switch engaged from the desk (F12)", state, **kwargs)
    qtbot.addWidget(dialog)
    dialog.show()
    return dialog


# -- re-arm ------------------------------------------------------------------------------------


@pytest.mark.parametrize("text", ["", "   ", "\n\n\t ", "ok", "ok!", " a  b "])
def test_rearm_disabled_without_a_real_reason(qtbot, text: str) -> None:
    dialog = rearm(qtbot)
    dialog.reason_edit.setPlainText(text)
    assert not dialog.rearm_button.isEnabled()
    assert "required" in dialog.problem()


def test_rearm_enabled_for_a_real_reason_and_returns_it(qtbot) -> None:
    dialog = rearm(qtbot)
    qtbot.keyClicks(dialog.reason_edit, "feed back")
    assert dialog.rearm_button.isEnabled()
    assert dialog.target() == "ACTIVE"
    qtbot.mouseClick(dialog.rearm_button, Qt.MouseButton.LeftButton)
    assert dialog.result() == QDialog.DialogCode.Accepted
    assert dialog.reason() == "feed back"


def test_reason_is_folded_onto_one_stripped_line(qtbot) -> None:
    dialog = rearm(qtbot)
    dialog.reason_edit.setPlainText("  broker confirmed\nall cancels\r\n\n done  ")
    assert dialog.reason() == "broker confirmed all cancels done"


def test_too_long_a_reason_is_refused_and_says_so(qtbot) -> None:
    dialog = rearm(qtbot)
    dialog.reason_edit.setPlainText("x" * MAX_REASON_CHARS)
    assert dialog.rearm_button.isEnabled()
    dialog.reason_edit.setPlainText("x" * (MAX_REASON_CHARS + 1))
    assert not dialog.rearm_button.isEnabled()
    assert "too long" in dialog._hint.text() and str(MAX_REASON_CHARS) in dialog._hint.text()


def test_enter_does_not_submit_a_blank_reason(qtbot) -> None:
    dialog = rearm(qtbot)
    dialog.reason_edit.setPlainText("   ")
    dialog._radio("REDUCING").setFocus()
    qtbot.keyClick(dialog._radio("REDUCING"), Qt.Key.Key_Return)
    qtbot.keyClick(dialog, Qt.Key.Key_Enter)
    assert dialog.isVisible()
    assert dialog.result() != QDialog.DialogCode.Accepted


def test_target_choice(qtbot) -> None:
    dialog = rearm(qtbot)
    qtbot.mouseClick(dialog._radio("REDUCING"), Qt.MouseButton.LeftButton)
    assert dialog.target() == "REDUCING"
    assert dialog.rearm_button.text() == "Re-arm to REDUCING"


def test_from_reducing_only_active_is_offered(qtbot) -> None:
    dialog = rearm(qtbot, state="REDUCING")
    assert dialog.target() == "ACTIVE"
    assert not dialog._radio("REDUCING").isEnabled()


def test_submit_is_awaited_with_reason_and_target_then_accepts(qtbot, qloop) -> None:
    calls: list[tuple[str, str]] = []

    async def submit(reason: str, target: str) -> None:
        await asyncio.sleep(0)
        calls.append((reason, target))

    dialog = rearm(qtbot, submit=submit)
    dialog.reason_edit.setPlainText("limits\nreviewed")
    dialog._radio("REDUCING").setChecked(True)
    qtbot.mouseClick(dialog.rearm_button, Qt.MouseButton.LeftButton)
    assert not dialog.rearm_button.isEnabled()  # no second submit while the first is in flight
    qtbot.waitUntil(lambda: dialog.result() == QDialog.DialogCode.Accepted)
    assert calls == [("limits reviewed", "REDUCING")]
    assert not dialog.isVisible()


@pytest.mark.parametrize("error", [ValueError("today's loss is at the daily loss limit"), PermissionError("asha may not re-arm")])
def test_a_refused_submit_shows_why_and_stays_open(qtbot, qloop, dark, error: Exception) -> None:
    async def submit(reason: str, target: str) -> None:
        await asyncio.sleep(0)
        raise error

    dialog = rearm(qtbot, submit=submit)
    dialog.reason_edit.setPlainText("loss recovered, checked positions with the broker")
    qtbot.mouseClick(dialog.rearm_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: dialog._error.isVisible())
    assert dialog._error.text() == str(error)
    assert dialog.isVisible() and dialog.result() != QDialog.DialogCode.Accepted
    assert dialog.rearm_button.isEnabled()  # the operator may correct and try again
    assert dialog.cancel_button.text() == "Cancel"
    if isinstance(error, ValueError):
        screenshot(dialog, "rearm_dialog_refused.png")


def test_rearm_screenshot(qtbot, dark) -> None:
    dialog = rearm(qtbot)
    qtbot.keyClicks(dialog.reason_edit, "Feed restored at 11:40; positions reconciled with the broker.")
    screenshot(dialog, "rearm_dialog.png")


# -- flatten -----------------------------------------------------------------------------------

PLAN = [
    FlattenLine("NSE:RELIANCE", "SELL", 1_500, 2_456_35),
    FlattenLine("NFO:NIFTY 25NOV 24500 CE", "BUY", 75_000, 112_50),
    FlattenLine("NSE:TCS", "SELL", 10, None),
]


def flatten(qtbot, plan=PLAN, working: int = 3, delay: int = 0) -> FlattenDialog:
    dialog = FlattenDialog(plan, working, arm_delay_ms=delay)
    qtbot.addWidget(dialog)
    dialog.show()
    return dialog


def cells(dialog: FlattenDialog) -> list[list[str]]:
    table = dialog.table
    assert table is not None
    return [[table.item(r, c).text() for c in range(table.columnCount())] for r in range(table.rowCount())]


def label_texts(dialog: QDialog) -> list[str]:
    return [label.text() for label in dialog.findChildren(QLabel)]


def test_flatten_names_what_will_be_sent(qtbot) -> None:
    dialog = flatten(qtbot)
    assert cells(dialog) == [
        ["NSE:RELIANCE", "SELL", "1,500", "₹36,84,525"],
        ["NFO:NIFTY 25NOV 24500 CE", "BUY", "75,000", "₹84,37,500"],
        ["NSE:TCS", "SELL", "10", "no mark"],
    ]
    labels = label_texts(dialog)
    assert (
        "The desk goes to REDUCING, cancels 3 working orders, sends protected marketable orders to close these positions, "
        "and ends HALTED."
    ) in labels
    assert any("₹1,21,22,025" in text and "1 line has no mark" in text for text in labels)
    assert dialog.confirm_button is not None
    assert dialog.confirm_button.text() == "Flatten 3 positions"


def test_enter_cancels_rather_than_flattens(qtbot) -> None:
    dialog = flatten(qtbot)
    assert dialog.confirm_button is not None and dialog.confirm_button.isEnabled()
    assert dialog.cancel_button.isDefault() and not dialog.confirm_button.isDefault()
    qtbot.keyClick(dialog, Qt.Key.Key_Return)
    assert dialog.result() == QDialog.DialogCode.Rejected


def test_confirm_is_disabled_during_the_arm_delay(qtbot) -> None:
    dialog = flatten(qtbot, delay=50)
    assert dialog.confirm_button is not None
    assert not dialog.confirm_button.isEnabled()
    qtbot.mouseClick(dialog.confirm_button, Qt.MouseButton.LeftButton)
    assert dialog.isVisible()
    qtbot.waitUntil(dialog.confirm_button.isEnabled)
    qtbot.mouseClick(dialog.confirm_button, Qt.MouseButton.LeftButton)
    assert dialog.result() == QDialog.DialogCode.Accepted


def test_one_position_reads_singular(qtbot) -> None:
    dialog = flatten(qtbot, plan=PLAN[:1], working=1)
    assert dialog.confirm_button is not None and dialog.confirm_button.text() == "Flatten 1 position"
    labels = label_texts(dialog)
    assert any("cancels 1 working order," in text and "close this position" in text for text in labels)


def test_empty_plan_offers_only_close(qtbot) -> None:
    dialog = flatten(qtbot, plan=[], working=2)
    assert dialog.confirm_button is None and dialog.table is None
    buttons = [b.text() for b in dialog.findChildren(QPushButton)]
    assert len(buttons) == 1 and "Close" in buttons[0]
    assert dialog.windowTitle() == "Flatten"
    qtbot.keyClick(dialog, Qt.Key.Key_Return)
    assert dialog.result() == QDialog.DialogCode.Rejected


def test_flatten_screenshots(qtbot, dark) -> None:
    screenshot(flatten(qtbot), "flatten_dialog.png")
    screenshot(flatten(qtbot, plan=[], working=2), "flatten_dialog_empty.png")
    armed = flatten(qtbot, delay=60_000)
    assert armed.confirm_button is not None and not armed.confirm_button.isEnabled()
    screenshot(armed, "flatten_dialog_arming.png")


def test_flatten_screenshot_light(qtbot) -> None:
    screenshot(flatten(qtbot), "flatten_dialog_light.png")


# -- close -------------------------------------------------------------------------------------


@pytest.mark.parametrize("choice", list(CloseChoice))
def test_close_dialog_returns_each_choice(qtbot, choice: CloseChoice) -> None:
    dialog = CloseDialog(working=4, positions=2)
    qtbot.addWidget(dialog)
    dialog.show()
    qtbot.mouseClick(dialog.buttons[choice], Qt.MouseButton.LeftButton)
    assert dialog.choice() is choice
    expected = QDialog.DialogCode.Rejected if choice is CloseChoice.STAY else QDialog.DialogCode.Accepted
    assert dialog.result() == expected


@pytest.mark.parametrize("key", [Qt.Key.Key_Escape, Qt.Key.Key_Return])
def test_escape_and_enter_mean_dont_close(qtbot, key: Qt.Key) -> None:
    dialog = CloseDialog(working=1, positions=0)
    qtbot.addWidget(dialog)
    dialog.show()
    qtbot.keyClick(dialog, key)
    assert dialog.choice() is CloseChoice.STAY
    assert dialog.result() == QDialog.DialogCode.Rejected


def test_close_screenshot(qtbot, dark) -> None:
    dialog = CloseDialog(working=12, positions=5)
    qtbot.addWidget(dialog)
    dialog.show()
    screenshot(dialog, "close_dialog.png")
