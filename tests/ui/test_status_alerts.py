"""The status bar on a real paper engine with a frozen clock, the alerts panel and the tray notifier."""

from __future__ import annotations

import asyncio
import datetime as dt
import statistics
import threading
import time
from collections.abc import Callable, Coroutine, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar

import pytest
from PySide6.QtCore import Qt
from PySide6.QtGui import QIcon
from PySide6.QtWidgets import QApplication, QSystemTrayIcon, QVBoxLayout, QWidget

from app.brokers.base import BREEZE_RATE_LIMITS
from app.brokers.paper import PaperBroker, PaperConfig, load_universe
from app.domain.events import Alert, AlertLevel, BrokerStatus
from app.domain.orders import OrderType, Side
from app.domain.requests import OrderRequest
from app.engine.engine import Engine
from app.engine.governor import Governor, GovernorConfig
from app.engine.risk.calendar import TradingCalendar
from app.store.audit_writer import AuditWriter
from app.store.migrate import open_store
from app.ui import theme
from app.ui.alerts_panel import (
    BALLOON_INTERVAL_S,
    AlertFilter,
    AlertNotifier,
    AlertsPanel,
    UnseenRole,
)
from app.ui.status_bar import DeskStatusBar, Level
from tests.support.calendar import ist_ns, synthetic_calendar
from tests.support.limits import wide_limits
from tests.support.virtual_time import VirtualTimeLoop

T = TypeVar("T")
OUTPUT = Path(__file__).resolve().parents[1] / "output"
S = 1_000_000_000

UNIVERSE = {entry.instrument.key: entry for entry in load_universe()}
ENTRIES = [UNIVERSE[key] for key in ("NSE:RELIANCE", "NSE:TCS", "NSE:HDFCBANK", "NSE:INFY", "NSE:ICICIBANK")]
INSTRUMENTS = [entry.instrument for entry in ENTRIES]
# Tuesday 1 December 2026, inside NSE hours.
MORNING = ist_ns(2026, 12, 1, 11, 42, 7)
CALENDAR = TradingCalendar(synthetic_calendar({2026: [dt.date(2026, 12, 25)], 2027: []}))


class FrozenClock:
    """The engine's clock: stands still until a test moves it."""

    def __init__(self, now_ns: int) -> None:
        self.now_ns = now_ns

    def __call__(self) -> int:
        return self.now_ns

    def advance(self, seconds: float) -> None:
        self.now_ns += round(seconds * S)


class FakeClock:
    """Monotonic seconds that move only when a test moves them (the panel's and the notifier's clock)."""

    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


class Desk:
    """A paper engine on a frozen engine clock, driven on its own event loop (virtual time by default).

    The status bar is refreshed from inside the loop, as under qasync, so the governor reads the
    loop's clock exactly as it does when it releases calls.
    """

    def __init__(self, now_ns: int = MORNING, *, calendar: TradingCalendar = CALENDAR, virtual: bool = True,
                 audit: AuditWriter | None = None, **limits: Any) -> None:
        self.loop: asyncio.AbstractEventLoop = VirtualTimeLoop() if virtual else asyncio.new_event_loop()
        self.clock = FrozenClock(now_ns)
        config = PaperConfig(seed=7, tick_interval_ms=None, wall_clock_ns=self.clock, clock=self.loop.time)
        self.broker = PaperBroker(config, universe=ENTRIES)
        self.engine = Engine(self.broker, INSTRUMENTS, clock_ns=self.clock, calendar=calendar, audit=audit,
                             limits=wide_limits(INSTRUMENTS, **limits))

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return self.loop.run_until_complete(coro)

    def settle(self) -> None:
        async def turns() -> None:
            for _ in range(5):
                await asyncio.sleep(0)

        self.run(turns())

    def refresh(self, bar: DeskStatusBar) -> dict[str, str]:
        async def inside() -> None:
            bar.refresh(self.engine.clock_ns())

        self.run(inside())
        return bar.texts()

    def step(self) -> None:
        self.broker.step()
        self.settle()

    def durable(self, timeout: float = 10.0) -> None:
        """Run the loop until the audit writer has committed everything queued (a real loop only)."""
        recorder = self.engine.recorder
        assert recorder is not None

        async def drained() -> None:
            deadline = time.monotonic() + timeout
            while recorder.writer.pending and time.monotonic() < deadline:
                await asyncio.sleep(0.005)
            assert recorder.writer.pending == 0

        self.run(drained())

    def start(self) -> None:
        self.run(self.engine.start())
        self.settle()

    def close(self) -> None:
        if self.engine.lifecycle.value == "RUNNING":
            self.run(self.engine.stop())
        self.loop.close()


@pytest.fixture
def desk() -> Iterator[Desk]:
    made = Desk()
    try:
        yield made
    finally:
        made.close()


@pytest.fixture
def dark(qapp: QApplication) -> Iterator[None]:
    """The desk's dark theme (Fusion, palette, style sheet) for the test, then the application as it was."""
    previous_palette, previous_style, previous_sheet = qapp.palette(), qapp.style().name(), qapp.styleSheet()
    theme.apply(qapp, True)
    try:
        yield
    finally:
        qapp.setStyleSheet(previous_sheet)
        qapp.setPalette(previous_palette)
        qapp.setStyle(previous_style)


