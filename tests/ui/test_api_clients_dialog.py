"""API clients… in the desk window: an administrator adds a client and sees its token once; disable, rotate;
nobody else gets the menu item; the dialog closes, forgets the token and refuses to act once its administrator leaves.

Over a real desk (store, paper broker, engine) and the desk's own ``ApiClientDirectory`` (``Desk.api_clients``),
whose changes are audited into the desk's chain.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import qasync
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import QApplication
from pytestqt.qtbot import QtBot

from app.domain.actors import Actor, ApiScope, Role
from app.domain.audit import AuditEventType
from app.security.api_clients import ApiClient, ApiClientDirectory, AuthRefusal
from app.ui import theme
from app.ui.api_clients_dialog import SHOWN_ONCE, ApiClientsDialog
from tests.support.calendar import cover_today
from tests.support.desk_process import audit_records
from tests.ui.conftest import await_in_qt
from tests.ui.operator_desk import (
    OUTPUT,
    OperatorDesk,
    close_operator_desk,
    open_operator_desk,
)


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return cover_today(tmp_path / "home")


@pytest.fixture
def run(home: Path, qtbot: QtBot, qloop: qasync.QEventLoop) -> Iterator[OperatorDesk]:
    desk = open_operator_desk(qtbot, home)
    desk.window.set_api_clients(desk.desk.api_clients)
    yield desk
    close_operator_desk(qtbot, desk)


def opened(run: OperatorDesk, qtbot: QtBot, rows: int = 0) -> ApiClientsDialog:
    assert run.window.api_clients_action.isVisible() and run.window.api_clients_action.isEnabled()
    dialog = run.window.open_api_clients()
    assert dialog is not None and dialog.isVisible()
    qtbot.waitUntil(lambda: len(dialog.rows) == rows and not dialog.busy, timeout=5000)
    return dialog


def add(qtbot: QtBot, dialog: ApiClientsDialog, name: str, *scopes: ApiScope) -> str:
    dialog.add_name.setText(name)
    for scope in scopes:
        dialog.scope_boxes[scope].setChecked(True)
    assert dialog.add_button.isEnabled()
    assert await_in_qt(qtbot, dialog.add())
    return dialog.token


def test_an_admin_adds_a_client_and_sees_its_token_once(run: OperatorDesk, qtbot: QtBot, home: Path) -> None:
    run.sign_in(qtbot, "asha")
    dialog = opened(run, qtbot)
    # Problems next to the field, before anything is sent.
    dialog.add_name.setText("bad name")
    assert "no spaces" in dialog.add_name_problem.text() and not dialog.add_button.isEnabled()
    dialog.add_name.setText("momentum-bot")
    assert "at least one scope" in dialog.add_scope_problem.text() and not dialog.add_button.isEnabled()
    token = add(qtbot, dialog, "momentum-bot", ApiScope.READ, ApiScope.TRADE)
    assert token.startswith("bwk_") and dialog.token_box.isVisible() and dialog.token_field.isReadOnly()
    assert dialog.token_note.text() == SHOWN_ONCE and "momentum-bot" in dialog.token_box.title()
    # The desk's own directory takes it at once: the API would accept the token now.
    client = run.desk.api_clients.authenticate(token)
    assert isinstance(client, ApiClient) and client.scopes == frozenset({ApiScope.READ, ApiScope.TRADE})
    assert [c.name for c in dialog.rows] == ["momentum-bot"] and dialog.add_name.text() == ""
    assert dialog.table.item(0, 5).text() == f"…{token[-4:]}" and token not in dialog.table.item(0, 5).text()
    dialog.copy_button.click()
    assert QGuiApplication.clipboard().text() == token
    # A second client with the same name (any case) is refused next to the field.
    dialog.add_name.setText("MOMENTUM-BOT")
    dialog.scope_boxes[ApiScope.KILL].setChecked(True)
    assert "already a client named" in dialog.add_name_problem.text() and not dialog.add_button.isEnabled()
    dialog.add_name.clear()
    dialog.scope_boxes[ApiScope.KILL].setChecked(False)

    OUTPUT.mkdir(exist_ok=True)
    dialog.resize(dialog.sizeHint())
    QApplication.processEvents()
    dialog.grab().save(str(OUTPUT / "api_clients_dialog_dark.png"))
    theme.apply(QApplication.instance(), False)  # type: ignore[arg-type]
    QApplication.processEvents()
    dialog.grab().save(str(OUTPUT / "api_clients_dialog_light.png"))

    # Closing forgets the token; reopening shows the client, never its token.
    dialog.reject()
    assert dialog.token == "" and not dialog.token_box.isVisible()
    again = opened(run, qtbot, rows=1)
    assert again.token == "" and not again.token_box.isVisible()
    again.reject()
    qtbot.waitUntil(lambda: len(audit_records(home, AuditEventType.API_CLIENT_ADDED)) == 1, timeout=5000)
    record = audit_records(home, AuditEventType.API_CLIENT_ADDED)[0]
    assert json.loads(str(record["payload"]))["scopes"] == ["read", "trade"] and record["actor"] == "asha"
    assert token not in json.dumps(record, default=str)


@pytest.mark.parametrize("name", ["tom", "rita", "vic"])
def test_nobody_but_an_administrator_gets_the_menu_item(run: OperatorDesk, qtbot: QtBot, name: str) -> None:
    run.sign_in(qtbot, name)
    assert not run.window.api_clients_action.isVisible() and not run.window.api_clients_action.isEnabled()
    # Forced past the menu: refused, said in the alerts.
    assert run.window.open_api_clients() is None
    assert not any(isinstance(w, ApiClientsDialog) and w.isVisible() for w in QApplication.topLevelWidgets())


def test_nobody_signed_in_gets_no_item(run: OperatorDesk) -> None:
    assert not run.window.api_clients_action.isVisible() and run.window.open_api_clients() is None


def test_disable_enable_and_rotate_after_asking(run: OperatorDesk, qtbot: QtBot, home: Path) -> None:
    run.sign_in(qtbot, "asha")
    dialog = opened(run, qtbot)
    token = add(qtbot, dialog, "stop-button", ApiScope.KILL)
    clients = run.desk.api_clients
    dialog.select("stop-button")
    assert dialog.disable_button.isEnabled() and not dialog.enable_button.isEnabled()
    assert await_in_qt(qtbot, dialog.set_enabled("stop-button", False))
    assert clients.authenticate(token) is AuthRefusal.DISABLED and dialog.token == ""
    assert dialog.table.item(0, 2).text() == "disabled" and dialog.enable_button.isEnabled()
    assert await_in_qt(qtbot, dialog.set_enabled("stop-button", True))
    assert isinstance(clients.authenticate(token), ApiClient)
    # Rotate asks first; keeping the token changes nothing.
    dialog.select("stop-button")
    dialog.rotate_button.click()
    assert dialog.rotate_bar.isVisible() and "stop-button" in dialog.rotate_question.text()
    dialog.rotate_cancel.click()
    assert not dialog.rotate_bar.isVisible() and isinstance(clients.authenticate(token), ApiClient)
    dialog.rotate_button.click()
    OUTPUT.mkdir(exist_ok=True)
    dialog.grab().save(str(OUTPUT / "api_clients_rotate_ask_dark.png"))
    assert await_in_qt(qtbot, dialog.rotate())
    new = dialog.token
    assert new.startswith("bwk_") and new != token and dialog.token_box.isVisible()
    assert dialog.token_box.title() == "New token for stop-button"
    assert clients.authenticate(token) is AuthRefusal.UNKNOWN and isinstance(clients.authenticate(new), ApiClient)
    kinds = (AuditEventType.API_CLIENT_DISABLED, AuditEventType.API_CLIENT_ENABLED, AuditEventType.API_CLIENT_ROTATED)
    qtbot.waitUntil(lambda: all(len(audit_records(home, kind)) == 1 for kind in kinds), timeout=5000)
    assert all(new not in str(r) and token not in str(r) for kind in kinds for r in audit_records(home, kind))


def test_a_client_added_elsewhere_shows_when_the_dialog_opens(run: OperatorDesk, qtbot: QtBot) -> None:
    assert run.desk.writer is not None
    ApiClientDirectory(run.desk.writer.engine, lambda *_: None).add("from-cli", ["read"], by=Actor.with_role("asha", Role.ADMIN))
    run.sign_in(qtbot, "asha")
    dialog = opened(run, qtbot, rows=1)
    assert dialog.rows[0].name == "from-cli" and dialog.table.item(0, 3).text() == "asha"
    dialog.reject()


def test_the_dialog_closes_on_sign_out_forgets_the_token_and_refuses_to_act(run: OperatorDesk, qtbot: QtBot) -> None:
    window = run.window
    run.sign_in(qtbot, "asha")
    dialog = opened(run, qtbot)
    add(qtbot, dialog, "algo", ApiScope.READ)
    assert dialog.token
    window.sign_out()
    assert not dialog.isVisible() and dialog.token == ""
    # The next person at the desk cannot act through the old dialog object.
    dialog.add_name.setText("mallory")
    dialog.scope_boxes[ApiScope.TRADE].setChecked(True)
    assert not await_in_qt(qtbot, dialog.add())
    assert "no longer the operator" in dialog.message.text()
    run.sign_in(qtbot, "tom")
    assert not await_in_qt(qtbot, dialog.set_enabled("algo", False))
    assert [c.name for c in run.desk.api_clients.list()] == ["algo"]
    assert run.desk.api_clients.list()[0].enabled
