"""Latency histograms and error counts the engine keeps for its metrics (gate checks, broker calls).

Fixed buckets, so a reading costs one bisect and two additions, and a scraper (the local API's
Prometheus endpoint) can turn them into histograms without the engine knowing any metrics library.
"""

from __future__ import annotations

import bisect
from collections import Counter
from dataclasses import dataclass, field

# Seconds: 10 µs to 10 s, roughly 1-2.5-5 per decade (the gate lives at the low end, Breeze at the high).
LATENCY_BUCKETS_S: tuple[float, ...] = (
    0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
    0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
)


@dataclass(slots=True)
class LatencyHistogram:
    """Counts of observations at or below each bound of ``LATENCY_BUCKETS_S`` (not cumulative), plus +Inf."""

    counts: list[int] = field(default_factory=lambda: [0] * (len(LATENCY_BUCKETS_S) + 1))
    total: int = 0
    sum_s: float = 0.0

    def observe(self, seconds: float) -> None:
        self.counts[bisect.bisect_left(LATENCY_BUCKETS_S, seconds)] += 1
        self.total += 1
        self.sum_s += seconds

    def cumulative(self) -> list[tuple[float, int]]:
        """(upper bound, observations at or below it) for each bucket, ending with +Inf: Prometheus' shape."""
        running = 0
        out: list[tuple[float, int]] = []
        for bound, count in zip((*LATENCY_BUCKETS_S, float("inf")), self.counts, strict=True):
            running += count
            out.append((bound, running))
        return out


@dataclass(slots=True)
class BrokerCallStats:
    """Per broker method: how long its calls took and how each failure ended (error code or timeout)."""

    latency: dict[str, LatencyHistogram] = field(default_factory=dict)
    errors: Counter[tuple[str, str]] = field(default_factory=Counter)

    def observe(self, method: str, seconds: float) -> None:
        histogram = self.latency.get(method)
        if histogram is None:
            histogram = self.latency[method] = LatencyHistogram()
        histogram.observe(seconds)

    def failed(self, method: str, code: str) -> None:
        self.errors[(method, code)] += 1
