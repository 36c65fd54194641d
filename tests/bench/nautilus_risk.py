"""NautilusTrader's pre-trade risk engine, wired to replay the gate benchmark's order flow: the yardstick.

Wired the way Nautilus's own risk-engine tests wire it (tests/unit_tests/risk/test_engine.py):
TestClock, MessageBus, Cache (no database), Portfolio, ExecutionEngine with a ``MockExecutionClient``
for the venue. Every check its ``RiskEngine`` offers is switched on:

- ``RiskEngineConfig``: ``bypass=False``; ``max_order_submit_rate`` and ``max_order_modify_rate``
  (the throttlers; 100,000 a second so the flow never reaches them: until then a throttler only
  counts, as our per-source rate check only counts); ``max_notional_per_order`` for every
  instrument (the same cap as our maximum order value); ``debug`` off (it only adds logging).
- the instrument: ``Equity`` with ``max_quantity`` (our maximum order quantity) and ``min_quantity``;
  price and size precision and a positive price are checked on every order. ``Equity`` carries no
  instrument-level min/max notional, so those two checks find nothing to compare.
- the order: GTD with an expiry in the future, so the expiry check runs; not reduce-only (that check
  needs a reduce-only order against a position, which our flow has no counterpart for).
- the account: a cash account in INR (for margin accounts ``RiskEngine`` skips the balance checks), so
  the free-balance and cumulative-notional checks run.
- the trading state (ACTIVE; HALTED and REDUCING are read on every order).

``pipeline`` times ``RiskEngine.execute(SubmitOrder)``: the checks, the throttler, and the hand-off
through the message bus to the execution engine, which caches the order and hands it to the client.
``check`` times the pre-trade checks alone: ``Cache.instrument``, ``RiskEngine._check_order`` and
``_check_orders_risk`` (cpdef methods, so reachable from Python; calling them from Python costs a
little more than Nautilus's own Cython-to-Cython calls) and the trading-state read; an order that
passes is then executed outside the timer, so the state evolves exactly as in the pipeline run.
Run alone: ``python -m tests.bench.nautilus_risk --json`` (needs the ``bench`` extra).
"""

from __future__ import annotations

import datetime as dt
import importlib.util
import time
from collections.abc import Sequence
from typing import Any

from .gate_flow import (
    MAX_ORDER_QUANTITY,
    MAX_ORDER_VALUE_INR,
    TICK_PAISE,
    Spec,
    last_price,
)

VENUE = "NSE"
# 100,000 a second: the flow (at most ~11,000 orders, all at one TestClock instant) never reaches it.
MAX_ORDER_SUBMIT_RATE = "100000/00:00:01"
MAX_ORDER_MODIFY_RATE = "100000/00:00:01"
FREE_BALANCE_INR = 1_000_000_000  # ample: the balance checks run and pass, as our desk caps do
GTD_EXPIRY = dt.datetime(2100, 1, 1, tzinfo=dt.UTC)


def nautilus_available() -> bool:
    return importlib.util.find_spec("nautilus_trader") is not None


def _rupees(paise: int) -> str:
    return f"{paise // 100}.{paise % 100:02d}"


