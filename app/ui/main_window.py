"""The desk window: the kill-switch bar above everything, exposure charts in the centre, orders, positions and alerts as docks.

The window paints before the desk has started (the store and the broker may take seconds) and
attaches to the engine once it exists. From then on one frame timer drains the engine bridge and
repaints only what changed. The kill switch's slot calls the engine's synchronous
``engage_kill_switch``: the desk is HALTED before the slot returns, whatever the loop does next.

Operators: ``window.session`` says who is signed in and whether the window is locked;
``window.session_controller`` (``app/ui/session_controller.py``) signs them in and out through the
desk's ``OperatorDirectory`` (given by ``open_session``), locks, closes the dialogs an operator
leaves behind and re-reads the signed-in account; the window's methods for these delegate to it.
Until someone signs in, and while the screen is locked, the lock screen covers the docks and the
charts; the kill-switch bar stays above it and the kill switch works for everyone, always. Every
engine action the window takes carries ``session.actor`` and the engine decides; the window only
greys out what the operator may not do. F1 and F2 are kept free for the order ticket.
"""

from __future__ import annotations

import asyncio
import getpass
import logging
import time
from collections.abc import Callable, Coroutine
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import (
    QByteArray,
    QEvent,
    QObject,
    QRect,
    QSettings,
    Qt,
    QTimer,
    Signal,
)
from PySide6.QtGui import (
    QAction,
    QCloseEvent,
    QColor,
    QGuiApplication,
    QIcon,
    QKeyEvent,
    QKeySequence,
    QPainter,
    QPaintEvent,
    QPixmap,
    QResizeEvent,
)
from PySide6.QtWidgets import (
    QApplication,
    QDialog,
    QDockWidget,
    QLabel,
    QMainWindow,
    QMenu,
    QMenuBar,
    QSystemTrayIcon,
    QVBoxLayout,
    QWidget,
)

from app.domain.actors import Permission
from app.domain.audit import AuditSource
from app.domain.events import Alert, AlertLevel
from app.domain.orders import Side
from app.domain.trading_state import TradingState
from app.ui import theme
from app.ui.alerts_panel import AlertNotifier, AlertsPanel
from app.ui.breeze_login import BreezeLoginDialog
from app.ui.close_dialog import CloseChoice, CloseDialog
from app.ui.first_run_dialog import FirstRunDialog
from app.ui.flatten_dialog import FlattenDialog, FlattenLine
from app.ui.formatting import ist_hms
from app.ui.global_hotkey import GlobalHotkey
from app.ui.idle_watch import IdleWatch
from app.ui.kill_bar import KillSwitchBar, sweep_text
from app.ui.lock_screen import LockScreen
from app.ui.operators_dialog import OperatorsDialog
from app.ui.orders_table import OrdersModel, OrdersView
from app.ui.password_dialog import PasswordDialog
from app.ui.positions_table import PositionsView
from app.ui.rearm_dialog import FourEyes, RearmDialog
from app.ui.session import OperatorSession, RoleGuard, not_held_text
from app.ui.session_controller import SessionController
from app.ui.sign_in_dialog import SignInDialog
from app.ui.status_bar import DeskStatusBar

if TYPE_CHECKING:
    # The engine (and the store under it) is imported after the window's first paint, not before.
    from sqlalchemy import Engine as SqlEngine

    from app.engine.engine import Engine
    from app.security.api_clients import ApiClientDirectory
    from app.security.operators import OperatorDirectory
    from app.store.chain_key import ChainKeys
    from app.ui.api_clients_dialog import ApiClientsDialog
    from app.ui.bridge import Batch, EngineBridge
    from app.ui.charts import ExposurePanel
    from app.ui.work_docks import WorkDocks

log = logging.getLogger(__name__)

FRAME_MS = 100
_POSITIONS_EVERY_NS = 250_000_000
_CHART_EVERY_NS = 1_000_000_000
_STATUS_EVERY_NS = 250_000_000
_KILL_CHORDS = ("Ctrl+Shift+K", "F12")
_SETTINGS_VERSION = 1
_ORDER_ROWS = 10_000
_SESSION_EXPIRED = "The Breeze session expired; new orders are halted. Log in, paste the new token, then re-arm."
# How long a close waits for its cancels (or the sweep) to be confirmed before stopping anyway.
_CLOSE_WAIT_S = 60
_LOCK_CHORD = "Ctrl+L"
_CANCEL = (Permission.CANCEL_OWN, Permission.CANCEL_ANY)
# Renewing the broker session lets orders flow again: someone who trades or re-arms.
_BROKER_LOGIN = (Permission.TRADE, Permission.REARM)


