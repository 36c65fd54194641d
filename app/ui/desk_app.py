"""Runs the desk window on the qasync loop: paint first, then start the desk (``app.desk``), attach to it, ask who signs in.

The window appears before the store, the broker and the engine are up (a cold start may take
seconds); the kill switch works from the first paint (a press before the engine exists is applied
the moment it does). A desk that cannot start says why in a message box as well as on stderr,
since a desk started from a launcher has no terminal.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

import qasync  # type: ignore[import-untyped]
from PySide6.QtCore import QTimer
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import QApplication, QMessageBox

from app.ui.breeze_login import BreezeLoginDialog
from app.ui.close_dialog import CloseChoice
from app.ui.main_window import DeskWindow, show_beside
from app.ui.qt_messages import qt_messages_logged

if TYPE_CHECKING:
    # Imported once the window has painted: the engine, the store and Alembic take most of a cold start.
    from app.desk import BrokerFactory, Desk, DeskOptions
    from app.engine.engine import Engine

log = logging.getLogger(__name__)

EXIT_OK = 0
EXIT_FAILED = 1
DEMO_ACTOR = "demo"
# Platforms where nobody can answer a message box (it would wait forever).
_NO_SCREEN = ("offscreen", "minimal")


@dataclass(frozen=True, slots=True)
class BreezeLogin:
    """How the desk logs in to Breeze: the login page, and the broker factory for a pasted session token."""

    # Both carry secrets (the URL the API key): never in a repr.
    login_url: str = field(repr=False)
    factory_for: Callable[[str], BrokerFactory]
    # The token stored today, tried first without asking.
    stored_token: str | None = field(default=None, repr=False)


@dataclass(frozen=True, slots=True)
class GuiOptions:
    """The window's own options, beside the desk's."""

    demo: bool = False
    dark: bool = True
    settings_path: Path | None = None
    global_hotkey: bool = True
    # Ends the run after this many seconds (benchmarks and tests); ``None``: until the window closes.
    quit_after_s: float | None = None
    # Called with the window once the desk runs (benchmarks and tests look in from here).
    on_running: Callable[[DeskWindow], Awaitable[None]] | None = None
    # Lock the window after this many minutes without keyboard or mouse input (settings' idle_lock_minutes); 0: never.
    idle_lock_minutes: float = 15.0


class DeskRun:
    """One desk under one window: start it (with the Breeze login when needed), run the demo flow, stop it in order."""

    def __init__(
        self, make_options: Callable[[], DeskOptions], gui: GuiOptions, window: DeskWindow, breeze: BreezeLogin | None,
    ) -> None:
        self.make_options = make_options
        self.gui = gui
        self.window = window
        self.breeze = breeze
        self.desk: Desk | None = None
        self.demo_task: asyncio.Task[None] | None = None
        self.exit_code = EXIT_OK
        self.done = asyncio.Event()
        self._start_over = asyncio.Event()
        window.set_stopper(self.stop)

    async def start(self) -> bool:
        """Start the desk and attach the window; ``False`` (after saying why) when it cannot."""
        try:
            return await self._start()
        finally:
            self._start_over.set()

    async def _start(self) -> bool:
        try:
            # Built here, after the first paint: it reads the calendar and imports the engine and the store.
            options = self.make_options()
        except Exception as exc:  # noqa: BLE001 - a desk that cannot be described cannot start: say why
            self.fail(f"The desk cannot start: {exc}")
            return False
        breeze = self.breeze
        if breeze is None:
            return await self._start_with(options)
        if breeze.stored_token is not None:
            from app.engine.engine import EngineStartError

            try:
                await self._open(replace(options, broker_factory=breeze.factory_for(breeze.stored_token)))
                return True
            except EngineStartError as exc:
                # The broker refused to start with today's stored token (expired, or from another login): ask.
                log.warning("the stored Breeze session token did not start the desk (%s); asking for a new one", exc)
            except Exception as exc:  # noqa: BLE001 - anything else (store, lock, limits) is not the token's fault
                self.fail(f"The desk did not start: {exc}")
                return False
        return await self._login(options, breeze)

    async def _login(self, options: DeskOptions, breeze: BreezeLogin) -> bool:
        outcome: asyncio.Future[bool] = asyncio.get_running_loop().create_future()

        async def renew(token: str) -> None:
            from app.logs import redact_in_logs

            # The pasted token is a secret from now on: never in a log line or the audit trail.
            redact_in_logs([token])
            await self._open(replace(options, broker_factory=breeze.factory_for(token), secrets=(*options.secrets, token)))

        dialog = BreezeLoginDialog(breeze.login_url, renew, reason="Log in to ICICI Breeze to start the desk.",
                                   dark=self.gui.dark, parent=self.window)

        def settle(logged_in: bool) -> None:
            if not outcome.done():
                outcome.set_result(logged_in)

        dialog.accepted.connect(lambda: settle(True))
        dialog.rejected.connect(lambda: settle(False))
        show_beside(dialog)
        if await outcome:
            return True
        log.warning("Breeze login cancelled: the desk does not start")
        self.exit_code = EXIT_FAILED
        self.done.set()
        return False

    async def _start_with(self, options: DeskOptions) -> bool:
        try:
            await self._open(options)
        except Exception as exc:  # noqa: BLE001 - every start failure is shown, then the desk exits
            self.fail(f"The desk did not start: {exc}")
            return False
        return True

    async def _open(self, options: DeskOptions) -> None:
        from app.desk import Desk

        desk = Desk(options)
        try:
            await desk.start(on_engine=self.window.attach)
        except BaseException:
            # The window lets go of the engine that did not start: a kill pressed now waits for the next one.
            self.window.detach()
            await desk.close()
            raise
        self.desk = desk
        if self.gui.demo:
            self.demo_task = asyncio.ensure_future(self._demo(desk.running_engine, desk))

    async def _demo(self, engine: Engine, desk: Desk) -> None:
        from app.order_flow import FlowOptions, OrderFlow

        flow = OrderFlow(engine, desk.entries, FlowOptions(seed=desk.options.seed, orders_per_sec=1.5, actor=DEMO_ACTOR))
        await flow.run(float("inf"))

    async def stop(self, details: dict[str, object]) -> None:
        # A window closed while the desk starts stops it once started: never a half-built desk.
        await self._start_over.wait()
        if self.demo_task is not None:
            self.demo_task.cancel()
            await asyncio.gather(self.demo_task, return_exceptions=True)
        try:
            if self.desk is not None:
                try:
                    await self.desk.stop(closed_by="window", **details)
                finally:
                    await self.desk.close()
        finally:
            self.done.set()

    def fail(self, message: str) -> None:
        log.error("%s", message)
        print(f"Bulwark: {message}", file=sys.stderr)
        self.exit_code = EXIT_FAILED
        if QGuiApplication.platformName() in _NO_SCREEN:
            self.done.set()
            return
        box = QMessageBox(QMessageBox.Icon.Critical, "Bulwark", message, parent=self.window)
        box.finished.connect(lambda _r: self.done.set())
        box.open()


def _add_work_docks(window: DeskWindow, desk: Desk) -> None:
    """The ticket, the limits panel and the audit viewer over this desk's engine and store."""
    from app.store.chain_key import ChainKeys
    from app.store.checkpoints import checkpoint_file

    recorder = desk.running_engine.recorder
    home = desk.options.home
    window.add_work_docks(
        recorder.engine if recorder is not None else None, limits_path=desk.options.limits_path, keys=ChainKeys(),
        checkpoint_files=(checkpoint_file(home),) if home is not None else (),
    )


