"""Per-order latency of NautilusTrader's pre-trade ``RiskEngine.execute``: the yardstick for our gate.

Wired the way Nautilus's own risk-engine tests wire it (tests/unit_tests/risk/test_engine.py):
TestClock, MessageBus, Cache, Portfolio, ExecutionEngine with a ``MockExecutionClient`` for the venue,
and a cash account of 1,000,000 USD. Equities (500 by default) on one venue each hold a quote and a max notional
per order. Limit orders (1-3 lots, within a few ticks of the quote; a few percent sized to break the
max notional) are built beforehand, then each ``execute`` is timed on its own. A forwarded order pays
for the checks plus the execution engine caching it and handing it to the client; a denied one pays
for the OrderDenied event going through the execution engine and out to its bus subscribers.
Run: ``python -m tests.bench.nautilus_risk --json`` (needs the ``bench`` extra).
"""

from __future__ import annotations

import argparse
import gc
import importlib.util
import json
import random
import statistics
import time
from dataclasses import dataclass
from typing import Any

# TestEventStubs.cash_account_state() books its balance to account SIM-000, and the risk engine looks
# accounts up by venue, so every instrument lives on SIM.
VENUE = "SIM"
LOT = 100  # TestInstrumentProvider.equity's lot size, in shares
MAX_NOTIONAL_LOTS = 5  # cap per order: 5 lots at the mid, so 1-3 lots a few ticks off always pass
VIOLATION_RATE = 0.03
VIOLATION_LOTS = (6, 8)  # 6 lots even 3 ticks under the mid still exceeds the 5-lot cap
TICKS_AWAY = 3
WARMUP = 500
# 100,000 submits a second: a warm-up plus timed run never reaches the limit, so the throttler passes
# every order on rather than dropping (denying) the overflow, and the TestClock never needs advancing.
# Until `limit` orders have gone through, the throttler only counts; its timestamp check is not paid.
MAX_ORDER_SUBMIT_RATE = "100000/00:00:01"
MAX_ORDER_MODIFY_RATE = "100000/00:00:01"  # only modifies use it; set so every check is configured


def nautilus_available() -> bool:
    return importlib.util.find_spec("nautilus_trader") is not None


@dataclass
class _Rig:
    risk_engine: Any
    exec_client: Any
    commands: list[Any]  # SubmitOrder, warm-up first
    violators: set[int]  # indexes into commands sized to break the max notional


