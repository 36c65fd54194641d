"""The Breeze login dialog: on its own with a stand-in renew, and against the local Breeze emulator.

The dialog runs ``renew`` as a task on the running asyncio loop. Here that loop is a
``qasync.QEventLoop`` over pytest-qt's QApplication (DESIGN.md: no pytest-asyncio loop in GUI
tests); clicks happen inside ``loop.run_until_complete`` as they do in the desk, where the loop
always runs. The emulator serves on its own thread and loop; the engine runs on the qasync loop.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar

import pytest
import qasync
from PySide6.QtCore import Qt
from PySide6.QtGui import QGuiApplication, QPalette
from PySide6.QtWidgets import QApplication, QDialog, QLineEdit
from pytestqt.qtbot import QtBot

from app.brokers.base import BrokerError, BrokerErrorCode
from app.domain.audit import AuditEventType
from app.domain.events import AlertLevel
from app.domain.orders import OrderSource, Side
from app.domain.requests import OrderRequest
from app.domain.trading_state import TradingState
from app.ui import theme
from app.ui.breeze_login import (
    MAX_TOKEN_CHARS,
    BreezeLoginDialog,
    TokenInputError,
    parse_session_token,
)
from tests.breeze_emulator import BreezeEmulator
from tests.brokers.breeze.harness import Desk, running_desk, wait_for

T = TypeVar("T")
OUTPUT = Path(__file__).resolve().parents[1] / "output"
URL = "https://api.icicidirect.com/apiuser/login?api_key=K%25834G9%25%292M9z75111V2dP"
REASON = "The Breeze session expired at 14:02; new orders are halted."


class Loop:
    """A qasync loop over the test's QApplication, current for the test, closed after it."""

    def __init__(self, app: QApplication) -> None:
        self.loop = qasync.QEventLoop(app)

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        result: T = self.loop.run_until_complete(coro)
        return result


@pytest.fixture
def aloop(qapp: QApplication) -> Iterator[Loop]:
    qapp.setQuitOnLastWindowClosed(False)
    loop = Loop(qapp)
    asyncio.set_event_loop(loop.loop)
    try:
        yield loop
    finally:
        pending = [t for t in asyncio.all_tasks(loop.loop) if not t.done()]
        for task in pending:
            task.cancel()
        if pending:
            loop.run(asyncio.wait(pending))
        loop.loop.close()
        asyncio.set_event_loop(None)


class Renewals:
    """A stand-in for the engine's renew: records tokens, then fails with ``error`` or succeeds."""

    def __init__(self, error: BaseException | None = None) -> None:
        self.tokens: list[str] = []
        self.error = error
        self.release = asyncio.Event()
        self.release.set()

    async def __call__(self, token: str) -> None:
        self.tokens.append(token)
        await self.release.wait()
        if self.error is not None:
            raise self.error


def dialog_for(qtbot: QtBot, renew: Callable[[str], Awaitable[None]], url: str = URL, **kw: Any) -> BreezeLoginDialog:
    dialog = BreezeLoginDialog(url, renew, **kw)
    qtbot.addWidget(dialog)
    dialog.show()
    return dialog


def paste(dialog: BreezeLoginDialog, text: str) -> None:
    dialog.token_edit.setText(text)


def click_log_in(dialog: BreezeLoginDialog) -> None:
    # What the trader does: the click the dialog's default button receives.
    dialog.login_button.click()