def run_desk_window(make_options: Callable[[], DeskOptions], gui: GuiOptions, breeze: BreezeLogin | None = None) -> int:
    """Open the window, then describe (``make_options``) and start the desk inside it; run until the window closes.

    Returns the exit code."""
    # The GUI thread shares the GIL with the audit writer and the broker's threads: at Python's default
    # 5 ms switch interval a kill-switch press could wait that long for the GIL between its Qt calls.
    sys.setswitchinterval(0.001)
    app = QApplication.instance() or QApplication(sys.argv[:1])
    if not isinstance(app, QApplication):
        # A QCoreApplication (no widgets) already runs in this process: no window can be shown in it.
        raise TypeError("the desk window needs a QApplication; this process already runs a QCoreApplication")
    app.setApplicationName("Bulwark")
    # The window belongs to the desktop entry the installers add (bulwark.desktop): its icon, its name in the dock.
    app.setDesktopFileName("bulwark")
    app.setQuitOnLastWindowClosed(False)
    window = DeskWindow(settings_path=gui.settings_path, dark=gui.dark, global_hotkey=gui.global_hotkey,
                        idle_lock_s=gui.idle_lock_minutes * 60)
    run = DeskRun(make_options, gui, window, breeze)
    window.closed.connect(run.done.set)

    async def main() -> int:
        loop = asyncio.get_running_loop()
        # Broker and store calls run on the desk's own pool, shut down without waiting for a stuck call.
        executor = ThreadPoolExecutor(max_workers=8, thread_name_prefix="desk")
        loop.set_default_executor(executor)
        window.show()
        # Let the window paint before the desk's heavy imports and the store's migrations begin.
        for _ in range(200):
            if window.first_paint_ns is not None:
                break
            await asyncio.sleep(0.005)
        try:
            if await run.start():
                if run.desk is not None and run.desk.writer is not None:
                    _add_work_docks(window, run.desk)
                    # The engine already runs (whoever is signed in); the window now asks who is at the desk.
                    window.open_session(run.desk.operators)
                    window.set_api_clients(run.desk.api_clients)
                if gui.on_running is not None:
                    await gui.on_running(window)
                if gui.quit_after_s is not None:
                    # A timed run (benchmarks, smoke tests) ends without asking, leaving working orders to the broker.
                    QTimer.singleShot(int(gui.quit_after_s * 1000), lambda: window.close_with(CloseChoice.LEAVE))
            await run.done.wait()
        finally:
            window.hide()
            executor.shutdown(wait=False, cancel_futures=True)
        return run.exit_code

    started = time.monotonic()
    with qt_messages_logged():
        if sys.version_info >= (3, 12):
            code = asyncio.run(main(), loop_factory=qasync.QEventLoop)  # type: ignore[call-arg,unused-ignore]
        else:
            code = qasync.run(main())
    log.info("desk window closed after %.1f s", time.monotonic() - started)
    return int(code)
