"""The desk's status bar: broker link, feed age, rate budgets, event-loop lag, audit queue, IST clock and session.

Every field is a small label that changes only when its text, colour or tooltip changes, so the
four refreshes a second the window asks for cost a few dozen microseconds. All times come from the
engine's clock (``refresh(now_ns)``), never the machine's: a paper desk on a shifted session clock
shows its own session, and tests can freeze it.
"""

from __future__ import annotations

import datetime as dt
import enum
import re
from itertools import islice
from typing import TYPE_CHECKING

from PySide6.QtCore import QEvent
from PySide6.QtGui import QFont
from PySide6.QtWidgets import QLabel, QStatusBar, QWidget

from app.domain.india_time import IST, ist_day, ist_day_number
from app.domain.instruments import Exchange
from app.domain.money import group_indian
from app.ui import theme
from app.ui.formatting import ist_hms
from app.ui.theme import colours

if TYPE_CHECKING:
    # Types only: the window paints before the engine (and the store under it) is imported.
    from app.engine.engine import Engine
    from app.engine.governor import Governor, GovernorConfig, RateBudget
    from app.engine.risk.calendar import SessionStatus, TradingCalendar

_NS = 1_000_000_000
FEED_AMBER_S = 2.0
LAG_AMBER_MS = 30.0
LAG_RED_MS = 100.0
AUDIT_AMBER = 100
AUDIT_RED = 1000
BUDGET_AMBER = 0.2
# About two seconds of samples at the monitor's 10 ms interval: recent enough to show a stall now,
# few enough to sort in microseconds (the monitor's own percentile sorts all 100,000 it keeps).
LAG_WINDOW = 200
SESSION_EXCHANGE = Exchange.NSE

_UNTIL = re.compile(r"until (\d\d:\d\d)")


class Level(enum.Enum):
    """How a field is coloured: plain text, or the theme's good, warning and bad colours."""

    PLAIN = "plain"
    DIM = "dim"
    GOOD = "good"
    WARN = "warn"
    BAD = "bad"


def _colour(level: Level, dark: bool) -> str:
    c = colours(dark)
    return {Level.PLAIN: "", Level.DIM: c.dim, Level.GOOD: c.good, Level.WARN: c.warn, Level.BAD: c.bad}[level]


def _duration(seconds: float) -> str:
    """A compact, slowly changing duration: 0.3 s, 12 s, 4 min, 2 h."""
    if seconds < 10:
        return f"{seconds:.1f} s"
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds // 60:.0f} min"
    return f"{seconds // 3600:.0f} h"


def _count(value: int) -> str:
    return group_indian(str(value))


class _Field:
    """One label and what it shows, so nothing is set on Qt twice."""

    __slots__ = ("label", "level", "text", "tip")

    def __init__(self, name: str, template: str, tabular: bool = True, pad: tuple[int, int] = (6, 6)) -> None:
        self.label = QLabel()
        self.label.setObjectName(f"status_{name}")
        if tabular:
            font = QFont(self.label.font())
            # Tabular figures: a changing number keeps its width, so the bar does not jitter.
            font.setFeature(QFont.Tag("tnum"), 1)
            self.label.setFont(font)
        # Room between fields: the Fusion style draws no separators. A style sheet on the bar would
        # give the room too, but would keep the bar's background from following a palette change.
        self.label.setContentsMargins(pad[0], 0, pad[1], 0)
        if template:
            self.label.setMinimumWidth(self.label.fontMetrics().horizontalAdvance(template) + sum(pad))
        self.text = ""
        self.tip = ""
        self.level = Level.PLAIN

    def show(self, text: str, level: Level, dark: bool, tip: str | None = None) -> None:
        if text != self.text:
            self.text = text
            self.label.setText(text)
        if level is not self.level:
            self.level = level
            self.paint(dark)
        if tip is not None and tip != self.tip:
            self.tip = tip
            self.label.setToolTip(tip)

    def paint(self, dark: bool) -> None:
        colour = _colour(self.level, dark)
        self.label.setStyleSheet(f"color: {colour};" if colour else "")


