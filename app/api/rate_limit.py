"""Per-client request rate: a token bucket for each API client, answered with 429 and Retry-After.

Each client may make ``burst`` requests at once and ``per_minute`` a minute on average: its bucket
holds ``burst`` tokens and refills at ``per_minute / 60`` a second. This guards the desk's loop from a
runaway script; the gate's own per-source order rate (counted per client too) guards the market.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(slots=True)
class _Bucket:
    tokens: float
    at: float


class ClientRateLimiter:
    """Token buckets by client name. ``clock`` is monotonic seconds (injectable for tests)."""

    def __init__(self, burst: int, per_minute: int, *, clock: Callable[[], float] = time.monotonic) -> None:
        if burst < 1 or per_minute < 1:
            raise ValueError("burst and per_minute must be at least 1")
        self.burst = burst
        self.per_minute = per_minute
        self._rate = per_minute / 60.0
        self._clock = clock
        # One bucket per authenticated client: the directory bounds how many there can be.
        self._buckets: dict[str, _Bucket] = {}

    def take(self, client: str) -> int | None:
        """Spend one of ``client``'s tokens: ``None`` when it had one, else the whole seconds (at least 1)
        until it will have one again, for the ``Retry-After`` header."""
        now = self._clock()
        bucket = self._buckets.get(client)
        if bucket is None:
            bucket = self._buckets[client] = _Bucket(float(self.burst), now)
        else:
            bucket.tokens = min(float(self.burst), bucket.tokens + max(0.0, now - bucket.at) * self._rate)
            bucket.at = now
        if bucket.tokens >= 1.0:
            bucket.tokens -= 1.0
            return None
        return max(1, math.ceil((1.0 - bucket.tokens) / self._rate))
