"""Who is signed in at this desk window, and whether the window is locked: the UI's one source for both.

Widgets ask ``can(permission)`` to grey out what the operator may not do and listen to ``changed``;
``RoleGuard`` does that for a widget whose owner also enables and disables it (the kill bar's
re-arm button follows the trading state, the blotter's cancel buttons the selection). The engine
still decides: it checks the ``Actor`` it is handed against the permission table, so a widget that
forgot to grey out a button is refused by the engine, not obeyed.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass

from PySide6.QtCore import QEvent, QObject, Qt, Signal
from PySide6.QtWidgets import QWidget

from app.domain.actors import Actor, Permission

Verifier = Callable[[Actor], Awaitable[bool]]
"""``verify(actor)``: whether ``actor``'s account still stands as it did at sign-in (read from the directory);
when it does not, the verifier itself signs the operator out or locks the screen."""



@dataclass(frozen=True, slots=True)
class Seat:
    """One operator's unbroken stay at the window: from sign-in (or unlock) to the next sign-out, switch or lock.

    A dialog keeps the seat it was opened in; the same operator signing in again later is a new seat."""

    actor: Actor
    term: int


def not_held_text(name: str) -> str:
    """Why a dialog opened for ``name`` refuses to act: the window's operator changed, left or locked since."""
    return f"Refused: {name} is no longer the operator signed in at this window (signed out, switched or locked). Nothing was done."


class OperatorSession(QObject):
    """The signed-in operator (``None``: nobody) and the lock state, with one signal for any change.

    A dialog opened for one operator keeps their ``seat``; before it acts it asks ``holds(seat)``
    (the same stay, unlocked) or, for a privileged action, ``await confirm(seat)``, which also
    re-reads the account through the window's verifier.
    """

    changed = Signal()

    def __init__(self, parent: QObject | None = None, *, clock_ns: Callable[[], int] = time.time_ns) -> None:
        super().__init__(parent)
        self._actor: Actor | None = None
        self._locked = False
        self._clock_ns = clock_ns
        self._since_ns: int | None = None
        self._verifier: Verifier | None = None
        # Counts every change: a seat taken before one is over.
        self._term = 0

    @property
    def actor(self) -> Actor | None:
        return self._actor

    @property
    def locked(self) -> bool:
        return self._locked

    @property
    def seat(self) -> Seat | None:
        """The operator's current stay at the unlocked window (``None``: nobody, or locked)."""
        return None if self._actor is None or self._locked else Seat(self._actor, self._term)

    @property
    def signed_in_since_ns(self) -> int | None:
        """When the operator now signed in did so (``None``: nobody is signed in)."""
        return self._since_ns

    def sign_in(self, actor: Actor) -> None:
        self._actor = actor
        self._locked = False
        self._since_ns = self._clock_ns()
        self._term += 1
        self.changed.emit()

    def sign_out(self) -> None:
        self._actor = None
        self._locked = False
        self._since_ns = None
        self._term += 1
        self.changed.emit()

    def lock(self) -> None:
        if self._actor is not None and not self._locked:
            self._locked = True
            self._term += 1
            self.changed.emit()

    def unlock(self) -> None:
        if self._locked:
            self._locked = False
            self._term += 1
            self.changed.emit()

    def set_verifier(self, verifier: Verifier | None) -> None:
        """Who re-reads an operator's account before a privileged action (the window's session controller)."""
        self._verifier = verifier

    def holds(self, seat: Seat | None) -> bool:
        """Whether ``seat`` is still the operator's stay at the window (nothing signed out, switched or locked since)."""
        return seat is not None and seat == self.seat

    async def confirm(self, seat: Seat | None) -> bool:
        """``holds(seat)``, and the account unchanged in the directory since sign-in: ask right before acting."""
        if seat is None or not self.holds(seat):
            return False
        if self._verifier is not None and not await self._verifier(seat.actor):
            return False
        # The session may have changed while the directory was read.
        return self.holds(seat)

    def can(self, permission: Permission) -> bool:
        """Whether the operator at the window may do this now (nobody signed in, or locked: no)."""
        return self._actor is not None and not self._locked and self._actor.can(permission)

    def can_any(self, permissions: Iterable[Permission]) -> bool:
        """Whether the operator at the window holds at least one of ``permissions`` now."""
        return any(self.can(p) for p in permissions)

    def describe(self) -> str:
        """``asha · trader`` (``· locked`` while locked), or ``not signed in``."""
        if self._actor is None:
            return "not signed in"
        role = str(self._actor.role).replace("_", " ") if self._actor.role is not None else "no role"
        return f"{self._actor.name} · {role}{' · locked' if self._locked else ''}"