def bar_for(qtbot: Any, engine: Engine) -> DeskStatusBar:
    bar = DeskStatusBar()
    qtbot.addWidget(bar)
    bar.attach(engine)
    return bar


def limit_buy(desk: Desk, key: str, below_ticks: int = 50) -> OrderRequest:
    last = desk.engine.market_data.last_price(key)
    assert last is not None
    tick = desk.engine.instruments[key].tick_size
    return OrderRequest(key, Side.BUY, 1, Decimal(last - below_ticks * tick) / 100, order_type=OrderType.LIMIT)


# -- status bar ----------------------------------------------------------------------------------


def test_broker_feed_clock_and_session_of_a_running_paper_desk(qtbot: Any, desk: Desk) -> None:
    bar = bar_for(qtbot, desk.engine)
    assert bar.texts()["broker"] == "Paper ● created"
    desk.start()
    bar.attach(desk.engine)
    texts = desk.refresh(bar)
    assert texts["broker"] == "Paper ● connected" and bar.levels()["broker"] is Level.GOOD
    assert texts["feed"] == "feed —"
    assert texts["clock"] == "11:42:07 IST"
    assert texts["session"] == "NSE open · closes 15:30"
    assert texts["audit"] == "audit off"
    desk.step()
    assert desk.refresh(bar)["feed"] == "feed 0.0 s"
    desk.clock.advance(0.3)
    texts = desk.refresh(bar)
    assert texts["feed"] == "feed 0.3 s" and bar.levels()["feed"] is Level.PLAIN
    assert texts["clock"] == "11:42:07 IST"
    desk.clock.advance(2.0)
    assert desk.refresh(bar)["feed"] == "feed 2.3 s" and bar.levels()["feed"] is Level.WARN
    desk.clock.advance(28.0)  # amber still: the wide test limits call a feed stale only after an hour
    assert desk.refresh(bar)["feed"] == "feed 30 s" and bar.levels()["feed"] is Level.WARN
    assert desk.refresh(bar)["clock"] == "11:42:37 IST"
    desk.step()  # a fresh price: the feed is young again
    assert desk.refresh(bar)["feed"] == "feed 0.0 s" and bar.levels()["feed"] is Level.PLAIN


def test_feed_turns_red_past_the_stale_limit_only_while_nse_is_open(qtbot: Any) -> None:
    desk = Desk(breakers={"stale_data_seconds": 30}, desk={"enforce_trading_hours": True})
    try:
        desk.start()
        bar = bar_for(qtbot, desk.engine)
        desk.step()
        desk.clock.advance(31)
        assert desk.refresh(bar)["feed"] == "feed 31 s" and bar.levels()["feed"] is Level.BAD
        assert "30 s" in bar.labels()["feed"].toolTip()
        # After the close silence is expected, as the stale-data breaker sees it: no colour.
        desk.clock.now_ns = ist_ns(2026, 12, 1, 15, 45)
        texts = desk.refresh(bar)
        assert texts["session"] == "NSE closed · opens Wed 09:15"
        assert bar.levels()["feed"] is Level.PLAIN and "NSE is closed" in bar.labels()["feed"].toolTip()
    finally:
        desk.close()


def test_broker_state_follows_broker_status_events(qtbot: Any, desk: Desk) -> None:
    desk.start()
    bar = bar_for(qtbot, desk.engine)
    # What the window's bridge does with each BrokerStatus.
    desk.engine.bus.subscribe(BrokerStatus, lambda s: bar.set_broker_state(s.broker, s.connected, s.detail,
                                                                           None if s.connected else s.ts_ns))
    went_down = desk.clock.now_ns
    bar.set_broker_state("breeze", False, "ticks stream ended", went_down)
    assert bar.texts()["broker"] == "Breeze ● disconnected 0.0 s" and bar.levels()["broker"] is Level.BAD
    desk.clock.advance(12)
    assert desk.refresh(bar)["broker"] == "Breeze ● disconnected 12 s"
    tip = bar.labels()["broker_dot"].toolTip()
    assert "ticks stream ended" in tip and "11:42:07 IST" in tip
    desk.clock.advance(300)
    assert desk.refresh(bar)["broker"] == "Breeze ● disconnected 5 min"
    bar.set_broker_state("breeze", True, "connected", None)
    assert bar.texts()["broker"] == "Breeze ● connected" and bar.levels()["broker"] is Level.GOOD
    desk.run(desk.engine.stop())
    assert bar.texts()["broker"] == "Paper ● disconnected 0.0 s" and bar.levels()["broker"] is Level.BAD
    assert "stopped" in bar.labels()["broker_state"].toolTip()


