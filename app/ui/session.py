"""Who is signed in at this desk window, and whether the window is locked: the UI's one source for both.

Widgets ask ``can(permission)`` to grey out what the operator may not do and listen to ``changed``.
The engine still decides: it checks the ``Actor`` it is handed against the permission table, so a
widget that forgot to grey out a button is refused by the engine, not obeyed.
"""

from __future__ import annotations

from PySide6.QtCore import QObject, Signal

from app.domain.actors import Actor, Permission


class OperatorSession(QObject):
    """The signed-in operator (``None``: nobody) and the lock state, with one signal for any change."""

    changed = Signal()

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._actor: Actor | None = None
        self._locked = False

    @property
    def actor(self) -> Actor | None:
        return self._actor

    @property
    def locked(self) -> bool:
        return self._locked

    def sign_in(self, actor: Actor) -> None:
        self._actor = actor
        self._locked = False
        self.changed.emit()

    def sign_out(self) -> None:
        self._actor = None
        self._locked = False
        self.changed.emit()

    def lock(self) -> None:
        if self._actor is not None and not self._locked:
            self._locked = True
            self.changed.emit()

    def unlock(self) -> None:
        if self._locked:
            self._locked = False
            self.changed.emit()

    def can(self, permission: Permission) -> bool:
        """Whether the operator at the window may do this now (nobody signed in, or locked: no)."""
        return self._actor is not None and not self._locked and self._actor.can(permission)
