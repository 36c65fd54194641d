"""A desk window over a real desk (store, paper broker, engine) with an operator directory on the desk's store.

The directory uses the security tests' cheap argon2 hasher, a frozen clock and an in-memory audit
sink, so a test reads exactly which authentication events were recorded, and how many.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

from pytestqt.qtbot import QtBot

from app.brokers.paper import PaperBroker, PaperConfig
from app.desk import Desk, DeskOptions
from app.domain.actors import Actor, Role
from app.domain.orders import OrderStatus, Side
from app.domain.requests import OrderRequest
from app.engine.engine import Engine
from app.engine.risk.calendar_data import load_effective
from app.security.operators import OperatorDirectory
from app.ui.main_window import DeskWindow
from tests.security.conftest import FAST_HASHER, FrozenClock, Sink
from tests.support.calendar import cover_today
from tests.ui.conftest import await_in_qt

OUTPUT = Path(__file__).resolve().parents[1] / "output"
KEYS = ("NSE:RELIANCE", "NSE:TCS", "NSE:INFY")
PASSWORDS = {
    "asha": "asha admin phrase 1",
    "tom": "tom trader phrase 22",
    "rita": "rita risk phrase 333",
    "vic": "vic viewer phrase 4444",
}
ROLES = {"asha": Role.ADMIN, "tom": Role.TRADER, "rita": Role.RISK_OFFICER, "vic": Role.VIEWER}


@dataclass
class OperatorDesk:
    window: DeskWindow
    desk: Desk
    engine: Engine
    broker: PaperBroker
    directory: OperatorDirectory
    sink: Sink
    clock: FrozenClock

    def sign_in(self, qtbot: QtBot, name: str) -> Actor:
        """Sign ``name`` in through the window's sign-in dialog, as a person would."""
        dialog = self.window.open_sign_in()
        assert dialog is not None
        dialog.name_edit.setText(name)
        dialog.password_edit.setText(PASSWORDS[name])
        actor = await_in_qt(qtbot, dialog.attempt())
        assert actor is not None and self.window.session.actor == actor
        return actor


def open_operator_desk(qtbot: QtBot, home: Path, *, idle_lock_s: float = 0.0,
                       idle_clock: Callable[[], float] | None = None, people: tuple[str, ...] = tuple(PASSWORDS)) -> OperatorDesk:
    """The window and a started desk; the operators named in ``people`` exist (asha, the administrator, first)."""
    kwargs = {"idle_clock": idle_clock} if idle_clock is not None else {}
    window = DeskWindow(settings_path=home / "desk-window.ini", global_hotkey=False, actor="os-user",
                        idle_lock_s=idle_lock_s, **kwargs)
    qtbot.addWidget(window)
    window.resize(1500, 920)
    window.show()
    options = DeskOptions(
        command="desk", database_url=f"sqlite:///{home}/bulwark.db", home=home, limits_path=home / "limits.toml",
        paper=PaperConfig(seed=11, tick_interval_ms=None, latency_ms=5, reject_rate=0.0),
        # Whatever the clock says (CI also runs in 2027 and 2030): a calendar that covers today.
        calendar=load_effective(cover_today(home)),
    )
    desk = Desk(options)
    engine = await_in_qt(qtbot, desk.start(on_engine=window.attach))
    assert isinstance(desk.broker, PaperBroker) and desk.writer is not None
    sink, clock = Sink(), FrozenClock()
    directory = OperatorDirectory(desk.writer.engine, sink, clock_ns=clock, hasher=FAST_HASHER)
    admin = Actor.with_role("asha", Role.ADMIN)
    for name in people:
        directory.add(name, ROLES[name], PASSWORDS[name], by=None if name == "asha" else admin)
    window.set_directory(directory)
    return OperatorDesk(window, desk, engine, desk.broker, directory, sink, clock)


def close_operator_desk(qtbot: QtBot, run: OperatorDesk) -> None:
    run.window.dispose()
    await_in_qt(qtbot, run.desk.stop())
    await_in_qt(qtbot, run.desk.close())


def resting_orders(qtbot: QtBot, run: OperatorDesk, count: int, actor: str = "tom", first: int = 0) -> list[str]:
    """``count`` buy orders well below the market (they rest), entered by ``actor`` through the engine;
    ``first`` shifts their prices (the gate refuses a duplicate of an order just sent)."""
    for _ in range(2):
        run.broker.step()
    qtbot.waitUntil(lambda: all(run.engine.market_data.last_price(k) is not None for k in KEYS), timeout=5000)
    ids = []
    for n in range(first, first + count):
        key = KEYS[n % len(KEYS)]
        inst = run.engine.instruments[key]
        last = run.engine.market_data.last_price(key)
        assert last is not None
        price = (last * 98 // 100) // inst.tick_size * inst.tick_size - n * inst.tick_size
        result = await_in_qt(qtbot, run.engine.submit(OrderRequest(key, Side.BUY, inst.lot_size, Decimal(price) / 100, actor=actor)))
        assert result.accepted, result.rejection
        assert result.client_order_id is not None
        ids.append(result.client_order_id)

    def acknowledged() -> bool:
        orders = [run.engine.oms.get(i) for i in ids]
        return all(o is not None and o.status not in (OrderStatus.NEW, OrderStatus.SENT) for o in orders)

    qtbot.waitUntil(acknowledged, timeout=10_000)
    return ids