def permission_label(permissions: Iterable[Permission]) -> str:
    """``rearm`` or ``cancel_own or cancel_any``: for a tooltip that says what a greyed control needs."""
    return " or ".join(str(p) for p in permissions)


class RoleGuard(QObject):
    """Keeps a widget greyed while the session's operator holds none of ``permissions``, whatever its owner does.

    The owner goes on calling ``setEnabled`` as before (for its own reasons: a trading state, a
    selection); the guard remembers what the owner last asked for and, while the operator may not,
    turns any enable back off. When the operator gains the permission the owner's wish is restored.
    The tooltip says what is missing, so a greyed control is never a mystery.
    """

    def __init__(self, widget: QWidget, session: OperatorSession, permissions: Iterable[Permission]) -> None:
        super().__init__(widget)
        self._widget = widget
        self._session = session
        self._permissions = tuple(permissions)
        self._tooltip = widget.toolTip()
        self._wish = not widget.testAttribute(Qt.WidgetAttribute.WA_ForceDisabled)
        # Whether the widget is off because the guard turned it off (not because its owner did).
        self._forced = False
        self._enforcing = False
        widget.installEventFilter(self)
        session.changed.connect(self.apply)
        self.apply()

    @property
    def allowed(self) -> bool:
        return self._session.can_any(self._permissions)

    @property
    def wish(self) -> bool:
        """Whether the owner wants the widget enabled (what it gets once the operator may)."""
        return self._wish

    def apply(self) -> None:
        """Grey out or restore the widget for the operator now signed in."""
        self._read_wish()
        self._enforcing = True
        try:
            if self.allowed:
                self._widget.setEnabled(self._wish)
                self._forced = False
                self._widget.setToolTip(self._tooltip)
            else:
                self._widget.setEnabled(False)
                self._forced = True
                self._widget.setToolTip(self._denied_tip())
        finally:
            self._enforcing = False

    def _read_wish(self) -> None:
        # Under a disabled parent (the lock screen disables the docks) an owner's setEnabled sends no event:
        # the widget's own flag is the only trace of it.
        forced_off = self._widget.testAttribute(Qt.WidgetAttribute.WA_ForceDisabled)
        if not self._forced:
            self._wish = not forced_off
        elif not forced_off:
            # The guard had turned it off and someone turned it back on since: the owner wants it on.
            self._wish = True

    def _denied_tip(self) -> str:
        actor = self._session.actor
        if actor is None:
            who = "Nobody is signed in"
        elif self._session.locked:
            who = "The screen is locked"
        else:
            who = f"{actor.name} ({self._session.describe().split(' · ')[1]}) may not do this"
        needs = f"needs the {permission_label(self._permissions)} permission"
        return f"{self._tooltip}\n{who}: {needs}." if self._tooltip else f"{who}: {needs}."

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if watched is self._widget and event.type() == QEvent.Type.EnabledChange and not self._enforcing:
            # Only the widget's own setEnabled counts as the owner's wish (a disabled parent is not one).
            self._wish = not self._widget.testAttribute(Qt.WidgetAttribute.WA_ForceDisabled)
            self._forced = False
            if self._wish and not self.allowed:
                self._enforcing = True
                try:
                    self._widget.setEnabled(False)
                    self._forced = True
                finally:
                    self._enforcing = False
        return False