def _build(instruments: int, orders: int, seed: int) -> _Rig:
    from nautilus_trader.cache.cache import Cache
    from nautilus_trader.common.component import MessageBus, TestClock
    from nautilus_trader.common.factories import OrderFactory
    from nautilus_trader.config import ExecEngineConfig, RiskEngineConfig
    from nautilus_trader.core.uuid import UUID4
    from nautilus_trader.execution.engine import ExecutionEngine
    from nautilus_trader.execution.messages import SubmitOrder
    from nautilus_trader.model.currencies import USD
    from nautilus_trader.model.data import QuoteTick
    from nautilus_trader.model.enums import AccountType, OrderSide
    from nautilus_trader.model.identifiers import ClientId, StrategyId, Venue
    from nautilus_trader.model.objects import Price, Quantity
    from nautilus_trader.portfolio.portfolio import Portfolio
    from nautilus_trader.risk.engine import RiskEngine
    from nautilus_trader.test_kit.mocks.exec_clients import MockExecutionClient
    from nautilus_trader.test_kit.providers import TestInstrumentProvider
    from nautilus_trader.test_kit.stubs.events import TestEventStubs
    from nautilus_trader.test_kit.stubs.identifiers import TestIdStubs

    rng = random.Random(seed)
    clock = TestClock()
    trader_id = TestIdStubs.trader_id()
    msgbus = MessageBus(trader_id=trader_id, clock=clock)
    cache = Cache(database=None)
    portfolio = Portfolio(msgbus=msgbus, cache=cache, clock=clock)
    exec_engine = ExecutionEngine(msgbus=msgbus, cache=cache, clock=clock, config=ExecEngineConfig())
    exec_client = MockExecutionClient(
        client_id=ClientId(VENUE), venue=Venue(VENUE), account_type=AccountType.CASH, base_currency=USD,
        msgbus=msgbus, cache=cache, clock=clock,
    )
    # A cash account: RiskEngine skips the balance checks entirely for margin accounts.
    portfolio.update_account(TestEventStubs.cash_account_state())
    exec_engine.register_client(exec_client)

    equities = []
    mids_cents = []
    for i in range(instruments):
        equity = TestInstrumentProvider.equity(f"SYN{i:04d}", VENUE)
        mid = rng.randrange(2_000, 50_000)  # $20-$500: the worst violator stays inside free balance
        cache.add_instrument(equity)
        # A limit order is checked at its own price; the quote is there as a live cache would hold it.
        cache.add_quote_tick(QuoteTick(
            instrument_id=equity.id, bid_price=Price(mid / 100, 2), ask_price=Price((mid + 1) / 100, 2),
            bid_size=Quantity.from_int(10 * LOT), ask_size=Quantity.from_int(10 * LOT), ts_event=0, ts_init=0,
        ))
        equities.append(equity)
        mids_cents.append(mid)

    risk_engine = RiskEngine(
        portfolio=portfolio, msgbus=msgbus, cache=cache, clock=clock,
        config=RiskEngineConfig(
            bypass=False,
            max_order_submit_rate=MAX_ORDER_SUBMIT_RATE,
            max_order_modify_rate=MAX_ORDER_MODIFY_RATE,
            # MAX_NOTIONAL_LOTS * LOT shares at the mid, in dollars: mid is in cents, LOT is 100.
            max_notional_per_order={str(e.id): MAX_NOTIONAL_LOTS * m for e, m in zip(equities, mids_cents, strict=True)},
        ),
    )
    exec_engine.start()
    risk_engine.start()

    factory = OrderFactory(trader_id=trader_id, strategy_id=StrategyId("BENCH-001"), clock=clock)
    commands = []
    violators = set()
    for n in range(WARMUP + orders):
        k = rng.randrange(instruments)
        side = rng.choice((OrderSide.BUY, OrderSide.SELL))
        if rng.random() < VIOLATION_RATE:
            lots = rng.randint(*VIOLATION_LOTS)
            violators.add(n)
        else:
            lots = rng.randint(1, 3)
        touch = mids_cents[k] + (1 if side == OrderSide.BUY else 0)  # ask for buys, bid for sells
        price = Price((touch + rng.randint(-TICKS_AWAY, TICKS_AWAY)) / 100, 2)
        order = factory.limit(equities[k].id, side, Quantity.from_int(lots * LOT), price)
        commands.append(SubmitOrder(
            trader_id=trader_id, strategy_id=order.strategy_id, order=order, command_id=UUID4(),
            ts_init=clock.timestamp_ns(),
        ))
    return _Rig(risk_engine, exec_client, commands, violators)


def time_nautilus_risk_engine(instruments: int = 500, orders: int = 10_000, seed: int = 1) -> dict[str, float | str]:
    import nautilus_trader
    from nautilus_trader.model.enums import OrderStatus

    rig = _build(instruments, orders, seed)
    execute = rig.risk_engine.execute
    for command in rig.commands[:WARMUP]:
        execute(command)
    timed = rig.commands[WARMUP:]
    per_order_ns: list[int] = []
    clock_ns = time.perf_counter_ns
    gc.collect()
    gc.disable()
    try:
        for command in timed:
            t0 = clock_ns()
            execute(command)
            per_order_ns.append(clock_ns() - t0)
    finally:
        gc.enable()

    # Outcomes are read afterwards so that counting them costs nothing inside the timed loop.
    denied = {n for n, c in enumerate(rig.commands) if c.order.status == OrderStatus.DENIED}
    forwarded = len(rig.exec_client.commands)
    assert denied == rig.violators, "RiskEngine denied a different set of orders than the ones built to violate"
    assert forwarded + len(denied) == len(rig.commands), "some orders were neither forwarded nor denied"
    timed_denied = sum(1 for n in denied if n >= WARMUP)

    per_order_ns.sort()
    p99 = per_order_ns[min(len(per_order_ns) - 1, int(0.99 * len(per_order_ns)))]
    return {
        "median_us": round(statistics.median(per_order_ns) / 1e3, 3),
        "p99_us": round(p99 / 1e3, 3),
        "mean_us": round(statistics.fmean(per_order_ns) / 1e3, 3),
        "orders": len(timed),
        "forwarded": len(timed) - timed_denied,
        "denied": timed_denied,
        "version": nautilus_trader.__version__,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--instruments", type=int, default=500)
    parser.add_argument("--orders", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    if not nautilus_available():
        parser.exit(1, "nautilus_trader is not installed: pip install -e '.[bench]'\n")
    result = time_nautilus_risk_engine(args.instruments, args.orders, args.seed)
    if args.json:
        print(json.dumps(result))
    else:
        for key, value in result.items():
            print(f"{key}: {value}")


if __name__ == "__main__":
    main()
