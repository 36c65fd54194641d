"""Place-to-ack round trip through the Breeze adapter and the real breeze-connect SDK, against the
local Breeze emulator on loopback, and what the adapter adds over calling the SDK directly.

Three ways to place the same resting limit order, measured in interleaved rounds:

- ``bare_sdk``: the SDK as shipped, called synchronously (its own ``requests`` calls: no timeout,
  a new connection per call);
- ``sdk_pooled``: the SDK with the desk's HTTP guard (timeouts, pooled keep-alive connections),
  still called synchronously, on the caller's thread;
- ``adapter``: ``await BreezeBroker.place`` from the event loop: the hop to the SDK thread pool,
  the guard, Breeze's answer unwrapped and checked.

The adapter's own cost is ``adapter - sdk_pooled``; its cost against the SDK as shipped is
``adapter - bare_sdk`` (negative when pooled connections save more than the hop costs). The
emulator's rate limits are off: this measures latency, not the broker's pacing.
Run: ``python -m tests.bench.breeze --json``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import requests

from app.brokers.base import PlaceRequest
from app.brokers.breeze.mapping import place_kwargs
from app.brokers.breeze.sdk import run_scoped
from app.domain.orders import Side
from tests.breeze_emulator import BreezeEmulator
from tests.brokers.breeze.harness import make_broker

TARGET_OVERHEAD_P99_MS = 2.0
KEY = "NSE:RELIANCE"


def summary(samples_ns: list[int]) -> dict[str, float]:
    ordered = sorted(samples_ns)

    def pct(p: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))] / 1e6, 3)

    return {"p50": pct(50), "p90": pct(90), "p99": pct(99), "mean": round(statistics.fmean(ordered) / 1e6, 3),
            "n": len(ordered)}


async def run(orders: int, rounds: int) -> dict[str, Any]:
    with BreezeEmulator(tick_interval_s=None, enforce_rate_limits=False) as emulator, tempfile.TemporaryDirectory() as tmp:
        broker = make_broker(emulator, Path(tmp), [KEY])
        await broker.connect()
        try:
            contract = broker.contracts[0]
            instrument = contract.instrument
            # Far under the market: every order rests, so each is exactly one place and one ack.
            price = emulator.last_price(KEY) * 8 // 10 // instrument.tick_size * instrument.tick_size
            breeze = broker._breeze
            sdk = broker._sdk
            assert breeze is not None and sdk is not None
            guard = sdk.requests
            scope = broker._scope
            sequence = iter(range(10**9))

            def request() -> PlaceRequest:
                return PlaceRequest(f"BENCH-{next(sequence)}", instrument, Side.BUY, instrument.lot_size, price)

            def sdk_place(req: PlaceRequest) -> None:
                answer = breeze.place_order(**place_kwargs(req, contract))
                if answer.get("Status") != 200:
                    raise RuntimeError(f"place refused: {answer}")

            def timed_sync(call: Callable[[], None]) -> int:
                started = time.perf_counter_ns()
                call()
                return time.perf_counter_ns() - started

            samples: dict[str, list[int]] = {"bare_sdk": [], "sdk_pooled": [], "adapter": []}
            per_round = max(1, orders // rounds)
            for _ in range(rounds):
                sdk.requests = requests  # the SDK exactly as shipped
                samples["bare_sdk"] += [timed_sync(lambda: sdk_place(request())) for _ in range(per_round)]
                sdk.requests = guard
                samples["sdk_pooled"] += [
                    timed_sync(lambda: run_scoped(scope, sdk_place, request())) for _ in range(per_round)
                ]
                for _ in range(per_round):
                    req = request()
                    started = time.perf_counter_ns()
                    await broker.place(req)
                    samples["adapter"].append(time.perf_counter_ns() - started)
            sdk.requests = guard
        finally:
            await broker.disconnect()
    result: dict[str, Any] = {"benchmark": "breeze", "orders_per_variant": len(samples["adapter"]), "rounds": rounds}
    for name, values in samples.items():
        result[name] = summary(values)
    adapter, pooled, bare = result["adapter"], result["sdk_pooled"], result["bare_sdk"]
    result["overhead_ms"] = {
        "vs_sdk_pooled": {"p50": round(adapter["p50"] - pooled["p50"], 3), "p99": round(adapter["p99"] - pooled["p99"], 3)},
        "vs_bare_sdk": {"p50": round(adapter["p50"] - bare["p50"], 3), "p99": round(adapter["p99"] - bare["p99"], 3)},
    }
    result["target_overhead_p99_ms"] = TARGET_OVERHEAD_P99_MS
    result["target_met"] = result["overhead_ms"]["vs_sdk_pooled"]["p99"] <= TARGET_OVERHEAD_P99_MS
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=600, help="orders per variant (default 600)")
    parser.add_argument("--rounds", type=int, default=6, help="interleaved rounds (default 6)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    result = asyncio.run(run(args.orders, args.rounds))
    if args.json:
        print(json.dumps(result))
    else:
        for name in ("bare_sdk", "sdk_pooled", "adapter"):
            s = result[name]
            print(f"{name:>10}: p50 {s['p50']} ms, p99 {s['p99']} ms, mean {s['mean']} ms (n={s['n']})")
        print(f"adapter overhead: {result['overhead_ms']}; target p99 <= {TARGET_OVERHEAD_P99_MS} ms: "
              f"{'met' if result['target_met'] else 'NOT met'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
