"""The order ticket, the limits panel and the audit viewer: the desk window's working docks, built once the desk runs.

They need what only a running desk has (the instrument master, the limits in force, the store),
so the window adds them after ``attach``. F1 and F2 open the ticket from any focus in the
window (an application event filter, as the kill chords: a ``QShortcut`` is dead while focus sits
in a dock's table), but never over a modal dialog or the lock screen.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import QEvent, QObject, Qt
from PySide6.QtGui import QKeyEvent
from PySide6.QtWidgets import QApplication, QDockWidget, QLabel

from app.ui.audit_view import AuditViewer
from app.ui.limits_view import LimitsPanel
from app.ui.modify_dialog import ModifyDialog
from app.ui.order_story import OrderStory
from app.ui.order_ticket import OrderTicket

if TYPE_CHECKING:
    from sqlalchemy import Engine as SqlEngine

    from app.engine.engine import Engine
    from app.store.chain_key import ChainKeys
    from app.ui.main_window import DeskWindow

TICKET_WIDTH = 420


class TicketKeyFilter(QObject):
    """F1 opens the ticket to buy, F2 to sell, from any focus in the desk window; nothing while a dialog is modal or the screen is locked."""

    def __init__(self, open_side: Callable[[bool], None], allowed: Callable[[], bool], parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._open = open_side
        self._allowed = allowed

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if event.type() is not QEvent.Type.KeyPress or not isinstance(event, QKeyEvent):
            return False
        if event.modifiers() != Qt.KeyboardModifier.NoModifier or event.key() not in (Qt.Key.Key_F1, Qt.Key.Key_F2):
            return False
        if event.isAutoRepeat() or not self._allowed():
            return False
        self._open(event.key() == Qt.Key.Key_F1)
        return True


class WorkDocks:
    """The ticket (right, under the alerts), the limits and the audit viewer (tabbed with the blotter), and their wiring.

    ``store`` is the desk's database (the audit viewer and the order stories read it; ``None``:
    a desk with no store shows neither); ``limits_path`` the limits file the desk loaded, which a
    saved edit rewrites so the next start loads the same limits.
    """

    def __init__(self, window: DeskWindow, engine: Engine, *, store: SqlEngine | None, limits_path: Path | None,
                 keys: ChainKeys | None = None, checkpoint_files: tuple[Path, ...] = ()) -> None:
        self.window = window
        self.engine = engine
        self.store = store
        session = window.session

        self.ticket = OrderTicket(engine, session)
        self.ticket.setMinimumWidth(TICKET_WIDTH - 40)
        self.ticket_dock = window.add_dock("Ticket  (F1 buy · F2 sell)", "ticket", self.ticket, Qt.DockWidgetArea.RightDockWidgetArea)
        # Built the first time its tab is shown: with hundreds of underlyings the form takes a third of a
        # second to build, and the GUI thread must not stall for it at the desk's start.
        self.limits: LimitsPanel | None = None
        self._limits_path = limits_path
        placeholder = QLabel("Limits: shown when this tab is opened")
        placeholder.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.limits_dock = window.add_dock("Limits", "limits", placeholder, Qt.DockWidgetArea.BottomDockWidgetArea)
        self.limits_dock.visibilityChanged.connect(self._limits_visible)
        docks = [self.ticket_dock, self.limits_dock]
        self.audit: AuditViewer | None = None
        self.audit_dock: QDockWidget | None = None
        if store is not None:
            self.audit = AuditViewer(store, keys=keys, checkpoint_files=checkpoint_files)
            self.audit_dock = window.add_dock("Audit", "audit", self.audit, Qt.DockWidgetArea.BottomDockWidgetArea)
            docks.append(self.audit_dock)
        if not window.restore_docks(docks):
            self.place()
        window.add_view_toggles(docks)

        window.positions.close_requested.connect(self.prefill_close)
        window.orders.story_requested.connect(self.open_story)
        window.orders.modify_requested.connect(self.open_modify)
        self.ticket.dismissed.connect(window.orders.table.setFocus)
        self.keys = TicketKeyFilter(self.open_ticket, self._ticket_allowed, window)
        app = QApplication.instance()
        if app is not None:
            app.installEventFilter(self.keys)

    def place(self) -> None:
        """Where they start (and go back to on "Reset layout"): the ticket under the alerts, the rest behind the blotter's tabs."""
        window = self.window
        window.splitDockWidget(window.alerts_dock, self.ticket_dock, Qt.Orientation.Vertical)
        window.tabifyDockWidget(window.orders_dock, self.limits_dock)
        if self.audit_dock is not None:
            window.tabifyDockWidget(self.limits_dock, self.audit_dock)
        for dock in (self.ticket_dock, self.limits_dock, self.audit_dock):
            if dock is not None:
                dock.show()
        window.positions_dock.raise_()
        window.resizeDocks([self.ticket_dock], [TICKET_WIDTH], Qt.Orientation.Horizontal)

    def _limits_visible(self, visible: bool) -> None:
        if visible and self.limits is None:
            self.limits_panel()

    def limits_panel(self) -> LimitsPanel:
        """The limits panel, built now if its tab was never shown."""
        if self.limits is None:
            self.limits = LimitsPanel(self.engine, self.window.session, limits_path=self._limits_path)
            self.limits_dock.setWidget(self.limits)
        return self.limits

    def _ticket_allowed(self) -> bool:
        return (QApplication.activeModalWidget() is None and not self.window.session.locked
                and self.window.session.actor is not None and not self.window.is_closed)

    def _show_ticket(self) -> None:
        self.ticket_dock.show()
        self.ticket_dock.raise_()

    def open_ticket(self, buy: bool) -> None:
        """F1 (buy) or F2 (sell): the ticket shown, its side set, focus in the instrument field."""
        self._show_ticket()
        if buy:
            self.ticket.open_buy()
        else:
            self.ticket.open_sell()

    def prefill_close(self, instrument_key: str, quantity: int) -> None:
        """A position double-clicked: the ticket pre-filled with the order that closes it."""
        if quantity == 0:
            return
        self._show_ticket()
        self.ticket.prefill_close(instrument_key, quantity)

    def open_story(self, client_order_id: str) -> OrderStory | None:
        """An order's whole story from the audit chain (proposed, gate, sent, acks, fills, cancels)."""
        if self.store is None:
            return None
        from app.ui.main_window import show_beside

        story = OrderStory(self.store, client_order_id, parent=self.window)
        story.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        show_beside(story)
        return story

    def open_modify(self, client_order_id: str) -> ModifyDialog | None:
        """Change a working order's price or quantity through the gate (its own trader only; the engine decides)."""
        order = self.engine.oms.get(client_order_id)
        if order is None or not order.status.is_working:
            return None
        from app.ui.main_window import show_beside

        dialog = ModifyDialog(self.engine, order, self.window.session, parent=self.window)
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        show_beside(dialog)
        return dialog

    def close(self) -> None:
        """Stop the timers and background readers before the engine and the store go away."""
        app = QApplication.instance()
        if app is not None:
            app.removeEventFilter(self.keys)
        if self.limits is not None:
            self.limits.dispose()
        if self.audit is not None:
            self.audit.close_store_readers()