def test_rate_budgets_fall_with_orders_and_refill_as_the_windows_pass(qtbot: Any, desk: Desk) -> None:
    desk.start()
    desk.step()
    bar = bar_for(qtbot, desk.engine)
    before = desk.refresh(bar)
    used_at_start = 5_000 - int(before["day"].split("/")[0].replace(",", ""))
    assert before["actions"] == "left: actions 10/10 s"
    assert before["calls"] == f"calls {100 - used_at_start}/100 min"

    async def three_orders() -> None:
        for key in ("NSE:RELIANCE", "NSE:TCS", "NSE:INFY"):
            result = await desk.engine.submit(limit_buy(desk, key))
            assert result.accepted, result.rejection

    desk.run(three_orders())
    after = desk.refresh(bar)
    assert after["actions"] == "left: actions 7/10 s"
    assert after["calls"] == f"calls {97 - used_at_start}/100 min"
    assert after["day"] == f"{4_997 - used_at_start:,}/5,000 day"
    assert all(bar.levels()[name] is Level.PLAIN for name in ("actions", "calls", "day"))
    desk.run(asyncio.sleep(1.1))  # the loop's (virtual) clock: the trailing second empties
    assert desk.refresh(bar)["actions"] == "left: actions 10/10 s"
    # And then the minute window, which the governor stretches by its margin for network jitter.
    desk.run(asyncio.sleep(60 * (1 + GovernorConfig().margin) + 0.5))
    texts = desk.refresh(bar)
    assert texts["calls"] == "calls 100/100 min" and texts["day"] == after["day"]


def test_budget_colours_follow_the_governor_the_engine_has_now(qtbot: Any, desk: Desk) -> None:
    bar = bar_for(qtbot, desk.engine)
    # The engine builds a new governor when it resumes today's counts from the store.
    desk.engine.governor = Governor(BREEZE_RATE_LIMITS, wall_ns=desk.clock, initial_counts={"calls": 4_100})
    assert desk.refresh(bar)["day"] == "900/5,000 day" and bar.levels()["day"] is Level.WARN
    assert "kill switch" in bar.labels()["day"].toolTip()
    desk.engine.governor = Governor(BREEZE_RATE_LIMITS, wall_ns=desk.clock, initial_counts={"calls": 5_000})
    assert desk.refresh(bar)["day"] == "0/5,000 day" and bar.levels()["day"] is Level.BAD
    desk.engine.governor = Governor(BREEZE_RATE_LIMITS, wall_ns=desk.clock, initial_counts={"calls": 3_088})
    assert desk.refresh(bar)["day"] == "1,912/5,000 day" and bar.levels()["day"] is Level.PLAIN


def test_loop_lag_shows_the_recent_p99(qtbot: Any, desk: Desk) -> None:
    bar = bar_for(qtbot, desk.engine)
    assert desk.refresh(bar)["lag"] == "lag —"
    samples = desk.engine.loop_lag.samples_ms
    samples.extend([0.4] * 500)
    assert desk.refresh(bar)["lag"] == "lag <1 ms"
    samples.extend([2.0] * 200)
    assert desk.refresh(bar)["lag"] == "lag 2 ms" and bar.levels()["lag"] is Level.PLAIN
    samples.extend([45.0] * 3)  # 3 of the last 200: the worst 1 %
    assert desk.refresh(bar)["lag"] == "lag 45 ms" and bar.levels()["lag"] is Level.WARN
    samples.extend([250.0] * 3)
    assert desk.refresh(bar)["lag"] == "lag 250 ms" and bar.levels()["lag"] is Level.BAD
    samples.extend([3.0] * 200)  # the stall has scrolled out of the window
    assert desk.refresh(bar)["lag"] == "lag 3 ms" and bar.levels()["lag"] is Level.PLAIN


def test_audit_depth_counts_writes_not_yet_durable(qtbot: Any, tmp_path: Path) -> None:
    writer = AuditWriter(open_store(f"sqlite:///{tmp_path}/desk.db"))
    writer.start()
    desk = Desk(virtual=False, audit=writer)  # a real loop: the writer thread answers through it
    try:
        bar = bar_for(qtbot, desk.engine)
        assert desk.refresh(bar)["audit"] == "audit 0" and bar.levels()["audit"] is Level.PLAIN

        async def backlog(count: int) -> list[asyncio.Future[Any]]:
            return [writer.append("test", {"i": i}, actor="t", source="system") for i in range(count)]

        release = threading.Event()

        async def hold() -> asyncio.Future[Any]:
            return writer.execute(lambda _c: release.wait(10))

        held = desk.run(hold())
        queued = desk.run(backlog(150))
        assert desk.refresh(bar)["audit"] == "audit 151" and bar.levels()["audit"] is Level.WARN
        queued += desk.run(backlog(1_000))
        assert desk.refresh(bar)["audit"] == "audit 1,151" and bar.levels()["audit"] is Level.BAD
        release.set()
        desk.run(asyncio.wait([held, *queued]))
        assert desk.refresh(bar)["audit"] == "audit 0" and bar.levels()["audit"] is Level.PLAIN
    finally:
        desk.close()
        writer.close()


