"""Ticks per second through the engine's real wiring: bus -> market data + portfolio.

500 instruments, every one holding a position (the worst case: each tick re-marks exposure and
P&L globally and per underlying). Ticks are built beforehand, as a broker adapter would hand them
over. Run: ``python -m tests.bench.ticks --json``.
"""

from __future__ import annotations

import argparse
import gc
import json
import random
import statistics
import sys
import time

from app.brokers.paper import PaperBroker, PaperConfig
from app.brokers.paper.universe import UniverseEntry
from app.domain.fills import Fill
from app.domain.instruments import Exchange, Instrument, Segment
from app.domain.market import Tick
from app.domain.orders import Side
from app.engine.engine import Engine

TARGET_TICKS_PER_SEC = 100_000


def universe(n: int) -> list[UniverseEntry]:
    entries = []
    for i in range(n):
        inst = Instrument(
            key=f"NSE:SYN{i:04d}", exchange=Exchange.NSE, symbol=f"SYN{i:04d}",
            underlying=f"U{i % 50:02d}", segment=Segment.CASH, lot_size=1, tick_size=5, freeze_quantity=100_000,
        )
        entries.append(UniverseEntry(inst, 100_000 + 5 * i))
    return entries


def run(instruments: int, ticks: int, batch: int, seed: int) -> dict[str, object]:
    entries = universe(instruments)
    engine = Engine(PaperBroker(PaperConfig(tick_interval_ms=None), universe=entries), [e.instrument for e in entries])
    rng = random.Random(seed)
    for i, entry in enumerate(entries):
        side = Side.BUY if i % 2 else Side.SELL
        engine.bus.publish(Fill(f"f{i}", "c", entry.instrument.key, side, rng.randint(1, 100), entry.start_price, 0))
    keys = [e.instrument.key for e in entries]
    prices = [e.start_price for e in entries]
    stream = []
    for n in range(ticks):
        k = rng.randrange(instruments)
        prices[k] = max(5, prices[k] + 5 * rng.randint(-2, 2))
        stream.append(Tick(keys[k], prices[k], n + 1))
    publish = engine.bus.publish
    per_tick_us: list[float] = []
    gc.collect()
    gc.disable()
    try:
        total_start = time.perf_counter()
        for start in range(0, ticks, batch):
            chunk = stream[start : start + batch]
            t0 = time.perf_counter()
            for tick in chunk:
                publish(tick)
            per_tick_us.append((time.perf_counter() - t0) / len(chunk) * 1e6)
        total = time.perf_counter() - total_start
    finally:
        gc.enable()
    assert engine.market_data.ticks == ticks
    per_tick_us.sort()
    p99 = per_tick_us[min(len(per_tick_us) - 1, int(0.99 * len(per_tick_us)))]
    rate = ticks / total
    return {
        "bench": "ticks",
        "instruments": instruments,
        "ticks": ticks,
        "batch": batch,
        "ticks_per_sec": round(rate),
        "per_tick_us": {"mean": round(total / ticks * 1e6, 3), "median": round(statistics.median(per_tick_us), 3), "p99": round(p99, 3)},
        "target_ticks_per_sec": TARGET_TICKS_PER_SEC,
        "meets_target": rate >= TARGET_TICKS_PER_SEC,
        "python": sys.version.split()[0],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--instruments", type=int, default=500)
    parser.add_argument("--ticks", type=int, default=1_000_000)
    parser.add_argument("--batch", type=int, default=1_000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    result = run(args.instruments, args.ticks, args.batch, args.seed)
    if args.json:
        print(json.dumps(result))
    else:
        for key, value in result.items():
            print(f"{key}: {value}")


if __name__ == "__main__":
    main()
