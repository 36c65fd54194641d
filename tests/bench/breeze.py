"""Place-to-ack round trip through the Breeze adapter and the real breeze-connect SDK, against the
local Breeze emulator on loopback, and what the adapter adds over calling the SDK directly.

The emulator runs in a process of its own (``tests.bench.breeze_peer``), as a broker is another
machine; ``--emulator-in-process`` puts it on a thread here, where it shares the interpreter lock.

Three ways to place the same resting limit order, called back to back for each order (the order
of the three turns from one order to the next):

- ``bare_sdk``: the SDK as shipped, called synchronously (its own ``requests`` calls: no timeout,
  a new connection per call);
- ``sdk_pooled``: the SDK with the desk's HTTP guard (timeouts, pooled keep-alive connections),
  still called synchronously, on the caller's thread;
- ``adapter``: ``await BreezeBroker.place`` from the event loop: the hop to the SDK thread pool,
  the guard, Breeze's answer unwrapped and checked.

The adapter's own cost is ``adapter - sdk_pooled``, taken call by call: each adapter call less
the pooled SDK call of the same request made beside it. ``per_call_overhead_ms`` gives the
distribution of those differences (median, p90, p99, max), not a difference of two percentiles,
which can hide a slow adapter call behind a slow SDK call elsewhere in the run. Against the SDK as
shipped, ``adapter - bare_sdk`` (negative when pooled connections save more than the hop costs).
Target: the per-call difference against the pooled SDK <= 2 ms at the p99; exits 1 when missed.
``empty_thread_hop_ms`` times a call that does nothing on the same pool: the part of the adapter's
cost that is the machine's thread wake-ups (the SDK blocks, so its calls cannot run on the loop).
The emulator's rate limits are off: this measures latency, not the broker's pacing.
Run: ``python -m tests.bench.breeze --json``.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import requests

from app.brokers.base import PlaceRequest
from app.brokers.breeze.mapping import place_kwargs
from app.brokers.breeze.sdk import run_scoped
from app.domain.orders import Side

from .breeze_peer import emulator, make_broker
from .machine import finish, percentile

TARGET_OVERHEAD_P99_MS = 2.0
KEY = "NSE:RELIANCE"
VARIANTS = ("bare_sdk", "sdk_pooled", "adapter")


def spread(samples_ms: list[float]) -> dict[str, float]:
    return {"median": round(statistics.median(samples_ms), 3), "p90": round(percentile(samples_ms, 90), 3),
            "p99": round(percentile(samples_ms, 99), 3), "max": round(max(samples_ms), 3),
            "min": round(min(samples_ms), 3), "mean": round(statistics.fmean(samples_ms), 3), "n": len(samples_ms)}


async def run(orders: int, in_process: bool) -> dict[str, Any]:
    with emulator([KEY], in_process=in_process) as peer, tempfile.TemporaryDirectory() as tmp:
        broker = make_broker(peer, Path(tmp), [KEY])
        await broker.connect()
        try:
            contract = broker.contracts[0]
            instrument = contract.instrument
            # Far under the market: every order rests, so each is exactly one place and one ack.
            price = peer.last_price(KEY) * 8 // 10 // instrument.tick_size * instrument.tick_size
            breeze = broker._breeze
            sdk: Any = broker._sdk
            if breeze is None or sdk is None:
                raise SystemExit("the Breeze adapter connected without its SDK session")
            guard = sdk.requests
            scope = broker._scope
            sequence = iter(range(10**9))

            def request() -> PlaceRequest:
                return PlaceRequest(f"BENCH-{next(sequence)}", instrument, Side.BUY, instrument.lot_size, price)

            def sdk_place(req: PlaceRequest) -> None:
                answer = breeze.place_order(**place_kwargs(req, contract))
                if answer.get("Status") != 200:
                    raise RuntimeError(f"place refused: {answer}")

            def bare(req: PlaceRequest) -> None:
                sdk.requests = requests  # the SDK exactly as shipped
                try:
                    sdk_place(req)
                finally:
                    sdk.requests = guard

            async def timed(variant: str) -> int:
                req = request()
                started = time.perf_counter_ns()
                if variant == "adapter":
                    await broker.place(req)
                elif variant == "sdk_pooled":
                    run_scoped(scope, sdk_place, req)
                else:
                    bare(req)
                return time.perf_counter_ns() - started

            pool = broker._pool
            loop = asyncio.get_running_loop()

            async def hop() -> int:
                # What any blocking call costs the loop before it does anything: to the SDK's pool and back.
                started = time.perf_counter_ns()
                await loop.run_in_executor(pool, int)
                return time.perf_counter_ns() - started

            samples: dict[str, list[float]] = {name: [] for name in VARIANTS}
            hops: list[float] = []
            for call in range(orders):
                # The same request three ways, back to back, in an order that turns each call: no variant
                # always goes first (a warm connection) or last.
                turn = VARIANTS[call % 3 :] + VARIANTS[: call % 3]
                for variant in turn:
                    samples[variant].append(await timed(variant) / 1e6)
                hops.append(await hop() / 1e6)
        finally:
            await broker.disconnect()
    adapter = samples["adapter"]
    return {
        "bench": "breeze",
        "orders_per_variant": orders,
        "emulator": "a thread of this process" if in_process else "a process of its own, on loopback",
        "pairing": "each adapter call against the SDK calls of the same request made right beside it, turn by turn",
        **{name: spread(values) for name, values in samples.items()},
        # The floor under the adapter's own cost on this machine: a thread hop with nothing to do.
        "empty_thread_hop_ms": spread(hops),
        "per_call_overhead_ms": {
            "adapter_minus_sdk_pooled": spread([a - b for a, b in zip(adapter, samples["sdk_pooled"], strict=True)]),
            "adapter_minus_bare_sdk": spread([a - b for a, b in zip(adapter, samples["bare_sdk"], strict=True)]),
        },
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=600, help="orders per variant (default 600)")
    parser.add_argument("--emulator-in-process", action="store_true",
                        help="run the emulator on a thread of this process (it then shares the interpreter lock)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    if args.orders < 1:
        parser.error("--orders must be at least 1")
    result = asyncio.run(run(args.orders, args.emulator_in_process))
    overhead_p99 = result["per_call_overhead_ms"]["adapter_minus_sdk_pooled"]["p99"]
    misses = []
    if overhead_p99 > TARGET_OVERHEAD_P99_MS:
        misses.append(f"adapter's own cost per call p99 {overhead_p99} ms > {TARGET_OVERHEAD_P99_MS} ms")
    targets = {"adapter_minus_sdk_pooled_p99_ms_at_most": TARGET_OVERHEAD_P99_MS}
    return finish(result, targets, misses, as_json=args.json)


if __name__ == "__main__":
    sys.exit(main())
