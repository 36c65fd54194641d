"""Orders and their explicit state machine."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field


class Side(enum.StrEnum):
    """Buy or sell; ``sign`` is +1 for a buy so signed quantities add up to a net position."""

    BUY = "BUY"
    SELL = "SELL"

    @property
    def sign(self) -> int:
        return 1 if self is Side.BUY else -1

    @property
    def opposite(self) -> Side:
        return Side.SELL if self is Side.BUY else Side.BUY


class OrderType(enum.StrEnum):
    """LIMIT, or MARKET (which the desk always sends as a protected marketable limit)."""

    LIMIT = "LIMIT"
    MARKET = "MARKET"


class Product(enum.StrEnum):
    """DELIVERY holds cash equity overnight; INTRADAY is squared off the same day; CARRY is F&O NRML."""

    DELIVERY = "DELIVERY"
    INTRADAY = "INTRADAY"
    CARRY = "CARRY"


class Validity(enum.StrEnum):
    """DAY rests until the close; IOC cancels whatever does not fill at once."""

    DAY = "DAY"
    IOC = "IOC"


class OrderSource(enum.StrEnum):
    """Who asked for an order: stable codes used in the audit trail."""

    TICKET = "ticket"
    API = "api"
    STRATEGY = "strategy"
    FLATTEN = "flatten"
    KILL_SWITCH = "kill_switch"
    SIMULATION = "simulation"
    SYSTEM = "system"


class OrderStatus(enum.StrEnum):
    """An order's state; the legal moves between them are in ``_TRANSITIONS``."""

    NEW = "NEW"
    SENT = "SENT"
    OPEN = "OPEN"
    PARTIALLY_FILLED = "PARTIALLY_FILLED"
    FILLED = "FILLED"
    CANCELLED = "CANCELLED"
    REJECTED = "REJECTED"
    EXPIRED = "EXPIRED"
    # The broker lists the order but its row could not be read: it may still fill, so it counts as
    # working (exposure, cancelled by the kill switch) until a readable row or update says otherwise.
    UNKNOWN = "UNKNOWN"

    @property
    def is_terminal(self) -> bool:
        return self in TERMINAL_STATUSES

    @property
    def is_working(self) -> bool:
        """Live at the broker (or on its way there): may still fill, so it counts as exposure."""
        return self in WORKING_STATUSES


WORKING_STATUSES = frozenset({OrderStatus.SENT, OrderStatus.OPEN, OrderStatus.PARTIALLY_FILLED, OrderStatus.UNKNOWN})
TERMINAL_STATUSES = frozenset(
    {OrderStatus.FILLED, OrderStatus.CANCELLED, OrderStatus.REJECTED, OrderStatus.EXPIRED}
)

# SENT may jump straight to a fill or a cancel: a fast market can fill before the ack arrives.
# OPEN -> REJECTED exists because the exchange can refuse an order the broker already accepted.
# OPEN -> OPEN and PARTIALLY_FILLED -> PARTIALLY_FILLED are updates that keep the status (a modify
# ack, another partial fill). Any working order becomes UNKNOWN when the broker's row for it is
# unreadable, and leaves UNKNOWN for whatever the broker next says readably; a closed order stays closed.
_TRANSITIONS: dict[OrderStatus, frozenset[OrderStatus]] = {
    OrderStatus.NEW: frozenset({OrderStatus.SENT, OrderStatus.REJECTED}),
    OrderStatus.SENT: frozenset(
        {
            OrderStatus.OPEN,
            OrderStatus.PARTIALLY_FILLED,
            OrderStatus.FILLED,
            OrderStatus.CANCELLED,
            OrderStatus.REJECTED,
            OrderStatus.EXPIRED,
            OrderStatus.UNKNOWN,
        }
    ),
    OrderStatus.OPEN: frozenset(
        {
            OrderStatus.OPEN,
            OrderStatus.PARTIALLY_FILLED,
            OrderStatus.FILLED,
            OrderStatus.CANCELLED,
            OrderStatus.REJECTED,
            OrderStatus.EXPIRED,
            OrderStatus.UNKNOWN,
        }
    ),
    OrderStatus.PARTIALLY_FILLED: frozenset(
        {
            OrderStatus.PARTIALLY_FILLED,
            OrderStatus.FILLED,
            OrderStatus.CANCELLED,
            OrderStatus.EXPIRED,
            OrderStatus.UNKNOWN,
        }
    ),
    OrderStatus.UNKNOWN: frozenset(
        {
            OrderStatus.OPEN,
            OrderStatus.PARTIALLY_FILLED,
            OrderStatus.FILLED,
            OrderStatus.CANCELLED,
            OrderStatus.REJECTED,
            OrderStatus.EXPIRED,
            OrderStatus.UNKNOWN,
        }
    ),
    OrderStatus.FILLED: frozenset(),
    OrderStatus.CANCELLED: frozenset(),
    OrderStatus.REJECTED: frozenset(),
    OrderStatus.EXPIRED: frozenset(),
}


