"""The re-arm dialog: leave HALTED (or REDUCING) for a chosen state, with a written reason.

Four eyes: when the operator at the desk may not re-arm (a trader), the dialog asks who authorises
it, a risk officer's name and password, checked by the operator directory (purpose
``"authorise"``, audited) in a worker thread; the re-arm is then made, and recorded, as that risk
officer.

Given the window's ``session``, the dialog belongs to the operator signed in when it opened: it
refuses to re-arm once that operator has signed out, switched or locked the screen, and re-reads
the account (``session.confirm``) right before it acts.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from PySide6.QtCore import Qt
from PySide6.QtGui import QFont, QPalette
from PySide6.QtWidgets import (
    QButtonGroup,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QGroupBox,
    QLabel,
    QPlainTextEdit,
    QPushButton,
    QRadioButton,
    QVBoxLayout,
    QWidget,
)

from app.domain.actors import Actor, Permission
from app.security.accounts import AuthError
from app.ui import theme
from app.ui.session import OperatorSession, not_held_text
from app.ui.sign_in_dialog import (
    failure_text,
    name_field,
    password_field,
    problem_label,
    show_problem,
    with_problem,
)

log = logging.getLogger(__name__)

MIN_REASON_CHARS = 4
MAX_REASON_CHARS = 500

TARGETS = ("ACTIVE", "REDUCING")
_TARGET_HELP = {
    "ACTIVE": "trade normally",
    "REDUCING": "only orders that reduce a position pass",
}

Submit = Callable[[str, str], Awaitable[None]]
"""``submit(reason, target)``: performs the re-arm; raises ``ValueError``/``PermissionError`` to refuse."""

Authorise = Callable[[str, str], Actor]
"""``authorise(name, password)``: blocking (argon2); the authorising operator, or ``AuthError``."""


@dataclass(frozen=True, slots=True)
class FourEyes:
    """How a re-arm is authorised by someone other than the operator at the desk."""

    authorise: Authorise
    # Who is asking (the operator signed in at the desk), named in the dialog.
    requested_by: str


def fold_reason(text: str) -> str:
    """The reason as audited: stripped, every run of whitespace (newlines included) folded to one space."""
    return " ".join(text.split())


def is_dark(widget: QWidget) -> bool:
    """Whether the widget paints on a dark background, read from its palette."""
    return theme.is_dark(widget.palette())


def error_colour(widget: QWidget) -> str:
    """A red that reads on the widget's background."""
    return "#ff6b6b" if is_dark(widget) else "#c62828"