@pytest.mark.parametrize(("instant", "session", "reason"), [
    (ist_ns(2026, 12, 1, 11, 42, 7), "NSE open · closes 15:30", "open until 15:30 IST"),
    (ist_ns(2026, 12, 1, 8, 0), "NSE closed · opens 09:15", "before the open at 09:15 IST"),
    (ist_ns(2026, 12, 1, 15, 30), "NSE closed · opens Wed 09:15", "after the close at 15:30 IST"),
    (ist_ns(2026, 12, 5, 10, 0), "NSE closed · opens Mon 09:15", "Saturday: no session"),
    (ist_ns(2026, 12, 25, 10, 0), "NSE closed · opens Mon 09:15", "2026-12-25 is a trading holiday"),
    (ist_ns(2026, 12, 31, 16, 0), "NSE closed · opens Fri 09:15", "after the close"),  # into 2027
])
def test_session_at_fixed_instants(qtbot: Any, instant: int, session: str, reason: str) -> None:
    desk = Desk(instant)
    try:
        bar = bar_for(qtbot, desk.engine)
        texts = desk.refresh(bar)
        assert texts["session"] == session
        assert f"NSE: {reason}" in bar.labels()["session"].toolTip()
        assert texts["notice"] == ""  # the calendar covers 2027 too
    finally:
        desk.close()


def test_calendar_notice_and_an_uncovered_year(qtbot: Any) -> None:
    only_2026 = TradingCalendar(synthetic_calendar({2026: []}))
    desk = Desk(ist_ns(2026, 12, 10, 10, 0), calendar=only_2026)
    try:
        bar = bar_for(qtbot, desk.engine)
        texts = desk.refresh(bar)
        assert texts["session"] == "NSE open · closes 15:30"
        assert texts["notice"] == "⚠ calendar" and bar.levels()["notice"] is Level.WARN
        assert "2027 trading holidays are not in the desk's calendar" in bar.labels()["notice"].toolTip()
        desk.clock.now_ns = ist_ns(2027, 1, 4, 10, 0)
        texts = desk.refresh(bar)
        assert texts["session"] == "NSE closed · no 2027 calendar" and bar.levels()["session"] is Level.BAD
        assert "main.py calendar import" in bar.labels()["session"].toolTip()
        assert texts["notice"] == "⚠ calendar"
    finally:
        desk.close()


def test_fields_keep_room_for_their_text_as_it_changes_on_screen(qtbot: Any) -> None:
    only_2026 = TradingCalendar(synthetic_calendar({2026: []}))
    desk = Desk(ist_ns(2026, 11, 2, 10, 0), calendar=only_2026)
    try:
        desk.start()
        bar = bar_for(qtbot, desk.engine)
        bar.resize(1500, 30)
        bar.show()
        qtbot.waitExposed(bar)
        assert bar.texts()["notice"] == ""
        # Longer texts after the bar is laid out: a disconnect, a calendar notice, a closed session.
        bar.set_broker_state("breeze", False, "ticks stream ended", desk.clock.now_ns)
        desk.clock.now_ns = ist_ns(2026, 12, 5, 10, 0)
        texts = desk.refresh(bar)
        assert texts["notice"] == "⚠ calendar" and texts["session"] == "NSE closed · opens Mon 09:15"
        QApplication.processEvents()
        for name, label in bar.labels().items():
            if label.isVisible():
                room = label.contentsRect().width()
                assert room >= label.fontMetrics().horizontalAdvance(label.text()), (name, label.text(), room)
    finally:
        desk.close()


def test_refresh_sets_nothing_when_nothing_changed(qtbot: Any, desk: Desk) -> None:
    desk.start()
    desk.step()
    bar = bar_for(qtbot, desk.engine)
    desk.refresh(bar)
    calls: list[tuple[str, str]] = []
    for name, label in bar.labels().items():
        for method in ("setText", "setToolTip", "setStyleSheet"):
            original = getattr(label, method)

            def spy(value: str, name: str = name, method: str = method, original: Callable[[str], None] = original) -> None:
                calls.append((name, method))
                original(value)

            setattr(label, method, spy)
    desk.refresh(bar)
    desk.refresh(bar)
    assert calls == []
    desk.clock.advance(1)
    desk.refresh(bar)
    assert sorted(calls) == [("clock", "setText"), ("feed", "setText")]
    calls.clear()
    desk.clock.advance(2)  # the feed turns amber: its colour changes once, then nothing
    desk.refresh(bar)
    assert sorted(calls) == [("clock", "setText"), ("feed", "setStyleSheet"), ("feed", "setText")]


def test_refresh_costs_well_under_a_millisecond(qtbot: Any, desk: Desk) -> None:
    desk.start()
    desk.step()
    bar = bar_for(qtbot, desk.engine)
    bar.resize(1500, 28)
    bar.show()
    samples = desk.engine.loop_lag.samples_ms
    samples.extend(float(i % 7) for i in range(100_000))
    times: list[float] = []

    async def refreshes() -> None:
        for i in range(1_000):
            desk.clock.advance(0.25)  # as the window does: four times a second, so the texts do change
            if i % 40 == 0:
                desk.broker.step()
            started = time.perf_counter()
            bar.refresh(desk.engine.clock_ns())
            times.append((time.perf_counter() - started) * 1000)

    desk.run(refreshes())
    p99 = statistics.quantiles(times, n=100)[98]
    print(f"status bar refresh: median {statistics.median(times) * 1000:.0f} µs, p99 {p99 * 1000:.0f} µs")
    assert p99 < 1.0