async def until(condition: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    await wait_for(condition, timeout=timeout, what=what)


@pytest.mark.parametrize(
    ("pasted", "token"),
    [
        ("48213577", "48213577"),
        ("  48213577\n", "48213577"),
        ("https://127.0.0.1/?apisession=48213577", "48213577"),
        ("https://desk.example.in/breeze?state=x&apisession=48213577&next=1#top", "48213577"),
        ("  https://127.0.0.1/?APISession=ab%2Bc9 ", "ab+c9"),
    ],
)
def test_the_token_or_icicis_redirect_address_gives_the_token(pasted: str, token: str) -> None:
    assert parse_session_token(pasted) == token


@pytest.mark.parametrize(
    ("pasted", "says"),
    [
        ("", "Paste the session token first"),
        ("   \t ", "Paste the session token first"),
        ("4821 3577", "spaces"),
        ("4821\n3577", "spaces"),
        ("4821\x003577", "control characters"),
        ("4821\x1b3577", "control characters"),
        ("7" * (MAX_TOKEN_CHARS + 1), "longer than any session token"),
        ("https://127.0.0.1/?apisession=&x=1", "no session token after apisession="),
        ("https://127.0.0.1/?apisession=4821%203577", "spaces"),
    ],
)
def test_what_is_not_a_token_is_refused_with_a_reason_that_does_not_repeat_it(pasted: str, says: str) -> None:
    with pytest.raises(TokenInputError) as refused:
        parse_session_token(pasted)
    assert says in str(refused.value)
    if pasted.strip():
        assert pasted.strip() not in str(refused.value)


def test_a_token_of_the_longest_length_is_taken() -> None:
    assert parse_session_token("7" * MAX_TOKEN_CHARS) == "7" * MAX_TOKEN_CHARS


# -- the dialog with a stand-in renew --------------------------------------------------------------------


def test_the_dialog_shows_the_reason_the_link_and_a_hidden_token_field(qtbot: QtBot, aloop: Loop) -> None:
    dialog = dialog_for(qtbot, Renewals(), reason=REASON)
    assert dialog.reason_label.isVisible() and dialog.reason_label.text() == REASON
    link = dialog.link_label.text()
    assert f'href="{URL.replace("&", "&amp;")}"' in link, "the href is the whole URL"
    assert dialog.link_label.openExternalLinks()
    shown = link.split(">", 1)[1].rsplit("<", 1)[0]
    assert shown.startswith("https://api.icicidirect.com/apiuser/login") and shown.endswith("…"), "the text is elided"
    assert dialog.token_edit.echoMode() is QLineEdit.EchoMode.Password
    dialog.show_toggle.setChecked(True)
    assert dialog.token_edit.echoMode() is QLineEdit.EchoMode.Normal
    dialog.show_toggle.setChecked(False)
    assert dialog.token_edit.echoMode() is QLineEdit.EchoMode.Password
    assert dialog.login_button.isDefault()
    assert not dialog.login_button.isEnabled(), "nothing to log in with yet"
    paste(dialog, "   ")
    assert not dialog.login_button.isEnabled()
    paste(dialog, "48213577")
    assert dialog.login_button.isEnabled()


def test_without_a_reason_the_reason_line_is_hidden(qtbot: QtBot, aloop: Loop) -> None:
    dialog = dialog_for(qtbot, Renewals())
    assert not dialog.reason_label.isVisible()


def test_copy_link_puts_the_whole_url_on_the_clipboard(qtbot: QtBot, aloop: Loop) -> None:
    QGuiApplication.clipboard().clear()
    dialog = dialog_for(qtbot, Renewals())
    qtbot.mouseClick(dialog.copy_button, Qt.MouseButton.LeftButton)
    assert QGuiApplication.clipboard().text() == URL
    assert dialog.copy_button.text() == "Copied"


@pytest.mark.parametrize("pasted", ["4821 3577", "4821\x073577", "9" * (MAX_TOKEN_CHARS + 1), "https://x/?apisession="])
def test_a_bad_token_is_refused_in_the_dialog_without_calling_renew(qtbot: QtBot, aloop: Loop, pasted: str) -> None:
    renew = Renewals()
    dialog = dialog_for(qtbot, renew)
    paste(dialog, pasted)
    click_log_in(dialog)
    assert renew.tokens == []
    assert not dialog.checking and dialog.isVisible()
    assert dialog.status_label.isVisible() and dialog.status_label.text()
    assert "color" in dialog.status_label.styleSheet(), "a refusal is shown as an error"
    paste(dialog, "48213577")
    assert not dialog.status_label.isVisible(), "the refusal goes once the text changes"


def test_an_empty_token_is_refused_even_if_log_in_is_called(qtbot: QtBot, aloop: Loop) -> None:
    renew = Renewals()
    dialog = dialog_for(qtbot, renew)
    paste(dialog, " \n ")
    dialog.log_in()
    assert renew.tokens == []
    assert dialog.status_label.text() == "Paste the session token first."


def test_a_pasted_redirect_address_sends_only_the_token_and_success_accepts(qtbot: QtBot, aloop: Loop) -> None:
    renew = Renewals()
    dialog = dialog_for(qtbot, renew)
    renewed: list[bool] = []
    dialog.token_renewed.connect(lambda: renewed.append(True))
    paste(dialog, " https://127.0.0.1/?apisession=55512345&state=desk \n")

    async def scenario() -> None:
        renew.release.clear()
        click_log_in(dialog)
        await until(lambda: renew.tokens == ["55512345"], "renew to be called")
        # While ICICI answers: inputs disabled, the wait shown, and the dialog cannot be dismissed.
        assert dialog.checking
        assert dialog.status_label.text() == "Checking with ICICI…"
        assert not dialog.token_edit.isEnabled() and not dialog.login_button.isEnabled()
        assert not dialog.cancel_button.isEnabled() and not dialog.show_toggle.isEnabled()
        dialog.reject()
        assert dialog.isVisible()
        click_log_in(dialog)
        assert renew.tokens == ["55512345"], "a second click while checking sends nothing"
        renew.release.set()
        await until(lambda: not dialog.isVisible(), "the dialog to close")

    aloop.run(scenario())
    assert dialog.result() == QDialog.DialogCode.Accepted
    assert renewed == [True]
    assert dialog.token_edit.text() == "", "the token does not linger in the widget"


@pytest.mark.parametrize(
    ("error", "says"),
    [
        (BrokerError(BrokerErrorCode.AUTH_FAILED, "Invalid session 55512345 for app"), "ICICI refused the session token"),
        (BrokerError(BrokerErrorCode.UNAVAILABLE, "HTTP 503 for 55512345"), "Could not reach ICICI"),
        (TimeoutError(), "did not answer in time"),
        (RuntimeError("socket closed while sending apisession=55512345"), "RuntimeError"),
    ],
)
def test_a_failing_renew_shows_the_error_without_the_token_and_stays_open(
    qtbot: QtBot, aloop: Loop, error: BaseException, says: str,
) -> None:
    renew = Renewals(error)
    dialog = dialog_for(qtbot, renew, dark=True)
    paste(dialog, "55512345")

    async def scenario() -> None:
        click_log_in(dialog)
        await until(lambda: not dialog.checking, "the renew to fail")

    aloop.run(scenario())
    assert renew.tokens == ["55512345"]
    shown = dialog.status_label.text()
    assert says in shown and "55512345" not in shown, shown
    if "55512345" in str(error):
        assert "[token]" in shown
    assert "#ff7b72" in dialog.status_label.styleSheet(), "the error is red"
    assert dialog.isVisible() and dialog.result() != QDialog.DialogCode.Accepted
    assert dialog.token_edit.isEnabled() and dialog.login_button.isEnabled() and dialog.cancel_button.isEnabled()
    assert dialog.token_edit.text() == "55512345", "kept, so the trader can correct it"


def test_cancel_rejects_without_calling_renew(qtbot: QtBot, aloop: Loop) -> None:
    renew = Renewals()
    dialog = dialog_for(qtbot, renew)
    paste(dialog, "55512345")
    qtbot.mouseClick(dialog.cancel_button, Qt.MouseButton.LeftButton)
    assert not dialog.isVisible() and dialog.result() == QDialog.DialogCode.Rejected
    assert renew.tokens == [] and dialog.token_edit.text() == ""


def test_screenshots(qtbot: QtBot, aloop: Loop) -> None:
    OUTPUT.mkdir(exist_ok=True)
    renew = Renewals(BrokerError(BrokerErrorCode.AUTH_FAILED, "Error in get_customer_details(): Invalid session."))
    dark = dialog_for(qtbot, renew, reason=REASON)
    dark.setPalette(theme.palette(True))
    dark.resize(dark.sizeHint())
    link = theme.palette(True).color(QPalette.ColorRole.Link).name()
    assert link in dark.link_label.text(), "the link takes the palette's link colour, also when it came later"
    paste(dark, "https://127.0.0.1/?apisession=11112222")
    assert dark.grab().save(str(OUTPUT / "login_dialog.png"))

    async def fail() -> None:
        renew.release.clear()
        click_log_in(dark)
        await until(lambda: renew.tokens != [], "the renew to start")
        assert dark.grab().save(str(OUTPUT / "login_dialog_checking.png"))
        renew.release.set()
        await until(lambda: not dark.checking, "the renew to fail")

    aloop.run(fail())
    assert "#ff7b72" in dark.status_label.styleSheet(), "the dark palette picks the light red"
    assert dark.grab().save(str(OUTPUT / "login_dialog_error.png"))

    light = dialog_for(qtbot, renew, reason=REASON)
    paste(light, "11112222")

    async def fail_light() -> None:
        click_log_in(light)
        await until(lambda: not light.checking, "the renew to fail")

    aloop.run(fail_light())
    assert "#b3261e" in light.status_label.styleSheet()
    assert light.grab().save(str(OUTPUT / "login_dialog_light.png"))


# -- against the local Breeze emulator ----------------------------------------------------------------------


@pytest.fixture
def emulator() -> Iterator[BreezeEmulator]:
    with BreezeEmulator(tick_interval_s=0.05) as emu:
        yield emu


async def expire(desk: Desk, emulator: BreezeEmulator) -> None:
    """The emulator ends the session; the desk learns it at its next call and halts."""
    emulator.expire_session()
    key = "NSE:RELIANCE"
    instrument = desk.engine.instruments[key]
    last = desk.engine.market_data.last_price(key)
    assert last is not None
    price = last - 10 * instrument.tick_size
    price -= price % instrument.tick_size
    request = OrderRequest(key, Side.BUY, instrument.lot_size, Decimal(price) / 100, source=OrderSource.STRATEGY, actor="test")
    assert not (await desk.engine.submit(request)).accepted
    await until(lambda: desk.engine.trading_state is TradingState.HALTED, "the session-expiry halt")
    assert "session expired" in desk.engine.halt_reason


@pytest.mark.slow
def test_logging_in_again_through_the_dialog_renews_the_engines_session_at_the_emulator(
    qtbot: QtBot, aloop: Loop, emulator: BreezeEmulator, tmp_path: Path,
) -> None:
    new_token, wrong_token = "99887766", "11112222"

    async def scenario() -> None:
        async with running_desk(emulator, tmp_path) as desk:
            await expire(desk, emulator)
            engine = desk.engine
            url = engine.broker_login_url()
            assert url is not None and url.endswith(emulator.api_key)
            dialog = dialog_for(qtbot, lambda t: engine.renew_broker_session(t, actor="tester"), url, reason=REASON)
            renewed: list[bool] = []
            dialog.token_renewed.connect(lambda: renewed.append(True))
            emulator.new_session(new_token)  # the trader logged in at ICICI and got a new token

            # A wrong token: the emulator refuses it, the dialog says so (without the token) and stays.
            paste(dialog, f"https://127.0.0.1/?apisession={wrong_token}")
            before = len(emulator.calls)
            click_log_in(dialog)
            assert dialog.checking
            await until(lambda: not dialog.checking, "ICICI's refusal", timeout=30)
            tried = [c for c in emulator.calls[before:] if c.endpoint == "customerdetails"]
            assert tried and all(c.body is not None and c.body.get("SessionToken") == wrong_token for c in tried)
            assert all(c.breeze_status != 200 for c in tried), tried
            refusal = dialog.status_label.text()
            assert "ICICI refused the session token" in refusal and wrong_token not in refusal, refusal
            assert dialog.isVisible() and not renewed
            assert engine.trading_state is TradingState.HALTED
            assert desk.count(AuditEventType.SESSION_RENEWED) == 0

            # The right one: the renewal reaches the emulator, the engine's session is back, the dialog closes.
            paste(dialog, new_token)
            before = len(emulator.calls)
            click_log_in(dialog)
            await until(lambda: not dialog.isVisible(), "the dialog to accept", timeout=30)
            opened = [c for c in emulator.calls[before:] if c.endpoint == "customerdetails"]
            assert opened and opened[-1].body is not None and opened[-1].body.get("SessionToken") == new_token
            assert opened[-1].breeze_status == 200 and opened[-1].refused is None
            assert dialog.result() == QDialog.DialogCode.Accepted and renewed == [True]
            await desk.audited(AuditEventType.SESSION_RENEWED)
            assert any(a.level is AlertLevel.INFO and "session renewed" in a.message for a in desk.alerts)
            # The renewed session serves calls again: the broker reads positions without a session error.
            await engine.broker_positions()
            assert engine.trading_state is TradingState.HALTED, "a new login does not re-arm by itself"

    aloop.run(scenario())
