"""The OS-wide kill hotkey: availability rules, and real chords typed into an X server (Xvfb).

Keys are typed with XTEST from a second X connection, as a USB keyboard's would arrive: the
listener hears them through RECORD, as on a trader's X11 desktop. Qt itself stays offscreen;
only pynput talks to Xvfb, through DISPLAY. Xvfb missing is a failure, not a skip: CI installs
the Debian package ``xvfb``.

Where a test asserts that something did *not* fire, it types a sentinel chord afterwards and
waits until that one is heard: one listener thread hears keys in order and the queued relay keeps that order,
so once the sentinel is in, anything the earlier keys caused is in too; no sleeping.
"""

from __future__ import annotations

import logging
import os
import select
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import Xlib.display  # type: ignore[import-untyped]
import Xlib.X  # type: ignore[import-untyped]
import Xlib.XK  # type: ignore[import-untyped]
from PySide6.QtCore import Qt, QThread
from PySide6.QtWidgets import QApplication
from pytestqt.qtbot import QtBot
from Xlib.ext import xtest  # type: ignore[import-untyped]

from app.ui.global_hotkey import (
    DEFAULT_CHORDS,
    NO_DISPLAY_REASON,
    WAYLAND_REASON,
    GlobalHotkey,
    HotkeyAvailability,
    global_hotkey_availability,
)

CTRL_SHIFT_K, F12 = DEFAULT_CHORDS
XVFB_MISSING = ("Xvfb is not installed, and the OS-wide hotkey is tested against a real X server: "
                "apt-get install -y xvfb")
SIGNAL_TIMEOUT_MS = 5000


# -- availability, from the environment alone ---------------------------------------------------------

@pytest.mark.parametrize(("platform", "env", "available", "reason"), [
    ("linux", {"DISPLAY": ":0"}, True, None),
    ("linux", {"DISPLAY": ":0", "XDG_SESSION_TYPE": "x11"}, True, None),
    ("linux", {"DISPLAY": ":0", "QT_QPA_PLATFORM": "offscreen"}, True, None),
    ("linux", {}, False, NO_DISPLAY_REASON),
    ("linux", {"DISPLAY": ""}, False, NO_DISPLAY_REASON),
    ("linux", {"QT_QPA_PLATFORM": "offscreen"}, False, NO_DISPLAY_REASON),
    ("linux", {"WAYLAND_DISPLAY": "wayland-0"}, False, WAYLAND_REASON),
    ("linux", {"XDG_SESSION_TYPE": "wayland"}, False, WAYLAND_REASON),
    ("linux", {"XDG_SESSION_TYPE": "Wayland", "DISPLAY": ""}, False, WAYLAND_REASON),
    ("freebsd14", {"DISPLAY": ":0"}, True, None),
    ("win32", {}, True, None),
    ("win32", {"WAYLAND_DISPLAY": "wayland-0"}, True, None),
    ("darwin", {}, True, None),
])
def test_availability_follows_the_session(platform: str, env: dict[str, str], available: bool, reason: str | None) -> None:
    result = global_hotkey_availability(env, platform)

    assert result.available is available
    assert result.reason
    if reason is not None:
        assert result.reason == reason


def test_xwayland_is_available_but_says_its_limit() -> None:
    result = global_hotkey_availability({"WAYLAND_DISPLAY": "wayland-0", "DISPLAY": ":1"}, "linux")

    assert result == HotkeyAvailability(True, result.reason)
    assert "XWayland" in result.reason and "focus" in result.reason


def test_availability_reads_the_process_environment_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.setenv("WAYLAND_DISPLAY", "wayland-0")

    assert global_hotkey_availability(platform="linux") == HotkeyAvailability(False, WAYLAND_REASON)


# -- start() where it cannot work --------------------------------------------------------------------