def test_status_bar_screenshot(qtbot: Any, dark: None, tmp_path: Path) -> None:
    OUTPUT.mkdir(exist_ok=True)
    writers = [AuditWriter(open_store(f"sqlite:///{tmp_path}/{name}.db")) for name in ("healthy", "degraded")]
    for writer in writers:
        writer.start()
    # Real loops: the audit writer's thread answers through them.
    healthy = Desk(virtual=False, audit=writers[0])
    degraded = Desk(virtual=False, audit=writers[1], breakers={"stale_data_seconds": 30})
    release = threading.Event()
    try:
        frame = QWidget()
        qtbot.addWidget(frame)
        layout = QVBoxLayout(frame)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(2)
        bars = []
        for desk in (healthy, degraded):
            desk.start()
            desk.step()
            bar = DeskStatusBar()
            bar.attach(desk.engine)
            layout.addWidget(bar)
            bars.append(bar)
        healthy.engine.governor = Governor(BREEZE_RATE_LIMITS, wall_ns=healthy.clock, initial_counts={"calls": 1_084})

        async def some_orders() -> None:
            for key in ("NSE:RELIANCE", "NSE:TCS"):
                await healthy.engine.submit(limit_buy(healthy, key))

        healthy.run(some_orders())
        healthy.engine.loop_lag.samples_ms.extend([1.6] * 300)
        healthy.durable()
        healthy.clock.advance(0.3)
        bars[0].set_broker_state("breeze", True, "connected", None)
        healthy.refresh(bars[0])

        async def backlog() -> None:
            degraded_writer = writers[1]
            degraded_writer.execute(lambda _c: release.wait(10))
            for i in range(239):
                degraded_writer.append("test", {"i": i}, actor="t", source="system")

        degraded.run(backlog())
        degraded.engine.governor = Governor(BREEZE_RATE_LIMITS, wall_ns=degraded.clock, initial_counts={"calls": 4_230})
        degraded.engine.loop_lag.samples_ms.extend([4.0] * 195 + [140.0] * 5)
        degraded.clock.advance(34)
        bars[1].set_broker_state("breeze", False, "ticks stream ended", degraded.clock.now_ns - 12 * S)
        degraded.refresh(bars[1])
        frame.resize(1500, frame.sizeHint().height())
        frame.show()
        qtbot.waitExposed(frame)
        assert bars[0].texts()["broker"] == "Breeze ● connected" and bars[0].texts()["audit"] == "audit 0"
        assert bars[1].texts()["broker"] == "Breeze ● disconnected 12 s" and bars[1].texts()["audit"] == "audit 240"
        frame.grab().save(str(OUTPUT / "status_bar.png"))
        theme.apply(QApplication.instance(), False)  # type: ignore[arg-type]  # as the desk's View > Dark theme does
        QApplication.processEvents()
        frame.grab().save(str(OUTPUT / "status_bar_light.png"))
    finally:
        release.set()
        for desk in (healthy, degraded):
            desk.durable()
            desk.close()
        for writer in writers:
            writer.close()


# -- alerts panel --------------------------------------------------------------------------------


def alert(level: AlertLevel, message: str, *, component: str = "desk", at: int = MORNING) -> Alert:
    return Alert(level, component, message, at)


def numbered(count: int, level: AlertLevel = AlertLevel.INFO, start: int = 0) -> list[Alert]:
    return [alert(level, f"alert {start + i}", at=MORNING + (start + i) * S) for i in range(count)]


def shown(panel: AlertsPanel) -> list[str]:
    proxy = panel.proxy
    return [proxy.index(row, 0).data(Qt.ItemDataRole.DisplayRole) for row in range(proxy.rowCount())]


def panel_for(qtbot: Any, **options: Any) -> AlertsPanel:
    """A panel that lists each batch at once (no insert interval) unless told otherwise."""
    options.setdefault("min_interval_s", 0.0)
    panel = AlertsPanel(**options)
    qtbot.addWidget(panel)
    return panel


def test_alerts_are_listed_newest_first_one_insert_per_batch(qtbot: Any) -> None:
    panel = panel_for(qtbot)
    inserts: list[tuple[int, int]] = []
    panel.model.rowsInserted.connect(lambda _parent, first, last: inserts.append((first, last)))
    resets: list[int] = []
    panel.model.modelReset.connect(lambda: resets.append(1))
    panel.add_alerts([alert(AlertLevel.INFO, "broker session renewed", component="broker"),
                      alert(AlertLevel.WARNING, "gross exposure at 84% of its limit (₹4.2 Cr of ₹5 Cr)",
                            component="limits", at=MORNING + 3 * S)])
    panel.add_alerts([alert(AlertLevel.CRITICAL, "no price for NSE:RELIANCE in 31.0 s", component="breakers",
                            at=MORNING + 63 * S)])
    assert shown(panel) == [
        "11:43:10 CRIT breakers: no price for NSE:RELIANCE in 31.0 s",
        "11:42:10 WARN limits: gross exposure at 84% of its limit (₹4.2 Cr of ₹5 Cr)",
        "11:42:07 INFO broker: broker session renewed",
    ]
    assert inserts == [(0, 1), (0, 0)] and resets == []
    tip = panel.proxy.index(0, 0).data(Qt.ItemDataRole.ToolTipRole)
    assert tip.startswith("2026-12-01 11:43:10 IST · CRITICAL · breakers")


