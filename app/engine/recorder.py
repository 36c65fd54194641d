"""Everything the engine decides or learns goes to the store: audit records and the desk's rows.

The engine awaits ``durable`` for records that must be on disk before the broker hears anything
(an order sent, a cancel requested); everything else is queued in order behind them. A write
that fails calls ``on_failure`` so the engine can halt: a desk that cannot record must not trade.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from sqlalchemy import Engine, Table, func, select

from app.domain.audit import AuditEventType, AuditSource
from app.domain.events import (
    Alert,
    BrokerStatus,
    OrderEvent,
    OrderSnapshot,
    TradingStateChanged,
)
from app.domain.fills import Fill
from app.domain.india_time import ist_day
from app.domain.orders import (
    WORKING_STATUSES,
    OrderSource,
    OrderStatus,
    OrderType,
    Product,
    Side,
)
from app.domain.trading_state import TradingState
from app.store import desk_rows, rate_counters
from app.store.audit_writer import AuditEntry, AuditWriter
from app.store.desk_identity import UNFOLDERED_DESK_ID
from app.store.desk_rows import RowWrite
from app.store.models import FillRow, OrderRow, TradingStateRow

from .bus import EventBus

log = logging.getLogger(__name__)

_ORDERS: Table = OrderRow.__table__  # type: ignore[assignment]
_FILLS: Table = FillRow.__table__  # type: ignore[assignment]
_STATE: Table = TradingStateRow.__table__  # type: ignore[assignment]

_SOURCE_OF_ORDER = {
    OrderSource.TICKET: AuditSource.TICKET,
    OrderSource.API: AuditSource.API,
    OrderSource.STRATEGY: AuditSource.API,
    OrderSource.FLATTEN: AuditSource.OPERATOR,
    OrderSource.KILL_SWITCH: AuditSource.PANIC,
    OrderSource.SIMULATION: AuditSource.SIMULATION,
    OrderSource.SYSTEM: AuditSource.SYSTEM,
}


def audit_source(source: OrderSource) -> AuditSource:
    return _SOURCE_OF_ORDER.get(source, AuditSource.SYSTEM)


@dataclass(frozen=True, slots=True)
class ResumeState:
    """What a restart picks up from the store."""

    trading_state: TradingState | None
    reason: str
    open_orders: list[OrderSnapshot]
    fills: list[Fill]
    orders_today: int = 0
    call_counts: dict[str, int] = field(default_factory=dict)


class Recorder:
    """Writes audit records and desk rows through the single writer, and reads them back at start."""

    def __init__(self, writer: AuditWriter, on_failure: Callable[[BaseException], None], *,
                 desk_id: str = UNFOLDERED_DESK_ID, on_fill_conflict: Callable[[Fill, str], None] | None = None) -> None:
        """``desk_id`` goes on every row written and limits every row read back to this desk's.
        ``on_fill_conflict(fill, why)`` hears of a fill whose id is stored with different details."""
        self.writer = writer
        self.desk_id = desk_id
        self._on_failure = on_failure
        self._on_fill_conflict = on_fill_conflict
        self.failed = False

    @property
    def engine(self) -> Engine:
        return self.writer.engine

    def attach(self, bus: EventBus) -> None:
        bus.subscribe(OrderEvent, self._on_order, name="recorder.order")
        bus.subscribe(Fill, self._on_fill, name="recorder.fill")
        bus.subscribe(TradingStateChanged, self._on_state, name="recorder.state")
        bus.subscribe(Alert, self._on_alert, name="recorder.alert")
        bus.subscribe(BrokerStatus, self._on_broker, name="recorder.broker")

    # -- writing -----------------------------------------------------------------------------------

    async def durable(self, event: AuditEventType, payload: Mapping[str, Any], *, actor: str, source: AuditSource) -> AuditEntry:
        """Append and wait until the record, and everything queued before it, is committed."""
        future = self.writer.append(event, payload, actor=actor, source=source)
        try:
            return await future
        except BaseException as exc:
            self._failed(exc)
            raise

    def record(self, event: AuditEventType, payload: Mapping[str, Any], *, actor: str, source: AuditSource) -> None:
        """Append without waiting; a failure still reaches ``on_failure``."""
        self._watch(self.writer.append(event, payload, actor=actor, source=source))

    def _write_rows(self, kind: str, values: dict[str, Any]) -> asyncio.Future[Any]:
        # As data, not a callable: through a database outage the writer keeps it in its spool.
        future = self.writer.execute(RowWrite(kind, values))
        self._watch(future)
        return future

    def _watch(self, future: asyncio.Future[Any]) -> None:
        future.add_done_callback(self._check)

    def _check(self, future: asyncio.Future[Any]) -> None:
        if future.cancelled():
            return
        if future.exception() is not None:
            self._failed(future.exception())  # type: ignore[arg-type]

    def _check_fill(self, fill: Fill, future: asyncio.Future[Any]) -> None:
        if future.cancelled() or future.exception() is not None:
            return
        stored = future.result()
        if isinstance(stored, str):
            conflict = FillConflict(fill, stored)
            why = (f"fill {conflict.fill.fill_id} for order {conflict.fill.client_order_id} ({conflict.fill.side} "
                   f"{conflict.fill.quantity} @ {conflict.fill.price / 100:.2f}) has the id of a stored fill of another "
                   f"trade ({conflict.stored}): not stored; the position may be wrong until the broker's book is read")
            log.critical(why)
            if self._on_fill_conflict is not None:
                self._on_fill_conflict(conflict.fill, why)

    def _failed(self, exc: BaseException) -> None:
        # Only the first failure is reported: the engine's reaction (halt, alert) writes again,
        # and that write failing too must not loop.
        if self.failed:
            return
        self.failed = True
        log.critical("store write failed: %s", exc)
        self._on_failure(exc)

    # -- bus handlers ------------------------------------------------------------------------------

    def _on_order(self, event: OrderEvent) -> None:
        order = event.order
        self._write_rows(desk_rows.ORDER, _order_values(self.desk_id, order))
        if event.previous is None or event.previous is OrderStatus.NEW:
            return  # creation and sending are audited by the engine with their decisions
        kind = AuditEventType.CANCELLED if order.status is OrderStatus.CANCELLED else AuditEventType.ORDER_UPDATE
        self.record(
            kind,
            {"client_order_id": order.client_order_id, "broker_order_id": order.broker_order_id,
             "from": event.previous, "to": order.status, "filled_quantity": order.filled_quantity,
             "fill_value_paise": order.fill_value},
            actor="broker", source=AuditSource.BROKER,
        )

    def _on_fill(self, fill: Fill) -> None:
        future = self._write_rows(desk_rows.FILL, {
            "desk_id": self.desk_id, "fill_id": fill.fill_id, "client_order_id": fill.client_order_id,
            "instrument_key": fill.instrument_key, "side": str(fill.side), "quantity": fill.quantity, "price": fill.price,
            "ts_ns": fill.ts_ns,
        })
        future.add_done_callback(lambda done: self._check_fill(fill, done))
        self.record(
            AuditEventType.FILL,
            {"fill_id": fill.fill_id, "client_order_id": fill.client_order_id, "instrument": fill.instrument_key,
             "side": fill.side, "quantity": fill.quantity, "price_paise": fill.price, "ts_ns": fill.ts_ns},
            actor="broker", source=AuditSource.BROKER,
        )

    def _on_state(self, event: TradingStateChanged) -> None:
        self._write_rows(desk_rows.TRADING_STATE, {"desk_id": self.desk_id, "ts_ns": time.time_ns(), "state": str(event.current),
                                                  "reason": event.reason, "actor": event.actor})
        self.record(
            AuditEventType.TRADING_STATE_CHANGED,
            {"from": event.previous, "to": event.current, "reason": event.reason},
            actor=event.actor, source=AuditSource.SYSTEM if event.actor == "system" else AuditSource.OPERATOR,
        )

    def _on_alert(self, alert: Alert) -> None:
        self.record(AuditEventType.ALERT_RAISED, {"level": alert.level, "component": alert.component, "message": alert.message},
                    actor="system", source=AuditSource.SYSTEM)

    def _on_broker(self, status: BrokerStatus) -> None:
        kind = AuditEventType.BROKER_CONNECTED if status.connected else AuditEventType.BROKER_DISCONNECTED
        self.record(kind, {"broker": status.broker, "detail": status.detail}, actor="system", source=AuditSource.BROKER)

    # -- snapshots and resume ----------------------------------------------------------------------

    def snapshot_positions(self, rows: list[tuple[str, int, int, int]]) -> None:
        """Store (instrument, quantity, cost, realized) rows stamped now."""
        ts = time.time_ns()
        desk = self.desk_id
        if rows:
            self._write_rows(desk_rows.POSITIONS, {"rows": [
                {"desk_id": desk, "ts_ns": ts, "instrument_key": k, "quantity": q, "cost": c, "realized": r}
                for k, q, c, r in rows]})

    def count_calls(self, trading_day: str, account: str, kind: str, count: int) -> None:
        """Persist this desk's day count on the broker account so a restart the same day resumes it."""
        self._write_rows(desk_rows.RATE_COUNTER, {"trading_day": trading_day, "account": account, "desk_id": self.desk_id,
                                                 "kind": kind, "count": count})

    def load(self, trading_day: str, account: str) -> ResumeState:
        """Read this desk's last trading state, its orders not yet settled (working, or queued and never sent),
        its fills and today's counts (blocking; call at start). Other desks' rows are never read."""
        desk = self.desk_id
        with self.engine.connect() as connection:
            state_row = connection.execute(
                select(_STATE).where(_STATE.c.desk_id == desk).order_by(_STATE.c.id.desc()).limit(1)
            ).first()
            # NEW too: an order the desk had queued for the rate governor when it stopped still needs an end.
            unsettled = [status.value for status in (*WORKING_STATUSES, OrderStatus.NEW)]
            orders = connection.execute(
                select(_ORDERS).where(_ORDERS.c.desk_id == desk, _ORDERS.c.status.in_(unsettled))
            ).all()
            fills = connection.execute(
                select(_FILLS).where(_FILLS.c.desk_id == desk).order_by(_FILLS.c.ts_ns, _FILLS.c.fill_id)
            ).all()
            orders_today = connection.execute(
                select(func.count()).select_from(_ORDERS).where(_ORDERS.c.desk_id == desk, _ORDERS.c.trading_day == trading_day)
            ).scalar_one()
        state = TradingState(state_row.state) if state_row is not None else None
        return ResumeState(
            trading_state=state,
            reason=state_row.reason if state_row is not None else "",
            open_orders=[_snapshot_from_row(row) for row in orders],
            fills=[
                Fill(row.fill_id, row.client_order_id, row.instrument_key, Side(row.side), row.quantity, row.price, row.ts_ns)
                for row in fills
            ],
            orders_today=orders_today,
            call_counts=rate_counters.load(self.engine, trading_day, account, desk),
        )


