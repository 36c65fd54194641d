"""The desk window over a real desk (store, paper broker, engine, control channel), offscreen.

The paper market steps only when a test says so (``tick_interval_ms=None``): no value a timer
can move is asserted. The frame timer runs whenever Qt processes events (``qtbot.waitUntil``).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import pytest
import qasync
from PySide6.QtCore import Qt
from pytestqt.qtbot import QtBot

from app.brokers.paper import PaperBroker, PaperConfig
from app.desk import Desk, DeskOptions
from app.domain.actors import Actor, Role
from app.domain.events import BrokerStatus
from app.domain.orders import OrderStatus, Side
from app.domain.requests import OrderRequest
from app.domain.trading_state import TradingState
from app.engine.engine import Engine
from app.engine.risk.calendar_data import load_effective
from app.order_flow import FlowOptions, OrderFlow
from app.ui.close_dialog import CloseChoice
from app.ui.main_window import DeskWindow
from tests.support.calendar import cover_today
from tests.support.desk_process import audit_records, url_of
from tests.ui.conftest import await_in_qt

OUTPUT = Path(__file__).resolve().parents[1] / "output"
KEYS = ("NSE:RELIANCE", "NSE:TCS", "NSE:INFY", "NSE:HDFCBANK", "NSE:SBIN")


@dataclass
class Running:
    window: DeskWindow
    desk: Desk
    engine: Engine
    broker: PaperBroker
    home: Path


def _options(home: Path, latency_ms: int = 5, tick_interval_ms: int | None = None) -> DeskOptions:
    return DeskOptions(
        command="desk", database_url=f"sqlite:///{home}/bulwark.db", home=home, limits_path=home / "limits.toml",
        paper=PaperConfig(seed=11, tick_interval_ms=tick_interval_ms, latency_ms=latency_ms, reject_rate=0.0),
        calendar=load_effective(home),
    )


def _open(qtbot: QtBot, home: Path, latency_ms: int = 5, tick_interval_ms: int | None = None) -> Running:
    window = DeskWindow(settings_path=home / "desk-window.ini", global_hotkey=False, actor="asha")
    # Signed in as the administrator (every permission): these tests are about the window, not about roles
    # (tests/ui/test_roles_ui.py and test_lock_screen.py sign in through the operator directory).
    window.session.sign_in(Actor.with_role("asha", Role.ADMIN))
    qtbot.addWidget(window)
    window.resize(1500, 920)
    window.show()
    desk = Desk(_options(home, latency_ms, tick_interval_ms))
    engine = await_in_qt(qtbot, desk.start(on_engine=window.attach))
    assert isinstance(desk.broker, PaperBroker)
    return Running(window, desk, engine, desk.broker, home)


@pytest.fixture
def running(tmp_path: Path, qtbot: QtBot, qloop: qasync.QEventLoop) -> Iterator[Running]:
    desk = _open(qtbot, cover_today(tmp_path / "home"))
    yield desk
    desk.window.dispose()
    await_in_qt(qtbot, desk.desk.stop())
    await_in_qt(qtbot, desk.desk.close())


def _tick(qtbot: QtBot, broker: PaperBroker, engine: Engine, steps: int = 1) -> None:
    for _ in range(steps):
        broker.step()
    qtbot.waitUntil(lambda: all(engine.market_data.last_price(k) is not None for k in KEYS), timeout=5000)


def _resting(qtbot: QtBot, run: Running, count: int) -> list[str]:
    """``count`` buy orders well below the market, so they rest (each unique: a ticking market moves the prices)."""
    _tick(qtbot, run.broker, run.engine)
    ids = []
    for n in range(count):
        key = KEYS[n % len(KEYS)]
        inst = run.engine.instruments[key]
        last = run.engine.market_data.last_price(key)
        assert last is not None
        price = (last * 98 // 100) // inst.tick_size * inst.tick_size - n * inst.tick_size
        result = await_in_qt(qtbot, run.engine.submit(OrderRequest(key, Side.BUY, inst.lot_size * (1 + n // len(KEYS)), Decimal(price) / 100, actor="asha")))
        assert result.accepted, result.rejection
        assert result.client_order_id is not None
        ids.append(result.client_order_id)
    def acknowledged() -> bool:
        orders = [run.engine.oms.get(i) for i in ids]
        return all(o is not None and o.status not in (OrderStatus.NEW, OrderStatus.SENT) for o in orders)

    qtbot.waitUntil(acknowledged, timeout=10_000)
    return ids


def _rearm(qtbot: QtBot, run: Running) -> None:
    await_in_qt(qtbot, run.engine.kill_switch.wait())
    from app.domain.actors import Actor, Permission

    await_in_qt(qtbot, run.engine.rearm(Actor("asha", frozenset({Permission.REARM})), "test re-arm"))


def test_a_click_on_the_kill_switch_halts_before_the_click_handler_returns_then_the_blotter_shows_the_cancels(
    running: Running, qtbot: QtBot,
) -> None:
    ids = _resting(qtbot, running, 4)
    seen: list[TradingState] = []
    # Connected after the window's own slot, so it runs right after it, inside the same click.
    running.window.kill_bar.kill_button.clicked.connect(lambda: seen.append(running.engine.trading_state))
    qtbot.mouseClick(running.window.kill_bar.kill_button, Qt.MouseButton.LeftButton)
    assert seen == [TradingState.HALTED]
    assert running.engine.trading_state is TradingState.HALTED
    assert running.engine.trading_state_actor == "asha"
    model = running.window.orders.model
    qtbot.waitUntil(lambda: model.counts()["working"] == 0 and model.counts()["done"] == 4, timeout=10_000)
    assert sorted(model.client_id(row) for row in range(model.rowCount())) == sorted(ids)
    qtbot.waitUntil(lambda: running.window.kill_bar.sweep_label.text().startswith("sweep done"), timeout=10_000)
    assert "4 cancelled" in running.window.kill_bar.sweep_label.text()
    assert running.window.kill_bar.state_banner.text() == "HALTED"
    assert "asha" in running.window.kill_bar.state_detail.text()


@pytest.mark.parametrize("chord", ["F12", "Ctrl+Shift+K"])
def test_the_kill_chords_work_with_focus_in_a_table_and_under_a_modal_dialog(running: Running, qtbot: QtBot, chord: str) -> None:
    window = running.window
    table = window.orders.table
    table.setFocus()
    key, modifiers = (Qt.Key.Key_F12, Qt.KeyboardModifier.NoModifier) if chord == "F12" else (
        Qt.Key.Key_K, Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier)
    qtbot.keyClick(table, key, modifiers)
    assert running.engine.trading_state is TradingState.HALTED
    assert running.engine.halt_reason == f"kill switch: shortcut {chord}"
    _rearm(qtbot, running)
    assert running.engine.trading_state is TradingState.ACTIVE
    # A modal dialog takes the keyboard; the chord must still stop the desk.
    window.open_flatten()
    dialog = window.flatten_dialog
    qtbot.waitUntil(dialog.isVisible, timeout=2000)
    qtbot.keyClick(dialog, key, modifiers)
    assert running.engine.trading_state is TradingState.HALTED
    dialog.reject()


def test_an_ordinary_key_in_a_table_does_not_halt(running: Running, qtbot: QtBot) -> None:
    qtbot.keyClick(running.window.orders.table, Qt.Key.Key_K, Qt.KeyboardModifier.ControlModifier)
    qtbot.keyClick(running.window.orders.table, Qt.Key.Key_F11)
    assert running.engine.trading_state is TradingState.ACTIVE


def test_rearm_without_a_reason_is_refused_and_with_one_is_audited(running: Running, qtbot: QtBot) -> None:
    running.window.engage_kill_switch("test")
    await_in_qt(qtbot, running.engine.kill_switch.wait())
    qtbot.waitUntil(running.window.kill_bar.rearm_button.isEnabled, timeout=2000)
    running.window.open_rearm()
    dialog = running.window.rearm_dialog
    qtbot.waitUntil(dialog.isVisible, timeout=2000)
    assert not dialog.rearm_button.isEnabled()
    dialog.reason_edit.setPlainText("   ")
    assert not dialog.rearm_button.isEnabled()
    qtbot.mouseClick(dialog.rearm_button, Qt.MouseButton.LeftButton)
    assert running.engine.trading_state is TradingState.HALTED
    dialog.reason_edit.setPlainText("checked the book with the broker")
    assert dialog.rearm_button.isEnabled()
    qtbot.mouseClick(dialog.rearm_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: running.engine.trading_state is TradingState.ACTIVE, timeout=5000)
    qtbot.waitUntil(lambda: running.window.kill_bar.state_banner.text() == "ACTIVE", timeout=2000)
    await_in_qt(qtbot, running.desk.stop())
    rearms = audit_records(running.home, "rearmed")
    assert [r["actor"] for r in rearms] == ["asha"] and "checked the book" in str(rearms[0]["payload"])


def test_a_crashed_task_and_a_dead_feed_show_banners_and_the_kill_switch_still_works(running: Running, qtbot: QtBot) -> None:
    async def boom() -> None:
        raise RuntimeError("injected fault")

    running.engine.supervisor.spawn("strategy.pump", boom())
    window = running.window
    qtbot.waitUntil(lambda: window.fault_banner.isVisible() and "strategy.pump" in window.fault_banner.text(), timeout=5000)
    assert running.engine.trading_state is TradingState.HALTED
    qtbot.waitUntil(lambda: any("strategy.pump" in window.alerts.model.alert(r).message for r in range(window.alerts.model.rowCount())), timeout=5000)
    _rearm_after_crash(qtbot, running)
    # Re-armed by an operator: the crash was seen; its banner line goes.
    qtbot.waitUntil(lambda: not window.fault_banner.isVisible(), timeout=5000)
    running.engine.bus.publish(BrokerStatus("paper", False, "ticks stream ended", running.engine.clock_ns()))
    qtbot.waitUntil(lambda: "ticks stream ended" in window.fault_banner.text(), timeout=5000)
    qtbot.mouseClick(window.kill_bar.kill_button, Qt.MouseButton.LeftButton)
    assert running.engine.trading_state is TradingState.HALTED


def _rearm_after_crash(qtbot: QtBot, run: Running) -> None:
    from app.domain.actors import Actor, Permission

    # The crash breaker latched HALTED (and swept); re-arm once the sweep has reported.
    await_in_qt(qtbot, run.engine.kill_switch.wait())
    await_in_qt(qtbot, run.engine.rearm(Actor("asha", frozenset({Permission.REARM})), "crash understood"))
    assert run.engine.trading_state is TradingState.ACTIVE


@pytest.mark.parametrize("choice", [CloseChoice.CANCEL, CloseChoice.HALT, CloseChoice.LEAVE])
def test_closing_with_working_orders_asks_and_stops_the_desk_in_order(
    tmp_path: Path, qtbot: QtBot, qloop: qasync.QEventLoop, choice: CloseChoice,
) -> None:
    run = _open(qtbot, cover_today(tmp_path / "home"))
    _resting(qtbot, run, 3)
    stops: list[str] = []

    async def stopper(details: dict[str, object]) -> None:
        stops.append(str(details["working_orders"]))
        await run.desk.stop(closed_by="window", **details)
        await run.desk.close()

    run.window.set_stopper(stopper)
    run.window.close()
    dialog = run.window._close_dialog
    assert dialog is not None
    qtbot.waitUntil(dialog.isVisible, timeout=2000)
    assert not run.window.is_closed
    qtbot.mouseClick(dialog.buttons[choice], Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: run.window.is_closed, timeout=20_000)
    assert stops == [choice.name.lower()]
    working = len(run.engine.oms.working())
    assert working == (3 if choice is CloseChoice.LEAVE else 0)
    assert run.engine.trading_state is (TradingState.HALTED if choice is CloseChoice.HALT else TradingState.ACTIVE)
    stop = audit_records(run.home, "app.stop")
    assert stop and json.loads(str(stop[-1]["payload"])) == {
        "command": "desk", "closed_by": "window", "working_orders": choice.name.lower(), "still_working": working,
        "desk": run.desk.identity.desk_id,
    }


def test_closing_can_be_called_off(running: Running, qtbot: QtBot) -> None:
    _resting(qtbot, running, 1)
    running.window.close()
    dialog = running.window._close_dialog
    assert dialog is not None
    qtbot.waitUntil(dialog.isVisible, timeout=2000)
    qtbot.mouseClick(dialog.buttons[CloseChoice.STAY], Qt.MouseButton.LeftButton)
    qtbot.wait(50)
    assert not running.window.is_closed and running.window.isVisible()
    assert len(running.engine.oms.working()) == 1


def test_screenshots_dark_light_and_halted_mid_sweep(tmp_path: Path, qtbot: QtBot, qloop: qasync.QEventLoop) -> None:
    """Pictures for a reviewer, not assertions on values: the market walks and the demo flow trades for a few seconds."""
    OUTPUT.mkdir(exist_ok=True)
    # A slow broker: 18 cancels at 10 actions/s take seconds, so the sweep is caught mid-way.
    run = _open(qtbot, cover_today(tmp_path / "home"), latency_ms=250, tick_interval_ms=100)
    flow = OrderFlow(run.engine, run.desk.entries, FlowOptions(seed=3, orders_per_sec=6, cancel_share=0.05))
    demo = asyncio.ensure_future(flow.run(6.0))
    qtbot.waitUntil(demo.done, timeout=30_000)
    _resting(qtbot, run, max(0, 18 - len(run.engine.oms.working())))
    qtbot.wait(1200)
    run.window.positions_dock.raise_()
    run.window.grab().save(str(OUTPUT / "desk_dark.png"))
    run.window.set_dark(False)
    run.window.orders_dock.raise_()
    qtbot.wait(300)
    run.window.grab().save(str(OUTPUT / "desk_light.png"))
    run.window.set_dark(True)
    run.window.engage_kill_switch("screenshot")
    qtbot.wait(700)
    assert run.engine.kill_switch.sweeping, "the sweep ended before the screenshot: it was not taken mid-sweep"
    run.window.frame()
    run.window.grab().save(str(OUTPUT / "desk_halted_mid_sweep.png"))
    await_in_qt(qtbot, run.engine.kill_switch.wait(), timeout_s=60)
    run.window.dispose()
    await_in_qt(qtbot, run.desk.stop())
    await_in_qt(qtbot, run.desk.close())
    for name in ("desk_dark.png", "desk_light.png", "desk_halted_mid_sweep.png"):
        assert (OUTPUT / name).stat().st_size > 20_000


def test_layout_is_remembered_and_reset(running: Running, qtbot: QtBot) -> None:
    window = running.window
    window.alerts_dock.hide()
    window.save_layout()
    again = DeskWindow(settings_path=running.home / "desk-window.ini", global_hotkey=False)
    qtbot.addWidget(again)
    again.show()
    assert not again.alerts_dock.isVisible()
    again.reset_layout()
    assert again.alerts_dock.isVisible()
    again.dispose()


def test_a_kill_pressed_while_the_desk_starts_is_applied_to_the_engine_and_recorded_after_app_start(
    tmp_path: Path, qtbot: QtBot, qloop: qasync.QEventLoop,
) -> None:
    home = cover_today(tmp_path / "home")
    window = DeskWindow(settings_path=home / "desk-window.ini", global_hotkey=False, actor="asha")
    qtbot.addWidget(window)
    window.show()
    qtbot.mouseClick(window.kill_bar.kill_button, Qt.MouseButton.LeftButton)
    assert window.kill_bar.state_banner.text() == "HALTED"
    desk = Desk(_options(home))
    engine = await_in_qt(qtbot, desk.start(on_engine=window.attach))
    assert engine.trading_state is TradingState.HALTED
    assert engine.halt_reason == "kill switch: kill button" and engine.trading_state_actor == "asha"
    await_in_qt(qtbot, engine.kill_switch.wait())
    window.dispose()
    await_in_qt(qtbot, desk.stop())
    await_in_qt(qtbot, desk.close())
    kinds = [r["event_type"] for r in rows_of(home)]
    assert kinds.index("app.start") < kinds.index("kill_switch.engaged")


def test_the_kill_button_stays_clickable_while_a_dialog_is_open(running: Running, qtbot: QtBot) -> None:
    running.window.open_flatten()
    dialog = running.window.flatten_dialog
    qtbot.waitUntil(dialog.isVisible, timeout=2000)
    assert not dialog.isModal()
    qtbot.mouseClick(running.window.kill_bar.kill_button, Qt.MouseButton.LeftButton)
    assert running.engine.trading_state is TradingState.HALTED
    dialog.reject()


def rows_of(home: Path) -> list[dict[str, object]]:
    from app.store.db import make_engine
    from app.store.export import rows

    engine = make_engine(url_of(home))
    try:
        return list(rows(engine))
    finally:
        engine.dispose()


def test_a_press_on_an_engine_whose_start_failed_carries_over_to_the_next_engine(qtbot: QtBot, qloop: qasync.QEventLoop) -> None:
    from app.brokers.paper import load_universe

    entry = next(e for e in load_universe() if e.instrument.key == "NSE:RELIANCE")
    window = DeskWindow(global_hotkey=False, actor="asha")
    qtbot.addWidget(window)
    first = Engine(PaperBroker(PaperConfig(seed=1, tick_interval_ms=None), universe=[entry]), [entry.instrument])
    window.attach(first)
    window.engage_kill_switch("kill button")
    assert first.trading_state is TradingState.HALTED
    window.detach()
    assert window.engine is None and window.kill_bar.state_banner.text() == "HALTED"
    second = Engine(PaperBroker(PaperConfig(seed=1, tick_interval_ms=None), universe=[entry]), [entry.instrument])
    assert second.trading_state is TradingState.ACTIVE
    window.attach(second)
    assert second.trading_state is TradingState.HALTED and second.halt_reason == "kill switch: kill button"
    assert second.trading_state_actor == "asha"
    await_in_qt(qtbot, second.stop())
    window.dispose()
