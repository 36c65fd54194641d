"""The Engine: composition root and lifecycle of the headless desk.

Every order source calls ``Engine.submit``; nothing else talks to the broker about orders. The
full pre-trade risk gate and the rate governor slot in between validation and the broker call.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from app.brokers.base import Broker, BrokerError, BrokerErrorCode, PlaceRequest
from app.domain.audit import AuditEventType, AuditSource
from app.domain.events import Alert, AlertLevel, BrokerStatus, OrderRejected, TaskCrashed, TradingStateChanged
from app.domain.fills import Fill
from app.domain.instruments import Instrument
from app.domain.market import Tick
from app.domain.orders import Order, OrderStatus, OrderType, Side
from app.domain.rejections import Rejection, RejectReason
from app.domain.requests import NewOrder, OrderRequest, validate_request
from app.domain.trading_state import TradingState

from .bus import EventBus
from .config import EngineConfig
from .loop_lag import LoopLagMonitor
from .market_data import MarketData
from .oms import OrderManager, ReconcileReport
from .portfolio import Portfolio
from .recorder import Recorder, audit_source
from .supervisor import Supervisor

if TYPE_CHECKING:
    from app.store.audit_writer import AuditWriter

log = logging.getLogger(__name__)

T = TypeVar("T")

_BROKER_REASONS = {
    BrokerErrorCode.RATE_LIMITED: RejectReason.BROKER_RATE_LIMITED,
    BrokerErrorCode.REJECTED: RejectReason.BROKER_REJECTED,
    BrokerErrorCode.TIMEOUT: RejectReason.BROKER_TIMEOUT,
}


class Lifecycle(enum.StrEnum):
    """Where the engine is in its life: orders pass only while RUNNING, cancels also while STOPPING."""

    CREATED = "CREATED"
    STARTING = "STARTING"
    RUNNING = "RUNNING"
    STOPPING = "STOPPING"
    STOPPED = "STOPPED"


class EngineStartError(RuntimeError):
    """The engine could not start (the broker did not connect, say); nothing was traded."""


@dataclass(frozen=True, slots=True)
class SubmitResult:
    """The answer to ``submit``: accepted by the broker, or refused with a reason."""

    accepted: bool
    client_order_id: str | None = None
    rejection: Rejection | None = None
    status: OrderStatus | None = None


@dataclass(frozen=True, slots=True)
class CancelResult:
    """The answer to ``cancel``: whether the request went out (or is queued until the ack), and why not."""

    ok: bool
    client_order_id: str
    message: str


class Engine:
    """Wires broker, bus, OMS, portfolio and market data together and owns their lifecycle."""

    def __init__(
        self,
        broker: Broker,
        instruments: Iterable[Instrument],
        config: EngineConfig | None = None,
        *,
        audit: AuditWriter | None = None,
        clock_ns: Callable[[], int] = time.time_ns,
    ) -> None:
        self.config = config or EngineConfig()
        self.broker = broker
        self.instruments: dict[str, Instrument] = {i.key: i for i in instruments}
        self.clock_ns = clock_ns
        self.bus = EventBus(on_critical_error=self._critical_handler_failed)
        self.market_data = MarketData()
        self.portfolio = Portfolio(self.instruments)
        self.oms = OrderManager(self.bus, clock_ns, self.config.client_id_prefix)
        self.supervisor = Supervisor(self._task_crashed)
        self.loop_lag = LoopLagMonitor(self.config.loop_lag_interval)
        self.bus.subscribe(Tick, self.market_data.on_tick, name="market_data")
        self.bus.subscribe(Tick, self.portfolio.on_tick, name="portfolio.tick")
        self.bus.subscribe(Fill, self.portfolio.on_fill, name="portfolio.fill")
        # Without a store the engine still runs (unit tests, benchmarks); the desk always has one.
        self.recorder = Recorder(audit, self._store_failed) if audit is not None else None
        if self.recorder is not None:
            self.recorder.attach(self.bus)
        self.trading_state = self.config.initial_state
        self.halt_reason = "" if self.trading_state is TradingState.ACTIVE else "initial state"
        self.lifecycle = Lifecycle.CREATED
        self.rejections: Counter[RejectReason] = Counter()
        self.submitted = 0
        self.accepted = 0
        self._inflight = 0
        self._idle = asyncio.Event()
        self._idle.set()

    # -- lifecycle -------------------------------------------------------------------------------

    async def start(self) -> None:
        """Connect the broker, start the supervised streams and reconcile with the broker's book."""
        if self.lifecycle is not Lifecycle.CREATED:
            raise RuntimeError(f"engine cannot start from {self.lifecycle}")
        self.lifecycle = Lifecycle.STARTING
        name = self.broker.capabilities.name
        if self.recorder is not None:
            await self._resume(self.recorder)
        try:
            await asyncio.wait_for(self.broker.connect(), self.config.connect_timeout)
            await self._call(self.broker.subscribe(sorted(self.instruments)))
        except (BrokerError, TimeoutError) as exc:
            self.lifecycle = Lifecycle.STOPPED
            raise EngineStartError(f"broker {name} did not connect: {exc or type(exc).__name__}") from exc
        self.supervisor.spawn("broker.ticks", self._pump_ticks())
        self.supervisor.spawn("broker.order_updates", self._pump_order_updates())
        self.supervisor.spawn("loop_lag", self.loop_lag.run())
        self.lifecycle = Lifecycle.RUNNING
        self.bus.publish(BrokerStatus(name, True, "connected", self.clock_ns()))
        log.info("engine running with broker %s, %d instruments, state %s", name, len(self.instruments), self.trading_state)
        try:
            await self.reconcile()
        except (BrokerError, TimeoutError) as exc:
            # Not knowing what is already working at the broker is reason enough not to add to it.
            self.halt(f"could not read the broker's order book at start: {exc or type(exc).__name__}")

    async def _resume(self, recorder: Recorder) -> None:
        """Pick up the stored picture: trading state, working orders, positions from every fill."""
        try:
            saved = await asyncio.to_thread(recorder.load)
        except Exception as exc:  # noqa: BLE001 - an unreadable store means an unknown picture: halt
            self.halt(f"could not read the store at start: {type(exc).__name__}: {exc}")
            return
        if saved.trading_state is not None and saved.trading_state is not TradingState.ACTIVE:
            self._set_state(saved.trading_state, f"resumed: {saved.reason}", "system")
        for order in saved.open_orders:
            self.oms.restore(order)
        for fill in saved.fills:
            self.portfolio.on_fill(fill)
        if saved.open_orders or saved.fills:
            log.info("resumed %d working orders and %d fills from the store", len(saved.open_orders), len(saved.fills))

    async def stop(self) -> None:
        """Stop taking orders, let in-flight broker calls finish (bounded), stop tasks, disconnect."""
        if self.lifecycle in (Lifecycle.CREATED, Lifecycle.STOPPED, Lifecycle.STOPPING):
            self.lifecycle = Lifecycle.STOPPED if self.lifecycle is Lifecycle.CREATED else self.lifecycle
            return
        self.lifecycle = Lifecycle.STOPPING
        try:
            await asyncio.wait_for(self._idle.wait(), self.config.drain_timeout)
        except TimeoutError:
            log.error("stop: %d broker calls still in flight after %.1fs", self._inflight, self.config.drain_timeout)
        if self.recorder is not None:
            self.recorder.snapshot_positions(self.portfolio.snapshot_rows())
        stuck = await self.supervisor.shutdown(self.config.drain_timeout)
        if stuck:
            log.error("stop: tasks did not finish: %s", ", ".join(stuck))
        try:
            await asyncio.wait_for(self.broker.disconnect(), self.config.broker_call_timeout)
        except (BrokerError, TimeoutError) as exc:
            log.error("stop: broker disconnect failed: %s", exc or type(exc).__name__)
        self.bus.publish(BrokerStatus(self.broker.capabilities.name, False, "stopped", self.clock_ns()))
        self.lifecycle = Lifecycle.STOPPED
        log.info("engine stopped")

    # -- trading state ---------------------------------------------------------------------------

    def halt(self, reason: str, actor: str = "system") -> None:
        """Latch HALTED now, synchronously: no new order passes after this returns. Cancels still pass."""
        self._set_state(TradingState.HALTED, reason, actor)

    def _set_state(self, state: TradingState, reason: str, actor: str) -> None:
        previous = self.trading_state
        if previous is state:
            return
        self.trading_state = state
        self.halt_reason = reason
        log.warning("trading state %s -> %s by %s: %s", previous, state, actor, reason)
        self.bus.publish(TradingStateChanged(previous, state, reason, actor))

    def _task_crashed(self, name: str, exc: BaseException) -> None:
        now = self.clock_ns()
        self.halt(f"engine task {name} crashed: {type(exc).__name__}: {exc}")
        self.bus.publish(TaskCrashed(name, f"{type(exc).__name__}: {exc}", now))
        self._alert(AlertLevel.CRITICAL, name, f"task crashed ({type(exc).__name__}: {exc}); trading halted")

    def _critical_handler_failed(self, name: str, exc: BaseException) -> None:
        self.halt(f"event handler {name} failed: {type(exc).__name__}: {exc}")
        self._alert(AlertLevel.CRITICAL, name, f"handler failed ({type(exc).__name__}); trading halted")

    def _store_failed(self, exc: BaseException) -> None:
        self.halt(f"the audit store failed: {exc}")
        self._alert(AlertLevel.CRITICAL, "store", f"audit store failed ({type(exc).__name__}); trading halted")

    def _alert(self, level: AlertLevel, component: str, message: str) -> None:
        self.bus.publish(Alert(level, component, message, self.clock_ns()))

    # -- orders ----------------------------------------------------------------------------------

    async def submit(self, request: OrderRequest) -> SubmitResult:
        """The one path to the broker: validate, check the trading state, price, send. Never raises."""
        self.submitted += 1
        self._audit(AuditEventType.ORDER_PROPOSED, _request_payload(request), request)
        if self.lifecycle is not Lifecycle.RUNNING:
            return self._refuse(request, Rejection(RejectReason.ENGINE_NOT_RUNNING, f"engine is {self.lifecycle}"))
        key = request.instrument_key if isinstance(request.instrument_key, str) else None
        checked = validate_request(request, self.instruments.get(key) if key is not None else None)
        if isinstance(checked, Rejection):
            return self._refuse(request, checked)
        refusal = self._state_check(checked)
        if refusal is not None:
            return self._refuse(request, refusal)
        price = self._limit_price(checked)
        if isinstance(price, Rejection):
            return self._refuse(request, price)
        order = self.oms.create(checked, price)
        self._audit(AuditEventType.GATE_ACCEPTED, {"client_order_id": order.client_order_id, "price_paise": price}, request)
        if self.recorder is not None:
            # The invariant: nothing reaches the broker before its audit record is durable.
            try:
                await self.recorder.durable(
                    AuditEventType.ORDER_SENT, _order_payload(order), actor=order.actor, source=audit_source(order.source)
                )
            except Exception as exc:  # noqa: BLE001 - the recorder already halted the desk
                self.oms.mark_rejected(order, "audit store unavailable")
                return self._refused_order(order, Rejection(RejectReason.AUDIT_UNAVAILABLE, f"the audit store failed: {exc}"))
        self.oms.mark_sent(order)
        return await self._send(order)

    def _state_check(self, new: NewOrder) -> Rejection | None:
        state = self.trading_state
        if state is TradingState.ACTIVE:
            return None
        if state is TradingState.HALTED:
            return Rejection(RejectReason.TRADING_HALTED, f"trading is halted: {self.halt_reason}")
        position = self.portfolio.position(new.instrument.key)
        pending = sum(
            o.quantity - o.filled_quantity
            for o in self.oms.working()
            if o.instrument_key == new.instrument.key and o.side is new.side
        )
        reducible = abs(position) - pending
        if position == 0 or (position > 0) == (new.side is Side.BUY) or new.quantity > reducible:
            return Rejection(
                RejectReason.NOT_RISK_REDUCING,
                "only orders that reduce an open position are allowed while REDUCING",
                f"{new.side} {new.quantity}",
                f"position {position}, already reducing {pending}",
            )
        return None

    def _limit_price(self, new: NewOrder) -> int | Rejection:
        """The limit price to send: the order's own, or for a market order a marketable limit with protection."""
        if new.order_type is OrderType.LIMIT:
            assert new.price is not None
            return new.price
        reference = self.market_data.last_price(new.instrument.key)
        if reference is None:
            return Rejection(RejectReason.STALE_PRICE, "no last price to protect a market order with")
        tick = new.instrument.tick_size
        bps = self.config.market_protection_bps
        if new.side is Side.BUY:
            price = reference * (10_000 + bps) // 10_000 // tick * tick
        else:
            price = -(-(reference * (10_000 - bps)) // 10_000 // tick) * tick
        return max(price, tick)

    async def _send(self, order: Order) -> SubmitResult:
        instrument = self.instruments[order.instrument_key]
        request = PlaceRequest(
            client_order_id=order.client_order_id,
            instrument=instrument,
            side=order.side,
            quantity=order.quantity,
            price=order.price,
            product=order.product,
            validity=order.validity,
        )
        try:
            ack = await self._call(self.broker.place(request))
        except BrokerError as exc:
            if exc.code is BrokerErrorCode.SESSION_EXPIRED:
                self.halt("broker session expired; log in again", "broker")
            self.oms.mark_rejected(order, exc.message)
            rejection = Rejection(_BROKER_REASONS.get(exc.code, RejectReason.BROKER_UNAVAILABLE), exc.message)
            if self.recorder is not None:
                self.recorder.record(
                    AuditEventType.BROKER_REJECT, {"client_order_id": order.client_order_id, **_rejection_payload(rejection)},
                    actor=order.actor, source=AuditSource.BROKER,
                )
            return self._refused_order(order, rejection)
        except TimeoutError:
            return self._unknown_outcome(order, f"no answer from the broker within {self.config.broker_call_timeout}s")
        except Exception as exc:  # noqa: BLE001 - an adapter bug must halt the desk, not vanish
            log.exception("broker place raised unexpectedly for %s", order.client_order_id)
            self.halt(f"broker adapter failed on place: {type(exc).__name__}")
            return self._unknown_outcome(order, f"broker adapter failed: {type(exc).__name__}")
        self.accepted += 1
        if self.recorder is not None:
            self.recorder.record(
                AuditEventType.BROKER_ACK, {"client_order_id": order.client_order_id, "broker_order_id": ack.broker_order_id},
                actor=order.actor, source=AuditSource.BROKER,
            )
        self.oms.bind(order, ack.broker_order_id)
        if order.cancel_requested and order.status.is_working:
            self.supervisor.spawn(f"cancel.{order.client_order_id}", self.cancel(order.client_order_id))
        return SubmitResult(True, order.client_order_id, None, order.status)

    def _unknown_outcome(self, order: Order, message: str) -> SubmitResult:
        # The order may be live at the broker: keep it working at the desk and let reconciliation decide.
        self._alert(AlertLevel.CRITICAL, "broker", f"order {order.client_order_id}: {message}; reconciling")
        self.supervisor.spawn(f"reconcile.{order.client_order_id}", self.reconcile())
        rejection = Rejection(RejectReason.BROKER_TIMEOUT, f"{message}; state unknown, reconciling with the broker")
        self.rejections[rejection.reason] += 1
        return SubmitResult(False, order.client_order_id, rejection, order.status)

    def _audit(self, event: AuditEventType, payload: dict[str, Any], request: OrderRequest) -> None:
        if self.recorder is not None:
            self.recorder.record(event, payload, actor=str(request.actor), source=audit_source(request.source))

    def _refuse(self, request: OrderRequest, rejection: Rejection) -> SubmitResult:
        self._audit(AuditEventType.GATE_REJECTED, _rejection_payload(rejection), request)
        self.rejections[rejection.reason] += 1
        self.bus.publish(
            OrderRejected(str(request.instrument_key), request.source, request.actor, rejection)
        )
        return SubmitResult(False, None, rejection)

    def _refused_order(self, order: Order, rejection: Rejection) -> SubmitResult:
        self.rejections[rejection.reason] += 1
        self.bus.publish(OrderRejected(order.instrument_key, order.source, order.actor, rejection, order.client_order_id))
        return SubmitResult(False, order.client_order_id, rejection, order.status)

    async def cancel(self, client_order_id: str, *, actor: str = "system", source: AuditSource = AuditSource.SYSTEM) -> CancelResult:
        """Ask the broker to cancel a working order. Allowed in every trading state."""
        order = self.oms.get(client_order_id)
        if order is None:
            return CancelResult(False, client_order_id, "no such order")
        if not order.status.is_working:
            return CancelResult(False, client_order_id, f"order is {order.status}, not working")
        if self.lifecycle not in (Lifecycle.RUNNING, Lifecycle.STOPPING):
            return CancelResult(False, client_order_id, f"engine is {self.lifecycle}")
        if self.recorder is not None and not order.cancel_requested:
            try:
                await self.recorder.durable(
                    AuditEventType.CANCEL_REQUESTED,
                    {"client_order_id": client_order_id, "broker_order_id": order.broker_order_id},
                    actor=actor, source=source,
                )
            except Exception as exc:  # noqa: BLE001 - cancels must still go out when the store fails
                log.error("cancel of %s goes out unaudited: the store failed (%s)", client_order_id, exc)
        order.cancel_requested = True
        if order.broker_order_id is None:
            return CancelResult(True, client_order_id, "cancel will be sent as soon as the broker acknowledges the order")
        try:
            await self._call(self.broker.cancel(order.broker_order_id))
        except BrokerError as exc:
            return CancelResult(False, client_order_id, exc.message)
        except TimeoutError:
            return CancelResult(False, client_order_id, f"no answer from the broker within {self.config.broker_call_timeout}s")
        return CancelResult(True, client_order_id, "cancel sent")

    async def reconcile(self) -> ReconcileReport:
        """Fetch the broker's order book and bring the desk's orders in line with it."""
        book = await self._call(self.broker.order_book())
        report = self.oms.reconcile(book)
        if report.adopted or report.missing_at_broker or report.problems:
            log.warning(
                "reconcile: adopted %s, missing at broker %s, problems %s",
                report.adopted, report.missing_at_broker, report.problems,
            )
        return report

    async def _call(self, call: Awaitable[T]) -> T:
        """Every broker call is bounded by a timeout and counted as in flight for a graceful drain."""
        self._inflight += 1
        self._idle.clear()
        try:
            return await asyncio.wait_for(call, self.config.broker_call_timeout)
        finally:
            self._inflight -= 1
            if self._inflight == 0:
                self._idle.set()

    # -- broker streams --------------------------------------------------------------------------

    async def _pump_ticks(self) -> None:
        publish = self.bus.publish
        async for tick in self.broker.ticks():
            publish(tick)
        self._stream_ended("ticks")

    async def _pump_order_updates(self) -> None:
        async for update in self.broker.order_updates():
            self.oms.apply_update(update)
        self._stream_ended("order updates")

    def _stream_ended(self, stream: str) -> None:
        if self.lifecycle is Lifecycle.RUNNING:
            name = self.broker.capabilities.name
            self.bus.publish(BrokerStatus(name, False, f"{stream} stream ended", self.clock_ns()))
            self._alert(AlertLevel.CRITICAL, "broker", f"{name} {stream} stream ended unexpectedly")


def _request_payload(request: OrderRequest) -> dict[str, Any]:
    # repr() of what arrived: the record must show exactly what a source sent, garbage included.
    return {
        "instrument": repr(request.instrument_key) if not isinstance(request.instrument_key, str) else request.instrument_key,
        "side": repr(request.side) if not isinstance(request.side, str) else request.side,
        "quantity": repr(request.quantity),
        "price": repr(request.price),
        "order_type": str(request.order_type),
        "product": str(request.product),
        "tag": request.tag,
    }


def _order_payload(order: Order) -> dict[str, Any]:
    return {
        "client_order_id": order.client_order_id,
        "instrument": order.instrument_key,
        "side": order.side,
        "quantity": order.quantity,
        "price_paise": order.price,
        "order_type": order.order_type,
        "product": order.product,
        "validity": order.validity,
    }


def _rejection_payload(rejection: Rejection) -> dict[str, Any]:
    return {"reason": rejection.reason, "message": rejection.message, "value": rejection.value, "limit": rejection.limit}
