"""Event-loop lag: how late a timer wakes up. A desk that lags cannot react to a kill switch in time."""

from __future__ import annotations

import asyncio
import math
import time
from collections import deque


class LoopLagMonitor:
    """Sleeps ``interval`` seconds at a time and records how much later than asked each wake-up was."""

    def __init__(self, interval: float = 0.01, keep: int = 100_000) -> None:
        self.interval = interval
        self.samples_ms: deque[float] = deque(maxlen=keep)

    async def run(self) -> None:
        while True:
            started = time.perf_counter()
            await asyncio.sleep(self.interval)
            late = time.perf_counter() - started - self.interval
            self.samples_ms.append(max(late, 0.0) * 1000.0)

    def percentile(self, q: float) -> float:
        """The q-th percentile (0-100) of recorded lag in ms, nearest-rank; 0.0 before any sample."""
        if not self.samples_ms:
            return 0.0
        ordered = sorted(self.samples_ms)
        rank = max(0, min(len(ordered) - 1, math.ceil(q / 100.0 * len(ordered)) - 1))
        return ordered[rank]
