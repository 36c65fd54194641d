"""The daily ICICI Breeze login: open ICICI's page, log in there, paste the session token back.

ICICI sends the browser, after the login, to the app's registered redirect address with the token
appended as ``?apisession=VALUE`` (the breeze-connect README only calls it "your_api_session";
ICICI's own help page says the key is "the end part of the URL in the address bar"). The trader may
paste the token or that whole address: ``parse_session_token`` takes either.

The login URL carries the API key in its query string: this dialog is the only place it is shown.
The token is never logged and never shown in an error.
"""

from __future__ import annotations

import asyncio
import html
import re
import urllib.parse
from collections.abc import Awaitable, Callable

from PySide6.QtCore import QEvent, Qt, Signal
from PySide6.QtGui import QFontMetrics, QGuiApplication
from PySide6.QtWidgets import (
    QCheckBox,
    QDialog,
    QDialogButtonBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from app.brokers.base import BrokerError, BrokerErrorCode
from app.ui import theme

MAX_TOKEN_CHARS = 200
_APISESSION = re.compile(r"apisession=([^&#]*)", re.IGNORECASE)
_LINK_WIDTH_CHARS = 52
_ERROR_RED = {True: "#ff7b72", False: "#b3261e"}
_REFUSED = (BrokerErrorCode.AUTH_FAILED, BrokerErrorCode.SESSION_EXPIRED)
_UNREACHED = (BrokerErrorCode.TIMEOUT, BrokerErrorCode.UNAVAILABLE, BrokerErrorCode.NOT_CONNECTED)


class TokenInputError(ValueError):
    """What the trader pasted is not a session token; the message says why, in the trader's terms."""


def parse_session_token(text: str) -> str:
    """The session token in ``text``: the token itself, or ICICI's redirect address carrying ``apisession=VALUE``.

    Raises ``TokenInputError`` for an empty token, one with spaces or control characters inside, or
    one longer than ``MAX_TOKEN_CHARS``; the message never repeats the input.
    """
    token = text.strip()
    found = _APISESSION.search(token)
    if found is not None:
        token = urllib.parse.unquote(found.group(1)).strip()
        if not token:
            raise TokenInputError("The pasted address has no session token after apisession=.")
    if not token:
        raise TokenInputError("Paste the session token first.")
    if any(ch.isspace() for ch in token):
        raise TokenInputError("The session token cannot contain spaces or line breaks: paste only the token.")
    if not token.isprintable():
        raise TokenInputError("The session token contains control characters: copy it again from ICICI's page.")
    if len(token) > MAX_TOKEN_CHARS:
        raise TokenInputError(f"That is longer than any session token ({len(token)} characters, at most {MAX_TOKEN_CHARS}).")
    return token


def scrub_token(text: str, *tokens: str) -> str:
    """``text`` with every ``tokens`` (as pasted, and URL-encoded) replaced by a placeholder."""
    variants = {v for t in tokens if t for v in (t, urllib.parse.quote(t, safe=""), urllib.parse.quote_plus(t))}
    for secret in sorted(variants, key=len, reverse=True):
        text = text.replace(secret, "[token]")
    return text


def describe_failure(error: BaseException) -> str:
    """One line for the trader on why a renewal failed (before scrubbing)."""
    if isinstance(error, BrokerError):
        if error.code in _REFUSED:
            return f"ICICI refused the session token: {error.message}"
        if error.code in _UNREACHED:
            return f"Could not reach ICICI: {error.message}"
        return f"Could not renew the session: {error.message}"
    if isinstance(error, TimeoutError):
        return "ICICI did not answer in time. Check the connection and try again."
    detail = str(error)
    return f"Could not renew the session: {type(error).__name__}" + (f": {detail}" if detail else "")


class BreezeLoginDialog(QDialog):
    """Asks the trader for today's Breeze session token and hands it to ``renew``.

    ``renew(token)`` runs as an asyncio task on the running (qasync) loop; while it runs the inputs
    are disabled and the dialog cannot be dismissed, so the trader always sees the outcome (the
    engine bounds the wait by its connect timeout). Success emits ``token_renewed`` and accepts; a
    failure shows the reason in red, without the token, and leaves the dialog open. Cancel renews
    nothing: a desk halted by the expiry stays halted. ``dark`` picks the error colour; ``None``
    reads it from the palette.
    """

    token_renewed = Signal()

    def __init__(
        self,
        login_url: str,
        renew: Callable[[str], Awaitable[None]],
        *,
        reason: str = "",
        dark: bool | None = None,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self._login_url = login_url
        self._renew = renew
        self._dark = dark
        self._checking = False
        self._error_shown = False
        # The running renewal: the loop holds tasks weakly, so the dialog keeps it alive.
        self._task: asyncio.Future[None] | None = None
        self.setWindowTitle("Log in to ICICI Breeze")
        self.setMinimumWidth(520)

        self.reason_label = QLabel(reason.strip())
        self.reason_label.setWordWrap(True)
        font = self.reason_label.font()
        font.setBold(True)
        self.reason_label.setFont(font)
        self.reason_label.setVisible(bool(reason.strip()))

        step_one = QLabel("1. Open ICICI's login page in your browser:")
        self.link_label = QLabel()
        self.link_label.setTextFormat(Qt.TextFormat.RichText)
        self.link_label.setOpenExternalLinks(True)
        self.link_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextBrowserInteraction)
        self.link_label.setToolTip("Opens ICICI's login page in your browser")
        self._show_link()
        self.copy_button = QPushButton("Copy link")
        self.copy_button.setAutoDefault(False)
        self.copy_button.clicked.connect(self._copy_link)
        link_row = QHBoxLayout()
        link_row.addWidget(self.link_label, 1)
        link_row.addWidget(self.copy_button)

        step_two = QLabel("2. Log in at ICICI, then paste the session token here")
        self.token_edit = QLineEdit()
        self.token_edit.setEchoMode(QLineEdit.EchoMode.Password)
        self.token_edit.setPlaceholderText("session token, or the whole address ICICI sent you to")
        self.token_edit.setInputMethodHints(
            Qt.InputMethodHint.ImhSensitiveData | Qt.InputMethodHint.ImhNoPredictiveText
        )
        self.token_edit.textChanged.connect(self._edited)
        self.show_toggle = QCheckBox("Show")
        self.show_toggle.toggled.connect(self._show_token)
        token_row = QHBoxLayout()
        token_row.addWidget(self.token_edit, 1)
        token_row.addWidget(self.show_toggle)

        self.status_label = QLabel()
        self.status_label.setWordWrap(True)
        self.status_label.setTextFormat(Qt.TextFormat.PlainText)
        self.status_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.status_label.hide()

        self.buttons = QDialogButtonBox()
        self.login_button = self.buttons.addButton("Log in", QDialogButtonBox.ButtonRole.AcceptRole)
        self.cancel_button = self.buttons.addButton(QDialogButtonBox.StandardButton.Cancel)
        self.login_button.setDefault(True)
        self.login_button.clicked.connect(self.log_in)
        self.cancel_button.clicked.connect(self.reject)

        layout = QVBoxLayout(self)
        layout.setSpacing(8)
        layout.addWidget(self.reason_label)
        layout.addSpacing(4)
        layout.addWidget(step_one)
        layout.addLayout(link_row)
        layout.addSpacing(4)
        layout.addWidget(step_two)
        layout.addLayout(token_row)
        layout.addWidget(self.status_label)
        layout.addStretch(1)
        layout.addSpacing(6)
        layout.addWidget(self.buttons)
        self._input_changed()
        self.token_edit.setFocus()

    @property
    def checking(self) -> bool:
        """Whether a renewal is running (inputs disabled, the dialog cannot be dismissed)."""
        return self._checking

    def log_in(self) -> None:
        """Check the pasted text and, if it is a token, start ``renew`` with it on the running loop."""
        if self.checking:
            return
        try:
            token = parse_session_token(self.token_edit.text())
        except TokenInputError as exc:
            self._show_error(str(exc))
            return
        self._set_checking(True)
        self._task = asyncio.ensure_future(self._run_renew(token))

    def reject(self) -> None:
        """Cancel, Esc or the close button: refused while ICICI is answering, so the outcome is seen."""
        if self.checking:
            return
        self.token_edit.clear()
        super().reject()

    def changeEvent(self, event: QEvent) -> None:
        # A theme applied after construction: the link and error colours follow the new palette.
        if event.type() in (QEvent.Type.PaletteChange, QEvent.Type.FontChange):
            self._show_link()
            if self.status_label.isVisible():
                self._show_status(self.status_label.text(), error=self._error_shown)
        super().changeEvent(event)

    async def _run_renew(self, token: str) -> None:
        try:
            await self._renew(token)
        except asyncio.CancelledError:
            self._finish()
            self._show_error("The check was interrupted before ICICI answered; try again.")
            raise
        except Exception as exc:  # noqa: BLE001 - any failure is shown to the trader, and the dialog stays
            self._finish()
            self._show_error(scrub_token(describe_failure(exc), token))
            self.token_edit.setFocus()
            self.token_edit.selectAll()
            return
        self._finish()
        self.token_edit.clear()
        self.token_renewed.emit()
        self.accept()

    def _finish(self) -> None:
        self._task = None
        self._set_checking(False)

    def _set_checking(self, checking: bool) -> None:
        self._checking = checking
        for widget in (self.token_edit, self.show_toggle, self.cancel_button):
            widget.setEnabled(not checking)
        if checking:
            self._show_status("Checking with ICICI…", error=False)
        self._input_changed()

    def _edited(self) -> None:
        # An old refusal is about the text that was there: it goes once the trader changes it.
        self.status_label.hide()
        self._input_changed()

    def _input_changed(self) -> None:
        self.login_button.setEnabled(not self.checking and bool(self.token_edit.text().strip()))

    def _show_token(self, shown: bool) -> None:
        mode = QLineEdit.EchoMode.Normal if shown else QLineEdit.EchoMode.Password
        self.token_edit.setEchoMode(mode)

    def _copy_link(self) -> None:
        QGuiApplication.clipboard().setText(self._login_url)
        self.copy_button.setText("Copied")

    def _show_link(self) -> None:
        metrics = QFontMetrics(self.link_label.font())
        shown = metrics.elidedText(self._login_url, Qt.TextElideMode.ElideRight, metrics.averageCharWidth() * _LINK_WIDTH_CHARS)
        href = html.escape(self._login_url, quote=True)
        # Explicit: QLabel resolves a link's colour once, when the text is set.
        colour = self.palette().link().color().name()
        self.link_label.setText(f'<a href="{href}" style="color: {colour};">{html.escape(shown)}</a>')

    def _show_error(self, text: str) -> None:
        self._show_status(text, error=True)

    def _show_status(self, text: str, *, error: bool) -> None:
        self._error_shown = error
        dark = self._dark if self._dark is not None else theme.is_dark(self.palette())
        self.status_label.setStyleSheet(f"color: {_ERROR_RED[dark]};" if error else "")
        self.status_label.setText(text)
        self.status_label.show()
