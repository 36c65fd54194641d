"""The rate governor on the real event loop: what a free slot costs, and how late queued calls go.

``free_acquire_us``: microseconds per ``acquire`` when a slot is free (it must not sleep; the
target is well under the broker's own round trip). ``lateness_ms``: queued cancels at 50 actions
a second, each released by the governor's one timer; how far after its slot (one spacing after the
release before it) each one actually went: the loop's timer resolution and load. The unit tests check the same
schedule on virtual time, where it is exact; this is the wall-clock side of it.
Run: ``python -m tests.bench.governor --json``.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import statistics
import sys
import time
from typing import Any

from app.brokers.base import RateLimits
from app.engine.governor import CallKind, Governor, GovernorConfig

from .machine import finish

TARGET_FREE_ACQUIRE_US = 50.0
TARGET_MAX_LATENESS_MS = 20.0


async def free_acquires(n: int) -> float:
    governor = Governor(RateLimits(10**9, 10**9, 10**12))
    started = time.perf_counter()
    for _ in range(n):
        await governor.acquire(CallKind.READ)
    return (time.perf_counter() - started) / n * 1e6


async def lateness(n: int, cap: int) -> list[float]:
    loop = asyncio.get_running_loop()
    governor = Governor(RateLimits(cap, 10**9, 10**12), GovernorConfig(max_wait=60.0), clock=loop.time)
    released: list[float] = []

    async def cancel() -> None:
        await governor.acquire(CallKind.CANCEL)
        released.append(loop.time())

    await asyncio.gather(*(cancel() for _ in range(n)))
    spacing = governor.schedule.spacing
    # Each slot counts from the release before it, so a late release moves the next slot too.
    return [(later - earlier - spacing) * 1000 for earlier, later in itertools.pairwise(released)]


async def run(acquires: int, cancels: int, cap: int) -> dict[str, Any]:
    per_acquire_us = await free_acquires(acquires)
    late_ms = await lateness(cancels, cap)
    return {
        "bench": "governor",
        "free_acquires": acquires,
        "free_acquire_us": round(per_acquire_us, 3),
        "queued_cancels": cancels,
        "actions_per_second_cap": cap,
        "lateness_median_ms": round(statistics.median(late_ms), 3),
        "lateness_max_ms": round(max(late_ms), 3),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--acquires", type=int, default=100_000)
    parser.add_argument("--cancels", type=int, default=100)
    parser.add_argument("--cap", type=int, default=50)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    if min(args.acquires, args.cap) < 1 or args.cancels < 2:
        parser.error("--acquires and --cap must be at least 1, --cancels at least 2")
    result = asyncio.run(run(args.acquires, args.cancels, args.cap))
    misses = []
    if result["free_acquire_us"] > TARGET_FREE_ACQUIRE_US:
        misses.append(f"free acquire {result['free_acquire_us']} us > {TARGET_FREE_ACQUIRE_US} us")
    if result["lateness_max_ms"] > TARGET_MAX_LATENESS_MS:
        misses.append(f"queued call up to {result['lateness_max_ms']} ms late > {TARGET_MAX_LATENESS_MS} ms")
    targets = {"free_acquire_us_at_most": TARGET_FREE_ACQUIRE_US, "lateness_max_ms_at_most": TARGET_MAX_LATENESS_MS}
    return finish(result, targets, misses, as_json=args.json)

if __name__ == "__main__":
    sys.exit(main())
