"""The emulated exchange: prices, orders, fills, trades and positions, and their Breeze REST row shapes.

Everything here runs on the emulator's event loop thread and never blocks; state changes are
reported through two callbacks (an order changed, a contract ticked) that the socket.io side turns
into ``order`` and ``stock`` events.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from typing import Any

from tests.breeze_emulator.contracts import (
    Contract,
    breeze_date,
    rupees_float,
    rupees_text,
    strike_text,
)

IST = timezone(timedelta(hours=5, minutes=30))

ORDERED = "Ordered"
PARTIAL = "Partially Executed"
EXECUTED = "Executed"
CANCELLED = "Cancelled"
REJECTED = "Rejected"
EXPIRED = "Expired"
WORKING = frozenset({ORDERED, PARTIAL})


def now_ist() -> datetime:
    return datetime.now(IST)


class MarketError(ValueError):
    """An action the emulated exchange refuses; the text is what Breeze's ``Error`` field carries."""


@dataclass(slots=True)
class Quote:
    """A contract's running market data in paise; ``close`` is the previous close (the start price)."""

    last: int
    open: int
    high: int
    low: int
    close: int
    lower_circuit: int
    upper_circuit: int
    ltq: int = 0
    ttq: int = 0
    turnover_paise: int = 0
    oi: int = 0
    ltt: datetime = field(default_factory=now_ist)


@dataclass(slots=True)
class Order:
    """One order on the emulated exchange. ``filled_value_paise`` is the sum of quantity x price."""

    order_id: str
    contract: Contract
    action: str
    quantity: int
    price_paise: int
    validity: str
    user_remark: str
    placed_at: datetime
    status: str = ORDERED
    filled: int = 0
    filled_value_paise: int = 0
    cancelled: int = 0
    expired: int = 0
    reason: str = ""
    modifications: int = 0

    @property
    def working(self) -> bool:
        return self.status in WORKING

    @property
    def pending(self) -> int:
        return self.quantity - self.filled if self.working else 0

    @property
    def average_paise(self) -> int:
        return round(self.filled_value_paise / self.filled) if self.filled else 0


@dataclass(frozen=True, slots=True)
class Trade:
    """One execution of an order."""

    trade_id: str
    order_id: str
    contract: Contract
    action: str
    quantity: int
    price_paise: int
    at: datetime


@dataclass(slots=True)
class Position:
    """Net position in one contract: ``quantity`` signed (negative short), ``open_cost_paise`` of the open part."""

    contract: Contract
    quantity: int = 0
    open_cost_paise: int = 0

    @property
    def average_paise(self) -> int:
        return round(self.open_cost_paise / abs(self.quantity)) if self.quantity else 0

    def apply(self, signed_quantity: int, price_paise: int) -> None:
        if self.quantity == 0 or (self.quantity > 0) == (signed_quantity > 0):
            self.open_cost_paise += abs(signed_quantity) * price_paise
            self.quantity += signed_quantity
            return
        # Reducing keeps the average of what stays open; going through zero opens at the fill price.
        average = self.open_cost_paise / abs(self.quantity)
        remaining = self.quantity + signed_quantity
        if remaining == 0 or (remaining > 0) == (self.quantity > 0):
            self.open_cost_paise = round(abs(remaining) * average)
        else:
            self.open_cost_paise = abs(remaining) * price_paise
        self.quantity = remaining


def _round_to_tick(paise: float, tick: int) -> int:
    return max(tick, round(paise / tick) * tick)


