"""Who sits at the desk window: sign-in, first run, lock and unlock, switch, sign-out, password change, Operators….

``SessionController`` is owned by the ``DeskWindow`` and is the one place that changes its
``OperatorSession``. Two duties follow from that:

- Authority never outlives the operator. Every change that removes or replaces the operator (sign
  out, switch, lock, a changed role on unlock) closes the dialogs beside the window (re-arm,
  flatten, Operators…, a password form); the dialogs themselves also refuse to act for anyone but
  the operator they were opened for (``OperatorSession.holds``/``confirm``).
- A signed-in account is re-read from the directory every ``RECHECK_MS`` and right before each
  privileged action (the session's verifier): an account removed or disabled since sign-in is
  signed out; a changed role or password (an administrator's reset, the CLI, another window) locks
  the screen, and the operator unlocks with their password as it is now. Each is audited with its
  reason (``record_lock``, then ``record_sign_out`` for a sign-out) and said on the lock screen.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QObject, QTimer
from PySide6.QtWidgets import QDialog

from app.domain.actors import Actor, Permission, Role
from app.domain.events import AlertLevel
from app.security.accounts import Operator, Purpose
from app.ui.first_run_dialog import FirstRunDialog
from app.ui.operators_dialog import OperatorsDialog
from app.ui.password_dialog import PasswordDialog
from app.ui.session import OperatorSession
from app.ui.sign_in_dialog import SignInDialog, show_problem

if TYPE_CHECKING:
    from app.security.operators import OperatorDirectory
    from app.ui.main_window import DeskWindow

# How often the signed-in account is re-read from the directory (one indexed row, off the GUI thread).
RECHECK_MS = 5_000


def role_text(role: Role | None) -> str:
    """``risk officer``, as the window names roles."""
    return "no role" if role is None else str(role).replace("_", " ")


def account_problem(actor: Actor, record: Operator | None, known_password_ns: set[int]) -> tuple[str, bool]:
    """What changed in ``actor``'s account since sign-in (``""``: nothing), and whether it ends the session.

    ``known_password_ns``: the password-change stamps this session has seen (at sign-in, and the
    operator's own changes here); an empty set checks no password.
    """
    if record is None:
        return f"{actor.name}'s account no longer exists", True
    if not record.enabled:
        return f"{actor.name}'s account was disabled by an administrator", True
    if record.role is not actor.role:
        return f"{actor.name}'s role changed from {role_text(actor.role)} to {role_text(record.role)}", False
    if known_password_ns and record.password_changed_ns not in known_password_ns:
        return f"{actor.name}'s password was changed or reset elsewhere", False
    return "", False


class SessionController(QObject):
    """Signs operators in and out of one desk window, locks it, and keeps the signed-in account honest (see the module)."""

    def __init__(self, window: DeskWindow, session: OperatorSession, *, recheck_ms: int = RECHECK_MS) -> None:
        super().__init__(window)
        self._window = window
        self.session = session
        self.directory: OperatorDirectory | None = None
        self.sign_in_dialog: SignInDialog | None = None
        self.first_run_dialog: FirstRunDialog | None = None
        self.password_dialog: PasswordDialog | None = None
        self.operators_dialog: OperatorsDialog | None = None
        self.locked_at_ns: int | None = None
        # The operator the window last showed: a change away from them closes the dialogs they opened.
        self._seen: Actor | None = None
        # Password-change stamps read in worker threads as operators authenticate (or change their own
        # password), by name; taken into ``_known_ns`` on the GUI thread. The lock guards the dict only.
        self._fresh: dict[str, set[int]] = {}
        self._fresh_lock = threading.Lock()
        self._known_for: str | None = None
        self._known_ns: set[int] = set()
        self._checking: asyncio.Task[bool] | None = None
        session.set_verifier(self.verify)
        # Connected before the window's own slot: dialogs close before the window re-lays out (which may
        # open the broker login for the operator now signed in).
        session.changed.connect(self._session_changed)
        self.timer = QTimer(self)
        self.timer.setInterval(recheck_ms)
        self.timer.timeout.connect(self._tick)

    # -- the directory -----------------------------------------------------------------------------

    def set_directory(self, directory: OperatorDirectory) -> None:
        """Operators sign in, unlock and authorise through ``directory`` from now on; their accounts are re-read every few seconds."""
        self.directory = directory
        self.timer.start()
        self._window.apply_session()

    def open_session(self, directory: OperatorDirectory) -> asyncio.Task[None]:
        """The first-run dialog when ``directory`` has no operators yet, else the sign-in dialog. Returns at once."""
        self.set_directory(directory)

        async def ask() -> None:
            if await asyncio.to_thread(directory.has_operators):
                self.open_sign_in()
            else:
                self.open_first_run()

        return self._spawn(ask(), "opening the sign-in")

    def stop(self) -> None:
        """No more re-checks (the window is closing)."""
        self.timer.stop()

    def _authenticator(self, directory: OperatorDirectory, purpose: Purpose) -> Callable[[str, str], Actor]:
        """``directory.authenticate`` for a dialog's worker thread, noting the account's password stamp as it was just before."""

        def authenticate(name: str, password: str) -> Actor:
            # Read before the verify: a reset in between makes the stamp stale, which locks (never lets through).
            before = directory.operator(name)
            actor = directory.authenticate(name, password, purpose=purpose)
            if before is not None:
                self._note_password_ns(actor.name, before.password_changed_ns, replace=purpose != "unlock")
            return actor

        return authenticate

    def _note_password_ns(self, name: str, stamp: int, *, replace: bool) -> None:
        with self._fresh_lock:
            if replace:
                self._fresh[name] = {stamp}
            else:
                self._fresh.setdefault(name, set()).add(stamp)

    def _take_fresh(self, name: str) -> set[int]:
        with self._fresh_lock:
            return self._fresh.pop(name, set())

    # -- signing in and out ------------------------------------------------------------------------

    def open_sign_in(self) -> SignInDialog | None:
        """The sign-in dialog (once at a time): sign in, or, while someone is signed in, switch to another operator."""
        from app.ui.main_window import show_beside

        directory = self.directory
        if directory is None:
            return None
        if self.sign_in_dialog is not None and self.sign_in_dialog.isVisible():
            self.sign_in_dialog.raise_()
            self.sign_in_dialog.activateWindow()
            return self.sign_in_dialog
        switching = self.session.actor is not None
        dialog = SignInDialog(self._authenticator(directory, "sign_in"), self._window,
                              title="Switch operator — Bulwark" if switching else "Sign in — Bulwark",
                              prompt="Sign in as another operator" if switching else "Sign in to the desk")
        dialog.signed_in.connect(self.signed_in)
        show_beside(dialog)
        self.sign_in_dialog = dialog
        return dialog

    def open_first_run(self) -> FirstRunDialog | None:
        """The first start: create the administrator (no default account exists), then sign them in."""
        from app.ui.main_window import show_beside

        directory = self.directory
        if directory is None:
            return None
        authenticate = self._authenticator(directory, "sign_in")

        def create(name: str, password: str) -> Actor:
            directory.add(name, Role.ADMIN, password, by=None)
            return authenticate(name, password)

        dialog = FirstRunDialog(create, self._window)
        dialog.signed_in.connect(self.signed_in)
        show_beside(dialog)
        self.first_run_dialog = dialog
        return dialog

    def signed_in(self, actor: Actor) -> None:
        """``actor`` authenticated at this window: they take the seat (the previous operator's session ends, audited)."""
        previous = self.session.actor
        if previous is not None and previous.name != actor.name:
            self._record(lambda directory: directory.record_sign_out(previous), "recording the sign-out")
        self.session.sign_in(actor)
        self._window.idle.touch()

    def unlocked(self, actor: Actor) -> None:
        """The lock screen's password check passed for ``actor``."""
        current = self.session.actor
        if current is not None and actor.name == current.name:
            # The same operator, as the directory knows them now (a changed role applies from here).
            if actor != current:
                self.session.sign_in(actor)
            else:
                self.session.unlock()
        else:
            self.signed_in(actor)
        self._window.idle.touch()

    def unlock_check(self) -> Callable[[str, str], Actor]:
        """What the lock screen checks a password with."""
        directory = self.directory
        if directory is None:
            def refuse(_name: str, _password: str) -> Actor:
                raise PermissionError("no operator directory: the desk has not started")
            return refuse
        return self._authenticator(directory, "unlock")

    def lock(self, reason: str) -> None:
        """Lock the screen now (Ctrl+L, idle, switch, a changed account): the desk goes under the lock screen; audited."""
        actor = self.session.actor
        if actor is None or self.session.locked:
            return
        engine = self._window.engine
        # The desk's clock, as the kill-switch bar shows it (a paper desk's runs from the session's open).
        self.locked_at_ns = engine.clock_ns() if engine is not None else time.time_ns()
        self.session.lock()
        self._record(lambda directory: directory.record_lock(actor, reason), "recording the lock")

    def sign_out(self) -> None:
        """The operator leaves: audited; the lock screen covers the desk and the sign-in dialog opens."""
        actor = self.session.actor
        if actor is None:
            return
        self._record(lambda directory: directory.record_sign_out(actor), "recording the sign-out")
        self.session.sign_out()
        self.open_sign_in()

    def switch_operator(self) -> None:
        """Another operator takes the seat: the screen locks at once, then the sign-in dialog asks who."""
        self.lock("switching operator")
        self.open_sign_in()

    def _record(self, write: Callable[[OperatorDirectory], None], what: str) -> None:
        directory = self.directory
        if directory is not None:
            self._spawn(asyncio.to_thread(write, directory), what)

    def _session_changed(self) -> None:
        actor, previous = self.session.actor, self._seen
        self._seen = actor
        if previous is not None and (actor != previous or self.session.locked):
            self.close_dialogs()
        if actor is None:
            self._known_for, self._known_ns = None, set()
            return
        fresh = self._take_fresh(actor.name)
        if actor.name != self._known_for:
            self._known_for, self._known_ns = actor.name, fresh
        else:
            self._known_ns |= fresh

    def close_dialogs(self) -> None:
        """Close every dialog beside the window but the ones that bring an operator in: none outlives its operator."""
        for dialog in self._window.findChildren(QDialog):
            if dialog.isVisible() and not isinstance(dialog, (SignInDialog, FirstRunDialog)):
                dialog.reject()

    # -- the operator's own dialogs ----------------------------------------------------------------

    def open_change_password(self) -> PasswordDialog | None:
        """The signed-in operator changes their own password (the re-check then knows the new stamp)."""
        from app.ui.main_window import show_beside

        actor, directory = self.session.actor, self.directory
        if actor is None or directory is None or self.session.locked:
            return None
        name = actor.name

        def change(old: str, new: str) -> None:
            directory.change_password(name, old, new)
            record = directory.operator(name)
            if record is not None:
                self._note_password_ns(name, record.password_changed_ns, replace=False)

        dialog = PasswordDialog(name, change, self._window)
        dialog.accepted.connect(self._password_changed)
        dialog.accepted.connect(lambda: self._window.local_alert(AlertLevel.INFO, f"{name}'s password was changed"))
        show_beside(dialog)
        self.password_dialog = dialog
        return dialog

    def _password_changed(self) -> None:
        actor = self.session.actor
        if actor is not None and actor.name == self._known_for:
            self._known_ns |= self._take_fresh(actor.name)

    def open_operators(self) -> OperatorsDialog | None:
        """Operators… for an administrator: list, add, disable/enable, reset a password; each change re-checks the administrator."""
        from app.ui.main_window import show_beside

        actor, directory = self.session.actor, self.directory
        if actor is None or directory is None or self._window.refused("operators", (Permission.MANAGE_OPERATORS,)):
            return None
        dialog = OperatorsDialog(directory, actor, self._window, session=self.session)
        show_beside(dialog)
        self.operators_dialog = dialog
        self._spawn(dialog.load(), "reading the operators")
        return dialog

    # -- re-checking the account -------------------------------------------------------------------

    def _tick(self) -> None:
        if self.session.actor is None or self.directory is None:
            return
        if self._checking is None or self._checking.done():
            self._checking = self._spawn(self.recheck(), "re-checking the operator's account")

    async def recheck(self) -> bool:
        """Re-read the signed-in operator's account now; ``False`` when it changed (then signed out or locked)."""
        actor = self.session.actor
        return True if actor is None else await self.verify(actor)

    async def verify(self, actor: Actor) -> bool:
        """Whether ``actor``'s account stands as at sign-in; if not, they are signed out or locked, audited, and told why."""
        directory = self.directory
        if directory is None:
            # A window without operators (a test, a desk still starting): nothing to re-read.
            return True
        record = await asyncio.to_thread(directory.operator, actor.name)
        if self.session.actor != actor:
            # Signed out or switched while the account was read: whoever is there now is checked on their own.
            return False
        if actor.name == self._known_for:
            self._known_ns |= self._take_fresh(actor.name)
        if not self._known_ns and record is not None:
            # Signed in without a stamp (set directly, or added meanwhile): this one is the baseline.
            self._known_for, self._known_ns = actor.name, {record.password_changed_ns}
        # The operator's own change in flight: its stamp arrives when the dialog's worker returns.
        changing = self.password_dialog is not None and self.password_dialog.busy
        problem, ends = account_problem(actor, record, set() if changing else self._known_ns)
        if not problem:
            return True
        if ends:
            self._end(actor, problem)
        elif not self.session.locked:
            self.lock(f"{problem} since sign-in")
            self._tell(f"{problem} since sign-in: enter the password as it is now to unlock.")
        return False

    def _end(self, actor: Actor, problem: str) -> None:
        """Sign ``actor`` out because their account changed: the reason goes on the record before the sign-out."""
        reason = f"{problem}: signed out"

        def write(directory: OperatorDirectory) -> None:
            directory.record_lock(actor, reason)
            directory.record_sign_out(actor)

        self._record(write, "recording the sign-out")
        self.session.sign_out()
        self._tell(f"{reason}.")
        self.open_sign_in()

    def _tell(self, text: str) -> None:
        show_problem(self._window.lock_screen.message, text)
        self._window.local_alert(AlertLevel.WARNING, text)

    def _spawn(self, coro: Coroutine[Any, Any, Any], what: str) -> asyncio.Task[Any]:
        return self._window.spawn(coro, what)
