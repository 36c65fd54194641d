"""The pre-trade risk gate: ordered, pure checks of one new order against the limits in force.

Sections: the context one decision reads (built once per order), the checks in the order they run,
and the gate that runs them. Every check reads the in-memory picture (limits, positions, working
orders, last prices, trading state, today's P&L) and nothing else: no I/O, no ``await``, so a
decision cannot interleave with another and takes microseconds. A refusal names a stable
``RejectReason``, the offending value and the limit. Cancels never come here: they always pass.

``review`` runs every check for the order ticket and reports each refusal and the headroom left;
``check_modify`` runs them on a working order's new terms.

``check`` first runs a fast path that establishes "every check passes": it reads one record per
instrument (records.py), builds nothing but the duplicate-window key, and returns the price; it
also names the three refusals it can be sure are the first (order size, collar, order value). At
any other doubt it hands the order to the checks below, which run in order and name the refusal;
they are the reference, and a property test holds the fast path to them.

Which orders count as risk-reducing: a sell against a long (or a buy against a short) no larger
than what is left of the position once the working orders on the same side have filled. Such an
order passes REDUCING and the daily/trailing loss limits; it cannot grow a position or exposure, so
the position and exposure checks pass it by construction. Orders from the confirmed flatten action
also pass the restricted list, the daily order count and the per-source rate: getting out must
not be blocked by the controls that stop getting in.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from app.domain.india_time import ist_day
from app.domain.instruments import Instrument
from app.domain.market import Tick
from app.domain.money import format_inr
from app.domain.orders import OrderSource, OrderType, Product, Side
from app.domain.rejections import Rejection, RejectReason
from app.domain.requests import NewOrder
from app.domain.trading_state import TradingState

from ..market_data import MarketData
from ..portfolio import Portfolio
from ..results import Headroom, OrderPreview
from .book import Pending, PendingTotals, RiskBook, growth
from .calendar import TradingCalendar
from .day_pnl import DayPnl
from .limits import InstrumentLimits, RiskLimits, UnderlyingLimits
from .records import InstrumentRecord, InstrumentRecords

# Enum members read through their class cost about 0.1 us each on Python 3.11: the fast path reads these.
_ACTIVE = TradingState.ACTIVE
_FLATTEN = OrderSource.FLATTEN
_MARKET = OrderType.MARKET
_BUY = Side.BUY

# -- context ---------------------------------------------------------------------------------------


@dataclass(slots=True)
class Decision:
    """Everything one decision reads, computed once; checks only look."""

    order: NewOrder
    now_ns: int
    state: TradingState
    halt_reason: str
    limits: RiskLimits
    instrument_limits: InstrumentLimits | None
    underlying_caps: UnderlyingLimits | None
    pending_group: PendingTotals
    position: int
    same_side: int
    reducing: bool
    worst_before: int
    worst_after: int
    reference: Tick | None
    price: int | None
    growth: int
    day_pnl: int
    peak_pnl: int


def _reference_ok(d: Decision) -> bool:
    reference = d.reference
    return reference is not None and d.now_ns - reference.ts_ns <= d.limits.desk.reference_max_age_ns


def _money(paise: int) -> str:
    return format_inr(paise)


def _no_limits(d: Decision) -> Rejection:
    # Only reachable if a check ran before check_limit_exists refused: refuse rather than guess.
    return Rejection(RejectReason.NO_LIMIT, f"no risk limits cover {d.order.instrument.key}", d.order.instrument.key, "none")


def _no_price(d: Decision) -> Rejection:
    # Only reachable if a check ran before check_reference_price refused: refuse rather than guess.
    return Rejection(RejectReason.STALE_PRICE, f"no price to check {d.order.instrument.key} against", "none", "a price")


# -- the checks, in the order they run ---------------------------------------------------------------


def check_trading_state(d: Decision, gate: RiskGate) -> Rejection | None:
    if d.state is TradingState.HALTED:
        return Rejection(RejectReason.TRADING_HALTED, f"trading is halted: {d.halt_reason}", str(d.state), "ACTIVE")
    if d.state is TradingState.REDUCING and not d.reducing:
        return Rejection(
            RejectReason.NOT_RISK_REDUCING,
            "only orders that reduce an open position are allowed while REDUCING",
            f"{d.order.side} {d.order.quantity}",
            f"position {d.position}, already reducing {d.same_side}",
        )
    return None


def check_limit_exists(d: Decision, gate: RiskGate) -> Rejection | None:
    if d.instrument_limits is None:
        return Rejection(RejectReason.NO_LIMIT, f"no risk limits cover {d.order.instrument.key}", d.order.instrument.key, "none")
    return None


def check_restricted(d: Decision, gate: RiskGate) -> Rejection | None:
    limits = d.instrument_limits
    if limits is not None and limits.restricted and d.order.source is not OrderSource.FLATTEN:
        return Rejection(RejectReason.RESTRICTED_INSTRUMENT, f"{d.order.instrument.key} is on the restricted list", d.order.instrument.key)
    return None


def _allowed(reason: RejectReason, value: str, allowed: frozenset[OrderType] | frozenset[Product]) -> Rejection | None:
    if value in allowed:
        return None
    return Rejection(reason, f"{value} orders are not allowed", value, ", ".join(sorted(allowed)))


def check_order_type(d: Decision, gate: RiskGate) -> Rejection | None:
    return _allowed(RejectReason.ORDER_TYPE_NOT_ALLOWED, str(d.order.order_type), d.limits.desk.allowed_order_types)


def check_product(d: Decision, gate: RiskGate) -> Rejection | None:
    return _allowed(RejectReason.PRODUCT_NOT_ALLOWED, str(d.order.product), d.limits.desk.allowed_products)


def check_trading_hours(d: Decision, gate: RiskGate) -> Rejection | None:
    if not d.limits.desk.enforce_trading_hours:
        return None
    exchange = d.order.instrument.exchange
    status = gate.calendar.status(exchange, d.now_ns)
    if status.open:
        return None
    if status.covered:
        return Rejection(RejectReason.MARKET_CLOSED, f"{exchange} is closed: {status.reason}")
    # The year is not in the calendar: nobody knows the holidays, so only orders that take risk
    # off may go, and only when a regular weekday session would be running.
    if d.reducing and gate.calendar.weekday_hours_open(exchange, d.now_ns):
        return None
    return Rejection(RejectReason.CALENDAR_UNPUBLISHED, f"{exchange}: {status.reason}", ist_day(d.now_ns).isoformat())


def check_contract_expiry(d: Decision, gate: RiskGate) -> Rejection | None:
    expiry = d.order.instrument.expiry
    if expiry is not None and expiry < ist_day(d.now_ns):
        return Rejection(
            RejectReason.CONTRACT_EXPIRED, f"{d.order.instrument.key} expired on {expiry.isoformat()}",
            ist_day(d.now_ns).isoformat(), expiry.isoformat(),
        )
    return None


def check_daily_loss(d: Decision, gate: RiskGate) -> Rejection | None:
    if d.reducing:
        return None
    desk = d.limits.desk
    if d.day_pnl <= -desk.daily_loss_limit:
        return Rejection(
            RejectReason.DAILY_LOSS_LIMIT, "today's loss has reached the daily loss limit; only risk-reducing orders pass",
            _money(d.day_pnl), _money(-desk.daily_loss_limit),
        )
    trailing = desk.trailing_loss_limit
    if trailing is not None and d.peak_pnl - d.day_pnl >= trailing:
        return Rejection(
            RejectReason.TRAILING_LOSS_LIMIT, "today's P&L has fallen from its peak by the trailing loss limit",
            _money(d.day_pnl - d.peak_pnl), _money(-trailing),
        )
    return None


def check_source_rate(d: Decision, gate: RiskGate) -> Rejection | None:
    if d.order.source is OrderSource.FLATTEN:
        return None
    source = d.order.source
    cap = d.limits.desk.max_orders_per_second[source]
    sent = gate.book.source_rate(source, d.now_ns, d.order.actor)
    if sent >= cap:
        who = f"API client {d.order.actor}" if source is OrderSource.API else str(source)
        return Rejection(
            RejectReason.SOURCE_RATE_LIMIT, f"{who} already sent {sent} orders in the last second",
            str(sent + 1), str(cap),
        )
    return None


def check_open_orders(d: Decision, gate: RiskGate) -> Rejection | None:
    cap = d.limits.desk.max_open_orders
    if gate.book.open_orders >= cap:
        return Rejection(RejectReason.MAX_OPEN_ORDERS, f"{gate.book.open_orders} orders are already working", str(gate.book.open_orders + 1), str(cap))
    return None


def check_orders_per_day(d: Decision, gate: RiskGate) -> Rejection | None:
    if d.order.source is OrderSource.FLATTEN:
        return None
    cap = d.limits.desk.max_orders_per_day
    today = gate.book.orders_on(d.now_ns)
    if today >= cap:
        return Rejection(RejectReason.MAX_ORDERS_PER_DAY, f"{today} orders already sent today", str(today + 1), str(cap))
    return None


def check_duplicate(d: Decision, gate: RiskGate) -> Rejection | None:
    window = d.limits.desk.duplicate_window_ns
    if window <= 0:
        return None
    if gate.book.is_duplicate(duplicate_key(d.order), d.now_ns, window):
        return Rejection(
            RejectReason.DUPLICATE_ORDER,
            "same instrument, side, quantity and price as an order sent moments ago",
            f"{d.order.side} {d.order.quantity} {d.order.instrument.key}", f"{window / 1e9:g} s window",
        )
    return None


def check_order_quantity(d: Decision, gate: RiskGate) -> Rejection | None:
    if d.instrument_limits is None:
        return _no_limits(d)
    cap = d.instrument_limits.max_order_quantity
    if d.order.quantity > cap:
        return _quantity_refusal(d.order.instrument.key, d.order.quantity, cap)
    return None


def _quantity_refusal(key: str, quantity: int, cap: int) -> Rejection:
    return Rejection(RejectReason.ORDER_QUANTITY_LIMIT, f"quantity above the maximum order size for {key}", str(quantity), str(cap))


def check_reference_price(d: Decision, gate: RiskGate) -> Rejection | None:
    reference = d.reference
    if reference is None:
        return Rejection(RejectReason.STALE_PRICE, f"no price has arrived for {d.order.instrument.key}", "none", "a price")
    if not _reference_ok(d):
        age_s = (d.now_ns - reference.ts_ns) / 1e9
        return Rejection(
            RejectReason.STALE_PRICE, f"the last price for {d.order.instrument.key} is {age_s:.1f} s old",
            f"{age_s:.1f} s", f"{d.limits.desk.reference_max_age_ns / 1e9:g} s",
        )
    return None


def check_collar(d: Decision, gate: RiskGate) -> Rejection | None:
    if d.instrument_limits is None:
        return _no_limits(d)
    if d.reference is None or d.price is None:
        return _no_price(d)
    reference = d.reference.price
    bps = d.instrument_limits.price_collar_bps
    if abs(d.price - reference) * 10_000 > bps * reference:
        return _collar_refusal(d.price, reference, bps)
    return None


def _collar_refusal(price: int, reference: int, bps: int) -> Rejection:
    return Rejection(
        RejectReason.PRICE_COLLAR, f"price is more than {bps / 100:g}% away from the last price {_money(reference)}",
        _money(price), f"{_money(reference * (10_000 - bps) // 10_000)} to {_money(reference * (10_000 + bps) // 10_000)}",
    )


def check_order_value(d: Decision, gate: RiskGate) -> Rejection | None:
    if d.instrument_limits is None:
        return _no_limits(d)
    if d.price is None:
        return _no_price(d)
    value = d.order.quantity * d.price
    cap = d.instrument_limits.max_order_value
    if value > cap:
        return _value_refusal(value, cap)
    return None


def _value_refusal(value: int, cap: int) -> Rejection:
    return Rejection(RejectReason.ORDER_VALUE_LIMIT, "order value above the maximum order value", _money(value), _money(cap))


def check_position_quantity(d: Decision, gate: RiskGate) -> Rejection | None:
    if d.instrument_limits is None:
        return _no_limits(d)
    before, after = d.worst_before, d.worst_after
    cap = d.instrument_limits.max_position_quantity
    if after > cap and after > before:
        return Rejection(
            RejectReason.POSITION_QUANTITY_LIMIT, f"position in {d.order.instrument.key} with working orders would be {after}",
            str(after), str(cap),
        )
    return None


def check_position_value(d: Decision, gate: RiskGate) -> Rejection | None:
    if d.instrument_limits is None:
        return _no_limits(d)
    if d.reference is None:
        return _no_price(d)
    before, after = d.worst_before, d.worst_after
    value = after * d.reference.price
    cap = d.instrument_limits.max_position_value
    if value > cap and after > before:
        return Rejection(
            RejectReason.POSITION_VALUE_LIMIT, f"position value in {d.order.instrument.key} with working orders would be {_money(value)}",
            _money(value), _money(cap),
        )
    return None


def _net_after(net: int, pending_buys: int, pending_sells: int, side: Side, value: int) -> tuple[int, int]:
    """The net exposure bound an order of ``value`` paise pushes out (upper for a buy, lower for a sell), before and after."""
    if side is Side.BUY:
        before = net + pending_buys
        return abs(before), abs(before + value) if before + value > 0 else 0
    before = net - pending_sells
    return abs(before), abs(before - value) if before - value < 0 else 0


def check_underlying_exposure(d: Decision, gate: RiskGate) -> Rejection | None:
    underlying = d.order.instrument.underlying
    caps = d.underlying_caps
    if caps is None:
        return None
    if d.price is None:
        return _no_price(d)
    exposure = gate.portfolio.underlying_totals(underlying)
    pending = d.pending_group
    gross = exposure.gross if exposure is not None else 0
    net = exposure.net if exposure is not None else 0
    if d.growth > 0:
        projected = gross + pending.growth_value + d.growth
        if projected > caps.max_gross_exposure:
            return Rejection(
                RejectReason.UNDERLYING_GROSS_LIMIT, f"gross exposure in {underlying} with working orders would be {_money(projected)}",
                _money(projected), _money(caps.max_gross_exposure),
            )
    bound = _net_after(net, pending.buy_value, pending.sell_value, d.order.side, d.order.quantity * d.price)
    if bound[1] > caps.max_net_exposure and bound[1] > bound[0]:
        return Rejection(
            RejectReason.UNDERLYING_NET_LIMIT, f"net exposure in {underlying} with working orders could reach {_money(bound[1])}",
            _money(bound[1]), _money(caps.max_net_exposure),
        )
    return None


def check_desk_exposure(d: Decision, gate: RiskGate) -> Rejection | None:
    if d.price is None:
        return _no_price(d)
    desk = d.limits.desk
    exposure = gate.portfolio.exposure
    pending = gate.book.desk
    if d.growth > 0:
        projected = exposure.gross + pending.growth_value + d.growth
        if projected > desk.max_gross_exposure:
            return Rejection(
                RejectReason.GROSS_EXPOSURE_LIMIT, f"the desk's gross exposure with working orders would be {_money(projected)}",
                _money(projected), _money(desk.max_gross_exposure),
            )
    bound = _net_after(exposure.net, pending.buy_value, pending.sell_value, d.order.side, d.order.quantity * d.price)
    if bound[1] > desk.max_net_exposure and bound[1] > bound[0]:
        return Rejection(
            RejectReason.NET_EXPOSURE_LIMIT, f"the desk's net exposure with working orders could reach {_money(bound[1])}",
            _money(bound[1]), _money(desk.max_net_exposure),
        )
    return None


Check = Callable[[Decision, "RiskGate"], Rejection | None]

# (check, needs instrument limits, needs a fresh reference price)
CHECKS: tuple[tuple[Check, bool, bool], ...] = (
    (check_trading_state, False, False),
    (check_limit_exists, False, False),
    (check_restricted, True, False),
    (check_order_type, False, False),
    (check_product, False, False),
    (check_trading_hours, False, False),
    (check_contract_expiry, False, False),
    (check_daily_loss, False, False),
    (check_source_rate, False, False),
    (check_open_orders, False, False),
    (check_orders_per_day, False, False),
    (check_duplicate, False, False),
    (check_order_quantity, True, False),
    (check_reference_price, False, False),
    (check_collar, True, True),
    (check_order_value, True, True),
    (check_position_quantity, True, False),
    (check_position_value, True, True),
    (check_underlying_exposure, True, True),
    (check_desk_exposure, False, True),
)


# What a modify is not checked for (see ``RiskGate.check_modify``).
_MODIFY_SKIPS: frozenset[Check] = frozenset({
    check_source_rate, check_orders_per_day, check_duplicate, check_order_type, check_product,
})
_SHRINK_SKIPS: frozenset[Check] = frozenset(check for check, _, _ in CHECKS) - {
    check_trading_state, check_limit_exists, check_trading_hours, check_contract_expiry,
}


def duplicate_key(order: NewOrder) -> tuple[str, Side, int, int | None]:
    return (order.instrument.key, order.side, order.quantity, order.price)


def marketable_price(instrument: Instrument, side: Side, reference: int, protection_bps: int) -> int:
    """A market order's limit: the reference moved by the protection, rounded inward to the tick."""
    tick = instrument.tick_size
    if side is Side.BUY:
        price = reference * (10_000 + protection_bps) // 10_000 // tick * tick
    else:
        price = -(-(reference * (10_000 - protection_bps)) // 10_000 // tick) * tick
    return max(price, tick)


# -- the gate --------------------------------------------------------------------------------------


class RiskGate:
    """Runs the checks; ``check`` stops at the first refusal, ``review`` (and ``preview``) reports every one.

    ``state`` returns the trading state and why; the engine owns it. ``limits`` is swapped whole
    when a new version comes into force, so a decision always reads one consistent version.
    """

    def __init__(
        self,
        *,
        limits: RiskLimits,
        book: RiskBook,
        portfolio: Portfolio,
        market_data: MarketData,
        calendar: TradingCalendar,
        day_pnl: DayPnl,
        state: Callable[[], tuple[TradingState, str]],
        protection_bps: int,
    ) -> None:
        self.book = book
        self.portfolio = portfolio
        self.market_data = market_data
        self.calendar = calendar
        self.day_pnl = day_pnl
        self._state = state
        self.protection_bps = protection_bps
        self.decisions = 0
        self.set_limits(limits)
        # The duplicate-window key the last passing fast-path decision built, for ``accepted`` to reuse.
        self._last_order: NewOrder | None = None
        self._last_key: tuple[str, Side, int, int | None] | None = None

    @property
    def limits(self) -> RiskLimits:
        return self._limits

    @limits.setter
    def limits(self, limits: RiskLimits) -> None:
        # Through set_limits, so the records of the old version can never be read with the new one.
        self.set_limits(limits)

    def set_limits(self, limits: RiskLimits, _version: int | None = None) -> None:
        self._limits = limits
        self._records = InstrumentRecords(limits, self.book)
        self._rates = dict(limits.desk.max_orders_per_second)  # a plain dict: cheaper to read than the mapping proxy

    def _decision(self, order: NewOrder, now_ns: int) -> Decision:
        limits = self._limits
        record = self._records.get(order.instrument)
        state, why = self._state()
        key = order.instrument.key
        position = self.portfolio.position(key)
        reference = self.market_data.last(key)
        price = order.price
        if order.order_type is OrderType.MARKET:
            price = None
            if reference is not None:
                price = marketable_price(order.instrument, order.side, reference.price, self.protection_bps)
        pending = record.pending
        buy = order.side is Side.BUY
        same_side = pending.buy_quantity if buy else pending.sell_quantity
        # The worst case on this order's side: the position plus every same-side working order filling.
        before = position + same_side if buy else position - same_side
        after = before + order.quantity if buy else before - order.quantity
        # Paise this order adds to the worst-case gross exposure of its instrument.
        added = 0 if price is None else growth(position, pending, order.side, order.quantity, price) - pending.growth_value
        pnl = self.day_pnl.current(now_ns)
        return Decision(
            order=order, now_ns=now_ns, state=state, halt_reason=why, limits=limits,
            instrument_limits=record.limits, underlying_caps=record.underlying_caps, pending_group=record.group,
            position=position, same_side=same_side,
            reducing=position != 0 and (position > 0) != buy and order.quantity <= abs(position) - same_side,
            worst_before=abs(before), worst_after=abs(after), reference=reference, price=price, growth=added,
            day_pnl=pnl, peak_pnl=self.day_pnl.peak,
        )

    def check(self, order: NewOrder, now_ns: int) -> Rejection | int:
        """The first refusal, or the limit price to send (a market order's protected price)."""
        self.decisions += 1
        known = self._passes(order, now_ns)
        if known is not None:
            return known
        return self._first_refusal(order, now_ns)

    def _first_refusal(self, order: NewOrder, now_ns: int) -> Rejection | int:
        """Every check in order, stopping at the first refusal: the reference the fast path must agree with."""
        d = self._decision(order, now_ns)
        for check, _needs_limits, _needs_price in CHECKS:
            rejection = check(d, self)
            if rejection is not None:
                return rejection
        if d.price is None:
            # Every check passed without a price to send: impossible while check_reference_price
            # stands before the price checks; if it ever happens, refuse the order rather than send it unpriced.
            return Rejection(RejectReason.STALE_PRICE, f"no price to send the order in {order.instrument.key} at", "none", "a price")
        return d.price

    def _passes(self, order: NewOrder, now_ns: int) -> int | Rejection | None:
        """The price to send when every check passes for certain; None at the first doubt (the checks then decide).

        Past every check before it, an order too large, outside the collar or above the value cap is
        refused here with the check's own refusal: those are the refusals a busy desk sees most, and
        the ordered checks would only build a decision to say the same.

        The same conditions as the checks, read from the instrument's record with nothing built
        but the duplicate-window key; ``day_pnl.current`` is called as ``_decision`` calls it (it
        moves the peak), and every book query it makes is safe to repeat at the same instant.
        """
        instrument = order.instrument
        record: InstrumentRecord = self._records.get(instrument)
        caps = record.limits
        if caps is None or caps.restricted or self._state()[0] is not _ACTIVE:
            return None
        desk = self._limits.desk
        if order.order_type not in desk.allowed_order_types or order.product not in desk.allowed_products:
            return None
        if now_ns >= record.expired_from_ns:
            return None
        if desk.enforce_trading_hours and not self.calendar.status(instrument.exchange, now_ns).open:
            return None
        day_pnl = self.day_pnl
        pnl = day_pnl.current(now_ns)
        if pnl <= -desk.daily_loss_limit:
            return None
        trailing = desk.trailing_loss_limit
        if trailing is not None and day_pnl.peak - pnl >= trailing:
            return None
        book = self.book
        source = order.source
        if source is not _FLATTEN and (
            book.source_rate(source, now_ns, order.actor) >= self._rates[source]
            or book.orders_on(now_ns) >= desk.max_orders_per_day
        ):
            return None
        if book.open_orders >= desk.max_open_orders:
            return None
        quantity = order.quantity
        side = order.side
        dup_key = None
        window = desk.duplicate_window_ns
        if window > 0:
            dup_key = (instrument.key, side, quantity, order.price)
            if book.is_duplicate(dup_key, now_ns, window):
                return None
        if quantity > caps.max_order_quantity:
            return _quantity_refusal(instrument.key, quantity, caps.max_order_quantity)
        reference = self.market_data.last(instrument.key)
        if reference is None or now_ns - reference.ts_ns > desk.reference_max_age_ns:
            return None
        mark = reference.price
        if order.order_type is _MARKET:
            price = marketable_price(instrument, side, mark, self.protection_bps)
        elif order.price is None:
            return None
        else:
            price = order.price
        if abs(price - mark) * 10_000 > caps.price_collar_bps * mark:
            return _collar_refusal(price, mark, caps.price_collar_bps)
        value = quantity * price
        if value > caps.max_order_value:
            return _value_refusal(value, caps.max_order_value)
        position = self.portfolio.position(instrument.key)
        pending: Pending = record.pending
        buy = side is _BUY
        if buy:
            before = abs(position + pending.buy_quantity)
            after = abs(position + pending.buy_quantity + quantity)
        else:
            before = abs(position - pending.sell_quantity)
            after = abs(position - pending.sell_quantity - quantity)
        if after > before and (after > caps.max_position_quantity or after * mark > caps.max_position_value):
            return None
        added = growth(position, pending, side, quantity, price) - pending.growth_value
        under = record.underlying_caps
        if under is not None:
            exposure = self.portfolio.underlying_totals(instrument.underlying)
            group = record.group
            gross = exposure.gross if exposure is not None else 0
            net = exposure.net if exposure is not None else 0
            if added > 0 and gross + group.growth_value + added > under.max_gross_exposure:
                return None
            if _net_breaks(net, group.buy_value, group.sell_value, buy, value, under.max_net_exposure):
                return None
        totals = self.portfolio.exposure
        group = book.desk
        if added > 0 and totals.gross + group.growth_value + added > desk.max_gross_exposure:
            return None
        if _net_breaks(totals.net, group.buy_value, group.sell_value, buy, value, desk.max_net_exposure):
            return None
        self._last_order = order
        self._last_key = dup_key
        return price

    def preview(self, order: NewOrder, now_ns: int) -> list[Rejection]:
        """Every check that would refuse ``order`` now, without submitting or counting it."""
        return list(self.review(order, now_ns).rejections)

    def review(self, order: NewOrder, now_ns: int) -> OrderPreview:
        """What the order ticket shows while an order is typed: every refusal (code, value, limit), the
        price it would go out at, its value, and the headroom left on each limit it moves.

        Counts nothing: the per-source rate, the daily count and the duplicate window are only read
        (``accepted`` is what counts an order), so a preview never refuses the submit that follows it.
        A check that needs instrument limits or a fresh price is left out when there are none: the
        check that says so (``check_limit_exists``, ``check_reference_price``) is in the list already.
        """
        return self._review(self._decision(order, now_ns), frozenset())

    def _review(self, d: Decision, skip: frozenset[Check]) -> OrderPreview:
        order = d.order
        found: list[Rejection] = []
        ran = 0
        price_ok = d.price is not None and _reference_ok(d)
        for check, needs_limits, needs_price in CHECKS:
            if check in skip or (needs_limits and d.instrument_limits is None) or (needs_price and not price_ok):
                continue
            ran += 1
            rejection = check(d, self)
            if rejection is not None:
                found.append(rejection)
        value = d.price * order.quantity if d.price is not None else None
        return OrderPreview(tuple(found), ran, d.price, value, self._headroom(d))

    def _headroom(self, d: Decision) -> tuple[Headroom, ...]:
        """The limits the order moves, each with the worst case after it (working orders filling, as the checks count)."""
        order = d.order
        key = order.instrument.key
        caps = d.instrument_limits
        rows: list[Headroom] = []
        if caps is not None:
            rows.append(Headroom("order quantity", order.quantity, caps.max_order_quantity, "units"))
            if d.price is not None:
                rows.append(Headroom("order value", order.quantity * d.price, caps.max_order_value))
            rows.append(Headroom(f"position {key}", d.worst_after, caps.max_position_quantity, "units"))
            if d.reference is not None:
                rows.append(Headroom(f"position value {key}", d.worst_after * d.reference.price, caps.max_position_value))
        if d.price is None:
            return tuple(rows)
        value = order.quantity * d.price
        under = d.underlying_caps
        if under is not None:
            underlying = order.instrument.underlying
            exposure = self.portfolio.underlying_totals(underlying)
            group = d.pending_group
            gross = exposure.gross if exposure is not None else 0
            net = exposure.net if exposure is not None else 0
            rows.append(Headroom(f"{underlying} gross", gross + group.growth_value + d.growth, under.max_gross_exposure))
            rows.append(Headroom(f"{underlying} net", _net_bound(net, group, order.side, value), under.max_net_exposure))
        desk = d.limits.desk
        totals = self.portfolio.exposure
        pending = self.book.desk
        rows.append(Headroom("desk gross", totals.gross + pending.growth_value + d.growth, desk.max_gross_exposure))
        rows.append(Headroom("desk net", _net_bound(totals.net, pending, order.side, value), desk.max_net_exposure))
        return tuple(rows)

    def check_modify(self, order: NewOrder, now_ns: int, *, shrink: bool) -> Rejection | None:
        """The first refusal of a working order's new terms, ``None`` when they pass.

        The caller runs this inside ``book.without(the order)``, so the order's old working
        contribution is out of the book and ``order`` (its new terms, the quantity still to fill, at
        its resting limit price) is checked in its place. A modify is not a new order: the new-order
        counters (source rate, daily count, duplicate window) do not apply, nor do the order type
        and product checks (a modify changes neither). ``shrink``, a modify that only lowers the
        quantity at the same price, takes risk off like a partial cancel: it is checked only for
        what any action on the desk needs (not HALTED, limits exist, the market open, the contract
        alive) and passes REDUCING. HALTED refuses every modify: cancels are how risk comes off
        then, and a modify must not race the kill switch's sweep of the same order.
        """
        d = self._modify_decision(order, now_ns, shrink)
        skip = _SHRINK_SKIPS if shrink else _MODIFY_SKIPS
        for check, _needs_limits, _needs_price in CHECKS:
            if check in skip:
                continue
            rejection = check(d, self)
            if rejection is not None:
                return rejection
        return None

    def review_modify(self, order: NewOrder, now_ns: int, *, shrink: bool) -> OrderPreview:
        """``review`` for a modify's new terms: every refusal ``check_modify`` would meet (the first is
        the one it gives), with the headroom after them; run inside ``book.without`` as it is."""
        return self._review(self._modify_decision(order, now_ns, shrink), _SHRINK_SKIPS if shrink else _MODIFY_SKIPS)

    def _modify_decision(self, order: NewOrder, now_ns: int, shrink: bool) -> Decision:
        d = self._decision(order, now_ns)
        if shrink:
            d.reducing = True
        return d

    def accepted(self, order: NewOrder, now_ns: int) -> None:
        """Count an order that passed (and is going to the broker)."""
        key = self._last_key if order is self._last_order and self._last_key is not None else duplicate_key(order)
        self._last_order = self._last_key = None
        self.book.accepted(order.source, key, now_ns, order.actor)


def _net_bound(net: int, pending: PendingTotals, side: Side, value: int) -> int:
    """The signed net exposure the order pushes out on its own side, its side's working orders filling too."""
    if side is Side.BUY:
        return net + pending.buy_value + value
    return net - pending.sell_value - value


def _net_breaks(net: int, pending_buys: int, pending_sells: int, buy: bool, value: int, cap: int) -> bool:
    """Whether the net bound an order pushes out (see ``_net_after``) would exceed ``cap`` and grow.

    ``_net_after`` clamps a bound that does not cross zero to 0; against a cap of 0 or more the
    clamp changes no verdict, so it is left out here.
    """
    if buy:
        before = net + pending_buys
        after = before + value
    else:
        before = net - pending_sells
        after = value - before
    return after > cap and after > abs(before)