class RearmDialog(QDialog):
    """Asks who re-arms, to which state and why; the Re-arm button stays disabled until the reason is usable.

    With ``submit`` the dialog performs the re-arm itself: the Re-arm click runs ``submit(reason, target)``
    as a task on the running (qasync) loop, accepts when it returns and shows the refusal when it raises,
    staying open so the operator can correct the reason or the target. Without ``submit`` the click just
    accepts and the caller reads ``reason()`` and ``target()``.
    """

    def __init__(
        self,
        actor: str,
        halted_reason: str,
        state: str,
        parent: QWidget | None = None,
        *,
        submit: Submit | None = None,
        four_eyes: FourEyes | None = None,
        session: OperatorSession | None = None,
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle("Re-arm the desk")
        self.setModal(True)
        self.setMinimumWidth(460)
        self._submit = submit
        # Held so the running submit is not garbage-collected (asyncio keeps only weak references to tasks).
        self._task: asyncio.Task[None] | None = None
        self._sending = False
        # Set when the dialog closes while a submit is still in flight: its outcome then goes to the log.
        self._abandoned = False
        self._four_eyes = four_eyes
        self._session = session
        # The operator's stay this dialog was opened in: nobody else's authority (nor a later sign-in) acts through it.
        self._seat = session.seat if session is not None else None
        # The operator who authorised the re-arm (four eyes), once checked: the window re-arms as them.
        self.authoriser: Actor | None = None

        state_label = QLabel(state)
        bold = QFont(state_label.font())
        bold.setBold(True)
        state_label.setFont(bold)
        why_label = QLabel(halted_reason or "(no reason recorded)")
        why_label.setWordWrap(True)
        why_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        actor_label = QLabel(actor)
        actor_label.setFont(bold)
        # Reasons and refusals are free text from operators and the engine: never let a '<' turn into markup.
        for label in (state_label, why_label, actor_label):
            label.setTextFormat(Qt.TextFormat.PlainText)

        facts = QFormLayout()
        facts.addRow("Current state:", state_label)
        facts.addRow("Because:", why_label)
        facts.addRow("Requested by:" if four_eyes is not None else "Re-arm as:", actor_label)

        self._targets = QButtonGroup(self)
        self._unavailable: set[str] = set()
        target_box = QVBoxLayout()
        target_box.setSpacing(2)
        for target in TARGETS:
            radio = QRadioButton(f"{target}  —  {_TARGET_HELP[target]}")
            radio.setObjectName(target)
            self._targets.addButton(radio)
            target_box.addWidget(radio)
            if target == state:
                # The engine refuses a re-arm to the state the desk is already in.
                self._unavailable.add(target)
                radio.setEnabled(False)
                radio.setToolTip(f"The desk is already {state}.")
        available = [target for target in TARGETS if target not in self._unavailable]
        self._radio(available[0] if available else "ACTIVE").setChecked(True)
        facts.addRow("Go to:", target_box)

        self.reason_edit: QPlainTextEdit = QPlainTextEdit()
        self.reason_edit.setPlaceholderText("Why is it safe to trade again? (required)")
        self.reason_edit.setTabChangesFocus(True)
        line = self.reason_edit.fontMetrics().lineSpacing()
        self.reason_edit.setFixedHeight(line * 4 + 12)

        self._hint = QLabel()
        self._error = QLabel()
        self._error.setTextFormat(Qt.TextFormat.PlainText)
        self._error.setWordWrap(True)
        self._error.setStyleSheet(f"color: {error_colour(self)};")
        self._error.hide()

        self._buttons = QDialogButtonBox()
        self.rearm_button: QPushButton = self._buttons.addButton("Re-arm", QDialogButtonBox.ButtonRole.AcceptRole)
        self.cancel_button: QPushButton = self._buttons.addButton(QDialogButtonBox.StandardButton.Cancel)
        self.rearm_button.setDefault(True)
        # Both roles go through our own slots: accept only ever follows a valid reason (and a successful submit).
        self.rearm_button.clicked.connect(self._on_rearm)
        self.cancel_button.clicked.connect(self.reject)

        layout = QVBoxLayout(self)
        layout.addLayout(facts)
        layout.addSpacing(6)
        layout.addWidget(QLabel("Reason (recorded in the audit trail):"))
        layout.addWidget(self.reason_edit)
        layout.addWidget(self._hint)
        self.authoriser_name = name_field()
        self.authoriser_password = password_field("their password")
        self.authoriser_problem = problem_label()
        if four_eyes is not None:
            box = QGroupBox("Authorised by (a risk officer, in person at this desk)")
            form = QFormLayout(box)
            form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
            form.addRow("Name", self.authoriser_name)
            form.addRow("Password", with_problem(self.authoriser_password, self.authoriser_problem))
            layout.addWidget(box)
            self.authoriser_name.textChanged.connect(self._refresh)
            self.authoriser_password.textChanged.connect(self._refresh)
        layout.addWidget(self._error)
        layout.addWidget(self._buttons)

        self.reason_edit.textChanged.connect(self._refresh)
        self._targets.buttonToggled.connect(self._refresh)
        self._refresh()
        self.reason_edit.setFocus()

    # -- results ---------------------------------------------------------------------------------

    def reason(self) -> str:
        """The reason as typed, stripped and folded onto one line."""
        return fold_reason(self.reason_edit.toPlainText())

    def target(self) -> str:
        """The chosen state: ``"ACTIVE"`` or ``"REDUCING"``."""
        checked = self._targets.checkedButton()
        return checked.objectName() if checked is not None else "ACTIVE"

    def set_error(self, text: str) -> None:
        """Show a refusal in red inside the dialog (an empty text hides it)."""
        self._error.setText(text)
        self._error.setVisible(bool(text))

    def problem(self) -> str:
        """Why the reason cannot be submitted yet; empty when it can."""
        reason = self.reason()
        if len(reason) < MIN_REASON_CHARS:
            return f"A reason is required (at least {MIN_REASON_CHARS} characters)."
        if len(reason) > MAX_REASON_CHARS:
            return f"The reason is too long: {len(reason)} characters, at most {MAX_REASON_CHARS}."
        if self._four_eyes is not None and not (self.authoriser_name.text().strip() and self.authoriser_password.text()):
            return "A risk officer's name and password are required to authorise the re-arm."
        return ""

    # -- behaviour -------------------------------------------------------------------------------

    def reject(self) -> None:
        """Close without re-arming; a submit already sent keeps running and its outcome is logged."""
        if self._sending:
            self._abandoned = True
        super().reject()

    def _radio(self, target: str) -> QRadioButton:
        for button in self._targets.buttons():
            if button.objectName() == target and isinstance(button, QRadioButton):
                return button
        raise KeyError(target)

    def _refresh(self) -> None:
        self.rearm_button.setText(f"Re-arm to {self.target()}")
        if self._sending:
            self.rearm_button.setEnabled(False)
            self._show_hint(f"Re-arming to {self.target()}…", error=False)
            return
        problem = self.problem()
        self.rearm_button.setEnabled(not problem)
        if problem:
            self._show_hint(problem, error=len(self.reason()) > MAX_REASON_CHARS)
        else:
            self._show_hint(f"{len(self.reason())} / {MAX_REASON_CHARS} characters", error=False)

    def _show_hint(self, text: str, *, error: bool) -> None:
        self._hint.setText(text)
        if error:
            self._hint.setStyleSheet(f"color: {error_colour(self)};")
        else:
            # Muted, from the palette, so it reads on dark and light themes alike.
            self._hint.setStyleSheet("")
            self._hint.setForegroundRole(QPalette.ColorRole.PlaceholderText)

    def _held(self) -> bool:
        return self._session is None or self._session.holds(self._seat)

    def _refuse(self) -> None:
        self.set_error(not_held_text(self._seat.actor.name if self._seat is not None else "nobody"))

    def _on_rearm(self) -> None:
        if self.problem() or self._sending:
            return
        if not self._held():
            self._refuse()
            return
        if self._submit is None:
            self.accept()
            return
        self.set_error("")
        self._set_sending(True)
        self._task = asyncio.get_running_loop().create_task(self._run_submit(self._submit, self.reason(), self.target()))

    async def _authorised(self, four_eyes: FourEyes) -> bool:
        """Check the authoriser in a worker thread; ``False`` (said next to the fields) when refused."""
        name, password = self.authoriser_name.text().strip(), self.authoriser_password.text()
        show_problem(self.authoriser_problem, "")
        try:
            actor = await asyncio.to_thread(four_eyes.authorise, name, password)
        except Exception as error:  # noqa: BLE001 - a refusal or a fault, shown next to the fields
            if not isinstance(error, AuthError):
                log.error("re-arm authorisation check failed: %s", type(error).__name__)
            self.authoriser_password.clear()
            show_problem(self.authoriser_problem, failure_text(error))
            return False
        self.authoriser_password.clear()
        if not actor.can(Permission.REARM):
            show_problem(self.authoriser_problem, f"{actor.name} may not re-arm the desk: a risk officer must authorise it.")
            return False
        self.authoriser = actor
        return True

    async def _run_submit(self, submit: Submit, reason: str, target: str) -> None:
        try:
            if self._session is not None and not await self._session.confirm(self._seat):
                self._set_sending(False)
                self._refuse()
                return
            if self._four_eyes is not None and not await self._authorised(self._four_eyes):
                self._set_sending(False)
                return
            if not self._held():
                # Signed out or locked while the authoriser's password was being checked.
                self._set_sending(False)
                self._refuse()
                return
            await submit(reason, target)
        except (ValueError, PermissionError) as exc:
            self._submit_failed(str(exc) or type(exc).__name__, reason, target)
        except Exception as exc:  # an engine fault: still the operator's to read, not a silent hang
            log.exception("re-arm to %s failed", target)
            self._submit_failed(f"{type(exc).__name__}: {exc}", reason, target)
        else:
            if self._abandoned:
                log.info("re-arm to %s completed after its dialog was closed", target)
                return
            self._sending = False
            self.accept()

    def _submit_failed(self, message: str, reason: str, target: str) -> None:
        if self._abandoned:
            log.warning("re-arm to %s (%s) refused after its dialog was closed: %s", target, reason, message)
            return
        self._set_sending(False)
        self.set_error(message)

    def _set_sending(self, sending: bool) -> None:
        self._sending = sending
        self.reason_edit.setReadOnly(sending)
        self.authoriser_name.setReadOnly(sending)
        self.authoriser_password.setReadOnly(sending)
        for button in self._targets.buttons():
            button.setEnabled(not sending and button.objectName() not in self._unavailable)
        # Once sent there is no cancelling: an interrupted re-arm could be audited without taking effect.
        self.cancel_button.setText("Close" if sending else "Cancel")
        self._refresh()