class NautilusRig:
    """A started RiskEngine with its cache, execution engine and client, and one SubmitOrder per spec."""

    def __init__(self, instruments: int, specs: Sequence[Spec]) -> None:
        from nautilus_trader.cache.cache import Cache
        from nautilus_trader.common.component import MessageBus, TestClock
        from nautilus_trader.common.factories import OrderFactory
        from nautilus_trader.config import ExecEngineConfig, RiskEngineConfig
        from nautilus_trader.core.uuid import UUID4
        from nautilus_trader.execution.engine import ExecutionEngine
        from nautilus_trader.execution.messages import SubmitOrder
        from nautilus_trader.model.currencies import INR
        from nautilus_trader.model.data import QuoteTick
        from nautilus_trader.model.enums import (
            AccountType,
            OrderSide,
            TimeInForce,
            TradingState,
        )
        from nautilus_trader.model.events import AccountState
        from nautilus_trader.model.identifiers import (
            AccountId,
            ClientId,
            InstrumentId,
            StrategyId,
            Symbol,
            TraderId,
            Venue,
        )
        from nautilus_trader.model.instruments import Equity
        from nautilus_trader.model.objects import AccountBalance, Money, Price, Quantity
        from nautilus_trader.portfolio.portfolio import Portfolio
        from nautilus_trader.risk.engine import RiskEngine
        from nautilus_trader.test_kit.mocks.exec_clients import MockExecutionClient

        clock = TestClock()
        trader_id = TraderId("TRADER-001")
        msgbus = MessageBus(trader_id=trader_id, clock=clock)
        cache = Cache(database=None)
        portfolio = Portfolio(msgbus=msgbus, cache=cache, clock=clock)
        exec_engine = ExecutionEngine(msgbus=msgbus, cache=cache, clock=clock, config=ExecEngineConfig())
        self.exec_client = MockExecutionClient(
            client_id=ClientId(VENUE), venue=Venue(VENUE), account_type=AccountType.CASH, base_currency=INR,
            msgbus=msgbus, cache=cache, clock=clock,
        )
        portfolio.update_account(AccountState(
            account_id=AccountId(f"{VENUE}-001"), account_type=AccountType.CASH, base_currency=INR, reported=True,
            balances=[AccountBalance(Money(FREE_BALANCE_INR, INR), Money(0, INR), Money(FREE_BALANCE_INR, INR))],
            margins=[], info={}, event_id=UUID4(), ts_event=0, ts_init=0,
        ))
        exec_engine.register_client(self.exec_client)

        equities = []
        for i in range(instruments):
            symbol = f"SYN{i:04d}"
            equity = Equity(
                instrument_id=InstrumentId(Symbol(symbol), Venue(VENUE)), raw_symbol=Symbol(symbol), currency=INR,
                price_precision=2, price_increment=Price.from_str(_rupees(TICK_PAISE)), lot_size=Quantity.from_int(1),
                ts_event=0, ts_init=0, max_quantity=Quantity.from_int(MAX_ORDER_QUANTITY), min_quantity=Quantity.from_int(1),
            )
            cache.add_instrument(equity)
            mid = last_price(i)
            cache.add_quote_tick(QuoteTick(
                instrument_id=equity.id, bid_price=Price.from_str(_rupees(mid)),
                ask_price=Price.from_str(_rupees(mid + TICK_PAISE)),
                bid_size=Quantity.from_int(1_000), ask_size=Quantity.from_int(1_000), ts_event=0, ts_init=0,
            ))
            equities.append(equity)

        self.risk_engine = RiskEngine(
            portfolio=portfolio, msgbus=msgbus, cache=cache, clock=clock,
            config=RiskEngineConfig(
                bypass=False,
                max_order_submit_rate=MAX_ORDER_SUBMIT_RATE,
                max_order_modify_rate=MAX_ORDER_MODIFY_RATE,
                max_notional_per_order={str(e.id): MAX_ORDER_VALUE_INR for e in equities},
                debug=False,
            ),
        )
        exec_engine.start()
        self.risk_engine.start()
        self.cache = cache
        self._halted = TradingState.HALTED
        factory = OrderFactory(trader_id=trader_id, strategy_id=StrategyId("BENCH-001"), clock=clock)
        self.commands: list[Any] = []
        for spec in specs:
            order = factory.limit(
                equities[spec.instrument].id, OrderSide.BUY if spec.buy else OrderSide.SELL,
                Quantity.from_int(spec.quantity), Price.from_str(_rupees(spec.price)),
                time_in_force=TimeInForce.GTD, expire_time=GTD_EXPIRY,
            )
            self.commands.append(SubmitOrder(
                trader_id=trader_id, strategy_id=order.strategy_id, order=order, command_id=UUID4(),
                ts_init=clock.timestamp_ns(),
            ))

    def pipeline(self, indexes: range, samples: list[int]) -> None:
        """Time ``RiskEngine.execute`` for each command in ``indexes``."""
        execute = self.risk_engine.execute
        commands = self.commands
        clock = time.perf_counter_ns
        for i in indexes:
            command = commands[i]
            started = clock()
            execute(command)
            samples.append(clock() - started)

    def passes_checks(self, i: int) -> bool:
        """The pre-trade checks alone for command ``i`` (an order that fails them is denied)."""
        engine = self.risk_engine
        order = self.commands[i].order
        instrument = self.cache.instrument(order.instrument_id)
        return (
            instrument is not None
            and engine._check_order(instrument, order)
            and engine._check_orders_risk(instrument, [order])
            and engine.trading_state != self._halted
        )

    def check(self, indexes: range, samples: list[int]) -> None:
        """Time the checks alone for each command in ``indexes``; execute the ones that pass, untimed."""
        execute = self.risk_engine.execute
        passes = self.passes_checks
        commands = self.commands
        clock = time.perf_counter_ns
        for i in indexes:
            started = clock()
            passed = passes(i)
            samples.append(clock() - started)
            if passed:
                execute(commands[i])

    def denied(self) -> set[int]:
        """Indexes of the commands whose order the risk engine denied."""
        from nautilus_trader.model.enums import OrderStatus

        return {n for n, c in enumerate(self.commands) if c.order.status == OrderStatus.DENIED}

    def forwarded(self) -> int:
        """How many commands reached the execution client."""
        return len(self.exec_client.commands)


def version() -> str:
    import nautilus_trader

    return str(nautilus_trader.__version__)