def test_the_list_keeps_the_newest_up_to_its_cap(qtbot: Any) -> None:
    panel = panel_for(qtbot, cap=50)
    removed: list[tuple[int, int]] = []
    panel.model.rowsRemoved.connect(lambda _parent, first, last: removed.append((first, last)))
    panel.add_alerts(numbered(30))
    panel.add_alerts(numbered(40, start=30))
    assert panel.model.rowCount() == 50
    assert removed == [(10, 29)]  # the 20 oldest, from the bottom, in one removal
    texts = shown(panel)
    assert texts[0].endswith("alert 69") and texts[-1].endswith("alert 20")
    panel.add_alerts(numbered(120, start=70))  # a batch bigger than the cap keeps its newest
    texts = shown(panel)
    assert len(texts) == 50 and texts[0].endswith("alert 189") and texts[-1].endswith("alert 140")
    assert panel_for(qtbot).model.cap == 2_000


def test_filter_shows_warnings_and_up_or_critical_only(qtbot: Any) -> None:
    panel = panel_for(qtbot)
    panel.add_alerts([alert(AlertLevel.INFO, "i1"), alert(AlertLevel.WARNING, "w1"), alert(AlertLevel.CRITICAL, "c1")])
    assert [panel.filter_combo.itemText(i) for i in range(panel.filter_combo.count())] == ["All", "Warnings+", "Critical"]
    panel.filter_combo.setCurrentIndex(1)
    assert [t.split(": ")[1] for t in shown(panel)] == ["c1", "w1"]
    panel.add_alerts([alert(AlertLevel.INFO, "i2"), alert(AlertLevel.CRITICAL, "c2")])
    assert [t.split(": ")[1] for t in shown(panel)] == ["c2", "c1", "w1"]
    panel.set_filter(AlertFilter.CRITICAL)
    assert panel.filter_combo.currentText() == "Critical"
    assert [t.split(": ")[1] for t in shown(panel)] == ["c2", "c1"]
    panel.set_filter(AlertFilter.ALL)
    assert len(shown(panel)) == 5


def test_unseen_critical_count_clicks_and_clear(qtbot: Any) -> None:
    panel = panel_for(qtbot)
    panel.resize(380, 400)
    panel.show()
    counts: list[int] = []
    panel.unseen_critical_changed.connect(counts.append)
    panel.add_alerts([alert(AlertLevel.CRITICAL, "c1"), alert(AlertLevel.WARNING, "w1"), alert(AlertLevel.CRITICAL, "c2")])
    assert panel.unseen_critical == 2 and counts == [2]
    assert panel.unseen_button.isVisible() and panel.unseen_button.text() == "● 2 critical unseen"
    assert [panel.proxy.index(r, 0).data(UnseenRole) for r in range(3)] == [True, False, True]
    panel.add_alerts([alert(AlertLevel.INFO, "i1")])
    assert counts == [2]  # an info alert changes nothing
    changed: list[tuple[int, int]] = []
    panel.model.dataChanged.connect(lambda first, last, _roles: changed.append((first.row(), last.row())))
    qtbot.mouseClick(panel.unseen_button, Qt.MouseButton.LeftButton)
    assert panel.unseen_critical == 0 and counts == [2, 0] and not panel.unseen_button.isVisible()
    assert changed == [(0, 3)]  # only the rows added since the last look
    assert not any(panel.proxy.index(r, 0).data(UnseenRole) for r in range(4))
    panel.add_alerts([alert(AlertLevel.CRITICAL, "c3")])
    assert panel.unseen_critical == 1
    qtbot.mouseClick(panel.clear_button, Qt.MouseButton.LeftButton)
    assert panel.model.rowCount() == 0 and panel.unseen_critical == 0 and counts[-1] == 0


def test_selected_alerts_copy_as_text_lines(qtbot: Any) -> None:
    panel = panel_for(qtbot)
    panel.add_alerts(numbered(3, AlertLevel.WARNING))
    selection = panel.view.selectionModel()
    for row in (0, 2):
        selection.select(panel.proxy.index(row, 0), selection.SelectionFlag.Select)
    panel.copy_selection()
    assert QApplication.clipboard().text() == "11:42:09 WARN desk: alert 2\n11:42:07 WARN desk: alert 0"


