"""Idle lock: notices when nobody has touched the keyboard or mouse in this application for a while.

An event filter on the ``QApplication`` sees every input event first (whichever window or dialog
has it) and notes the time; a slow timer asks ``check()`` whether the configured time has passed
since. The clock is injectable and ``check()`` public, so a test drives input and time directly
instead of racing a timer. A timeout of ``0`` never locks.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from PySide6.QtCore import QEvent, QObject, QTimer, Signal
from PySide6.QtWidgets import QApplication

# What counts as someone at the desk. A window repainting or a tick arriving does not.
INPUT_EVENTS = frozenset({
    QEvent.Type.KeyPress, QEvent.Type.KeyRelease, QEvent.Type.MouseButtonPress, QEvent.Type.MouseButtonRelease,
    QEvent.Type.MouseButtonDblClick, QEvent.Type.MouseMove, QEvent.Type.Wheel, QEvent.Type.TouchBegin,
    QEvent.Type.TouchUpdate, QEvent.Type.TabletPress, QEvent.Type.ShortcutOverride,
})
# Checked this often: a lock comes at most this late, and the check costs nothing.
CHECK_EVERY_MS = 5_000


class IdleWatch(QObject):
    """Emits ``idle`` once when ``timeout_s`` passes without input; input re-arms it. ``timeout_s == 0``: never."""

    idle = Signal()

    def __init__(
        self,
        timeout_s: float,
        parent: QObject | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        check_every_ms: int = CHECK_EVERY_MS,
    ) -> None:
        super().__init__(parent)
        self._clock = clock
        self._timeout_s = max(0.0, timeout_s)
        self._last_input = clock()
        self._fired = False
        self._app: QApplication | None = None
        self.timer = QTimer(self)
        self.timer.setInterval(check_every_ms)
        self.timer.timeout.connect(self.check)

    @property
    def timeout_s(self) -> float:
        return self._timeout_s

    @property
    def last_input(self) -> float:
        """When input last arrived, on the watch's clock."""
        return self._last_input

    def set_timeout(self, timeout_s: float) -> None:
        """A new idle time (``0``: never lock); counts from the last input."""
        self._timeout_s = max(0.0, timeout_s)

    def start(self) -> None:
        """Watch the application's input from now on."""
        app = QApplication.instance()
        if isinstance(app, QApplication) and self._app is None:
            app.installEventFilter(self)
            self._app = app
        self.touch()
        self.timer.start()

    def stop(self) -> None:
        self.timer.stop()
        if self._app is not None:
            self._app.removeEventFilter(self)
            self._app = None

    def touch(self) -> None:
        """Someone is here: the idle time counts from now."""
        self._last_input = self._clock()
        self._fired = False

    def idle_for(self) -> float:
        """Seconds since the last input."""
        return self._clock() - self._last_input

    def check(self) -> bool:
        """Emit ``idle`` if the time has passed (once per idle spell); whether it did now."""
        if self._timeout_s <= 0 or self._fired or self.idle_for() < self._timeout_s:
            return False
        self._fired = True
        self.idle.emit()
        return True

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if event.type() in INPUT_EVENTS:
            self.touch()
        return False
