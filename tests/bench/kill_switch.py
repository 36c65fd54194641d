"""Kill switch over N working orders at the paper broker: time to HALTED and time until the broker
shows none working, against the bound N / cancel rate + one round trip.

The broker allows 10 order actions a second (a Breeze-like cap) and answers every call after
``--latency-ms``. Its per-minute and per-day caps are set out of the way here (the issue's bound
is the per-second one; with Breeze's 100 calls a minute the same sweep takes N / 100 minutes, and
the desk shows that bound). The working orders are set up with generous limits first, then the
broker and the governor are switched to the cap before the switch is engaged.
Run: ``python -m tests.bench.kill_switch --json``.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from decimal import Decimal
from typing import Any

from app.brokers.base import RateLimits
from app.brokers.paper import PaperBroker, PaperConfig, load_universe
from app.brokers.paper.rate_limiter import RateLimiter
from app.domain.audit import AuditSource
from app.domain.orders import OrderSource, Side
from app.domain.requests import OrderRequest
from app.engine.config import EngineConfig
from app.engine.engine import Engine
from app.engine.governor import Governor
from tests.support.limits import wide_limits

from .machine import finish

TARGET_HALT_US = 1_000
TARGET_RATIO = 1.1


async def run(orders: int, latency_ms: float, cap: int) -> dict[str, Any]:
    entries = load_universe()[:10]
    instruments = [e.instrument for e in entries]
    generous = RateLimits(100_000, 10_000_000, 100_000_000)
    broker = PaperBroker(PaperConfig(seed=1, latency_ms=latency_ms, tick_interval_ms=None, rate_limits=generous), universe=entries)
    engine = Engine(broker, instruments, EngineConfig(broker_call_timeout=30.0), limits=wide_limits(instruments))
    await engine.start()
    broker.step()
    await asyncio.sleep(0.01)
    requests = []
    for i in range(orders):
        entry = entries[i % len(entries)]
        last = engine.market_data.last_price(entry.instrument.key)
        assert last is not None
        tick = entry.instrument.tick_size
        # Resting bids 10-15 % under the market: they stay working until cancelled.
        price = (last * (85 + i % 5) // 100) // tick * tick
        requests.append(OrderRequest(entry.instrument.key, Side.BUY, entry.instrument.lot_size, Decimal(price) / 100,
                                     source=OrderSource.STRATEGY, actor="bench"))
    results = await asyncio.gather(*(engine.submit(r) for r in requests))
    refused = [r.rejection for r in results if not r.accepted]
    if refused:
        raise SystemExit(f"setup failed: {len(refused)} orders refused, e.g. {refused[0]}")
    capped = RateLimits(cap, 10_000_000, 100_000_000)
    broker._limiter = RateLimiter(capped, time.monotonic)
    engine.governor = Governor(capped, wall_ns=engine.clock_ns)
    working_before = len(broker._working)

    started = time.perf_counter()
    report = engine.engage_kill_switch("benchmark", "bench", AuditSource.OPERATOR)
    while broker._working:
        await asyncio.sleep(0.001)
    broker_clear_s = time.perf_counter() - started
    await engine.kill_switch.wait()
    rtt = engine.round_trip_s()
    bound = orders / cap + rtt
    await engine.stop()
    return {
        "bench": "kill_switch",
        "orders": orders,
        "working_at_broker_before": working_before,
        "latency_ms": latency_ms,
        "actions_per_second_cap": cap,
        "halted_in_us": round(report.halted_in_us, 1),
        "broker_clear_s": round(broker_clear_s, 3),
        "desk_cleared_in_ms": report.cleared_in_ms,
        "expected_clear_s": round(report.expected_clear_s, 3),
        "round_trip_ms": round(rtt * 1000, 2),
        "bound_s": round(bound, 3),
        "ratio": round(broker_clear_s / bound, 4),
        "cancels": report.cancels_sent,
        "working_after": report.working_after,
        "cancel_failures": len(report.cancel_failures),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--orders", type=int, default=200)
    parser.add_argument("--latency-ms", type=float, default=30.0)
    parser.add_argument("--cap", type=int, default=10)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    if min(args.orders, args.cap) < 1 or args.latency_ms < 0:
        parser.error("--orders and --cap must be at least 1, --latency-ms not negative")
    result = asyncio.run(run(args.orders, args.latency_ms, args.cap))
    misses = []
    if result["halted_in_us"] >= TARGET_HALT_US:
        misses.append(f"HALTED in {result['halted_in_us']} us >= {TARGET_HALT_US} us")
    if result["ratio"] > TARGET_RATIO:
        misses.append(f"broker clear {result['ratio']}x the bound > {TARGET_RATIO}x")
    if result["working_after"]:
        misses.append(f"{result['working_after']} orders still working after the sweep")
    targets = {"halted_in_us_below": TARGET_HALT_US, "clear_to_bound_ratio_at_most": TARGET_RATIO, "working_after": 0}
    return finish(result, targets, misses, as_json=args.json)

if __name__ == "__main__":
    sys.exit(main())
