"""The OS-wide kill-switch hotkey: a chord typed anywhere (a USB panic button) reaches the desk.

pynput's ``GlobalHotKeys`` listens on X11 (python-xlib, RECORD extension), Windows and macOS.
Wayland allows no global grab: there the in-window shortcut and the tray menu are the way in.
pynput calls back on its own thread; the chord crosses to the GUI thread through a queued
connection, so every receiver of ``triggered`` runs on the GUI thread however it connected.
"""

from __future__ import annotations

import functools
import logging
import os
import sys
import threading
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from PySide6.QtCore import QObject, Qt, Signal, Slot

log = logging.getLogger(__name__)

DEFAULT_CHORDS = ("<ctrl>+<shift>+k", "<f12>")
# A chord held down, or a panic button that bounces or sends twice, engages the switch once.
DEBOUNCE_S = 0.3
WAYLAND_REASON = "Wayland allows no OS-wide hotkey: use F12 / Ctrl+Shift+K in the window or the tray menu"
NO_DISPLAY_REASON = "no X display (DISPLAY is not set): use F12 / Ctrl+Shift+K in the window or the tray menu"
# Bounds on the GUI thread's waits: a listener that cannot start must not freeze the desk.
_READY_TIMEOUT_S = 3.0
_STOP_TIMEOUT_S = 2.0


@dataclass(frozen=True)
class HotkeyAvailability:
    """Whether the OS-wide hotkey works here, and why (or why not) in words a trader can act on."""

    available: bool
    reason: str


def global_hotkey_availability(env: Mapping[str, str] | None = None, platform: str | None = None) -> HotkeyAvailability:
    """What the session allows, judged from the environment alone (no connection is made).

    ``start()`` still probes the display: a set ``DISPLAY`` may be unreachable or lack RECORD.
    """
    env = os.environ if env is None else env
    platform = sys.platform if platform is None else platform
    if platform == "win32":
        return HotkeyAvailability(True, "Windows keyboard hook")
    if platform == "darwin":
        return HotkeyAvailability(True, "macOS event tap (needs Input Monitoring permission)")
    wayland = bool(env.get("WAYLAND_DISPLAY")) or env.get("XDG_SESSION_TYPE", "").lower() == "wayland"
    display = env.get("DISPLAY", "")
    if not display:
        return HotkeyAvailability(False, WAYLAND_REASON if wayland else NO_DISPLAY_REASON)
    if wayland:
        # XWayland relays keys only while one of its own (X11) windows has focus.
        return HotkeyAvailability(True, f"XWayland display {display}: heard only while an X11 window has focus; "
                                        "F12 / Ctrl+Shift+K in the window always work")
    return HotkeyAvailability(True, f"X11 display {display}")