def test_long_messages_wrap_into_taller_rows_and_rewrap_on_resize(qtbot: Any) -> None:
    panel = panel_for(qtbot)
    panel.resize(380, 500)
    panel.show()
    qtbot.waitExposed(panel)
    panel.add_alerts([
        alert(AlertLevel.WARNING, "short", component="limits"),
        alert(AlertLevel.CRITICAL, "kill switch engaged by asha: breaker stale_market_data: no price for NSE:RELIANCE in "
              "31.0 s; cancelling 12 working orders, expected clear in 1.4 s", component="kill_switch"),
    ])
    QApplication.processEvents()
    long_rect = panel.view.visualRect(panel.proxy.index(0, 0))
    short_rect = panel.view.visualRect(panel.proxy.index(1, 0))
    assert long_rect.height() >= 2 * short_rect.height() - 8
    assert long_rect.width() <= panel.view.viewport().width()
    panel.resize(1400, 500)
    QApplication.processEvents()
    # Wide enough for one line: the row is as short as the short one.
    assert panel.view.visualRect(panel.proxy.index(0, 0)).height() == short_rect.height()


def test_a_storm_is_listed_in_few_inserts(qtbot: Any) -> None:
    clock = FakeClock()
    panel = panel_for(qtbot, min_interval_s=0.25, clock=clock)
    inserts: list[tuple[int, int]] = []
    panel.model.rowsInserted.connect(lambda _parent, first, last: inserts.append((first, last)))
    panel.add_alerts(numbered(2))  # the first after a quiet spell: at once
    assert panel.model.rowCount() == 2 and panel.pending == 0
    for frame in range(4):  # four frames of alerts inside the interval: gathered
        clock.now += 0.05
        panel.add_alerts(numbered(3, AlertLevel.CRITICAL, start=2 + 3 * frame))
    assert panel.model.rowCount() == 2 and panel.pending == 12 and panel.unseen_critical == 0
    clock.now += 0.05
    panel.flush()  # what the timer does when the interval has passed
    assert inserts == [(0, 1), (0, 11)] and panel.unseen_critical == 12
    assert shown(panel)[0].endswith("alert 13") and shown(panel)[-1].endswith("alert 0")
    clock.now += 0.01
    panel.add_alerts(numbered(1, start=14))
    assert panel.pending == 1
    panel.clear()  # Clear drops what waits too
    assert panel.pending == 0 and panel.model.rowCount() == 0


def test_gathered_alerts_are_listed_by_the_timer(qtbot: Any) -> None:
    panel = panel_for(qtbot, min_interval_s=0.05)
    panel.add_alerts(numbered(1))
    panel.add_alerts(numbered(1, start=1))
    assert panel.model.rowCount() + panel.pending == 2
    qtbot.waitUntil(lambda: panel.model.rowCount() == 2, timeout=5_000)
    assert panel.pending == 0


# -- notifier ------------------------------------------------------------------------------------


class FakeTray(QSystemTrayIcon):
    """A tray that records its balloons; offscreen has no system tray to show one."""

    def __init__(self, visible: bool = True) -> None:
        super().__init__(QIcon())
        self.visible = visible
        self.messages: list[tuple[str, str, QSystemTrayIcon.MessageIcon, int]] = []

    def isVisible(self) -> bool:
        return self.visible

    def showMessage(self, title: str, message: str, icon: QSystemTrayIcon.MessageIcon,  # type: ignore[override]
                    msecs: int) -> None:
        self.messages.append((title, message, icon, msecs))


def limit_warning(percent: int) -> Alert:
    return alert(AlertLevel.WARNING, f"gross exposure at {percent}% of its limit (₹4.0 Cr of ₹5.0 Cr)", component="limits")


def test_notifier_rate_limits_balloons_and_sounds(qapp: QApplication) -> None:
    tray, clock, beeps = FakeTray(), FakeClock(), []
    notifier = AlertNotifier(tray, lambda: beeps.append(clock.now), clock=clock)
    notifier.notify([alert(AlertLevel.CRITICAL, "broker disconnected for 10.2 s", component="breakers")])
    assert tray.messages == [("CRITICAL · breakers", "broker disconnected for 10.2 s",
                              QSystemTrayIcon.MessageIcon.Critical, 10_000)]
    assert beeps == [1_000.0]
    clock.now += 1
    notifier.notify([alert(AlertLevel.CRITICAL, "ticks stream ended", component="broker"), limit_warning(80)])
    clock.now += 1.5
    notifier.notify([alert(AlertLevel.CRITICAL, "task crashed", component="oms")])
    clock.now += 0.5
    notifier.notify([alert(AlertLevel.INFO, "session renewed"), alert(AlertLevel.WARNING, "expiring today", component="expiry")])
    assert len(tray.messages) == 1 and notifier.held == 3
    assert beeps == [1_000.0, 1_002.5]  # at most one sound per 2 s
    clock.now = 1_000.0 + BALLOON_INTERVAL_S
    notifier.notify([limit_warning(90)])
    # The most severe, newest of what was held, and how many more there were.
    assert tray.messages[-1][:3] == ("CRITICAL · oms", "task crashed (+3 more)", QSystemTrayIcon.MessageIcon.Critical)
    assert notifier.held == 0
    clock.now += BALLOON_INTERVAL_S
    notifier.notify([limit_warning(95)])
    assert tray.messages[-1] == ("Limit warning · limits", "gross exposure at 95% of its limit (₹4.0 Cr of ₹5.0 Cr)",
                                 QSystemTrayIcon.MessageIcon.Warning, 6_000)
    assert beeps == [1_000.0, 1_002.5]  # warnings make no sound


