"""Order management: client order ids, broker updates applied idempotently, reconciliation.

Broker feeds repeat, reorder and lose messages, and an update can arrive before the ack that
names its order. Fills are derived from the cumulative filled quantity, so a repeated or late
update can never count a fill twice; updates for an order id the desk has not bound yet wait
(bounded) until the ack binds it.
"""

from __future__ import annotations

import enum
import itertools
import logging
import secrets
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace

from app.domain.broker_messages import (
    BookRow,
    BrokerOrder,
    BrokerOrderUpdate,
    UnreadableOrder,
)
from app.domain.events import Alert, AlertLevel, OrderEvent, OrderSnapshot
from app.domain.fills import Fill
from app.domain.india_time import ist_day, ist_day_number
from app.domain.money import round_div
from app.domain.orders import (
    Order,
    OrderSource,
    OrderStatus,
    OrderType,
    PendingModify,
    Product,
    Validity,
    can_transition,
)
from app.domain.requests import NewOrder

from .bus import EventBus

log = logging.getLogger(__name__)

_FILL_STATUSES = frozenset({OrderStatus.PARTIALLY_FILLED, OrderStatus.FILLED})
_NEW = OrderStatus.NEW  # read through the class, an enum member costs about 0.1 us on Python 3.11
_MAX_ORPHAN_IDS = 1_000


class UpdateOutcome(enum.StrEnum):
    """What became of one broker update."""

    APPLIED = "applied"
    DUPLICATE = "duplicate"
    STALE = "stale"
    HELD = "held"
    UNKNOWN_ORDER = "unknown_order"
    MALFORMED = "malformed"


@dataclass(slots=True)
class OmsCounters:
    """How many broker updates ended each way; a rising ``malformed`` or ``unknown_order`` needs a look."""

    applied: int = 0
    duplicate: int = 0
    stale: int = 0
    held: int = 0
    unknown_order: int = 0
    malformed: int = 0
    late_fills: int = 0

    def count(self, outcome: UpdateOutcome) -> None:
        setattr(self, outcome.value, getattr(self, outcome.value) + 1)


@dataclass(slots=True)
class ReconcileReport:
    """Differences found between the desk's orders and the broker's order book, and what was done.

    ``unknown`` lists the desk's orders whose broker row could not be read, or (at start) that the
    broker's book does not list while they may still be live (now UNKNOWN); ``unreadable`` says, per
    unreadable row, what failed; ``closed`` (at start) the orders the book does not list that can no
    longer be live, closed as EXPIRED, each with why; ``never_sent`` (at start) the orders a stopped
    desk had queued and the book does not list, closed as REJECTED.
    """

    checked: int = 0
    updated: list[str] = field(default_factory=list)
    adopted: list[str] = field(default_factory=list)
    missing_at_broker: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    unknown: list[str] = field(default_factory=list)
    unreadable: list[str] = field(default_factory=list)
    closed: dict[str, str] = field(default_factory=dict)
    never_sent: list[str] = field(default_factory=list)

    def summary(self, limit: int = 50) -> dict[str, object]:
        """What the reconciliation found, for the audit record (long lists cut to ``limit`` ids)."""
        return {
            "checked": self.checked, "updated": len(self.updated), "adopted": self.adopted[:limit],
            "missing_at_broker": self.missing_at_broker[:limit], "unknown": self.unknown[:limit],
            "closed": dict(list(self.closed.items())[:limit]), "never_sent": self.never_sent[:limit],
            "problems": self.problems[:limit],
            "unreadable": len(self.unreadable),
        }

    def findings(self) -> str:
        """One line for an operator: what reconciliation changed or could not settle."""
        parts = [f"{self.checked} rows of the broker's book read"]
        if self.updated:
            parts.append(f"{len(self.updated)} orders brought up to date")
        if self.adopted:
            parts.append(f"{len(self.adopted)} orders adopted from the broker")
        if self.closed:
            parts.append(f"{len(self.closed)} orders not at the broker closed as EXPIRED")
        if self.never_sent:
            parts.append(f"{len(self.never_sent)} orders queued when the desk stopped never sent (REJECTED)")
        if self.unknown:
            parts.append(f"{len(self.unknown)} orders UNKNOWN ({', '.join(self.unknown[:5])}"
                         f"{', ...' if len(self.unknown) > 5 else ''}), counted as working: check them at the broker")
        if self.problems:
            parts.append(f"{len(self.problems)} differences")
        return "; ".join(parts)


