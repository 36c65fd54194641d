"""The engine-to-Qt bridge: engine events collected on the bus, handed to the window once per frame.

No Qt signal per engine event: the bus puts the events the views need into one lossless queue
(orders, rejections, fills, state, alerts, broker status, crashes, the kill switch); ticks are not
queued at all, the views read the portfolio's marks when ``marks_moved`` says they changed. The
window's frame timer drains the queue and folds the batch into its models.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from app.domain.events import (
    Alert,
    BrokerStatus,
    OrderEvent,
    OrderRejected,
    OrderSnapshot,
    TaskCrashed,
    TradingStateChanged,
)
from app.domain.fills import Fill
from app.engine.engine import Engine
from app.engine.risk.kill_switch import KillSwitchEngaged, KillSwitchReport

EVENTS = (OrderEvent, OrderRejected, Fill, TradingStateChanged, Alert, BrokerStatus, TaskCrashed, KillSwitchEngaged, KillSwitchReport)


@dataclass(slots=True)
class Batch:
    """What happened since the last frame, grouped for the views."""

    orders: list[OrderSnapshot] = field(default_factory=list)
    rejections: list[tuple[OrderRejected, int]] = field(default_factory=list)
    fills: int = 0
    states: list[TradingStateChanged] = field(default_factory=list)
    alerts: list[Alert] = field(default_factory=list)
    broker: list[BrokerStatus] = field(default_factory=list)
    crashes: list[TaskCrashed] = field(default_factory=list)
    kill_engaged: list[KillSwitchEngaged] = field(default_factory=list)
    kill_reports: list[KillSwitchReport] = field(default_factory=list)
    marks_moved: bool = False


class EngineBridge:
    """Subscribes one lossless queue to the engine's bus; ``drain`` empties it into a ``Batch``."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.queue = engine.bus.subscribe_queue(EVENTS, name="ui", maxsize=None, lossy=False)
        self._ticks_seen = -1
        self.events = 0

    def drain(self) -> Batch:
        batch = Batch()
        now = self.engine.clock_ns()
        items = self.queue.drain()
        self.events += len(items)
        for event in items:
            if isinstance(event, OrderEvent):
                batch.orders.append(event.order)
            elif isinstance(event, OrderRejected):
                batch.rejections.append((event, now))
            elif isinstance(event, Fill):
                batch.fills += 1
            elif isinstance(event, TradingStateChanged):
                batch.states.append(event)
            elif isinstance(event, Alert):
                batch.alerts.append(event)
            elif isinstance(event, BrokerStatus):
                batch.broker.append(event)
            elif isinstance(event, TaskCrashed):
                batch.crashes.append(event)
            elif isinstance(event, KillSwitchEngaged):
                batch.kill_engaged.append(event)
            elif isinstance(event, KillSwitchReport):
                batch.kill_reports.append(event)
        ticks = self.engine.market_data.ticks
        batch.marks_moved = ticks != self._ticks_seen
        self._ticks_seen = ticks
        return batch

    def close(self) -> None:
        self.engine.bus.unsubscribe_queue(self.queue)