def test_start_without_a_display_says_why_logs_once_and_starts_no_thread(
        qapp: QApplication, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    monkeypatch.delenv("XDG_SESSION_TYPE", raising=False)
    before = set(threading.enumerate())
    hotkey = GlobalHotkey()

    with caplog.at_level(logging.WARNING, logger="app.ui.global_hotkey"):
        first = hotkey.start()
        second = hotkey.start()

    assert first == second == HotkeyAvailability(False, NO_DISPLAY_REASON)
    assert [r.getMessage() for r in caplog.records] == [f"OS-wide kill hotkey unavailable: {NO_DISPLAY_REASON}"]
    assert set(threading.enumerate()) <= before
    hotkey.stop()
    hotkey.stop()


def test_start_on_wayland_points_to_the_window_and_tray(qapp: QApplication, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.setenv("XDG_SESSION_TYPE", "wayland")

    assert GlobalHotkey().start() == HotkeyAvailability(False, WAYLAND_REASON)


def test_start_on_a_display_nobody_serves_does_not_raise(qapp: QApplication, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DISPLAY", f":{_unused_display_number()}")
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    monkeypatch.delenv("XDG_SESSION_TYPE", raising=False)
    before = set(threading.enumerate())

    result = GlobalHotkey().start()

    assert not result.available
    assert result.reason.startswith("cannot open the X display :")
    assert set(threading.enumerate()) <= before


def test_start_on_an_x_server_without_record_says_so(qapp: QApplication, monkeypatch: pytest.MonkeyPatch,
                                                     tmp_path: Path) -> None:
    with _Xvfb(tmp_path, "-extension", "RECORD") as display:
        monkeypatch.setenv("DISPLAY", display)
        monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
        monkeypatch.delenv("XDG_SESSION_TYPE", raising=False)

        result = GlobalHotkey().start()

    assert not result.available
    assert "no RECORD extension" in result.reason


# -- real chords under Xvfb --------------------------------------------------------------------------

@pytest.fixture(scope="module")
def xvfb(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A private Xvfb (its own display number, no TCP) for this module; its DISPLAY name."""
    with _Xvfb(tmp_path_factory.mktemp("xvfb")) as display:
        connection = Xlib.display.Display(display)
        try:
            missing = [ext for ext in ("RECORD", "XTEST") if not connection.has_extension(ext)]
        finally:
            connection.close()
        if missing:
            pytest.fail(f"Xvfb on {display} lacks {', '.join(missing)}; the hotkey test needs both")
        yield display


@pytest.fixture
def x_session(xvfb: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """DISPLAY points at the private Xvfb, as in a plain X11 session (also on a developer's Wayland desktop)."""
    monkeypatch.setenv("DISPLAY", xvfb)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    monkeypatch.delenv("XDG_SESSION_TYPE", raising=False)
    return xvfb


class Heard:
    """Records each ``triggered`` with whether it ran on the GUI thread; connected as a plain function."""

    def __init__(self, qapp: QApplication) -> None:
        self.chords: list[str] = []
        self.on_gui_thread: list[bool] = []
        self._gui_thread = qapp.thread()

    def __call__(self, chord: str) -> None:
        self.chords.append(chord)
        self.on_gui_thread.append(threading.current_thread() is threading.main_thread()
                                  and QThread.currentThread() is self._gui_thread)

    def wait_for(self, qtbot: QtBot, sentinel: str, times: int = 1) -> None:
        """Process Qt events until ``sentinel`` has been heard ``times`` times in all."""
        qtbot.waitUntil(lambda: self.chords.count(sentinel) >= times, timeout=SIGNAL_TIMEOUT_MS)


@pytest.fixture
def hotkey(x_session: str, qapp: QApplication) -> Iterator[GlobalHotkey]:
    hotkey = GlobalHotkey()
    yield hotkey
    hotkey.stop()


# Direct: the receiver runs in the emitting thread, so this shows `triggered` is emitted on the GUI thread.
CONNECTIONS = pytest.mark.parametrize("connection", [Qt.ConnectionType.AutoConnection, Qt.ConnectionType.DirectConnection],
                                      ids=["auto", "direct"])


@CONNECTIONS
def test_ctrl_shift_k_typed_anywhere_fires_on_the_gui_thread(
        hotkey: GlobalHotkey, x_session: str, qtbot: QtBot, qapp: QApplication, connection: Qt.ConnectionType) -> None:
    heard = Heard(qapp)
    hotkey.triggered.connect(heard, connection)
    result = hotkey.start()
    assert result.available, result.reason

    with qtbot.waitSignal(hotkey.triggered, timeout=SIGNAL_TIMEOUT_MS) as blocker:
        type_chord(x_session, "Control_L", "Shift_L", "k")

    assert blocker.args == [CTRL_SHIFT_K]
    assert heard.chords == [CTRL_SHIFT_K]
    assert heard.on_gui_thread == [True]


@CONNECTIONS
def test_f12_fires_on_the_gui_thread(hotkey: GlobalHotkey, x_session: str, qtbot: QtBot, qapp: QApplication,
                                     connection: Qt.ConnectionType) -> None:
    heard = Heard(qapp)
    hotkey.triggered.connect(heard, connection)
    assert hotkey.start().available

    with qtbot.waitSignal(hotkey.triggered, timeout=SIGNAL_TIMEOUT_MS) as blocker:
        type_chord(x_session, "F12")

    assert blocker.args == [F12]
    assert heard.on_gui_thread == [True]


def test_a_chord_that_is_not_ours_does_not_fire(hotkey: GlobalHotkey, x_session: str, qtbot: QtBot,
                                                qapp: QApplication) -> None:
    heard = Heard(qapp)
    hotkey.triggered.connect(heard)
    assert hotkey.start().available

    type_chord(x_session, "Control_L", "Shift_L", "j")
    type_chord(x_session, "Control_L", "k")
    type_chord(x_session, "F11")
    type_chord(x_session, "F12")
    heard.wait_for(qtbot, F12)

    assert heard.chords == [F12]


def test_a_chord_held_down_fires_once(hotkey: GlobalHotkey, x_session: str, qtbot: QtBot, qapp: QApplication) -> None:
    heard = Heard(qapp)
    hotkey.triggered.connect(heard)
    assert hotkey.start().available

    # Key repeat while held: presses of the last key with no release between them.
    type_chord(x_session, "Control_L", "Shift_L", "k", repeats=10)
    type_chord(x_session, "F12")
    heard.wait_for(qtbot, F12)

    assert heard.chords == [CTRL_SHIFT_K, F12]


def test_a_chord_repeated_within_300_ms_fires_once(x_session: str, qtbot: QtBot, qapp: QApplication) -> None:
    # The clock is read once per activation heard, in order: F12 at 0.0 fires; at 0.1 and 0.35 it is
    # repeated within 300 ms of the previous one (so a bouncing button stays quiet); Ctrl+Shift+K
    # is another chord; F12 at 0.7 is 350 ms after the last one and fires again.
    ticks = iter([0.0, 0.1, 0.35, 0.4, 0.7])
    hotkey = GlobalHotkey(clock=lambda: next(ticks))
    heard = Heard(qapp)
    hotkey.triggered.connect(heard)
    try:
        assert hotkey.start().available
        type_chord(x_session, "F12")
        heard.wait_for(qtbot, F12)
        type_chord(x_session, "F12")
        type_chord(x_session, "F12")
        type_chord(x_session, "Control_L", "Shift_L", "k")
        heard.wait_for(qtbot, CTRL_SHIFT_K)
        type_chord(x_session, "F12")
        heard.wait_for(qtbot, F12, times=2)
    finally:
        hotkey.stop()

    assert heard.chords == [F12, CTRL_SHIFT_K, F12]


def test_custom_chords(x_session: str, qtbot: QtBot, qapp: QApplication) -> None:
    hotkey = GlobalHotkey(chords=("<alt>+<f9>",))
    try:
        assert hotkey.start().available
        with qtbot.waitSignal(hotkey.triggered, timeout=SIGNAL_TIMEOUT_MS) as blocker:
            type_chord(x_session, "F12")
            type_chord(x_session, "Alt_L", "F9")
    finally:
        hotkey.stop()

    assert blocker.args == ["<alt>+<f9>"]
    assert hotkey.chords == ("<alt>+<f9>",)


def test_an_invalid_chord_is_reported_not_raised(x_session: str, qapp: QApplication) -> None:
    result = GlobalHotkey(chords=("<ctrl>+<nosuchkey>",)).start()

    assert not result.available
    assert "invalid chord" in result.reason


def test_stop_ends_the_listener_thread_and_start_again_listens(
        x_session: str, qtbot: QtBot, qapp: QApplication) -> None:
    before = set(threading.enumerate())
    hotkey = GlobalHotkey()
    try:
        # The second round: start() after stop() listens again (another chord: F12 again would be debounced).
        for chord, keys in ((F12, ("F12",)), (CTRL_SHIFT_K, ("Control_L", "Shift_L", "k"))):
            assert hotkey.start().available
            assert hotkey.start().available  # a second start is a no-op: still one listener
            started = set(threading.enumerate()) - before
            assert [t.name for t in started] == ["bulwark-global-hotkey"]
            # Heard keys first: after that, pynput 1.8 alone keeps its X11 thread until the next key event.
            with qtbot.waitSignal(hotkey.triggered, timeout=SIGNAL_TIMEOUT_MS) as blocker:
                type_chord(x_session, *keys)
            assert blocker.args == [chord]

            began = time.monotonic()
            hotkey.stop()
            stop_took = time.monotonic() - began
            hotkey.stop()

            assert not any(t.is_alive() for t in started)
            assert stop_took < 1.5
    finally:
        hotkey.stop()


# -- helpers ------------------------------------------------------------------------------------------

def type_chord(display_name: str, *keysyms: str, repeats: int = 1) -> None:
    """Press the keys in order and release them in reverse, through XTEST on a connection of our own."""
    connection = Xlib.display.Display(display_name)
    try:
        codes = []
        for name in keysyms:
            code = connection.keysym_to_keycode(Xlib.XK.string_to_keysym(name))
            assert code, f"no keycode for {name} on {display_name}"
            codes.append(code)
        for code in codes:
            xtest.fake_input(connection, Xlib.X.KeyPress, code)
        for _ in range(repeats - 1):
            xtest.fake_input(connection, Xlib.X.KeyPress, codes[-1])
        for code in reversed(codes):
            xtest.fake_input(connection, Xlib.X.KeyRelease, code)
        connection.sync()
    finally:
        connection.close()


def _unused_display_number() -> int:
    for number in range(400, 500):
        if not Path(f"/tmp/.X11-unix/X{number}").exists() and not Path(f"/tmp/.X{number}-lock").exists():
            return number
    raise AssertionError("no free X display number in 400..499")


class _Xvfb:
    """Runs ``Xvfb`` on a display number it picks itself (-displayfd); the display name inside the block."""

    def __init__(self, log_dir: Path, *args: str) -> None:
        self._log_path = log_dir / "xvfb.log"
        self._args = args
        self._process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> str:
        executable = shutil.which("Xvfb") or ("/usr/bin/Xvfb" if Path("/usr/bin/Xvfb").exists() else None)
        if executable is None:
            pytest.fail(XVFB_MISSING)
        read_end, write_end = os.pipe()
        with self._log_path.open("wb") as log:
            # -noreset: Xvfb would otherwise reset when its last client leaves, refusing connections meanwhile.
            self._process = subprocess.Popen(
                [executable, "-displayfd", str(write_end), "-nolisten", "tcp", "-noreset",
                 "-screen", "0", "640x480x24", *self._args],
                pass_fds=(write_end,), stdin=subprocess.DEVNULL, stdout=log, stderr=log)
        os.close(write_end)
        try:
            number = b""
            deadline = time.monotonic() + 15
            while not number.endswith(b"\n"):
                ready, _, _ = select.select([read_end], [], [], max(0.0, deadline - time.monotonic()))
                chunk = os.read(read_end, 16) if ready else b""
                if not chunk:
                    self._kill()
                    pytest.fail(f"Xvfb did not start: {self._log_path.read_text(errors='replace')[-2000:]}")
                number += chunk
        finally:
            os.close(read_end)
        return f":{int(number)}"

    def __exit__(self, *exc: object) -> None:
        self._kill()

    def _kill(self) -> None:
        if self._process is None:
            return
        self._process.terminate()
        try:
            self._process.wait(5)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        self._process = None