def snapshot(order: Order) -> OrderSnapshot:
    return OrderSnapshot(
        client_order_id=order.client_order_id,
        broker_order_id=order.broker_order_id,
        instrument_key=order.instrument_key,
        side=order.side,
        quantity=order.quantity,
        price=order.price,
        order_type=order.order_type,
        product=order.product,
        source=order.source,
        actor=order.actor,
        status=order.status,
        filled_quantity=order.filled_quantity,
        fill_value=order.fill_value,
        ts_ns=order.updated_ns,
    )


class OrderManager:
    """Owns every order of the session and publishes ``OrderEvent`` and ``Fill`` on the bus."""

    def __init__(self, bus: EventBus, clock_ns: Callable[[], int], id_prefix: str = "BW", *, id_stem: str | None = None) -> None:
        """``id_stem``: the desk's own (its id and start number, unique on the database); without one (no
        store), a random per-session tag keeps client ids unique across restarts."""
        self._bus = bus
        self._clock_ns = clock_ns
        self._id_stem = id_stem if id_stem is not None else f"{id_prefix}{secrets.token_hex(3).upper()}"
        self._seq = itertools.count(1)
        self._orders: dict[str, Order] = {}
        self._by_broker_id: dict[str, Order] = {}
        self._orphans: OrderedDict[str, list[BrokerOrderUpdate]] = OrderedDict()
        # Orders already alerted about: the broker's row says they ended but not what they executed.
        self._undecidable: set[str] = set()
        # Each order's ``pending_modify`` by client order id, for the risk book's worst case (``pending_modifies``).
        self._pending_modifies: dict[str, PendingModify] = {}
        self.counters = OmsCounters()

    @property
    def pending_modifies(self) -> Mapping[str, PendingModify]:
        """The modifies out at the broker, by client order id (a live view: the risk book reads it on each update)."""
        return self._pending_modifies

    def create(self, new: NewOrder, price: int) -> Order:
        """Register a validated order (status NEW) under a fresh client order id."""
        now = self._clock_ns()
        client_order_id = f"{self._id_stem}-{next(self._seq):06d}"
        key = new.instrument.key
        side = new.side
        quantity = new.quantity
        order_type = new.order_type
        product = new.product
        source = new.source
        actor = new.actor
        order = Order(
            client_order_id=client_order_id,
            instrument_key=key,
            side=side,
            quantity=quantity,
            price=price,
            order_type=order_type,
            product=product,
            validity=new.validity,
            source=source,
            actor=actor,
            created_ns=now,
            updated_ns=now,
        )
        self._orders[client_order_id] = order
        # Every submit passes here: the snapshot is made from the values in hand rather than read
        # back from the order (``snapshot``), which is the same thing at a fifth less cost.
        self._bus.publish(OrderEvent(OrderSnapshot(
            client_order_id=client_order_id, broker_order_id=None, instrument_key=key, side=side, quantity=quantity,
            price=price, order_type=order_type, product=product, source=source, actor=actor, status=_NEW,
            filled_quantity=0, fill_value=0, ts_ns=now,
        ), None))
        return order

    def restore(self, saved: OrderSnapshot) -> Order:
        """Take back an order the store still lists as working or queued (after a restart), without events."""
        order = Order(
            client_order_id=saved.client_order_id,
            instrument_key=saved.instrument_key,
            side=saved.side,
            quantity=saved.quantity,
            price=saved.price,
            order_type=saved.order_type,
            product=saved.product,
            validity=Validity.DAY,
            source=saved.source,
            actor=saved.actor,
            created_ns=saved.ts_ns,
            updated_ns=saved.ts_ns,
            status=saved.status,
            broker_order_id=saved.broker_order_id,
            filled_quantity=saved.filled_quantity,
            fill_value=saved.fill_value,
        )
        self._orders[order.client_order_id] = order
        if order.broker_order_id is not None:
            self._by_broker_id[order.broker_order_id] = order
        return order

    def get(self, client_order_id: str) -> Order | None:
        return self._orders.get(client_order_id)

    def by_broker_id(self, broker_order_id: str) -> Order | None:
        return self._by_broker_id.get(broker_order_id)

    def orders(self) -> list[Order]:
        return list(self._orders.values())

    def working(self) -> list[Order]:
        return [o for o in self._orders.values() if o.status.is_working]

    def mark_sent(self, order: Order) -> None:
        self._move(order, OrderStatus.SENT)

    def mark_rejected(self, order: Order, reason: str) -> None:
        order.reject_reason = reason
        self._move(order, OrderStatus.REJECTED)

    def bind(self, order: Order, broker_order_id: str) -> None:
        """Record the broker's id from an ack; the order is OPEN unless an update already moved it on."""
        order.broker_order_id = broker_order_id
        self._by_broker_id[broker_order_id] = order
        if order.status is OrderStatus.SENT:
            self._move(order, OrderStatus.OPEN)
        for update in self._orphans.pop(broker_order_id, []):
            self.apply_update(update)

    # -- modifies: the terms asked for stay pending until the broker's answer or its book settles them

    def begin_modify(self, order: Order, quantity: int, price: int) -> None:
        """A modify to ``quantity`` @ ``price`` goes out: fills up to the larger quantity are accepted meanwhile.

        Not published: nothing changed at the broker yet. The caller re-tracks the order in the risk book,
        which counts the larger of both terms from now on, whatever order event comes.
        """
        self._set_pending(order, PendingModify(quantity, price))

    def modify_unknown(self, order: Order) -> None:
        """The modify's outcome is unknown: its terms stay pending until the broker's order book is read."""
        if order.pending_modify is not None:
            self._set_pending(order, replace(order.pending_modify, unknown=True))

    def modified(self, order: Order, quantity: int, price: int) -> None:
        """The broker accepted a modify: the order's new terms, published like any other change of the order."""
        previous = order.status
        self._set_pending(order, None)
        order.quantity = quantity
        order.price = price
        order.updated_ns = self._clock_ns()
        self._settle_filled(order)
        self._publish(order, previous)

    def modify_refused(self, order: Order) -> None:
        """The broker refused the modify (or it never went out): the order keeps its terms.

        A fill that came meanwhile may have completed them: the order is then FILLED (published).
        """
        self._set_pending(order, None)
        previous = order.status
        if self._settle_filled(order):
            self._publish(order, previous)

    def _set_pending(self, order: Order, pending: PendingModify | None) -> None:
        order.pending_modify = pending
        if pending is None:
            self._pending_modifies.pop(order.client_order_id, None)
        else:
            self._pending_modifies[order.client_order_id] = pending

    def _settle_filled(self, order: Order) -> bool:
        """A working order whose fills reached its (settled) quantity is FILLED; whether it moved."""
        if order.pending_modify is not None or not order.status.is_working or order.filled_quantity < order.quantity:
            return False
        order.transition(OrderStatus.FILLED, self._clock_ns())
        return True

    def _move(self, order: Order, target: OrderStatus) -> None:
        previous = order.status
        order.transition(target, self._clock_ns())
        self._publish(order, previous)

    def _publish(self, order: Order, previous: OrderStatus | None) -> None:
        self._bus.publish(OrderEvent(snapshot(order), previous))

    def apply_update(self, update: BrokerOrderUpdate) -> UpdateOutcome:
        """Apply one broker update. Never raises: malformed, unknown, stale and repeated updates are counted."""
        outcome = self._apply(update)
        self.counters.count(outcome)
        if outcome in (UpdateOutcome.MALFORMED, UpdateOutcome.UNKNOWN_ORDER):
            log.warning("broker update %s: %s", outcome.value, update)
        return outcome

    def _find(self, update: BrokerOrderUpdate) -> Order | None:
        order = None
        if update.broker_order_id is not None:
            order = self._by_broker_id.get(update.broker_order_id)
        if order is None and update.client_order_id is not None:
            order = self._orders.get(update.client_order_id)
            if order is not None and update.broker_order_id is not None and order.broker_order_id is None:
                order.broker_order_id = update.broker_order_id
                self._by_broker_id[update.broker_order_id] = order
        return order

    def _apply(self, update: BrokerOrderUpdate) -> UpdateOutcome:
        if not _well_formed(update):
            return UpdateOutcome.MALFORMED
        order = self._find(update)
        if order is None:
            if update.broker_order_id is None:
                return UpdateOutcome.UNKNOWN_ORDER
            return self._hold(update.broker_order_id, update)
        # A modify out at the broker may already have raised the quantity: fills up to the larger one are real.
        if update.filled_quantity is not None and update.filled_quantity > order.quantity_ceiling:
            return UpdateOutcome.MALFORMED
        previous = order.status
        filled = self._apply_fill(order, update)
        moved = self._apply_status(order, update)
        if filled or moved:
            self._publish(order, previous)
            return UpdateOutcome.APPLIED
        if update.status is not None and update.status is not order.status and update.status not in _FILL_STATUSES:
            return UpdateOutcome.STALE
        if update.filled_quantity is not None and update.filled_quantity < order.filled_quantity:
            return UpdateOutcome.STALE
        return UpdateOutcome.DUPLICATE

    def _hold(self, broker_order_id: str, update: BrokerOrderUpdate) -> UpdateOutcome:
        held = self._orphans.setdefault(broker_order_id, [])
        held.append(update)
        while len(self._orphans) > _MAX_ORPHAN_IDS:
            dropped_id, dropped = self._orphans.popitem(last=False)
            self.counters.unknown_order += len(dropped)
            log.warning("dropping %d updates for never-acked broker order %s", len(dropped), dropped_id)
        return UpdateOutcome.HELD

    def _apply_fill(self, order: Order, update: BrokerOrderUpdate) -> bool:
        cumulative = update.filled_quantity
        if cumulative is None or cumulative <= order.filled_quantity:
            return False
        delta = cumulative - order.filled_quantity
        if update.average_price is not None:
            price = round_div(cumulative * update.average_price - order.fill_value, delta)
        else:
            log.warning("order %s: fill without an average price, using the limit price", order.client_order_id)
            price = order.price
        now = self._clock_ns()
        if order.status.is_terminal:
            # A fill reported after the order was closed (a cancel racing a fill) still moved the
            # position: record it rather than lose it; the status stays terminal.
            order.filled_quantity = cumulative
            order.fill_value += delta * price
            order.updated_ns = now
            self.counters.late_fills += 1
            log.warning("order %s: fill of %d after %s", order.client_order_id, delta, order.status)
        else:
            order.apply_fill(delta, price, now)
        fill = Fill(
            fill_id=f"{order.broker_order_id or order.client_order_id}:{cumulative}",
            client_order_id=order.client_order_id,
            instrument_key=order.instrument_key,
            side=order.side,
            quantity=delta,
            price=price,
            ts_ns=update.ts_ns,
        )
        order.fill_ids.add(fill.fill_id)
        self._bus.publish(fill)
        return True

    def _apply_status(self, order: Order, update: BrokerOrderUpdate) -> bool:
        target = update.status
        if target is None or target is order.status:
            return False
        if target in _FILL_STATUSES:
            # Fills move an order through its cumulative quantity (``_apply_fill``); only an UNKNOWN
            # order takes a fill status as such, when the desk already holds those fills.
            if order.status is not OrderStatus.UNKNOWN or order.filled_quantity == 0:
                return False
            if target is OrderStatus.FILLED and order.filled_quantity < order.quantity:
                return False
        if not can_transition(order.status, target):
            return False
        if target is OrderStatus.REJECTED:
            order.reject_reason = update.reason or "rejected by broker"
        order.transition(target, self._clock_ns())
        return True

    def reconcile(self, book: Iterable[BookRow], *, at_start: bool = False, book_outlives_desk: bool = True) -> ReconcileReport:
        """Bring the desk's orders in line with the broker's book; the broker's book is the truth.

        An unreadable row costs only its own order: a working one becomes UNKNOWN (still counted as
        working), and the other rows reconcile as usual. Unless the row still readably says how the
        order ended and what it executed (see ``_close_unreadable``): then it is closed.

        ``at_start`` (the first read after a restart): no call of this desk is in flight, so every
        working order the book does not list is settled (``_settle_missing``), never left working as it was.
        """
        report = ReconcileReport()
        seen: set[str] = set()
        now = self._clock_ns()
        for row in book:
            report.checked += 1
            if isinstance(row, UnreadableOrder):
                self._unreadable(row, report, seen)
                continue
            order = self._by_broker_id.get(row.broker_order_id)
            if order is None and row.client_order_id is not None:
                order = self._orders.get(row.client_order_id)
            if order is None:
                order = self._adopt(row, now)
                report.adopted.append(order.client_order_id)
            seen.add(order.client_order_id)
            if order.status is OrderStatus.NEW:
                # Queued when a desk stopped, restored at start: the broker lists it, so it was sent.
                self._move(order, OrderStatus.SENT)
            # Before the update: a fill up to the broker's (raised) quantity is then not refused as too large.
            retermed = self._adopt_terms(order, row, report)
            update = BrokerOrderUpdate(
                ts_ns=now,
                broker_order_id=row.broker_order_id,
                client_order_id=order.client_order_id,
                status=row.status,
                filled_quantity=row.filled_quantity,
                average_price=row.average_price,
            )
            if order.broker_order_id is None:
                self.bind(order, row.broker_order_id)
            outcome = self.apply_update(update)
            if retermed:
                previous = order.status
                # Published unless the update already was: the store and the risk book take the broker's terms.
                if self._settle_filled(order) or outcome is not UpdateOutcome.APPLIED:
                    self._publish(order, previous)
                    outcome = UpdateOutcome.APPLIED
            if outcome is UpdateOutcome.APPLIED:
                report.updated.append(order.client_order_id)
            elif outcome is UpdateOutcome.MALFORMED:
                report.problems.append(f"{row.broker_order_id}: broker row does not fit order {order.client_order_id}")
            if order.status is not row.status and not (row.status in _FILL_STATUSES and order.status.is_terminal):
                report.problems.append(
                    f"{order.client_order_id}: desk says {order.status}, broker says {row.status}"
                )
        for order in self._orders.values():
            if order.status.is_working and order.broker_order_id is not None and order.client_order_id not in seen:
                report.missing_at_broker.append(order.client_order_id)
        if at_start:
            missing = [o for o in self._orders.values()
                       if (o.status.is_working or o.status is OrderStatus.NEW) and o.client_order_id not in seen]
            for order in missing:
                self._settle_missing(order, report, now, book_outlives_desk)
        return report

    def _adopt_terms(self, order: Order, row: BrokerOrder, report: ReconcileReport) -> bool:
        """Take the broker's quantity and price for an order the desk knows: the book is the truth after a
        modify whose answer was lost (which this settles, dropping its pending terms), or one made at the
        broker's own website. A row whose terms cannot be the order's is reported and changes nothing.
        Whether the order changed (not yet published).

        A modify still waiting for its answer keeps its pending terms: the answer settles them, and the
        book may have been read before the broker applied the modify.
        """
        if not order.status.is_working and order.pending_modify is None:
            return False  # a closed order's terms count for nothing any more
        floor = max(order.filled_quantity, row.filled_quantity)
        if row.quantity <= 0 or row.price <= 0 or row.quantity < floor:
            report.problems.append(
                f"{order.client_order_id}: the broker's row shows {row.quantity} @ {row.price} paise, "
                f"which cannot be the order's terms ({floor} executed); the desk keeps {order.quantity} @ {order.price}"
            )
            return False
        pending = order.pending_modify
        settles = pending is not None and pending.unknown
        if settles:
            self._set_pending(order, None)
        if (row.quantity, row.price) == (order.quantity, order.price):
            return settles
        log.warning("order %s: the broker's book shows %d @ %d paise where the desk had %d @ %d; taking the broker's terms",
                    order.client_order_id, row.quantity, row.price, order.quantity, order.price)
        order.quantity = row.quantity
        order.price = row.price
        order.updated_ns = self._clock_ns()
        return True

    def _settle_missing(self, order: Order, report: ReconcileReport, now: int, book_outlives_desk: bool) -> None:
        """A working order the broker's book does not list at start: closed when it can no longer be live,
        else UNKNOWN (counted as working until the broker's book or an operator says what it is).

        Matched by the broker's id, or by the client order id the broker echoes (paper; Breeze's user
        remark) for one sent but never acknowledged. An order can no longer be live when the broker's
        book died with the desk process (paper), or when it was last seen on an earlier IST day: every
        order the desk sends is DAY or IOC, and neither outlives its session.
        """
        if order.status is OrderStatus.NEW:
            # Queued for the rate governor when the desk stopped, and not at the broker: it never went out.
            order.reject_reason = "never sent: the desk stopped while the order waited for its turn"
            self._move(order, OrderStatus.REJECTED)
            report.never_sent.append(order.client_order_id)
            return
        if order.broker_order_id is None:
            report.missing_at_broker.append(order.client_order_id)
        why: str | None = None
        if not book_outlives_desk:
            why = "the broker's book ended with the desk process that placed it"
        elif ist_day_number(order.updated_ns) < ist_day_number(now):
            why = f"last seen on {ist_day(order.updated_ns).isoformat()}: a DAY or IOC order does not outlive its session"
        if why is not None:
            order.reject_reason = why
            log.warning("order %s is not in the broker's book at start and %s: closed as EXPIRED", order.client_order_id, why)
            self._move(order, OrderStatus.EXPIRED)
            report.closed[order.client_order_id] = why
            return
        log.warning("order %s (%s) is not in the broker's book at start: marked UNKNOWN",
                    order.client_order_id, order.broker_order_id or "never acknowledged")
        if order.status is not OrderStatus.UNKNOWN:
            self._move(order, OrderStatus.UNKNOWN)
        report.unknown.append(order.client_order_id)

    def _unreadable(self, row: UnreadableOrder, report: ReconcileReport, seen: set[str]) -> None:
        order = self._by_broker_id.get(row.broker_order_id) if row.broker_order_id is not None else None
        if order is None and row.client_order_id is not None:
            order = self._orders.get(row.client_order_id)
        name = row.broker_order_id or "an order without a readable id"
        report.unreadable.append(f"{name}: {row.problem}")
        if order is None:
            # Nothing to mark: the desk cannot adopt what it cannot read. The operator must look.
            report.problems.append(f"{name}: unreadable broker row for an order the desk does not know ({row.problem})")
            return
        seen.add(order.client_order_id)
        if order.broker_order_id is None and row.broker_order_id is not None:
            order.broker_order_id = row.broker_order_id
            self._by_broker_id[row.broker_order_id] = order
        if self._close_unreadable(order, row, report):
            return
        if order.status is OrderStatus.UNKNOWN:
            report.unknown.append(order.client_order_id)
            return
        if not order.status.is_working:
            report.problems.append(f"{order.client_order_id}: desk says {order.status}, broker row unreadable ({row.problem})")
            return
        log.warning("order %s: the broker's row is unreadable (%s); marked UNKNOWN", order.client_order_id, row.problem)
        self._move(order, OrderStatus.UNKNOWN)
        report.unknown.append(order.client_order_id)

    def _close_unreadable(self, order: Order, row: UnreadableOrder, report: ReconcileReport) -> bool:
        """Close a working order whose unreadable row still says readably that it ended, and what it executed.

        Only when nothing is left to guess: a terminal status, an executed quantity no lower than the
        desk's, and an average price for any fill the desk does not hold yet. Otherwise the order stays
        (or becomes) UNKNOWN, counted as working; when the row says it ended but not what it executed,
        an alert says so, once per order. ``True`` when the order is closed.
        """
        if row.status is None or not row.status.is_terminal or not order.status.is_working:
            return False
        filled = row.filled_quantity
        doubt: str | None = None
        if filled is None:
            doubt = "what it executed cannot be read"
        elif filled < order.filled_quantity:
            doubt = f"it shows {filled} executed where the desk holds {order.filled_quantity}"
        elif filled > order.filled_quantity and row.average_price is None:
            doubt = "the price of its fills cannot be read"
        if filled is None or doubt is not None:
            if order.client_order_id not in self._undecidable:
                self._undecidable.add(order.client_order_id)
                self._bus.publish(Alert(
                    AlertLevel.WARNING, "oms",
                    f"order {order.client_order_id}: the broker's row says {row.status} but {doubt} ({row.problem}); "
                    "it is UNKNOWN, counted as working, until the row reads again: check it at the broker",
                    self._clock_ns(),
                ))
            return False
        update = BrokerOrderUpdate(
            ts_ns=self._clock_ns(),
            broker_order_id=order.broker_order_id,
            client_order_id=order.client_order_id,
            status=row.status,
            filled_quantity=filled,
            average_price=row.average_price,
        )
        if self.apply_update(update) is UpdateOutcome.APPLIED:
            report.updated.append(order.client_order_id)
        if not order.status.is_terminal:
            return False
        log.warning("order %s: the broker's row is unreadable (%s) but says %s with %d executed; closed",
                    order.client_order_id, row.problem, order.status, filled)
        return True

    def _adopt(self, row: BrokerOrder, now: int) -> Order:
        """Take in an order the desk did not place (from the broker's website, say) so it is watched and cancellable."""
        order = Order(
            client_order_id=row.client_order_id or f"EXT-{row.broker_order_id}",
            instrument_key=row.instrument_key,
            side=row.side,
            quantity=row.quantity,
            price=row.price,
            order_type=OrderType.LIMIT,
            product=Product.INTRADAY,
            validity=Validity.DAY,
            source=OrderSource.SYSTEM,
            actor="broker",
            created_ns=now,
            updated_ns=now,
            status=OrderStatus.SENT,
        )
        self._orders[order.client_order_id] = order
        log.warning("adopted order %s found at the broker but not at the desk", row.broker_order_id)
        self.bind(order, row.broker_order_id)
        return order


def _well_formed(update: BrokerOrderUpdate) -> bool:
    if update.broker_order_id is None and update.client_order_id is None:
        return False
    for value in (update.broker_order_id, update.client_order_id):
        if value is not None and (not isinstance(value, str) or not value):
            return False
    if update.status is not None and not isinstance(update.status, OrderStatus):
        return False
    for number in (update.filled_quantity, update.average_price):
        if number is not None and (isinstance(number, bool) or not isinstance(number, int) or number < 0):
            return False
    return isinstance(update.ts_ns, int)
