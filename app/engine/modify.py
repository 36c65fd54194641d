"""Modify of a working order: its new terms through the risk gate, then out to the broker.

Split out of ``engine.py``; ``Engine.modify`` and ``Engine.preview_modify`` delegate here. The
terms asked for stay pending on the order (``Order.pending_modify``) from the moment the modify
goes out until the broker settles them:

- while the call is out, the risk book counts the larger of the old and the new terms (from every
  update of the order, a fill for example) and the OMS takes fills up to the larger quantity;
- the broker accepts: the new terms become the order's;
- the broker refuses plainly (or the modify never went out): the pending terms are dropped;
- no answer, or one that cannot be read: the order keeps counting the larger terms, cannot be
  modified again, and the broker's order book is read; reconciliation takes the broker's quantity
  and price for the order and drops the pending terms.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING

from app.brokers.base import BrokerCall, BrokerError, BrokerErrorCode
from app.domain.actors import Actor, Permission, is_api_actor
from app.domain.audit import AuditEventType, AuditSource
from app.domain.events import AlertLevel
from app.domain.money import format_inr
from app.domain.orders import Order, OrderStatus, OrderType
from app.domain.rejections import Rejection, RejectReason
from app.domain.requests import NewOrder, OrderRequest, validate_request

from .governor import CallKind, Throttled
from .oms import snapshot
from .outcomes import BROKER_REASONS, UNKNOWN_OUTCOME, order_payload, rejection_payload
from .results import ModifyResult, OrderPreview

if TYPE_CHECKING:
    from .engine import Engine

log = logging.getLogger(__name__)

# Reads of the broker's order book after a modify whose outcome is unknown, each after this many
# seconds: the first at once, the later ones in case the broker is still down.
_SETTLE_DELAYS_S = (0.0, 2.0, 10.0, 30.0)


@dataclass(frozen=True, slots=True)
class _Change:
    """A modify that may go ahead: the whole new quantity and price, and what the gate checks in the
    order's place (the quantity still to fill, at the new limit price). ``shrink``: it only lowers the quantity."""

    broker_order_id: str
    quantity: int
    price: int
    checked: NewOrder
    shrink: bool