class Market:
    """The order book and price process of the emulated exchange.

    Limit orders only. A new (or modified) order that is marketable against the last price fills
    at once, in full, at the last price; a resting order fills at its limit price, in full, when a
    price move crosses it. ``fill`` executes any quantity at any price on demand.
    """

    def __init__(
        self,
        contracts: Sequence[Contract],
        *,
        seed: int,
        on_order: Callable[[Order], None],
        on_tick: Callable[[Contract], None],
    ) -> None:
        if len({c.token for c in contracts}) != len(contracts) or len({c.key for c in contracts}) != len(
            contracts
        ):
            raise ValueError("contract tokens and keys must be unique")
        self.contracts = list(contracts)
        self._by_token = {c.token: c for c in contracts}
        self._by_key = {c.key: c for c in contracts}
        self._rng = random.Random(seed)
        self._on_order = on_order
        self._on_tick = on_tick
        self._order_seq = itertools.count(1)
        self._trade_seq = itertools.count(1)
        self._rejections: list[str] = []
        self.quotes: dict[str, Quote] = {c.token: self._opening_quote(c) for c in contracts}
        self.orders: dict[str, Order] = {}
        self.trades: list[Trade] = []
        self.positions: dict[str, Position] = {}

    @staticmethod
    def _opening_quote(c: Contract) -> Quote:
        p = c.price_paise
        return Quote(
            last=p,
            open=p,
            high=p,
            low=p,
            close=p,
            lower_circuit=_round_to_tick(p * 0.8, c.tick_paise),
            upper_circuit=_round_to_tick(p * 1.2, c.tick_paise),
            oi=c.lot_size * 1000 if c.is_derivative else 0,
        )

    # ---- lookup -------------------------------------------------------------------------------

    def contract(self, token_or_key: str) -> Contract:
        found = self._by_token.get(token_or_key) or self._by_key.get(token_or_key)
        if found is None:
            raise KeyError(f"no contract with token or key {token_or_key!r}")
        return found

    def find(
        self,
        exchange_code: str,
        stock_code: str,
        product: str,
        expiry: date | None = None,
        right: str | None = None,
        strike_paise: int | None = None,
    ) -> Contract | None:
        """The contract these Breeze order fields name (expiry a ``date`` for derivatives), if any."""
        for c in self.contracts:
            if c.exchange_code != exchange_code or c.stock_code != stock_code or c.product_type != product:
                continue
            if not c.is_derivative:
                return c
            if c.expiry != expiry:
                continue
            if c.product_type == "options" and (c.right != right or c.strike_paise != strike_paise):
                continue
            return c
        return None

    def order(self, order_id: str, exchange_code: str | None = None) -> Order:
        found = self.orders.get(order_id)
        if found is None or (exchange_code and found.contract.exchange_code != exchange_code):
            raise MarketError("No Data Found")
        return found

    def working_orders(self) -> list[Order]:
        return [o for o in self.orders.values() if o.working]

    # ---- orders -------------------------------------------------------------------------------

    def reject_next_orders(self, n: int, reason: str) -> None:
        self._rejections.extend([reason] * n)

    def _new_order_id(self, contract: Contract, at: datetime) -> str:
        segment = "14" if contract.is_derivative else "N3"
        return f"{at:%Y%m%d}{segment}{next(self._order_seq):08d}"

    def place(
        self, contract: Contract, action: str, quantity: int, price_paise: int, validity: str, remark: str
    ) -> Order:
        at = now_ist()
        order = Order(
            order_id=self._new_order_id(contract, at),
            contract=contract,
            action=action,
            quantity=quantity,
            price_paise=price_paise,
            validity=validity,
            user_remark=remark,
            placed_at=at,
        )
        self.orders[order.order_id] = order
        if self._rejections:
            order.status = REJECTED
            order.reason = self._rejections.pop(0)
            self._on_order(order)
            return order
        self._on_order(order)
        self._match_new(order)
        return order

    def _marketable(self, order: Order, price: int) -> bool:
        return order.price_paise >= price if order.action == "buy" else order.price_paise <= price

    def _match_new(self, order: Order) -> None:
        last = self.quotes[order.contract.token].last
        if self._marketable(order, last):
            self.fill(order, order.pending, last)
        elif order.validity == "ioc":
            order.expired = order.pending
            order.status = EXPIRED
            self._on_order(order)

    def modify(self, order: Order, quantity: int | None, price_paise: int | None) -> None:
        if not order.working:
            raise MarketError(f"Order cannot be modified as it is {order.status}")
        if quantity is not None and quantity <= order.filled:
            raise MarketError("Quantity should be more than the executed quantity")
        if quantity is not None:
            order.quantity = quantity
        if price_paise is not None:
            order.price_paise = price_paise
        order.modifications += 1
        self._on_order(order)
        self._match_new(order)

    def cancel(self, order: Order) -> None:
        if not order.working:
            raise MarketError(f"Order cannot be cancelled as it is {order.status}")
        order.cancelled = order.pending
        order.status = CANCELLED
        self._on_order(order)

    def fill(self, order: Order, quantity: int, price_paise: int) -> None:
        """Execute ``quantity`` of a working order at ``price_paise``; reported as one `order` event."""
        if not order.working:
            raise MarketError(f"Order cannot be filled as it is {order.status}")
        if quantity <= 0 or quantity > order.pending:
            raise MarketError(f"Fill quantity {quantity} is not within the pending {order.pending}")
        at = now_ist()
        order.filled += quantity
        order.filled_value_paise += quantity * price_paise
        order.status = EXECUTED if order.filled == order.quantity else PARTIAL
        c = order.contract
        self.trades.append(
            Trade(
                trade_id=f"{at:%Y}/{c.token}/{next(self._trade_seq):08d}",
                order_id=order.order_id,
                contract=c,
                action=order.action,
                quantity=quantity,
                price_paise=price_paise,
                at=at,
            )
        )
        position = self.positions.setdefault(c.key, Position(c))
        position.apply(quantity if order.action == "buy" else -quantity, price_paise)
        quote = self.quotes[c.token]
        quote.ltq = quantity
        quote.ttq += quantity
        quote.turnover_paise += quantity * price_paise
        self._on_order(order)

    # ---- prices -------------------------------------------------------------------------------

    def set_price(self, contract: Contract, price_paise: int) -> None:
        """Move the last price (a trade of one lot), tick, and fill the resting orders it crosses."""
        if price_paise <= 0:
            raise ValueError(f"price must be positive paise, got {price_paise}")
        quote = self.quotes[contract.token]
        quote.last = price_paise
        quote.high = max(quote.high, price_paise)
        quote.low = min(quote.low, price_paise)
        quote.ltq = contract.lot_size
        quote.ttq += contract.lot_size
        quote.turnover_paise += contract.lot_size * price_paise
        quote.ltt = now_ist()
        self._on_tick(contract)
        for order in self.working_orders():
            if order.contract is contract and self._marketable(order, price_paise):
                self.fill(order, order.pending, order.price_paise)

    def walk(self) -> None:
        """One step of the seeded random walk: every contract moves by up to three ticks."""
        for c in self.contracts:
            quote = self.quotes[c.token]
            step = self._rng.randint(-3, 3) * c.tick_paise
            price = min(max(quote.last + step, quote.lower_circuit), quote.upper_circuit)
            self.set_price(c, price)

    # ---- REST row shapes ----------------------------------------------------------------------

    def order_row(self, order: Order) -> dict[str, Any]:
        """An order as Breeze's order list and order detail show it."""
        c = order.contract
        return {
            "order_id": order.order_id,
            "exchange_order_id": None,
            "exchange_code": c.exchange_code,
            "stock_code": c.stock_code,
            "product_type": c.product_title,
            "action": order.action.title(),
            "order_type": "Limit",
            "stoploss": "0.00",
            "quantity": str(order.quantity),
            "price": rupees_text(order.price_paise),
            "validity": "IoC" if order.validity == "ioc" else "Day",
            "disclosed_quantity": "0",
            "expiry_date": c.expiry_text,
            "right": c.right_title if c.is_derivative else None,
            "strike_price": rupees_float(c.strike_paise or 0),
            "average_price": rupees_text(order.average_paise) if order.filled else "0",
            "cancelled_quantity": str(order.cancelled),
            "pending_quantity": str(order.pending),
            "status": order.status,
            "user_remark": order.user_remark,
            "order_datetime": f"{breeze_date(order.placed_at.date())} {order.placed_at:%H:%M}",
            "parent_order_id": None,
            "modification_number": str(order.modifications) if order.modifications else None,
            "exchange_acknowledgement_date": None,
            "SLTP_price": None,
            "exchange_acknowledge_number": None,
            "initial_limit": None,
            "intial_sltp": None,
            "LTP": None,
            "limit_offset": None,
            "mbc_flag": None,
            "cutoff_price": None,
            "validity_date": "",
        }

    def trade_row(self, trade: Trade) -> dict[str, Any]:
        """A trade as Breeze's trade list shows it."""
        c = trade.contract
        return {
            "book_type": "Trade-Book",
            "trade_date": breeze_date(trade.at.date()),
            "stock_code": c.stock_code,
            "action": trade.action.title(),
            "quantity": str(trade.quantity),
            "average_cost": rupees_text(trade.price_paise),
            "brokerage_amount": "0.00",
            "product_type": c.product_title,
            "exchange_code": c.exchange_code,
            "order_id": trade.order_id,
            "segment": "F" if c.is_derivative else "N",
            "settlement_code": f"{trade.at:%Y}{trade.at.timetuple().tm_yday:03d}",
            "dp_id": "IN300000",
            "client_id": "00000001",
            "ltp": rupees_text(self.quotes[c.token].last),
            "eatm_withheld_amount": "0.00",
            "cash_withheld_amount": "0.00",
            "total_taxes": "0.00",
            "order_type": "Limit",
            "expiry_date": c.expiry_text,
            "right": c.right_title if c.is_derivative else None,
            "strike_price": strike_text(c.strike_paise) if c.strike_paise else None,
        }

    def trade_detail_row(self, trade: Trade) -> dict[str, Any]:
        """An execution as Breeze's trade detail (``trades`` with an ``order_id``) shows it."""
        return {
            "settlement_id": f"{trade.at:%Y}{trade.at.timetuple().tm_yday:03d}",
            "exchange_trade_id": trade.trade_id.rsplit("/", 1)[-1],
            "executed_quantity": str(trade.quantity),
            "action": "B" if trade.action == "buy" else "S",
            "total_transaction_cost": "0",
            "brokerage_amount": "0",
            "taxes": "0",
            "eatm_withheld_amount": "0",
            "cash_withheld_amount": "0",
            "execution_price": rupees_text(trade.price_paise),
            "stock_code": trade.contract.stock_code,
            "exchange_code": trade.contract.exchange_code,
            "trade_id": trade.trade_id,
            "exchange_trade_time": f"{breeze_date(trade.at.date())} {trade.at:%H:%M:%S}",
        }

    def position_row(self, position: Position) -> dict[str, Any]:
        """An open position as Breeze's portfolio positions show it: quantity positive, action the side."""
        c = position.contract
        return {
            "segment": "fno" if c.is_derivative else "equity",
            "product_type": c.product_title,
            "exchange_code": c.exchange_code,
            "stock_code": c.stock_code,
            "expiry_date": c.expiry_text,
            "strike_price": strike_text(c.strike_paise) if c.strike_paise else None,
            "right": c.right_title if c.is_derivative else None,
            "action": "Buy" if position.quantity > 0 else "Sell",
            "quantity": str(abs(position.quantity)),
            "average_price": rupees_text(position.average_paise),
            "settlement_id": None,
            "margin_amount": None,
            "ltp": rupees_text(self.quotes[c.token].last),
            "price": rupees_text(position.average_paise),
            "stock_index_indicator": "Index" if c.is_index else "Stock",
            "cover_quantity": "0",
            "stoploss_trigger": "0",
            "stoploss": None,
            "take_profit": None,
            "available_margin": None,
            "squareoff_mode": None,
            "mtf_sell_quantity": None,
            "mtf_net_amount_payable": None,
            "mtf_expiry_date": None,
            "order_id": "",
            "cover_order_flow": None,
            "cover_order_executed_quantity": None,
            "pledge_status": None,
            "pnl": None,
            "underlying": c.stock_code,
            "order_segment_code": None,
        }

    def open_positions(self) -> list[Position]:
        return [p for p in self.positions.values() if p.quantity]

    def quote_row(self, c: Contract) -> dict[str, Any]:
        """A contract's quote as Breeze's ``quotes`` shows it: prices are rupee floats."""
        q = self.quotes[c.token]
        product = {"cash": "", "futures": "Future", "options": "Options"}[c.product_type]
        change = round((q.last - q.close) * 100 / q.close, 2) if q.close else 0.0
        return {
            "exchange_code": c.exchange_code,
            "product_type": product,
            "stock_code": c.stock_code,
            "expiry_date": c.expiry_text,
            "right": c.right_title if c.product_type == "options" else ("*" if c.is_derivative else None),
            "strike_price": rupees_float(c.strike_paise or 0),
            "ltp": rupees_float(q.last),
            "ltt": f"{breeze_date(q.ltt.date())} {q.ltt:%H:%M:%S}",
            "best_bid_price": rupees_float(q.last - c.tick_paise),
            "best_bid_quantity": str(c.lot_size * 10),
            "best_offer_price": rupees_float(q.last + c.tick_paise),
            "best_offer_quantity": str(c.lot_size * 10),
            "open": rupees_float(q.open),
            "high": rupees_float(q.high),
            "low": rupees_float(q.low),
            "previous_close": rupees_float(q.close),
            "ltp_percent_change": change,
            "upper_circuit": rupees_float(q.upper_circuit),
            "lower_circuit": rupees_float(q.lower_circuit),
            "total_quantity_traded": str(q.ttq),
            "spot_price": rupees_text(q.last) if c.is_derivative else None,
        }