class GlobalHotkey(QObject):
    """Listens for the kill chords OS-wide and emits ``triggered(chord)`` on the GUI thread.

    Create it on the GUI thread; call ``stop()`` before dropping it (its listener is a daemon
    thread, so it never holds the process open).
    """

    triggered = Signal(str)
    # Emitted on pynput's thread; relayed to ``triggered`` on this object's (the GUI) thread.
    _heard = Signal(str)

    def __init__(self, chords: Sequence[str] = DEFAULT_CHORDS, parent: QObject | None = None, *,
                 clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(parent)
        self._chords = tuple(chords)
        self._clock = clock
        self._last_heard: dict[str, float] = {}
        self._listener: Any = None
        # Identifies the current listener: callbacks of a stopped (or never-ready) one are ignored.
        self._token: object | None = None
        self._reason = ""
        self._failure_logged = False
        # Queued explicitly, so `triggered` itself is emitted on the GUI thread: every receiver runs
        # there whatever its connection type (a DirectConnection or a QObject on another thread too).
        self._heard.connect(self._relay, Qt.ConnectionType.QueuedConnection)

    @property
    def chords(self) -> tuple[str, ...]:
        """The chords listened for, in pynput's notation."""
        return self._chords

    def start(self) -> HotkeyAvailability:
        """Start listening; says whether it works and why not. Never raises; a second call is a no-op."""
        if self._listener is not None and self._listener.is_alive():
            return HotkeyAvailability(True, self._reason)
        availability = global_hotkey_availability()
        if availability.available:
            try:
                availability = self._start_listener(availability.reason)
            except Exception as exc:  # noqa: BLE001 - a hotkey that cannot start must never take the desk down
                availability = HotkeyAvailability(False, f"the OS-wide hotkey could not start: {exc}")
        if availability.available:
            log.info("OS-wide kill hotkey on (%s): %s", availability.reason, ", ".join(self._chords))
        elif not self._failure_logged:
            self._failure_logged = True
            log.warning("OS-wide kill hotkey unavailable: %s", availability.reason)
        return availability

    def stop(self) -> None:
        """Stop listening and end the listener thread; safe to call at any time, any number of times."""
        listener, self._listener, self._token = self._listener, None, None
        if listener is not None:
            _stop_listener(listener)

    def _start_listener(self, reason: str) -> HotkeyAvailability:
        if sys.platform not in ("win32", "darwin"):
            problem = _x11_problem()
            if problem is not None:
                return HotkeyAvailability(False, problem)
        try:
            from pynput import keyboard  # type: ignore[import-untyped]
        except Exception as exc:  # noqa: BLE001 - pynput's X11 backend connects at import and raises ImportError or Xlib errors
            text = str(exc).strip()
            return HotkeyAvailability(False, f"pynput cannot load: {text.splitlines()[0] if text else type(exc).__name__}")
        token = object()
        try:
            listener = keyboard.GlobalHotKeys({chord: functools.partial(self._on_chord, token, chord) for chord in self._chords})
        except ValueError as exc:
            return HotkeyAvailability(False, f"invalid chord {exc}")
        listener.name = "bulwark-global-hotkey"
        self._token = token
        listener.start()
        if not _wait_ready(listener, _READY_TIMEOUT_S):
            self._token = None
            if listener.is_alive():
                # Not ready and not dead: stopping would block on pynput's readiness wait; the token
                # already makes it inert and it is a daemon thread.
                return HotkeyAvailability(False, f"the hotkey listener did not start within {_READY_TIMEOUT_S:g} s")
            return HotkeyAvailability(False, "the hotkey listener stopped while starting (its error is on stderr)")
        if getattr(listener, "IS_TRUSTED", True) is False:
            self._token = None
            _stop_listener(listener)
            return HotkeyAvailability(
                False, "macOS has not allowed this app to monitor input: grant it in System Settings › Privacy & Security")
        self._listener = listener
        self._reason = reason
        return HotkeyAvailability(True, reason)

    def _on_chord(self, token: object, chord: str) -> None:
        # pynput's thread. Every activation moves the window on, so a chord held down (key
        # repeat) or tapped again and again within the window engages once.
        if token is not self._token:
            return
        now = self._clock()
        last = self._last_heard.get(chord)
        self._last_heard[chord] = now
        if last is not None and now - last < DEBOUNCE_S:
            return
        try:
            self._heard.emit(chord)
        except RuntimeError:  # the Qt object was deleted without stop(): nobody is left to tell
            log.debug("OS-wide hotkey %s heard after its owner was deleted", chord)

    @Slot(str)
    def _relay(self, chord: str) -> None:
        self.triggered.emit(chord)


def _x11_problem() -> str | None:
    """Why the X server cannot serve the listener, or None; checked before pynput so its reason is clear."""
    display_name = os.environ.get("DISPLAY", "")
    with warnings.catch_warnings():
        # python-xlib leaves the socket of a failed connection open; it is freed with the exception.
        warnings.simplefilter("ignore", ResourceWarning)
        try:
            import Xlib.display  # type: ignore[import-untyped]

            display = Xlib.display.Display()
        except Exception as exc:  # noqa: BLE001 - python-xlib raises several unrelated types for "no connection"
            return f"cannot open the X display {display_name}: {exc}"
    try:
        if not display.has_extension("RECORD"):
            return f"the X server on {display_name} has no RECORD extension, which the OS-wide hotkey listens through"
    finally:
        display.close()
    return None


def _wait_ready(listener: Any, timeout_s: float) -> bool:
    """Wait at most ``timeout_s`` for the listener to be ready; False if it is not (or died)."""
    # pynput's wait() has no timeout and never returns for a listener that died while starting,
    # so it waits on a helper daemon thread that such a failure leaves behind, parked.
    waiter = threading.Thread(target=listener.wait, name="bulwark-global-hotkey-ready", daemon=True)
    waiter.start()
    deadline = time.monotonic() + timeout_s
    while waiter.is_alive() and listener.is_alive() and time.monotonic() < deadline:
        waiter.join(0.01)
    return not waiter.is_alive() and listener.is_alive()


def _stop_listener(listener: Any) -> None:
    if not listener.is_alive():
        return
    try:
        listener.stop()
        listener.join(0.1)
        if listener.is_alive():
            _disable_x_record(listener)
        listener.join(_STOP_TIMEOUT_S)
    except Exception:  # join() re-raises errors from pynput's thread; stopping goes on
        log.debug("stopping the OS-wide hotkey listener", exc_info=True)
    if listener.is_alive():
        log.warning("the OS-wide hotkey listener did not stop within %g s; it ends with the process", _STOP_TIMEOUT_S)


def _disable_x_record(listener: Any) -> None:
    """End pynput's X11 RECORD context from its second connection, which lets its thread finish now.

    pynput 1.8 sends the disable on the connection that its thread is blocked reading, so the
    thread lingers until the next key event (pynput PR #583); RECORD wants it on another
    connection. No-op on other backends and on a pynput that exits on its own.
    """
    display = getattr(listener, "_display_stop", None)
    context = getattr(listener, "_context", None)
    if display is None or context is None:
        return
    try:
        display.record_disable_context(context)
        display.flush()
    except Exception:  # the thread may have closed the connection meanwhile
        log.debug("disabling the X RECORD context", exc_info=True)