async def _settled(engine: Engine, timeout_s: float) -> None:
    """Until no order is working at the desk (the broker confirmed the cancels), or ``timeout_s``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while engine.oms.working() and loop.time() < deadline:
        await asyncio.sleep(0.05)
    if engine.oms.working():
        log.error("closing: %d orders still working after the cancels", len(engine.oms.working()))


def desk_icon(colour: str = "#c62828") -> QIcon:
    """A red stop disc: the window's, the tray's."""
    pixmap = QPixmap(64, 64)
    pixmap.fill(Qt.GlobalColor.transparent)
    painter = QPainter(pixmap)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    painter.setBrush(QColor(colour))
    painter.setPen(Qt.PenStyle.NoPen)
    painter.drawEllipse(4, 4, 56, 56)
    painter.setBrush(QColor("white"))
    painter.drawRect(20, 20, 24, 24)
    painter.end()
    return QIcon(pixmap)


class KillKeyFilter(QObject):
    """Sees every key press in the application first: F12 or Ctrl+Shift+K engages the kill switch, whatever has focus."""

    def __init__(self, engage: Callable[[str], None], parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._engage = engage

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if event.type() is not QEvent.Type.KeyPress or not isinstance(event, QKeyEvent) or event.isAutoRepeat():
            return False
        chord = kill_chord(event)
        if chord is None:
            return False
        self._engage(chord)
        return True


class LockKeyFilter(QObject):
    """Ctrl+L locks the screen from any focus in the application (a QShortcut needs an active window; this does not)."""

    def __init__(self, lock: Callable[[], None], parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._lock = lock

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if (event.type() is not QEvent.Type.KeyPress or not isinstance(event, QKeyEvent) or event.isAutoRepeat()
                or event.key() != Qt.Key.Key_L
                or event.modifiers() & ~Qt.KeyboardModifier.KeypadModifier != Qt.KeyboardModifier.ControlModifier):
            return False
        self._lock()
        return True


def kill_chord(event: QKeyEvent) -> str | None:
    """Which kill chord this key press is, if any."""
    modifiers = event.modifiers() & ~Qt.KeyboardModifier.KeypadModifier
    if event.key() == Qt.Key.Key_F12 and modifiers == Qt.KeyboardModifier.NoModifier:
        return "F12"
    if event.key() == Qt.Key.Key_K and modifiers == (Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier):
        return "Ctrl+Shift+K"
    return None


def show_beside(dialog: QDialog) -> None:
    """Show a dialog without blocking the window: the KILL button must stay clickable whatever is open."""
    dialog.setWindowModality(Qt.WindowModality.NonModal)
    dialog.show()
    dialog.raise_()
    dialog.activateWindow()


class DeskWindow(QMainWindow):
    """The trader's window onto one running desk."""

    # Emitted once the desk has stopped after a close: the application may quit.
    closed = Signal()

    def __init__(self, *, settings_path: Path | None = None, dark: bool = True, actor: str | None = None,
                 global_hotkey: bool = True, idle_lock_s: float = 0.0, idle_clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        # Who acts when nobody is signed in (the kill switch, a close): the OS user, as `main.py panic` names it.
        self.os_user = actor or getpass.getuser()
        self.session = OperatorSession(self)
        self.session_controller = SessionController(self, self.session)
        # The desk's local-API clients (``set_api_clients``): managed from Operator > API clients….
        self.api_clients: ApiClientDirectory | None = None
        self.dark = dark
        self.engine: Engine | None = None
        self.bridge: EngineBridge | None = None
        self.work: WorkDocks | None = None
        self.frame_times_ms: list[float] = []
        self.frames = 0
        self._pending_kill: str | None = None
        self._pending_actor = self.os_user
        self._hidden_floating: list[QDockWidget] = []
        self._last_positions_ns = 0
        self._last_chart_ns = 0
        self._last_bars_ns = 0
        self._last_status_ns = 0
        self._positions_dirty = False
        self._tasks: set[asyncio.Task[Any]] = set()
        self._login: BreezeLoginDialog | None = None
        self._close_dialog: CloseDialog | None = None
        self._stopper: Callable[[dict[str, object]], Coroutine[Any, Any, None]] | None = None
        self._closing = False
        self._closed = False
        self.first_paint_ns: int | None = None
        self._themed: bool | None = None
        self._limits_shown: object = None
        self._faults: dict[str, str] = {}
        self._session_expired_shown = False
        self.setWindowTitle("Bulwark — trading desk")
        # Dock animations re-lay out the window for every label that changes width: a calm desk has none.
        self.setAnimated(False)
        self.setWindowIcon(desk_icon())
        self.resize(1480, 900)
        self._settings = QSettings(str(settings_path), QSettings.Format.IniFormat) if settings_path is not None else None

        self.kill_bar = KillSwitchBar()
        self.fault_banner = QLabel("")
        self.fault_banner.setObjectName("faultBanner")
        self.fault_banner.setWordWrap(True)
        self.fault_banner.hide()
        self.menu = QMenuBar()
        top = QWidget()
        top_layout = QVBoxLayout(top)
        top_layout.setContentsMargins(0, 0, 0, 0)
        top_layout.setSpacing(0)
        top_layout.addWidget(self.menu)
        top_layout.addWidget(self.kill_bar)
        top_layout.addWidget(self.fault_banner)
        # The menu-widget slot sits above the docks and the central widget and has no close or hide action.
        self.setMenuWidget(top)

        # The charts (pyqtgraph and numpy: a third of a cold start) are built just after the first paint.
        self.charts: ExposurePanel | None = None
        placeholder = QLabel("Starting the desk…")
        placeholder.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.setCentralWidget(placeholder)
        # A day of Breeze orders is at most 5,000 calls; past 10,000 rows a re-sort would take seconds.
        self.orders = OrdersView(OrdersModel(max_rows=_ORDER_ROWS, dark=dark))
        self.positions = PositionsView()
        self.alerts = AlertsPanel()
        self.orders_dock = self.add_dock("Orders", "orders", self.orders, Qt.DockWidgetArea.BottomDockWidgetArea)
        self.positions_dock = self.add_dock("Positions", "positions", self.positions, Qt.DockWidgetArea.BottomDockWidgetArea)
        self.alerts_dock = self.add_dock("Alerts", "alerts", self.alerts, Qt.DockWidgetArea.RightDockWidgetArea)
        self.tabifyDockWidget(self.positions_dock, self.orders_dock)
        self.positions_dock.raise_()
        self._layout_restored = False
        self._size_docks()
        self.status = DeskStatusBar()
        self.setStatusBar(self.status)

        self.tray = QSystemTrayIcon(desk_icon(), self)
        self.tray.setToolTip("Bulwark desk")
        self.notifier = AlertNotifier(self.tray)
        self._build_menus()
        self._build_shortcuts()
        self.kill_bar.kill_button.clicked.connect(lambda: self.engage_kill_switch("kill button"))
        self.kill_bar.rearm_button.clicked.connect(self.open_rearm)
        self.kill_bar.flatten_button.clicked.connect(self.open_flatten)
        self.orders.cancel_requested.connect(self.cancel_orders)
        self.orders.cancel_all_requested.connect(self.cancel_all_working)
        self._default_state = self.saveState(_SETTINGS_VERSION)
        self._restore_layout()

        # Over the docks and the charts, under the kill-switch bar: shown until someone signs in and while locked.
        self.lock_screen = LockScreen(self)
        self.lock_screen.unlocked.connect(self.session_controller.unlocked)
        self.lock_screen.switch_requested.connect(self.open_sign_in)
        self.lock_screen.sign_in_requested.connect(self.open_sign_in)
        self.guards = [
            RoleGuard(self.kill_bar.rearm_button, self.session, [Permission.REARM]),
            RoleGuard(self.kill_bar.flatten_button, self.session, [Permission.FLATTEN]),
            RoleGuard(self.orders.cancel_selected_button, self.session, _CANCEL),
            RoleGuard(self.orders.cancel_all_button, self.session, _CANCEL),
        ]
        self.session.changed.connect(self.apply_session)
        self.set_dark(dark)
        self.apply_session()
        self.idle = IdleWatch(idle_lock_s, self, clock=idle_clock)
        self.idle.idle.connect(lambda: self.lock(f"no input for {self.idle.timeout_s / 60:g} min"))
        if idle_lock_s > 0:
            self.idle.start()

        self.hotkey: GlobalHotkey | None = None
        self.hotkey_note = "OS-wide hotkey off"
        if global_hotkey:
            self.hotkey = GlobalHotkey()
            self.hotkey.triggered.connect(self._os_hotkey)
            availability = self.hotkey.start()
            self.hotkey_note = "OS-wide hotkey on" if availability.available else f"OS-wide hotkey unavailable: {availability.reason}"
        self.kill_bar.kill_button.setToolTip(f"{self.kill_bar.kill_button.toolTip()}\n{self.hotkey_note}")
        if QSystemTrayIcon.isSystemTrayAvailable():
            self.tray.show()

        self.timer = QTimer(self)
        self.timer.setInterval(FRAME_MS)
        self.timer.timeout.connect(self.frame)
        self.timer.start()

    # -- construction ------------------------------------------------------------------------------

    def _size_docks(self) -> None:
        self.resizeDocks([self.alerts_dock], [380], Qt.Orientation.Horizontal)
        self.resizeDocks([self.positions_dock], [300], Qt.Orientation.Vertical)

    def add_dock(self, title: str, name: str, widget: QWidget, area: Qt.DockWidgetArea) -> QDockWidget:
        """A dock that can go anywhere but above the kill-switch bar; QSettings remembers it by ``name``."""
        dock = QDockWidget(title, self)
        dock.setObjectName(f"dock.{name}")
        dock.setWidget(widget)
        # Never above the kill-switch bar: the top area is not offered.
        dock.setAllowedAreas(Qt.DockWidgetArea.BottomDockWidgetArea | Qt.DockWidgetArea.LeftDockWidgetArea
                             | Qt.DockWidgetArea.RightDockWidgetArea)
        self.addDockWidget(area, dock)
        return dock

    def _build_menus(self) -> None:
        desk = self.menu.addMenu("&Desk")
        kill = QAction("Kill switch: halt and cancel all", self)
        kill.setShortcuts([QKeySequence(chord) for chord in _KILL_CHORDS])
        # The application event filter (_build_shortcuts) carries the chords; the action only shows them.
        kill.setShortcutContext(Qt.ShortcutContext.WidgetShortcut)
        kill.triggered.connect(lambda: self.engage_kill_switch("Desk menu"))
        desk.addAction(kill)
        self.cancel_all_action = desk.addAction("Cancel all working orders", self.cancel_all_working)
        self.rearm_action = desk.addAction("Re-arm…", self.open_rearm)
        self.rearm_authorised_action = desk.addAction("Re-arm with a risk officer's authorisation…", self.open_rearm_authorised)
        self.flatten_action = desk.addAction("Flatten…", self.open_flatten)
        self.broker_login_action = desk.addAction(
            "Log in to the broker…", lambda: self.open_login(_SESSION_EXPIRED if self.engine is not None and self.engine.session_expired else ""))
        desk.addSeparator()
        desk.addAction("Close desk", self.close)
        operator = self.menu.addMenu("&Operator")
        self.sign_in_action = operator.addAction("Sign in…", self.open_sign_in)
        self.lock_action = operator.addAction("Lock screen", lambda: self.lock("locked by the operator"))
        self.lock_action.setShortcut(QKeySequence(_LOCK_CHORD))
        # The application event filter (_build_shortcuts) carries the chord from any focus; the action only shows it.
        self.lock_action.setShortcutContext(Qt.ShortcutContext.WidgetShortcut)
        self.switch_action = operator.addAction("Switch operator…", self.switch_operator)
        self.password_action = operator.addAction("Change password…", self.open_change_password)
        self.sign_out_action = operator.addAction("Sign out", self.sign_out)
        operator.addSeparator()
        self.operators_action = operator.addAction("Operators…", self.open_operators)
        self.api_clients_action = operator.addAction("API clients…", self.open_api_clients)
        self.operator_menu = operator
        view = self.menu.addMenu("&View")
        for dock in (self.orders_dock, self.positions_dock, self.alerts_dock):
            view.addAction(dock.toggleViewAction())
        self._view_docks_end = view.addSeparator()
        self.view_menu = view
        self.dark_action = QAction("Dark theme", self)
        self.dark_action.setCheckable(True)
        self.dark_action.toggled.connect(self.set_dark)
        view.addAction(self.dark_action)
        view.addAction("Reset layout", self.reset_layout)
        tray_menu = QMenu(self)
        tray_menu.addAction("KILL: halt and cancel all", lambda: self.engage_kill_switch("tray menu"))
        tray_menu.addSeparator()
        tray_menu.addAction("Show desk", self._show_from_tray)
        self.tray.setContextMenu(tray_menu)
        self.tray_menu = tray_menu

    def _build_shortcuts(self) -> None:
        # An application event filter, not QShortcut: a shortcut is dead while a modal dialog is open
        # (re-arm, flatten, close, login), and the kill chord must work then too.
        self.kill_keys = KillKeyFilter(lambda chord: self.engage_kill_switch(f"shortcut {chord}"), self)
        self.lock_keys = LockKeyFilter(lambda: self.lock(f"locked by the operator ({_LOCK_CHORD})"), self)
        app = QApplication.instance()
        if app is not None:
            app.installEventFilter(self.lock_keys)
            # Installed last, so it sees every key first.
            app.installEventFilter(self.kill_keys)

    def _os_hotkey(self, chord: str) -> None:
        # With the desk in front, the application's own key filter already took the press.
        if QGuiApplication.applicationState() is not Qt.ApplicationState.ApplicationActive:
            self.engage_kill_switch(f"OS-wide hotkey {chord}")

    def _show_from_tray(self) -> None:
        self.showNormal()
        self.raise_()
        self.activateWindow()

    # -- theme and layout --------------------------------------------------------------------------

    def set_dark(self, dark: bool) -> None:
        if self._themed is dark:
            return
        self._themed = self.dark = dark
        app = QApplication.instance()
        if isinstance(app, QApplication):
            theme.apply(app, dark)
        if self.charts is not None:
            self.charts.set_dark(dark)
        self.orders.model.set_dark(dark)
        self.positions.model.set_dark(dark)
        self.lock_screen.set_dark(dark)
        if self.dark_action.isChecked() != dark:
            self.dark_action.setChecked(dark)
        if self._settings is not None:
            self._settings.setValue("theme/dark", dark)

    def _restore_layout(self) -> None:
        if self._settings is None:
            return
        geometry = self._settings.value("window/geometry")
        state = self._settings.value("window/state")
        if isinstance(geometry, QByteArray):
            self.restoreGeometry(geometry)
        if isinstance(state, QByteArray):
            self._layout_restored = self.restoreState(state, _SETTINGS_VERSION)

    def save_layout(self) -> None:
        if self._settings is None:
            return
        self._settings.setValue("window/geometry", self.saveGeometry())
        self._settings.setValue("window/state", self.saveState(_SETTINGS_VERSION))
        # Which docks the saved state places: the work docks arrive after the state was first restored.
        self._settings.setValue("window/docks", sorted(d.objectName() for d in self.findChildren(QDockWidget)))
        self._settings.sync()

    def restore_docks(self, docks: list[QDockWidget]) -> bool:
        """Put docks added after the window was built where the saved layout had them; ``False`` if it never had them."""
        if self._settings is None:
            return False
        saved = self._settings.value("window/docks")
        state = self._settings.value("window/state")
        names = set(saved) if isinstance(saved, list) else {saved} if isinstance(saved, str) else set()
        if not isinstance(state, QByteArray) or not all(d.objectName() in names for d in docks):
            return False
        return self.restoreState(state, _SETTINGS_VERSION)

    def add_view_toggles(self, docks: list[QDockWidget]) -> None:
        """Show/hide entries for docks added after the window was built, with the others in the View menu."""
        for dock in docks:
            self.view_menu.insertAction(self._view_docks_end, dock.toggleViewAction())

    def add_work_docks(self, store: SqlEngine | None, *, limits_path: Path | None, keys: ChainKeys | None = None,
                       checkpoint_files: tuple[Path, ...] = ()) -> WorkDocks:
        """The ticket, the limits panel and the audit viewer, once the desk runs (they need its instruments and store)."""
        from app.ui.work_docks import WorkDocks

        if self.engine is None:
            raise RuntimeError("the work docks need a running desk: attach the engine first")
        self.work = WorkDocks(self, self.engine, store=store, limits_path=limits_path, keys=keys,
                              checkpoint_files=checkpoint_files)
        self.apply_session()
        return self.work

    def reset_layout(self) -> None:
        """Docks back where they started; the kill-switch bar never moved."""
        self.restoreState(self._default_state, _SETTINGS_VERSION)
        for dock in (self.orders_dock, self.positions_dock, self.alerts_dock):
            dock.show()
        if self.work is not None:
            self.work.place()
        self.save_layout()
        self.apply_session()

    # -- the engine --------------------------------------------------------------------------------

    def attach(self, engine: Engine) -> None:
        """Show this engine from now on; a kill pressed while the desk was starting is applied now."""
        from app.ui.bridge import EngineBridge

        self.engine = engine
        self.bridge = EngineBridge(engine)
        self.status.attach(engine)
        self._show_limits(engine)
        self._show_state()
        if self._pending_kill is not None:
            reason, self._pending_kill = self._pending_kill, None
            engine.engage_kill_switch(reason, self._pending_actor, AuditSource.OPERATOR)
            self._show_state()

    def detach(self) -> None:
        """Let go of an engine that did not start: the desk shows STARTING again and a kill press waits for the next one."""
        if self.bridge is not None:
            self.bridge.close()
            self.bridge = None
        engine, self.engine = self.engine, None
        prefix = "kill switch: "
        if (engine is not None and self._pending_kill is None and engine.trading_state is TradingState.HALTED
                and engine.trading_state_actor == self.actor and engine.halt_reason.startswith(prefix)):
            # This window's press on the engine that failed could not be stored: it carries over to the next one.
            self._pending_kill = engine.halt_reason.removeprefix(prefix)
            self._pending_actor = self.actor
        if self._pending_kill is not None:
            self.kill_bar.show_state("HALTED", f"{prefix}{self._pending_kill} (applied as soon as the desk has started)",
                                     self._pending_actor, time.time_ns())
        else:
            self.kill_bar.show_state("STARTING", "", "", None)

    def set_stopper(self, stopper: Callable[[dict[str, object]], Coroutine[Any, Any, None]]) -> None:
        """How the window stops the desk when it closes (the runner's ordered shutdown), given how it closed (for app.stop)."""
        self._stopper = stopper

    def paintEvent(self, event: QPaintEvent) -> None:
        super().paintEvent(event)
        if self.first_paint_ns is None:
            self.first_paint_ns = time.time_ns()
            # The start-up benchmark reads this line: process start to the window on screen.
            log.info("desk window first painted at epoch_ns=%d", self.first_paint_ns)
            QTimer.singleShot(0, self.build_charts)

    def build_charts(self) -> None:
        """The exposure charts in the centre (once): after the first paint, so the window shows at once."""
        if self.charts is not None:
            return
        from app.ui.charts import ExposurePanel

        self.charts = ExposurePanel()
        self.charts.set_dark(self.dark)
        self.setCentralWidget(self.charts)
        if not self._layout_restored:
            # The docks were sized against the placeholder: again against the charts, once they are laid out.
            QTimer.singleShot(0, self._size_docks)
        if self.engine is not None:
            self._show_limits(self.engine)

    @property
    def is_closed(self) -> bool:
        return self._closed

    def show_fault(self, kind: str, text: str) -> None:
        """A red banner under the kill-switch bar, one line per kind of fault (broker, task, store)."""
        self._faults[kind] = text
        self._show_faults()

    def clear_fault(self, kind: str) -> None:
        if self._faults.pop(kind, None) is not None:
            self._show_faults()

    def _show_faults(self) -> None:
        text = "\n".join(self._faults.values())
        self.fault_banner.setText(text)
        self.fault_banner.setToolTip(text)
        self.fault_banner.setVisible(bool(text))
        # The bar above the lock screen grew or shrank: the lock screen follows once it is laid out.
        QTimer.singleShot(0, self._place_lock_screen)

    # -- actions -----------------------------------------------------------------------------------

    @property
    def actor(self) -> str:
        """Who the window acts as: the signed-in operator, or the OS user while nobody is signed in."""
        signed_in = self.session.actor
        return signed_in.name if signed_in is not None else self.os_user

    def engage_kill_switch(self, how: str) -> None:
        """Halt now and sweep: synchronous up to HALTED, no dialog. ``how`` says which control (the engine adds "kill switch:").

        Nothing here asks who is at the desk: anyone may stop it, signed in or not, locked or not."""
        # On a locked screen the person pressing may not be the operator signed in: the record says so.
        reason = f"{how} on the locked screen" if self.session.locked else how
        actor = self.actor
        engine = self.engine
        if engine is None or engine.lifecycle == "STOPPED":
            # The desk is still opening its store (or a start failed and another is tried): the press holds and
            # is applied the moment the next engine exists.
            self._pending_kill = reason
            self._pending_actor = actor
            self.kill_bar.show_state("HALTED", f"kill switch: {reason} (applied as soon as the desk has started)", actor, time.time_ns())
            return
        engine.engage_kill_switch(reason, actor, AuditSource.OPERATOR)
        # The banner follows on the loop's next turn (re-styling it costs about a millisecond): the press
        # returns as soon as the desk is HALTED.
        QTimer.singleShot(0, self._show_state)

    def spawn(self, coro: Coroutine[Any, Any, Any], what: str) -> asyncio.Task[Any]:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)

        def done(finished: asyncio.Task[Any]) -> None:
            self._tasks.discard(finished)
            if not finished.cancelled() and finished.exception() is not None:
                error = finished.exception()
                log.error("%s failed: %s", what, error)
                self.local_alert(AlertLevel.WARNING, f"{what} failed: {error}")

        task.add_done_callback(done)
        return task

    def local_alert(self, level: AlertLevel, message: str) -> None:
        now = self.engine.clock_ns() if self.engine is not None else time.time_ns()
        alert = Alert(level, "desk", message, now)
        self.alerts.add_alerts([alert])

    def refused(self, what: str, permissions: tuple[Permission, ...]) -> bool:
        """Whether the operator at the window may not ``what`` now (said in the alerts, for a key that bypassed a greyed button)."""
        if self.session.can_any(permissions):
            return False
        actor = self.session.actor
        who = "nobody is signed in" if actor is None else "the screen is locked" if self.session.locked else f"{self.session.describe()} may not"
        self.local_alert(AlertLevel.WARNING, f"{what}: refused, {who} (needs {' or '.join(str(p) for p in permissions)})")
        return True

    def cancel_orders(self, client_ids: list[str]) -> None:
        engine = self.engine
        operator = self.session.actor
        if engine is None or not client_ids or operator is None or self.refused("cancel", _CANCEL):
            return

        async def cancel() -> None:
            # The engine decides per order: a trader's CANCEL_OWN covers only the trader's own orders.
            results = await asyncio.gather(*(engine.cancel(i, actor=operator.name, source=AuditSource.OPERATOR, operator=operator)
                                             for i in client_ids))
            failed = [r for r in results if not r.ok]
            if failed:
                self.local_alert(AlertLevel.WARNING, f"{len(failed)} of {len(results)} cancels failed: {failed[0].message}")

        self.spawn(cancel(), "cancel")

    def cancel_all_working(self) -> None:
        """Cancel every working order the operator may cancel (all of them with CANCEL_ANY, their own with CANCEL_OWN);
        the desk stays in its state (this is not the kill switch)."""
        operator = self.session.actor
        if self.engine is None or operator is None:
            return
        mine_only = not self.session.can(Permission.CANCEL_ANY)
        self.cancel_orders(sorted(o.client_order_id for o in self.engine.oms.working()
                                  if not mine_only or o.actor == operator.name))

    def open_rearm(self) -> None:
        """The re-arm dialog, re-arming as the operator signed in (greyed for one without REARM: see ``open_rearm_authorised``)."""
        engine, operator = self.engine, self.session.actor
        if engine is None or operator is None or self.refused("re-arm", (Permission.REARM,)):
            return

        async def submit(reason: str, target: str) -> None:
            await engine.rearm(operator, reason, to=TradingState(target))

        dialog = RearmDialog(operator.name, engine.halt_reason, str(engine.trading_state), submit=submit, parent=self,
                             session=self.session)
        show_beside(dialog)
        self.rearm_dialog = dialog

    def open_rearm_authorised(self) -> RearmDialog | None:
        """Four eyes at a trader's desk: the re-arm dialog asking a risk officer's name and password, re-arming as them."""
        engine, operator, directory = self.engine, self.session.actor, self.directory
        if engine is None or operator is None or directory is None or self.session.locked:
            return None
        authorise = partial(directory.authenticate, purpose="authorise")

        async def submit(reason: str, target: str) -> None:
            authoriser = dialog.authoriser
            if authoriser is None:
                raise PermissionError("the re-arm was not authorised")
            await engine.rearm(authoriser, f"{reason} (authorised at {operator.name}'s desk)", to=TradingState(target))

        dialog = RearmDialog(operator.name, engine.halt_reason, str(engine.trading_state), submit=submit, parent=self,
                             four_eyes=FourEyes(authorise, operator.name), session=self.session)
        show_beside(dialog)
        self.rearm_dialog = dialog
        return dialog

    def flatten_plan(self) -> list[FlattenLine]:
        engine = self.engine
        if engine is None:
            return []
        return [
            FlattenLine(v.instrument_key, str(Side.SELL if v.quantity > 0 else Side.BUY), abs(v.quantity), v.mark)
            for v in engine.portfolio.views() if v.quantity
        ]

    def open_flatten(self) -> None:
        engine, actor = self.engine, self.session.actor
        if engine is None or actor is None or self.refused("flatten", (Permission.FLATTEN,)):
            return
        dialog = FlattenDialog(self.flatten_plan(), len(engine.oms.working()), parent=self, session=self.session)

        def confirmed() -> None:
            async def run() -> None:
                # The account re-read right before acting: disabled or demoted since sign-in, nothing is sent.
                if not await self.session.confirm(dialog.seat):
                    self.local_alert(AlertLevel.WARNING, f"flatten: {not_held_text(actor.name)}")
                    return
                report = await engine.flatten(actor, confirmed=True)
                level = AlertLevel.INFO if report.verified_flat else AlertLevel.CRITICAL
                self.local_alert(level, f"flatten: {report.orders_sent} orders sent, verified flat: {report.verified_flat}")

            self.spawn(run(), "flatten")

        dialog.accepted.connect(confirmed)
        show_beside(dialog)
        self.flatten_dialog = dialog

    def open_login(self, reason: str = "") -> BreezeLoginDialog | None:
        """The Breeze login dialog for a session that expired mid-day (once at a time)."""
        engine = self.engine
        url = engine.broker_login_url() if engine is not None else None
        if engine is None or url is None or not self.session.can_any(_BROKER_LOGIN):
            return None
        if self._login is not None and self._login.isVisible():
            return self._login
        dialog = BreezeLoginDialog(url, lambda token: engine.renew_broker_session(token, actor=self.actor), reason=reason,
                                   dark=self.dark, parent=self)
        dialog.token_renewed.connect(lambda: self.local_alert(AlertLevel.INFO, "Breeze session renewed: re-arm to trade"))
        dialog.token_renewed.connect(lambda: self.clear_fault("broker"))
        show_beside(dialog)
        self._login = dialog
        return dialog

    # -- operators ---------------------------------------------------------------------------------

    # Thin delegates: the session controller signs operators in and out, locks, and re-checks their accounts.

    @property
    def directory(self) -> OperatorDirectory | None:
        """The desk's operator directory, once ``set_directory`` or ``open_session`` gave it."""
        return self.session_controller.directory

    @property
    def _sign_in(self) -> SignInDialog | None:
        return self.session_controller.sign_in_dialog

    @property
    def _first_run(self) -> FirstRunDialog | None:
        return self.session_controller.first_run_dialog

    def set_directory(self, directory: OperatorDirectory) -> None:
        """Operators sign in, unlock and authorise through ``directory`` (the desk's) from now on."""
        self.session_controller.set_directory(directory)

    def open_session(self, directory: OperatorDirectory) -> asyncio.Task[None]:
        """Sign-in from now on goes through ``directory``: the first-run dialog when it has no operators yet,
        else the sign-in dialog. Returns at once; the engine runs meanwhile, whoever is signed in."""
        return self.session_controller.open_session(directory)

    def open_sign_in(self) -> SignInDialog | None:
        """The sign-in dialog (once at a time): sign in, or, while someone is signed in, switch to another operator."""
        return self.session_controller.open_sign_in()

    def open_first_run(self) -> FirstRunDialog | None:
        """The first start: create the administrator (no default account exists), then sign them in."""
        return self.session_controller.open_first_run()

    def lock(self, reason: str) -> None:
        """Lock the screen now (Ctrl+L, idle, switch): hides the desk under the lock screen; audited."""
        self.session_controller.lock(reason)

    def sign_out(self) -> None:
        """The operator leaves: audited; the lock screen covers the desk and the sign-in dialog opens."""
        self.session_controller.sign_out()

    def switch_operator(self) -> None:
        """Another operator takes the seat: the screen locks at once, then the sign-in dialog asks who."""
        self.session_controller.switch_operator()

    def open_change_password(self) -> PasswordDialog | None:
        return self.session_controller.open_change_password()

    def open_operators(self) -> OperatorsDialog | None:
        """Operators… for an administrator: list, add, disable/enable, reset a password."""
        return self.session_controller.open_operators()

    def set_api_clients(self, clients: ApiClientDirectory) -> None:
        """API clients… manages ``clients`` (the desk's) from now on."""
        self.api_clients = clients
        self.apply_session()

    def open_api_clients(self) -> ApiClientsDialog | None:
        """API clients… for an administrator: list, add (token shown once), disable/enable, rotate."""
        # Imported when first opened: it pulls SQLAlchemy in, which the window's first paint must not wait for.
        from app.ui.api_clients_dialog import open_api_clients_dialog

        return open_api_clients_dialog(self, self.api_clients)

    def apply_session(self) -> None:
        """Bring the window in line with who is signed in: the lock screen, the menus, the operator shown."""
        session = self.session
        actor = session.actor
        self.kill_bar.show_operator(session.describe())
        covered = actor is None or session.locked
        if actor is None:
            self.lock_screen.show_signed_out()
        elif session.locked:
            since = ist_hms(self.session_controller.locked_at_ns or time.time_ns())
            self.lock_screen.show_locked(actor.name, session.describe().removesuffix(" · locked"), f"{since} IST",
                                         self.session_controller.unlock_check())
        self._cover(covered)
        can = session.can
        self.cancel_all_action.setEnabled(session.can_any(_CANCEL))
        self.rearm_action.setEnabled(can(Permission.REARM))
        self.rearm_authorised_action.setEnabled(actor is not None and not session.locked and not can(Permission.REARM)
                                                and self.directory is not None)
        self.flatten_action.setEnabled(can(Permission.FLATTEN))
        self.broker_login_action.setEnabled(session.can_any(_BROKER_LOGIN))
        signed_in = actor is not None and not session.locked
        self.sign_in_action.setEnabled(actor is None and self.directory is not None)
        self.lock_action.setEnabled(signed_in)
        self.switch_action.setEnabled(actor is not None and self.directory is not None)
        self.password_action.setEnabled(signed_in and self.directory is not None)
        self.sign_out_action.setEnabled(actor is not None)
        self.operators_action.setVisible(actor is not None and actor.can(Permission.MANAGE_OPERATORS))
        self.operators_action.setEnabled(can(Permission.MANAGE_OPERATORS) and self.directory is not None)
        self.api_clients_action.setVisible(actor is not None and actor.can(Permission.MANAGE_API_CLIENTS))
        self.api_clients_action.setEnabled(can(Permission.MANAGE_API_CLIENTS) and self.api_clients is not None)
        for dock in self.findChildren(QDockWidget):
            # Any dock, the ones added later too: none can be shown (or floated out) from under the lock screen.
            dock.toggleViewAction().setEnabled(not covered)
        engine = self.engine
        if engine is not None and engine.session_expired and session.can_any(_BROKER_LOGIN):
            # The expiry came while nobody who may log in was at the desk (or while locked): ask now.
            self.open_login(_SESSION_EXPIRED)

    def _cover(self, covered: bool) -> None:
        """Hide the desk under the lock screen (or show it again); the kill-switch bar is never covered."""
        # Disabled, so no key reaches a table under the lock (Delete cancels orders there); the kill chords
        # are an application event filter and still see every key.
        central = self.centralWidget()
        if central is not None:
            central.setEnabled(not covered)
        for dock in self.findChildren(QDockWidget):
            dock.setEnabled(not covered)
            # A floating dock is a window of its own that the lock screen cannot cover.
            if covered and dock.isFloating() and dock.isVisible():
                dock.hide()
                self._hidden_floating.append(dock)
        if not covered:
            for dock in self._hidden_floating:
                dock.show()
            self._hidden_floating.clear()
        self._place_lock_screen()
        self.lock_screen.setVisible(covered)
        if covered:
            self.lock_screen.raise_()
            if self.session.locked:
                self.lock_screen.password_edit.setFocus()

    def _place_lock_screen(self) -> None:
        top = self.menuWidget()
        y = top.geometry().bottom() + 1 if top is not None else 0
        bar = self.statusBar()
        bottom = bar.geometry().top() if bar.isVisible() else self.height()
        self.lock_screen.setGeometry(QRect(0, y, self.width(), max(0, bottom - y)))

    def resizeEvent(self, event: QResizeEvent) -> None:
        super().resizeEvent(event)
        self._place_lock_screen()

    # -- the frame ---------------------------------------------------------------------------------

    def frame(self) -> None:
        """Fold what the engine did since the last frame into the views; repaint only what changed."""
        started = time.perf_counter()
        engine, bridge = self.engine, self.bridge
        if engine is None or bridge is None:
            self.kill_bar.show_clock(time.time_ns())
            return
        now = engine.clock_ns()
        batch = bridge.drain()
        self._apply(batch, engine, now)
        if engine.gate.limits is not self._limits_shown:
            self._show_limits(engine)
        charted = now - self._last_chart_ns >= _CHART_EVERY_NS
        if charted:
            self._sample_exposure(engine, now)
            self._last_chart_ns = now
        # The session chart, the bars and the positions each redraw in a frame of their own: one repaint
        # pass with all of them is the slowest there is.
        busy = charted
        if not busy and now - self._last_bars_ns >= _CHART_EVERY_NS and now - self._last_chart_ns >= _CHART_EVERY_NS // 3:
            self._sample_underlyings(engine)
            self._last_bars_ns = now
            busy = True
        if (not busy and (self._positions_dirty or batch.marks_moved)
                and now - self._last_positions_ns >= _POSITIONS_EVERY_NS):
            self.positions.model.update(engine.portfolio.views())
            self._positions_dirty = False
            self._last_positions_ns = now
        if self.charts is not None:
            self.charts.refresh()
        if now - self._last_status_ns >= _STATUS_EVERY_NS:
            self.status.refresh(now)
            self._show_sweep(engine, now)
            self._last_status_ns = now
        self.kill_bar.show_clock(now)
        if engine.session_expired is not self._session_expired_shown:
            self._session_expired_shown = engine.session_expired
            name = engine.broker.capabilities.name
            if engine.session_expired:
                self.status.set_broker_state(name, False, "session expired", now)
                # Once per expiry; closed, it opens again from Desk ▸ Log in to the broker….
                self.open_login(_SESSION_EXPIRED)
            else:
                self.status.set_broker_state(name, True, "session renewed", None)
        self.frames += 1
        elapsed_ms = (time.perf_counter() - started) * 1000
        self.frame_times_ms.append(elapsed_ms)
        if len(self.frame_times_ms) > 20_000:
            del self.frame_times_ms[:10_000]

    def _apply(self, batch: Batch, engine: Engine, now: int) -> None:
        if batch.orders or batch.rejections:
            self.orders.model.apply_many(batch.orders, batch.rejections)
            self.orders.refresh_counts()
        if batch.fills:
            self._positions_dirty = True
        if any(change.current is TradingState.ACTIVE for change in batch.states):
            # An operator re-armed: the crashes that halted the desk were seen and dealt with.
            for kind in [k for k in self._faults if k.startswith("task:")]:
                self.clear_fault(kind)
        if batch.states or batch.kill_engaged or batch.kill_reports:
            self._show_state()
            self._show_sweep(engine, now)
        for status in batch.broker:
            self.status.set_broker_state(status.broker, status.connected, status.detail, None if status.connected else status.ts_ns)
            if status.connected:
                self.clear_fault("broker")
            elif engine.lifecycle.value == "RUNNING":
                self.show_fault("broker", f"Broker {status.broker}: {status.detail}. The kill switch still halts the desk.")
        for crash in batch.crashes:
            self.show_fault(
                f"task:{crash.task}", f"Engine task {crash.task} crashed ({crash.error}); trading halted. The kill switch still works.",
            )
        if batch.alerts:
            self.alerts.add_alerts(batch.alerts)
            self.notifier.notify(batch.alerts)
            for alert in batch.alerts:
                if alert.level is AlertLevel.CRITICAL and alert.component in ("store", "broker"):
                    self.show_fault(alert.component, f"{alert.component}: {alert.message}")

    def _show_limits(self, engine: Engine) -> None:
        """The limit lines: from the limits in force (loaded after the engine exists, changed by an operator)."""
        limits = engine.gate.limits
        self._limits_shown = limits
        if self.charts is None:
            return
        self.charts.set_limits(limits.desk.max_gross_exposure, limits.desk.max_net_exposure, limits.desk.daily_loss_limit,
                               limits.breakers.warn_fractions)

    def _show_state(self) -> None:
        engine = self.engine
        if engine is None:
            return
        state = str(engine.trading_state)
        changed_ns = engine.trading_state_since_ns
        self.kill_bar.show_state(state, engine.halt_reason, engine.trading_state_actor, changed_ns)

    def _show_sweep(self, engine: Engine, now: int) -> None:
        run = engine.kill_switch.last
        if run is None:
            return
        if run.done:
            counts: dict[str, int] = {}
            for outcome in run.outcomes.values():
                counts[str(outcome)] = counts.get(str(outcome), 0) + 1
            parts = [f"{n} {name.lower().replace('_', ' ')}" for name, n in sorted(counts.items())] or ["nothing was working"]
            took = f" in {run.cleared_in_ms / 1000:.1f} s" if run.cleared_in_ms is not None else ""
            self.kill_bar.show_sweep(sweep_text(run.working_at_engage, 0, None, True, ", ".join(parts) + took))
            return
        remaining = run.expected_clear_s - (now - run.engaged_at_ns) / 1e9
        self.kill_bar.show_sweep(sweep_text(run.working_at_engage, len(engine.oms.working()), remaining, False))

    def _sample_exposure(self, engine: Engine, now: int) -> None:
        if self.charts is None:
            return
        exposure = engine.portfolio.exposure
        self.charts.add_point(now, exposure.gross, exposure.net, engine.day_pnl.current(now))

    def _sample_underlyings(self, engine: Engine) -> None:
        if self.charts is None:
            return
        limits = engine.gate.limits
        rows = []
        for name, totals in engine.portfolio.underlyings().items():
            caps = limits.for_underlying(name)
            rows.append((name, totals.gross, caps.max_gross_exposure if caps is not None else None))
        self.charts.set_underlyings(rows)

    # -- closing -----------------------------------------------------------------------------------

    def closeEvent(self, event: QCloseEvent) -> None:
        if self._closed:
            event.accept()
            return
        event.ignore()
        if self._closing:
            return
        engine = self.engine
        working = len(engine.oms.working()) if engine is not None else 0
        if working == 0:
            self._begin_close(CloseChoice.LEAVE)
            return
        positions = len(engine.portfolio.open_instruments()) if engine is not None else 0
        dialog = CloseDialog(working, positions, parent=self)
        dialog.finished.connect(lambda _result: self._begin_close(dialog.choice()))
        self._close_dialog = dialog
        show_beside(dialog)

    def close_with(self, choice: CloseChoice) -> None:
        """Close without asking: what to do with working orders is given (a timed run's end)."""
        self._begin_close(choice)

    def _begin_close(self, choice: CloseChoice) -> None:
        if choice is CloseChoice.STAY or self._closing:
            return
        self._closing = True
        self.spawn(self._shutdown(choice), "closing the desk")

    async def _shutdown(self, choice: CloseChoice) -> None:
        engine = self.engine
        try:
            if engine is not None and choice is CloseChoice.CANCEL:
                ids = sorted(o.client_order_id for o in engine.oms.working())
                results = await asyncio.gather(*(engine.cancel(i, actor=self.actor, source=AuditSource.OPERATOR) for i in ids))
                for failed in (r for r in results if not r.ok):
                    log.error("closing: cancel of %s failed: %s", failed.client_order_id, failed.message)
                await _settled(engine, _CLOSE_WAIT_S)
            elif engine is not None and choice is CloseChoice.HALT:
                engine.engage_kill_switch("desk window closed with orders working", self.actor, AuditSource.OPERATOR)
                try:
                    await asyncio.wait_for(engine.kill_switch.wait(), _CLOSE_WAIT_S)
                except TimeoutError:
                    log.error("closing: the kill switch sweep did not finish within %d s", _CLOSE_WAIT_S)
            self.save_layout()
            if self.work is not None:
                self.work.close()
            operator, directory = self.session.actor, self.directory
            if operator is not None and directory is not None:
                # The desk closes under the operator: their session ends with it, on the record.
                await asyncio.to_thread(directory.record_sign_out, operator)
        finally:
            try:
                if self._stopper is not None:
                    still = len(engine.oms.working()) if engine is not None else 0
                    await self._stopper({"working_orders": choice.name.lower(), "still_working": still})
            finally:
                self.dispose()
                self.close()
                self.closed.emit()

    def dispose(self) -> None:
        """Stop the frame timer, the idle watch, the hotkeys, the tray and the bridge; a later close closes at once."""
        self.timer.stop()
        self.idle.stop()
        self.session_controller.stop()
        app = QApplication.instance()
        if app is not None:
            app.removeEventFilter(self.kill_keys)
            app.removeEventFilter(self.lock_keys)
        if self.hotkey is not None:
            self.hotkey.stop()
        if self.bridge is not None:
            self.bridge.close()
            self.bridge = None
        if self.work is not None:
            self.work.close()
        self.tray.hide()
        self._closed = True
