"""A gate wired to the real bus, OMS, portfolio and market data, without a broker: orders the gate
accepts become working orders, and broker updates fill them, exactly as in the engine."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

from app.domain.broker_messages import BrokerOrderUpdate
from app.domain.events import OrderEvent
from app.domain.fills import Fill
from app.domain.india_time import IST
from app.domain.instruments import Instrument
from app.domain.market import Tick
from app.domain.orders import (
    Order,
    OrderSource,
    OrderStatus,
    OrderType,
    Product,
    Side,
    Validity,
)
from app.domain.rejections import Rejection
from app.domain.requests import NewOrder
from app.domain.trading_state import TradingState
from app.engine.bus import EventBus
from app.engine.market_data import MarketData
from app.engine.oms import OrderManager
from app.engine.portfolio import Portfolio
from app.engine.risk.book import RiskBook
from app.engine.risk.calendar import TradingCalendar
from app.engine.risk.day_pnl import DayPnl
from app.engine.risk.gate import RiskGate
from app.engine.risk.limits import RiskLimits

# Monday 2026-11-23, 11:00 IST: a regular NSE/BSE session.
SESSION_NS = int(dt.datetime(2026, 11, 23, 11, 0, tzinfo=IST).timestamp()) * 1_000_000_000


class Desk:
    """The gate and the state it reads; ``now`` is the desk's clock in epoch ns."""

    def __init__(
        self, instruments: Iterable[Instrument], limits: RiskLimits, *, protection_bps: int = 200,
        calendar: TradingCalendar | None = None,
    ) -> None:
        self.instruments = {i.key: i for i in instruments}
        self.now = SESSION_NS
        self.state = TradingState.ACTIVE
        self.bus = EventBus()
        self.market = MarketData()
        self.portfolio = Portfolio(self.instruments)
        self.book = RiskBook(self.portfolio, self.instruments)
        self.pnl = DayPnl(self.portfolio)
        self.oms = OrderManager(self.bus, lambda: self.now)
        self.bus.subscribe(Tick, self.market.on_tick)
        self.bus.subscribe(Tick, self.portfolio.on_tick)
        self.bus.subscribe(Fill, self.portfolio.on_fill)
        self.bus.subscribe(Fill, self.book.on_fill)
        self.bus.subscribe(OrderEvent, self.book.on_order)
        self.gate = RiskGate(
            limits=limits, book=self.book, portfolio=self.portfolio, market_data=self.market,
            calendar=calendar if calendar is not None else TradingCalendar(), day_pnl=self.pnl, state=lambda: (self.state, "test halt"),
            protection_bps=protection_bps,
        )
        self._broker_ids = 0

    def tick(self, key: str, price: int) -> None:
        self.bus.publish(Tick(key, price, self.now))

    def order(
        self, key: str, side: Side, quantity: int, price: int | None, *,
        source: OrderSource = OrderSource.API, order_type: OrderType | None = None, product: Product = Product.INTRADAY,
    ) -> NewOrder:
        kind = order_type or (OrderType.LIMIT if price is not None else OrderType.MARKET)
        return NewOrder(self.instruments[key], side, quantity, price, kind, product, Validity.DAY, source, "tester")

    def submit(self, new: NewOrder) -> Order | Rejection:
        """Gate the order; if it passes, it becomes a working (OPEN) order like the engine makes it."""
        decision = self.gate.check(new, self.now)
        if isinstance(decision, Rejection):
            return decision
        self.gate.accepted(new, self.now)
        order = self.oms.create(new, decision)
        self.oms.mark_sent(order)
        self._broker_ids += 1
        self.oms.bind(order, f"B{self._broker_ids}")
        return order

    def fill(self, order: Order, quantity: int | None = None, price: int | None = None) -> None:
        cumulative = order.filled_quantity + (quantity if quantity is not None else order.quantity - order.filled_quantity)
        status = OrderStatus.FILLED if cumulative == order.quantity else OrderStatus.PARTIALLY_FILLED
        self.oms.apply_update(BrokerOrderUpdate(
            self.now, order.broker_order_id, order.client_order_id, status, cumulative,
            price if price is not None else order.price,
        ))

    def cancel(self, order: Order) -> None:
        self.oms.apply_update(BrokerOrderUpdate(self.now, order.broker_order_id, order.client_order_id, OrderStatus.CANCELLED))
