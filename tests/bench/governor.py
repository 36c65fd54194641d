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
import json
import statistics
import sys
import time

from app.brokers.base import RateLimits
from app.engine.governor import CallKind, Governor, GovernorConfig

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


async def run(acquires: int, cancels: int, cap: int) -> dict[str, object]:
    per_acquire_us = await free_acquires(acquires)
    late_ms = await lateness(cancels, cap)
    return {
        "free_acquires": acquires,
        "free_acquire_us": round(per_acquire_us, 3),
        "target_free_acquire_us": TARGET_FREE_ACQUIRE_US,
        "queued_cancels": cancels,
        "actions_per_second_cap": cap,
        "lateness_median_ms": round(statistics.median(late_ms), 3),
        "lateness_max_ms": round(max(late_ms), 3),
        "target_max_lateness_ms": TARGET_MAX_LATENESS_MS,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--acquires", type=int, default=100_000)
    parser.add_argument("--cancels", type=int, default=100)
    parser.add_argument("--cap", type=int, default=50)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    result = asyncio.run(run(args.acquires, args.cancels, args.cap))
    if args.json:
        print(json.dumps(result))
    else:
        for key, value in result.items():
            print(f"{key}: {value}")
    ok = (float(result["free_acquire_us"]) <= TARGET_FREE_ACQUIRE_US  # type: ignore[arg-type]
          and float(result["lateness_max_ms"]) <= TARGET_MAX_LATENESS_MS)  # type: ignore[arg-type]
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