def can_transition(current: OrderStatus, target: OrderStatus) -> bool:
    return target in _TRANSITIONS[current]


class IllegalTransition(ValueError):
    """An order was asked to move between two states the state machine does not connect."""

    def __init__(self, client_order_id: str, current: OrderStatus, target: OrderStatus) -> None:
        super().__init__(f"order {client_order_id}: illegal transition {current} -> {target}")
        self.client_order_id = client_order_id
        self.current = current
        self.target = target


class OverFill(ValueError):
    """A fill would take an order beyond its quantity."""


@dataclass(frozen=True, slots=True)
class PendingModify:
    """The terms a modify asked the broker for and the broker has not confirmed yet.

    While they are out the broker may already work the order on either the old or the new terms,
    so the desk counts the larger of both. ``unknown``: the call's outcome is not known (no answer,
    a garbled one): only the broker's order book settles the order's terms, and until it does the
    order is not modified again.
    """

    quantity: int
    price: int
    unknown: bool = False


@dataclass(slots=True)
class Order:
    """One order as the desk tracks it. Prices are integer paise; ``fill_value`` is the sum of qty x price."""

    client_order_id: str
    instrument_key: str
    side: Side
    quantity: int
    price: int
    order_type: OrderType
    product: Product
    validity: Validity
    source: OrderSource
    actor: str
    created_ns: int
    status: OrderStatus = OrderStatus.NEW
    broker_order_id: str | None = None
    filled_quantity: int = 0
    fill_value: int = 0
    updated_ns: int = 0
    reject_reason: str | None = None
    cancel_requested: bool = False
    fill_ids: set[str] = field(default_factory=set)
    pending_modify: PendingModify | None = None

    @property
    def remaining_quantity(self) -> int:
        return self.quantity - self.filled_quantity if self.status.is_working or self.status is OrderStatus.NEW else 0

    @property
    def quantity_ceiling(self) -> int:
        """The most the order can fill: its quantity, or a pending modify's when that is larger."""
        pending = self.pending_modify
        return self.quantity if pending is None or pending.quantity < self.quantity else pending.quantity

    @property
    def is_working(self) -> bool:
        return self.status.is_working

    def transition(self, target: OrderStatus, ts_ns: int) -> None:
        if not can_transition(self.status, target):
            raise IllegalTransition(self.client_order_id, self.status, target)
        self.status = target
        self.updated_ns = ts_ns

    def apply_fill(self, quantity: int, price: int, ts_ns: int) -> None:
        """Add a fill and move to PARTIALLY_FILLED or FILLED.

        With a modify pending the order may fill up to the larger of both quantities, and it is
        FILLED only once that is reached: until the broker answers, the rest may still fill.
        """
        if quantity <= 0:
            raise OverFill(f"order {self.client_order_id}: fill quantity must be positive, got {quantity}")
        ceiling = self.quantity_ceiling
        if self.filled_quantity + quantity > ceiling:
            raise OverFill(
                f"order {self.client_order_id}: fill of {quantity} exceeds remaining "
                f"{ceiling - self.filled_quantity}"
            )
        target = (
            OrderStatus.FILLED
            if self.filled_quantity + quantity == ceiling
            else OrderStatus.PARTIALLY_FILLED
        )
        self.transition(target, ts_ns)
        self.filled_quantity += quantity
        self.fill_value += quantity * price