class OrderModifier:
    """The engine's modify path; it reads the engine's parts at each call, never caches them."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    async def modify(
        self, client_order_id: str, *, quantity: int | None, price: Decimal | str | None, operator: Actor,
    ) -> ModifyResult:
        """See ``Engine.modify``."""
        engine = self._engine
        order = engine.oms.get(client_order_id)
        if order is None:
            return self._refused(
                client_order_id, None, operator, Rejection(RejectReason.NOT_MODIFIABLE, "no such order", client_order_id),
            )
        change = self._change(order, quantity, price, operator)
        if isinstance(change, Rejection):
            return self._refused(client_order_id, order, operator, change)
        with engine.risk_book.without(client_order_id):
            refusal = engine.gate.check_modify(change.checked, engine.clock_ns(), shrink=change.shrink)
        if refusal is not None:
            return self._refused(client_order_id, order, operator, refusal)
        # From here until the broker settles it, the order counts at the larger of both terms
        # (the pending terms also make a second modify wait for this one's answer).
        engine.oms.begin_modify(order, change.quantity, change.price)
        engine.risk_book.track(snapshot(order))
        return await self._send(order, change, operator)

    def preview(
        self, client_order_id: str, *, quantity: int | None, price: Decimal | str | None, operator: Actor | None,
    ) -> OrderPreview:
        """See ``Engine.preview_modify``."""
        engine = self._engine
        order = engine.oms.get(client_order_id)
        if order is None:
            return OrderPreview((Rejection(RejectReason.NOT_MODIFIABLE, "no such order", client_order_id),), 0)
        change = self._change(order, quantity, price, operator)
        if isinstance(change, Rejection):
            return OrderPreview((change,), 0)
        with engine.risk_book.without(client_order_id):
            review = engine.gate.review_modify(change.checked, engine.clock_ns(), shrink=change.shrink)
        return dataclasses.replace(review, order_value=change.quantity * change.price)

    # -- the new terms -----------------------------------------------------------------------------

    def _change(
        self, order: Order, quantity: int | None, price: Decimal | str | None, operator: Actor | None,
    ) -> _Change | Rejection:
        """The first reason ``order`` cannot take these terms now, or the change to check and send."""
        rejection = self._precheck(order, operator)
        if rejection is not None:
            return rejection
        broker_id = order.broker_order_id
        if broker_id is None:
            return Rejection(RejectReason.NOT_MODIFIABLE, "the broker has not acknowledged the order yet", str(order.status))
        terms = self._terms(order, quantity, price)
        if isinstance(terms, Rejection):
            return terms
        new_quantity, new_price = terms
        checked = NewOrder(
            instrument=self._engine.instruments[order.instrument_key], side=order.side,
            quantity=new_quantity - order.filled_quantity, price=new_price, order_type=OrderType.LIMIT,
            product=order.product, validity=order.validity, source=order.source, actor=order.actor,
        )
        return _Change(broker_id, new_quantity, new_price, checked, new_price == order.price and new_quantity < order.quantity)

    def _precheck(self, order: Order, operator: Actor | None) -> Rejection | None:
        """Who may modify (when ``operator`` is given), and whether the order can be modified at all now."""
        if operator is not None and (not operator.can(Permission.TRADE) or order.actor != operator.name):
            return Rejection(
                RejectReason.NOT_AUTHORISED,
                f"{operator.name} may not modify {order.client_order_id}: only its own trader may (it is {order.actor}'s)",
                operator.name, f"{order.actor} with the {Permission.TRADE} permission",
            )
        engine = self._engine
        if not engine.running:
            return Rejection(RejectReason.ENGINE_NOT_RUNNING, f"engine is {engine.lifecycle}")
        why = None
        pending = order.pending_modify
        if not order.status.is_working:
            why = f"the order is {order.status}, not working"
        elif order.status is OrderStatus.UNKNOWN:
            why = "the order's state at the broker is UNKNOWN: check it at the broker or cancel it"
        elif order.cancel_requested:
            why = "a cancel of the order is under way"
        elif pending is not None and pending.unknown:
            why = ("an earlier modify got no clear answer: the order counts at the larger terms until the broker's "
                   "order book is read; cancel it, or wait")
        elif pending is not None:
            why = "another modify of the order is under way"
        if why is not None:
            return Rejection(RejectReason.NOT_MODIFIABLE, why, str(order.status))
        return None

    def _terms(self, order: Order, quantity: int | None, price: Decimal | str | None) -> tuple[int, int] | Rejection:
        """The new quantity and price (paise), validated as a new order's fields would be, or the refusal."""
        request = OrderRequest(
            order.instrument_key, order.side, order.quantity if quantity is None else quantity,
            Decimal(order.price) / 100 if price is None else price,
        )
        checked = validate_request(request, self._engine.instruments.get(order.instrument_key))
        if isinstance(checked, Rejection):
            return checked
        if checked.price is None:
            return Rejection(RejectReason.INVALID_PRICE, "a limit price is needed", "None")
        if checked.quantity <= order.filled_quantity:
            return Rejection(
                RejectReason.INVALID_QUANTITY, f"the new quantity must be above the {order.filled_quantity} already filled",
                str(checked.quantity), f"> {order.filled_quantity}",
            )
        if checked.quantity == order.quantity and checked.price == order.price:
            return Rejection(RejectReason.NOT_MODIFIABLE, "the modify changes nothing", f"{checked.quantity} @ {checked.price}")
        return checked.quantity, checked.price

    # -- out to the broker -------------------------------------------------------------------------

    async def _send(self, order: Order, change: _Change, operator: Actor) -> ModifyResult:
        """The rate governor, the durable ``order.modify`` record, then the broker call under a timeout."""
        engine = self._engine
        cid, quantity, price = order.client_order_id, change.quantity, change.price
        try:
            await engine.governor.acquire(CallKind.MODIFY, engine.broker.capabilities.calls(BrokerCall.MODIFY))
        except Throttled as exc:
            return self._undone(order, operator, Rejection(RejectReason.THROTTLED, str(exc)))
        if engine.halted():
            return self._undone(order, operator, engine.halted_before_send())
        payload = {**order_payload(order), "quantity_to": quantity, "price_paise_to": price,
                   "filled_quantity": order.filled_quantity}
        # The invariant: nothing reaches the broker before its audit record is durable.
        if engine.recorder is not None:
            try:
                await engine.recorder.durable(AuditEventType.ORDER_MODIFY, payload, actor=operator.name,
                                              source=_source_of(operator))
            except Exception as exc:  # noqa: BLE001 - the recorder already halted the desk
                return self._undone(
                    order, operator, Rejection(RejectReason.AUDIT_UNAVAILABLE, f"the audit store failed: {exc}"),
                )
        await engine.governor.going()
        if engine.halted() or order.cancel_requested or not order.status.is_working:
            # Halted, cancelled or ended while the record was made durable: the call is not made.
            why = engine.halted_before_send() if engine.halted() else Rejection(
                RejectReason.NOT_MODIFIABLE, f"the order is {order.status}{', being cancelled' if order.cancel_requested else ''}",
            )
            return self._undone(order, operator, why)
        try:
            await engine.call_broker(
                engine.broker.modify(change.broker_order_id, quantity=quantity, price=price), None, named=BrokerCall.MODIFY,
            )
        except BrokerError as exc:
            return self._broker_refused(order, operator, exc)
        except TimeoutError:
            return self._unknown(order, f"no answer from the broker within {engine.config.broker_call_timeout}s")
        except Exception as exc:
            log.exception("broker modify raised unexpectedly for %s", cid)
            engine.halt(f"broker adapter failed on modify: {type(exc).__name__}")
            return self._unknown(order, f"broker adapter failed: {type(exc).__name__}")
        engine.record(
            AuditEventType.BROKER_ACK,
            {"client_order_id": cid, "broker_order_id": change.broker_order_id, "modify": True,
             "quantity": quantity, "price_paise": price},
            operator.name, AuditSource.BROKER,
        )
        # Published as an order event: the risk book, the store and the blotter take the new terms.
        engine.oms.modified(order, quantity, price)
        return ModifyResult(True, cid, f"modified: {quantity} @ {format_inr(price)}")

    def _broker_refused(self, order: Order, operator: Actor, exc: BrokerError) -> ModifyResult:
        engine = self._engine
        if exc.code in UNKNOWN_OUTCOME:
            engine.broker_failed(exc)
            return self._unknown(order, exc.message)
        if order.filled_quantity > order.quantity:
            # Fills beyond the old quantity say the broker took the new one, whatever its answer says:
            # its order book decides.
            return self._unknown(order, f"the broker refused the modify ({exc.message}) yet filled beyond the old quantity")
        if exc.code is BrokerErrorCode.ALREADY_FINAL:
            # The order's own update closes it at the desk; the answer is not a broker fault.
            rejection = Rejection(RejectReason.NOT_MODIFIABLE, f"nothing to modify: the order already ended at the broker ({exc.message})")
        else:
            engine.broker_failed(exc)
            rejection = Rejection(BROKER_REASONS.get(exc.code, RejectReason.BROKER_UNAVAILABLE), exc.message)
        engine.record(
            AuditEventType.BROKER_REJECT, {"client_order_id": order.client_order_id, "modify": True, **rejection_payload(rejection)},
            operator.name, AuditSource.BROKER,
        )
        self._drop_pending(order)
        return ModifyResult(False, order.client_order_id, rejection.message, rejection)

    def _unknown(self, order: Order, message: str) -> ModifyResult:
        """The modify may or may not have reached the broker: the order keeps counting the larger terms,
        is not modified again, and the broker's order book settles its terms."""
        engine = self._engine
        engine.oms.modify_unknown(order)
        cid = order.client_order_id
        engine.alert(AlertLevel.CRITICAL, "broker", f"modify of {cid}: {message}; its terms at the broker are unknown: "
                     "it counts at the larger of both until the broker's order book is read")
        engine.supervisor.spawn(f"reconcile.modify.{cid}", self._settle_unknown(cid))
        rejection = Rejection(RejectReason.BROKER_TIMEOUT, f"{message}; the modify may or may not have been made")
        return ModifyResult(False, cid, rejection.message, rejection)

    async def _settle_unknown(self, client_order_id: str) -> None:
        """Read the broker's order book until it settles the order's terms (a few tries, then an alert).

        Any reconciliation settles them, this one or another (the kill switch's, a lost update's)."""
        engine = self._engine
        problem = "the broker's order book does not list the order"
        for delay in _SETTLE_DELAYS_S:
            if delay:
                await asyncio.sleep(delay)
            order = engine.oms.get(client_order_id)
            if order is None or order.pending_modify is None:
                return
            try:
                await engine.reconcile()
            except (BrokerError, TimeoutError) as exc:
                problem = f"the broker's order book could not be read ({exc or type(exc).__name__})"
                continue
            if order.pending_modify is None:
                log.info("modify of %s settled from the broker's order book: %d @ %d paise",
                         client_order_id, order.quantity, order.price)
                return
        engine.alert(
            AlertLevel.WARNING, "broker",
            f"the terms of {client_order_id} after a modify without a clear answer are still unknown: {problem}. "
            "It counts at the larger terms and cannot be modified until the book is read: check it at the broker or cancel it",
        )

    def _undone(self, order: Order, operator: Actor, rejection: Rejection) -> ModifyResult:
        """Refused after the gate passed it (throttled, halted, store failed): the book counts the old terms again."""
        self._drop_pending(order)
        return self._refused(order.client_order_id, order, operator, rejection)

    def _drop_pending(self, order: Order) -> None:
        self._engine.oms.modify_refused(order)
        self._engine.risk_book.track(snapshot(order))

    def _refused(self, client_order_id: str, order: Order | None, operator: Actor, rejection: Rejection) -> ModifyResult:
        """A modify the desk refused before the broker had it: audited as ``order.modify_refused``."""
        log.info("modify of %s refused: %s", client_order_id, rejection.message)
        self._engine.record(
            AuditEventType.ORDER_MODIFY_REFUSED,
            {"client_order_id": client_order_id, "order_actor": order.actor if order is not None else None,
             **rejection_payload(rejection)},
            operator.name, _source_of(operator),
        )
        return ModifyResult(False, client_order_id, rejection.message, rejection)


def _source_of(operator: Actor) -> AuditSource:
    """A modify comes from the ticket (an operator) or from the local API (a client's actor)."""
    return AuditSource.API if is_api_actor(operator.name) else AuditSource.TICKET