def _snapshot_from_row(row: Any) -> OrderSnapshot:
    return OrderSnapshot(
        client_order_id=row.client_order_id, broker_order_id=row.broker_order_id, instrument_key=row.instrument_key,
        side=Side(row.side), quantity=row.quantity, price=row.price, order_type=OrderType(row.order_type),
        product=Product(row.product), source=OrderSource(row.source), actor=row.actor, status=OrderStatus(row.status),
        filled_quantity=row.filled_quantity, fill_value=row.fill_value, ts_ns=row.updated_ns,
    )


class FillConflict(NamedTuple):
    """A fill whose id this desk already stored with other details: never stored over, never skipped silently."""

    fill: Fill
    stored: str


def _order_values(desk: str, order: OrderSnapshot) -> dict[str, Any]:
    return {
        "client_order_id": order.client_order_id, "desk_id": desk, "created_ns": order.ts_ns,
        "trading_day": ist_day(order.ts_ns).isoformat(),
        "broker_order_id": order.broker_order_id, "instrument_key": order.instrument_key, "side": str(order.side),
        "quantity": order.quantity, "price": order.price, "order_type": str(order.order_type), "product": str(order.product),
        "source": str(order.source), "actor": order.actor, "status": str(order.status),
        "filled_quantity": order.filled_quantity, "fill_value": order.fill_value, "updated_ns": order.ts_ns,
    }
