"""What the gate needs to know about orders, kept incrementally so each decision is O(1).

Working orders count against every limit as if they will fill: per instrument the book keeps the
open buy and sell quantity and value, and from them how far the worst case (all buys fill, or all
sells fill) would push the position beyond where it stands. Orders the gate has accepted but the
broker has not yet acknowledged (status NEW) count too, so two sources racing each other cannot
both slip under a limit. An order with a modify out at the broker counts at the larger of its old
and its pending terms, from every update of the order, until the broker's answer or its book settles them.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass

from app.domain.events import OrderEvent, OrderSnapshot
from app.domain.fills import Fill
from app.domain.india_time import IST_OFFSET_S, ist_day_number
from app.domain.instruments import Instrument
from app.domain.orders import OrderSource, OrderStatus, PendingModify, Side

from ..portfolio import Portfolio

_OPEN = frozenset({OrderStatus.NEW, OrderStatus.SENT, OrderStatus.OPEN, OrderStatus.PARTIALLY_FILLED, OrderStatus.UNKNOWN})
_SECOND_NS = 1_000_000_000
_DAY_NS = 86_400 * _SECOND_NS
# Enum members read through their class cost about 0.1 us each on Python 3.11; every order update reads these.
_BUY = Side.BUY
_SELL = Side.SELL


@dataclass(slots=True)
class Pending:
    """Open (unfilled) quantity and value of the working orders in one instrument, per side."""

    buy_quantity: int = 0
    buy_value: int = 0
    sell_quantity: int = 0
    sell_value: int = 0
    growth_value: int = 0


@dataclass(slots=True)
class PendingTotals:
    """Sums over a group of instruments (one underlying, or the desk)."""

    buy_value: int = 0
    sell_value: int = 0
    growth_value: int = 0


@dataclass(slots=True)  # not frozen: a frozen dataclass pays object.__setattr__ per field, on every new order
class _Open:
    instrument_key: str
    side: Side
    remaining: int
    price: int


def growth(position: int, pending: Pending, side: Side | None = None, quantity: int = 0, price: int = 0) -> int:
    """Paise by which the worst case (every buy fills, or every sell fills) exceeds today's |position|.

    With ``side``/``quantity``/``price`` the growth is computed as if that order were working too.
    Each side is valued at its own orders' prices: that is what the desk would pay.
    """
    buy_q, buy_v, sell_q, sell_v = pending.buy_quantity, pending.buy_value, pending.sell_quantity, pending.sell_value
    if side is _BUY:
        buy_q += quantity
        buy_v += quantity * price
    elif side is _SELL:
        sell_q += quantity
        sell_v += quantity * price
    base = abs(position)
    up = abs(position + buy_q) - base
    down = abs(position - sell_q) - base
    if up <= 0 and down <= 0:
        return 0
    if up >= down:
        return up * buy_v // buy_q
    return down * sell_v // sell_q


class RiskBook:
    """Open orders per instrument, order counts, the duplicate window and per-source rates."""

    def __init__(
        self, portfolio: Portfolio, instruments: Mapping[str, Instrument],
        pending_modifies: Mapping[str, PendingModify] | None = None,
    ) -> None:
        self._portfolio = portfolio
        self._instruments = instruments
        # The OMS's live view of the modifies out at the broker (``OrderManager.pending_modifies``).
        self._pending_modifies: Mapping[str, PendingModify] = pending_modifies if pending_modifies is not None else {}
        self._open: dict[str, _Open] = {}
        self._pending: dict[str, Pending] = {}
        self._by_underlying: dict[str, PendingTotals] = {}
        # Each instrument's Pending with its underlying's totals: one lookup per order update.
        self._slots: dict[str, tuple[Pending, PendingTotals]] = {}
        self.desk = PendingTotals()
        self.day = -1
        # The first instant after ``day`` (IST midnight); while ``now`` falls in that day, roll has nothing to do.
        self._day_ends_ns = -(1 << 62)
        self.orders_today = 0
        self._recent: deque[tuple[int, tuple[str, Side, int, int | None]]] = deque()
        self._recent_keys: dict[tuple[str, Side, int, int | None], int] = {}
        self._by_source: dict[OrderSource | tuple[OrderSource, str], deque[int]] = {}

    # -- open orders -------------------------------------------------------------------------------

    @property
    def open_orders(self) -> int:
        return len(self._open)

    def pending(self, instrument_key: str) -> Pending | None:
        return self._pending.get(instrument_key)

    def underlying(self, underlying: str) -> PendingTotals | None:
        return self._by_underlying.get(underlying)

    def pending_slot(self, instrument_key: str) -> Pending:
        """The instrument's live Pending, made (empty) if no order has touched it yet; the gate keeps it."""
        return self._slot(instrument_key)[0]

    def group(self, underlying: str) -> PendingTotals:
        """The underlying's live totals, made (empty) if none yet; an empty group counts the same as none."""
        group = self._by_underlying.get(underlying)
        if group is None:
            group = self._by_underlying[underlying] = PendingTotals()
        return group

    def _slot(self, instrument_key: str) -> tuple[Pending, PendingTotals]:
        slot = self._slots.get(instrument_key)
        if slot is None:
            pending = self._pending.get(instrument_key)
            if pending is None:
                pending = self._pending[instrument_key] = Pending()
            slot = self._slots[instrument_key] = (pending, self.group(self.underlying_of(instrument_key)))
        return slot

    def on_order(self, event: OrderEvent) -> None:
        self.track(event.order)

    def track(self, order: OrderSnapshot) -> None:
        """Count (or stop counting) one order's open quantity; orders restored at start come here too.

        With a modify pending the order counts at the larger quantity and the larger price of the
        old and the new terms: the broker may already work it on either.
        """
        quantity, price = order.quantity, order.price
        if self._pending_modifies:
            modify = self._pending_modifies.get(order.client_order_id)
            if modify is not None:
                quantity, price = max(quantity, modify.quantity), max(price, modify.price)
        remaining = quantity - order.filled_quantity if order.status in _OPEN else 0
        previous = self._open.get(order.client_order_id)
        # The price matters too: a modify can move it without changing the quantity.
        if previous is not None and previous.remaining == remaining and previous.price == price:
            return
        key = order.instrument_key
        slot = self._slots.get(key)
        pending, group = slot if slot is not None else self._slot(key)
        if previous is not None:
            self._add(pending, group, previous.side, -previous.remaining, previous.price)
            del self._open[order.client_order_id]
        if remaining > 0:
            self._open[order.client_order_id] = _Open(key, order.side, remaining, price)
            self._add(pending, group, order.side, remaining, price)
        self._regrow(key, pending, group)

    @contextmanager
    def without(self, client_order_id: str) -> Iterator[None]:
        """The book as if one working order were not there, for as long as the block runs (no await in it).

        A modify is checked with the order's working contribution replaced by the new one, not added
        to it: the gate runs inside this block with the new terms as if they were a new order.
        """
        entry = self._open.pop(client_order_id, None)
        if entry is None:
            yield
            return
        key = entry.instrument_key
        pending, group = self._slot(key)
        self._add(pending, group, entry.side, -entry.remaining, entry.price)
        self._regrow(key, pending, group)
        try:
            yield
        finally:
            self._open[client_order_id] = entry
            self._add(pending, group, entry.side, entry.remaining, entry.price)
            self._regrow(key, pending, group)

    def on_fill(self, fill: Fill) -> None:
        # The position moved, so how far the working orders could push it moved too.
        slot = self._slots.get(fill.instrument_key)
        if slot is not None:
            self._regrow(fill.instrument_key, slot[0], slot[1])

    def underlying_of(self, instrument_key: str) -> str:
        instrument = self._instruments.get(instrument_key)
        return instrument.underlying if instrument is not None else instrument_key

    def _add(self, pending: Pending, group: PendingTotals, side: Side, quantity: int, price: int) -> None:
        value = quantity * price
        if side is _BUY:
            pending.buy_quantity += quantity
            pending.buy_value += value
            group.buy_value += value
            self.desk.buy_value += value
        else:
            pending.sell_quantity += quantity
            pending.sell_value += value
            group.sell_value += value
            self.desk.sell_value += value

    def _regrow(self, key: str, pending: Pending, group: PendingTotals) -> None:
        new = growth(self._portfolio.position(key), pending)
        delta = new - pending.growth_value
        if delta:
            pending.growth_value = new
            group.growth_value += delta
            self.desk.growth_value += delta

    # -- counts, duplicates and rates --------------------------------------------------------------

    def roll(self, now_ns: int) -> None:
        """Start a new trading day's count at IST midnight."""
        if self._day_ends_ns - _DAY_NS <= now_ns < self._day_ends_ns:
            return
        day = ist_day_number(now_ns)
        self._day_ends_ns = (day + 1) * _DAY_NS - IST_OFFSET_S * _SECOND_NS
        if day != self.day:
            self.day = day
            self.orders_today = 0

    def orders_on(self, now_ns: int) -> int:
        self.roll(now_ns)
        return self.orders_today

    def is_duplicate(self, key: tuple[str, Side, int, int | None], now_ns: int, window_ns: int) -> bool:
        recent = self._recent
        while recent and recent[0][0] <= now_ns - window_ns:
            ts, old = recent.popleft()
            if self._recent_keys.get(old) == ts:
                del self._recent_keys[old]
        last = self._recent_keys.get(key)
        return last is not None and last > now_ns - window_ns

    def source_rate(self, source: OrderSource, now_ns: int, actor: str = "") -> int:
        """Orders accepted from ``source`` in the last second; for the local API, from its client ``actor``
        (each client has the API's rate to itself: one busy script never starves another)."""
        times = self._by_source.get(rate_lane(source, actor))
        if not times:
            return 0
        while times and times[0] <= now_ns - _SECOND_NS:
            times.popleft()
        return len(times)

    def accepted(
        self, source: OrderSource, key: tuple[str, Side, int, int | None], now_ns: int, actor: str = "",
    ) -> None:
        """Remember an order the gate let through: it counts for today, for its source's rate (its API
        client's, for the local API) and as a duplicate."""
        self.roll(now_ns)
        self.orders_today += 1
        self._recent.append((now_ns, key))
        self._recent_keys[key] = now_ns
        lane = rate_lane(source, actor)
        times = self._by_source.get(lane)
        if times is None:
            times = self._by_source[lane] = deque()
        times.append(now_ns)


def rate_lane(source: OrderSource, actor: str) -> OrderSource | tuple[OrderSource, str]:
    """Whose orders share one per-second rate: a source's, but each local API client's apart."""
    return (source, actor) if source is OrderSource.API else source