class DeskStatusBar(QStatusBar):
    """Permanent fields along the bottom of the desk window; ``refresh(now_ns)`` a few times a second.

    Fields, left to right: broker link ("Breeze ● disconnected 12 s"), feed age ("feed 0.3 s"), the
    broker's rate budgets left ("actions 8/10 s", "calls 61/100 min", "3,912/5,000 day"), event-loop
    lag ("lag 2 ms"), audit writes not yet durable ("audit 0"), the IST clock and the NSE session
    from the desk's trading calendar, and a calendar notice when there is one. Colours come from the
    desk theme for the palette's darkness (dark or light) and follow a palette change.
    """

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setSizeGripEnabled(False)
        self._engine: Engine | None = None
        self._now_ns: int | None = None
        self._dark = self._palette_is_dark()
        self._broker_name = ""
        self._connected = False
        self._detail = "not attached"
        self._since_ns: int | None = None
        self._session_key: tuple[int, SessionStatus, TradingCalendar] | None = None
        self._session: tuple[str, Level, str] = ("", Level.PLAIN, "")
        self._notice_key: tuple[int, TradingCalendar] | None = None
        self._tips_for: Governor | None = None
        self._budget_tips = ("", "", "")

        # Name, dot and state read as one field: "Breeze ● connected".
        self._broker_name_field = _Field("broker_name", "", tabular=False, pad=(6, 0))
        self._dot = _Field("broker_dot", "", tabular=False, pad=(0, 0))
        self._broker_state = _Field("broker_state", "disconnected 88 min", pad=(0, 6))
        self._feed = _Field("feed", "feed 88.8 s")
        self._actions = _Field("actions", "actions 10/10 s")
        self._calls = _Field("calls", "calls 100/100 min")
        self._day = _Field("day", "5,000/5,000 day")
        self._lag = _Field("lag", "lag 888 ms")
        self._audit = _Field("audit", "audit 8,888")
        self._clock = _Field("clock", "88:88:88 IST")
        self._session_field = _Field("session", "", tabular=False)
        self._notice = _Field("notice", "", tabular=False)
        self._fields = {
            "broker_name": self._broker_name_field, "broker_dot": self._dot, "broker_state": self._broker_state,
            "feed": self._feed, "actions": self._actions, "calls": self._calls, "day": self._day, "lag": self._lag,
            "audit": self._audit, "notice": self._notice, "session": self._session_field, "clock": self._clock,
        }

        for field in self._fields.values():
            self.addPermanentWidget(field.label)
        self._notice.label.hide()
        self._show_unattached()

    # -- API ---------------------------------------------------------------------------------------

    def attach(self, engine: Engine) -> None:
        """Show ``engine`` from now on; the broker starts as the engine knows it (connected once running)."""
        self._engine = engine
        self._session_key = None
        self._notice_key = None
        self._broker_name = engine.broker.capabilities.name
        down = engine.broker_down_since_ns
        if engine.lifecycle == "RUNNING":
            self._connected, self._detail, self._since_ns = down is None, "connected" if down is None else "disconnected", down
        else:
            self._connected, self._detail, self._since_ns = False, engine.lifecycle.value.lower(), None
        self.refresh(engine.clock_ns())

    def set_broker_state(self, name: str, connected: bool, detail: str, since_ns: int | None) -> None:
        """The broker came up or went down (from ``BrokerStatus``); ``since_ns`` is when it went down."""
        self._broker_name, self._connected, self._detail = name, connected, detail
        self._since_ns = None if connected else since_ns
        if self._now_ns is not None:
            self._show_broker(self._now_ns)

    def refresh(self, now_ns: int) -> None:
        """Bring every field up to the engine's instant ``now_ns`` (epoch ns, the engine's own clock)."""
        engine = self._engine
        if engine is None:
            return
        self._now_ns = now_ns
        dark = self._dark
        self._show_broker(now_ns)
        calendar = engine.gate.calendar
        day = ist_day_number(now_ns)
        status = calendar.status(SESSION_EXCHANGE, now_ns)
        self._show_feed(engine, now_ns, status.open)
        self._show_budgets(engine)
        self._show_lag(engine)
        self._show_audit(engine)
        self._clock.show(f"{ist_hms(now_ns)} IST", Level.PLAIN, dark)
        key = (day, status, calendar)
        if key != self._session_key:
            self._session_key = key
            self._session = _session(calendar, status, now_ns)
        text, level, tip = self._session
        self._session_field.show(text, level, dark, tip)
        if (day, calendar) != self._notice_key:
            self._notice_key = (day, calendar)
            notice = calendar.cover_notice(now_ns)
            self._notice.show("⚠ calendar", Level.WARN, dark, notice or "")
            self._notice.label.setVisible(notice is not None)

    def texts(self) -> dict[str, str]:
        """What each field shows now, as plain text: broker, feed, actions, calls, day, lag, audit, clock,
        session, notice (empty when there is none)."""
        broker = f"{self._broker_name_field.text} {self._dot.text} {self._broker_state.text}".strip()
        shown = {name: field.text for name, field in self._fields.items() if not name.startswith("broker_")}
        if not self._notice.label.isVisibleTo(self):
            shown["notice"] = ""
        return {"broker": broker, **shown}

    def levels(self) -> dict[str, Level]:
        """Each field's colour level (the broker's is its dot's)."""
        shown = {name: field.level for name, field in self._fields.items() if not name.startswith("broker_")}
        return {"broker": self._dot.level, **shown}

    def labels(self) -> dict[str, QLabel]:
        """The field labels by name (broker_name, broker_dot, broker_state, feed, ...), for tests and styling."""
        return {name: field.label for name, field in self._fields.items()}

    # -- fields ------------------------------------------------------------------------------------

    def _show_unattached(self) -> None:
        dark = self._dark
        self._broker_name_field.show("Broker", Level.PLAIN, dark)
        self._dot.show("●", Level.DIM, dark, "No engine attached yet")
        self._broker_state.show("—", Level.DIM, dark)
        for field, text in ((self._feed, "feed —"), (self._actions, "actions —"), (self._calls, "calls —"),
                            (self._day, "day —"), (self._lag, "lag —"), (self._audit, "audit —"),
                            (self._clock, "--:--:-- IST"), (self._session_field, "NSE —")):
            field.show(text, Level.DIM, dark)

    def _show_broker(self, now_ns: int) -> None:
        dark = self._dark
        name = self._broker_name.capitalize() or "Broker"
        self._broker_name_field.show(name, Level.PLAIN, dark)
        engine = self._engine
        breaker = engine.gate.limits.breakers.broker_disconnect_seconds if engine is not None else None
        if self._connected:
            tip = f"Broker {name}: connected. Orders, cancels and the order book go through it."
            self._dot.show("●", Level.GOOD, dark, tip)
            self._broker_state.show("connected", Level.PLAIN, dark, tip)
            return
        since = self._since_ns
        detail = self._detail if self._detail and self._detail != "disconnected" else ""
        tip = f"Broker {name}: disconnected"
        if since is not None:
            tip += f" since {ist_hms(since)} IST"
        if detail:
            tip += f" ({detail})"
        if breaker is not None:
            tip += f". The disconnect breaker halts the desk after {breaker:g} s down while running"
        tip += ". The kill switch still halts the desk."
        # A lost session is not a lost connection: the trader must log in again, not wait.
        state = "session expired" if detail == "session expired" else "disconnected"
        text = state if since is None else f"{state} {_duration(max(0, now_ns - since) / _NS)}"
        if since is None and detail in ("created", "starting"):
            text, level = detail, Level.WARN
        else:
            level = Level.BAD
        self._dot.show("●", level, dark, tip)
        self._broker_state.show(text, level, dark, tip)

    def _show_feed(self, engine: Engine, now_ns: int, session_open: bool) -> None:
        dark = self._dark
        limits = engine.gate.limits
        stale_s = limits.breakers.stale_data_seconds
        # As the stale-data breaker: outside the session silence is expected, so it is not coloured.
        quiet = limits.desk.enforce_trading_hours and not session_open
        tip = (f"Age of the newest price from the feed, any instrument. Amber past {FEED_AMBER_S:g} s, red past the "
               f"stale-data breaker's {stale_s:g} s" + (" (not coloured now: NSE is closed)." if quiet else "."))
        newest = engine.market_data.newest_ts_ns
        if newest is None:
            self._feed.show("feed —", Level.DIM, dark, tip + " No price has arrived yet.")
            return
        age_s = max(0, now_ns - newest) / _NS
        if quiet or age_s <= FEED_AMBER_S:
            level = Level.PLAIN
        else:
            level = Level.BAD if age_s > stale_s else Level.WARN
        self._feed.show(f"feed {_duration(age_s)}", level, dark, tip)

    def _show_budgets(self, engine: Engine) -> None:
        dark = self._dark
        governor = engine.governor
        budget = governor.remaining()
        if governor is not self._tips_for:
            # The engine builds a new governor when it resumes the day's counts; its tooltips once each.
            self._tips_for, self._budget_tips = governor, _budget_tips(governor.schedule.config, budget)
        for field, left, cap, text, tip in (
            (self._actions, budget.actions_left, budget.actions_per_second,
             f"left: actions {budget.actions_left}/{budget.actions_per_second} s", self._budget_tips[0]),
            (self._calls, budget.minute_left, budget.calls_per_minute,
             f"calls {budget.minute_left}/{budget.calls_per_minute} min", self._budget_tips[1]),
            (self._day, budget.day_left, budget.calls_per_day,
             f"{_count(budget.day_left)}/{_count(budget.calls_per_day)} day", self._budget_tips[2]),
        ):
            level = Level.BAD if left <= 0 else Level.WARN if left < BUDGET_AMBER * cap else Level.PLAIN
            field.show(text, level, dark, tip)

    def _show_lag(self, engine: Engine) -> None:
        dark = self._dark
        monitor = engine.loop_lag
        samples = monitor.samples_ms
        tip = (f"Event-loop lag: how late a {monitor.interval * 1000:g} ms timer wakes, the worst 1 % of the last "
               f"{LAG_WINDOW} wake-ups. A lagging loop delays orders, cancels and the kill switch's sweep. "
               f"Amber above {LAG_AMBER_MS:g} ms, red above {LAG_RED_MS:g} ms.")
        if not samples:
            self._lag.show("lag —", Level.DIM, dark, tip)
            return
        recent = sorted(islice(reversed(samples), LAG_WINDOW))
        p99 = recent[max(0, -(-len(recent) * 99 // 100) - 1)]
        level = Level.BAD if p99 > LAG_RED_MS else Level.WARN if p99 > LAG_AMBER_MS else Level.PLAIN
        self._lag.show("lag <1 ms" if p99 < 1 else f"lag {p99:.0f} ms", level, dark, tip)

    def _show_audit(self, engine: Engine) -> None:
        dark = self._dark
        recorder = engine.recorder
        if recorder is None:
            self._audit.show("audit off", Level.DIM, dark, "No audit store: nothing this desk does is recorded.")
            return
        writer = recorder.writer
        if writer.failure is not None or recorder.failed:
            self._audit.show("audit failed", Level.BAD, dark,
                             f"The audit store failed ({type(writer.failure).__name__}); trading is halted.")
            return
        pending = writer.pending
        level = Level.BAD if pending > AUDIT_RED else Level.WARN if pending > AUDIT_AMBER else Level.PLAIN
        self._audit.show(f"audit {_count(pending)}", level, dark,
                         f"Audit records and desk rows written but not yet durable (committed). Amber above "
                         f"{AUDIT_AMBER}, red above {AUDIT_RED:,}: the store is falling behind.")

    # -- palette -----------------------------------------------------------------------------------

    def _palette_is_dark(self) -> bool:
        return theme.is_dark(self.palette())

    def changeEvent(self, event: QEvent) -> None:
        super().changeEvent(event)
        if event.type() == QEvent.Type.PaletteChange:
            dark = self._palette_is_dark()
            if dark != self._dark:
                self._dark = dark
                for field in self._fields.values():
                    field.paint(dark)


def _budget_tips(config: GovernorConfig, budget: RateBudget) -> tuple[str, str, str]:
    colours_ = f" Amber under {BUDGET_AMBER:.0%} left, red at none."
    reserve = (f" New orders stop at {1 - config.call_reserve:.0%} used: the rest is kept for cancels and reads, "
               f"so the kill switch always has room." + colours_)
    return (
        f"Order actions (place, modify, cancel) left in the trailing second, of the broker's "
        f"{budget.actions_per_second} a second. New orders keep {config.action_reserve} free for cancels." + colours_,
        f"Broker API calls left in the trailing minute, of {budget.calls_per_minute}." + reserve,
        f"Broker API calls left today (IST), of {_count(budget.calls_per_day)}." + reserve,
    )


def _session(calendar: TradingCalendar, status: SessionStatus, now_ns: int) -> tuple[str, Level, str]:
    """The session field for one status on one IST day: text, level and tooltip."""
    name = SESSION_EXCHANGE.value
    tip = f"{name}: {status.reason}. From the desk's trading calendar ({calendar.label})."
    if not status.covered:
        return f"{name} closed · no {ist_day(now_ns).year} calendar", Level.BAD, tip
    if status.open:
        until = _UNTIL.search(status.reason)
        return (f"{name} open · closes {until.group(1)}" if until else f"{name} {status.reason}"), Level.GOOD, tip
    next_open = calendar.next_open_ns(SESSION_EXCHANGE, now_ns)
    if next_open is None:
        return f"{name} closed", Level.DIM, tip + " No later session is known."
    opens = dt.datetime.fromtimestamp(next_open // _NS, IST)
    days = ist_day_number(next_open) - ist_day_number(now_ns)
    when = f"{opens:%H:%M}" if days == 0 else f"{opens:%a %H:%M}" if days < 7 else f"{opens:%d %b %H:%M}"
    return f"{name} closed · opens {when}", Level.PLAIN, tip