def test_an_alert_storm_makes_one_balloon_then_one_summary(qapp: QApplication) -> None:
    tray, clock, beeps = FakeTray(), FakeClock(), []
    notifier = AlertNotifier(tray, lambda: beeps.append(clock.now), clock=clock)
    for i in range(1_000):
        notifier.notify([alert(AlertLevel.CRITICAL, f"no price for NSE:X{i}", component="breakers")])
        clock.now += 0.001
    assert len(tray.messages) == 1 and len(beeps) == 1 and notifier.held == 999
    notifier.flush()  # too early: the window is still shut
    assert len(tray.messages) == 1
    clock.now = 1_000.0 + BALLOON_INTERVAL_S
    notifier.flush()  # what the timer does when the window reopens
    assert tray.messages[-1][1] == "no price for NSE:X999 (+998 more)"
    notifier.flush()
    assert len(tray.messages) == 2


def test_no_tray_or_a_hidden_one_means_sound_only(qapp: QApplication) -> None:
    clock, beeps = FakeClock(), []
    hidden = FakeTray(visible=False)
    for tray in (None, hidden):
        notifier = AlertNotifier(tray, lambda: beeps.append(clock.now), clock=clock)
        notifier.notify([alert(AlertLevel.CRITICAL, "audit store failed", component="store"), limit_warning(80)])
        assert notifier.held == 0
        clock.now += 10
    assert hidden.messages == [] and len(beeps) == 2


def test_the_default_sound_is_the_application_beep(qapp: QApplication, monkeypatch: pytest.MonkeyPatch) -> None:
    beeps: list[int] = []
    monkeypatch.setattr(QApplication, "beep", staticmethod(lambda: beeps.append(1)))
    AlertNotifier(None).notify([alert(AlertLevel.CRITICAL, "session expired", component="broker")])
    assert beeps == [1]


def test_alerts_panel_screenshot(qtbot: Any, dark: None) -> None:
    OUTPUT.mkdir(exist_ok=True)
    panel = panel_for(qtbot)
    minute = 60 * S
    at = ist_ns(2026, 12, 1, 9, 14, 58)
    mixed = [
        (AlertLevel.INFO, "engine", "engine running with broker breeze, 42 instruments, state ACTIVE", 0),
        (AlertLevel.WARNING, "calendar", ("NSE/BSE/NFO/BFO: the 2027 trading holidays are not in the desk's calendar; "
                                         "import them (main.py calendar import FILE) before 2027-01-01"), 1),
        (AlertLevel.WARNING, "expiry", "expiring today (2026-12-01): NFO:NIFTY:2026-12-01:26000:CE", 1),
        (AlertLevel.INFO, "broker", "broker session renewed; trading state is ACTIVE", 20),
        (AlertLevel.WARNING, "limits", "gross exposure at 80% of its limit (₹4,00,00,000.00 of ₹5,00,00,000.00)", 61),
        (AlertLevel.WARNING, "governor", "the broker refused a call for its rate limit: too many requests", 75),
        (AlertLevel.WARNING, "limits", "orders today at 80% of its limit (800 of 1000)", 96),
        (AlertLevel.WARNING, "limits", "gross exposure at 90% of its limit (₹4,50,00,000.00 of ₹5,00,00,000.00)", 118),
        (AlertLevel.CRITICAL, "broker", "breeze ticks stream ended unexpectedly", 140),
        (AlertLevel.CRITICAL, "kill_switch", ("kill switch engaged by system: breaker broker_disconnected: broker "
                                             "disconnected for 10.4 s; cancelling 12 working orders, expected clear in 1.4 s"), 140),
        (AlertLevel.INFO, "desk", "Breeze session renewed: re-arm to trade", 152),
        (AlertLevel.INFO, "trading_state", "re-armed by asha: feed back, book reconciled", 155),
        (AlertLevel.WARNING, "limits", "daily loss at 80% of its limit (₹8,00,000.00 of ₹10,00,000.00)", 171),
        (AlertLevel.CRITICAL, "store", "audit store failed (OperationalError); trading halted", 188),
        (AlertLevel.CRITICAL, "broker", "order BW-0192: place timed out; reconciling", 188),
    ]
    panel.add_alerts([Alert(level, component, message, at + offset * minute // 4) for level, component, message, offset in mixed])
    panel.model.mark_seen()
    panel.add_alerts([Alert(AlertLevel.CRITICAL, "oms", "task crashed (KeyError: 'BW-0193'); trading halted", at + 50 * minute)])
    panel.view.setCurrentIndex(panel.proxy.index(3, 0))
    panel.resize(400, 640)
    panel.show()
    qtbot.waitExposed(panel)
    QApplication.processEvents()
    assert panel.proxy.rowCount() == 16 and panel.unseen_critical == 1
    panel.grab().save(str(OUTPUT / "alerts_panel.png"))
    theme.apply(QApplication.instance(), False)  # type: ignore[arg-type]  # as the desk's View > Dark theme does
    QApplication.processEvents()
    panel.grab().save(str(OUTPUT / "alerts_panel_light.png"))
