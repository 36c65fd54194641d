"""Microseconds per pre-trade gate decision, every check enabled, against NautilusTrader's RiskEngine.

500 cash instruments in 50 underlyings, every one covered by limits with all checks on: trading
hours from the exchange calendar (the clock sits inside a session), collar, order quantity and
value, position quantity and value counting working orders, per-underlying and desk gross and net
caps, daily and trailing loss, open orders, orders per day, duplicate window, per-source rate.
10,000 orders (1-3 lots, a few ticks from the last price; about 3 % sized or priced to be refused)
are built first; each ``check`` is timed on its own. Accepted orders become working orders in the
real OMS and some fill, so the book the gate reads grows as it would on a busy desk.

With the ``bench`` extra installed, the same run times ``RiskEngine.execute`` on an equivalent flow
(tests/bench/nautilus_risk.py) and prints the ratio ours/theirs.
Run: ``python -m tests.bench.risk_gate --json``.
"""

from __future__ import annotations

import argparse
import gc
import json
import random
import statistics
import sys
import time

from app.domain.instruments import Instrument
from app.domain.orders import OrderSource, Side
from app.domain.rejections import Rejection
from tests.engine.risk.desk import Desk
from tests.support.limits import wide_limits

from .nautilus_risk import nautilus_available, time_nautilus_risk_engine
from .ticks import universe

TARGET_P99_US = 50.0
TARGET_RATIO = 0.5
UNDERLYINGS = 50  # as tests.bench.ticks.universe groups them


def instruments(n: int) -> list[Instrument]:
    """The ticks benchmark's synthetic cash universe: ``n`` instruments in 50 underlyings."""
    return [entry.instrument for entry in universe(n)]


def run(n_instruments: int, n_orders: int, seed: int) -> dict[str, object]:
    items = instruments(n_instruments)
    limits = wide_limits(
        items,
        desk={
            "max_gross_exposure_inr": 50_000_000, "max_net_exposure_inr": 20_000_000, "daily_loss_limit_inr": 5_000_000,
            "trailing_loss_limit_inr": 4_000_000, "max_open_orders": 2_000, "max_orders_per_day": 100_000,
            "duplicate_window_seconds": 2, "reference_max_age_seconds": 3_600, "enforce_trading_hours": True,
        },
        rates={"default": 1_000_000},
        defaults={"max_order_lots": 250, "max_order_value_inr": 2_000_000, "price_collar_pct": 5,
                  "max_position_lots": 2_000, "max_position_value_inr": 5_000_000},
        underlyings={f"U{u:02d}": {"max_gross_exposure_inr": 20_000_000, "max_net_exposure_inr": 10_000_000} for u in range(UNDERLYINGS)},
    )
    desk = Desk(items, limits)
    rng = random.Random(seed)
    prices = {}
    for i, inst in enumerate(items):
        prices[inst.key] = 100_000 + 500 * (i % 400)
        desk.tick(inst.key, prices[inst.key])
    orders = []
    for _ in range(n_orders):
        inst = rng.choice(items)
        side = rng.choice((Side.BUY, Side.SELL))
        lots = rng.randint(1, 3) * 10
        price = prices[inst.key] + rng.randint(-4, 4) * inst.tick_size
        roll = rng.random()
        if roll < 0.015:
            lots = 300  # above the order-size limit
        elif roll < 0.03:
            price = prices[inst.key] * 110 // 100 // 5 * 5  # off the collar
        orders.append(desk.order(inst.key, side, lots, price, source=OrderSource.STRATEGY))
    per_order: list[int] = []
    rejected = 0
    working = []
    check = desk.gate.check
    clock = time.perf_counter_ns
    gc.disable()
    try:
        for i, new in enumerate(orders):
            desk.now += 1_000_000  # 1 ms between orders: the duplicate window and rates really work
            started = clock()
            outcome = check(new, desk.now)
            per_order.append(clock() - started)
            if isinstance(outcome, Rejection):
                rejected += 1
                continue
            order = desk.submit(new)
            if isinstance(order, Rejection):
                rejected += 1
                continue
            working.append(order)
            # Keep the book busy but bounded: fill every third, cancel the oldest beyond 1,000 working.
            if i % 3 == 0:
                desk.fill(order)
            if len(working) > 1_000:
                old = working.pop(0)
                if old.status.is_working:
                    desk.cancel(old)
    finally:
        gc.enable()
    per_order.sort()
    median_us = statistics.median(per_order) / 1e3
    p99_us = per_order[int(len(per_order) * 0.99)] / 1e3
    result: dict[str, object] = {
        "instruments": n_instruments,
        "orders": n_orders,
        "rejected": rejected,
        "median_us": round(median_us, 3),
        "p99_us": round(p99_us, 3),
        "mean_us": round(statistics.fmean(per_order) / 1e3, 3),
        "max_us": round(per_order[-1] / 1e3, 3),
        "open_orders_at_end": desk.book.open_orders,
        "target_p99_us": TARGET_P99_US,
    }
    if nautilus_available():
        theirs = time_nautilus_risk_engine(n_instruments, n_orders, seed)
        result["nautilus"] = theirs
        result["ratio_median"] = round(median_us / float(theirs["median_us"]), 3)
        result["ratio_p99"] = round(p99_us / float(theirs["p99_us"]), 3)
        result["target_ratio"] = TARGET_RATIO
    else:
        result["nautilus"] = "not installed: pip install -e '.[bench]' to compare"
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--instruments", type=int, default=500)
    parser.add_argument("--orders", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    result = run(args.instruments, args.orders, args.seed)
    if args.json:
        print(json.dumps(result))
    else:
        for key, value in result.items():
            print(f"{key}: {value}")
    return 0 if float(result["p99_us"]) <= TARGET_P99_US else 1  # type: ignore[arg-type]


if __name__ == "__main__":
    sys.exit(main())
