"""Observed broker round trips, for the kill switch's expected time to clear."""

from __future__ import annotations

import statistics
from collections import deque


class RoundTrips:
    """The last few hundred broker-call durations in seconds."""

    def __init__(self, keep: int = 256, default: float = 0.05) -> None:
        self._seconds: deque[float] = deque(maxlen=keep)
        self._default = default

    def add(self, seconds: float) -> None:
        self._seconds.append(seconds)

    def median(self) -> float:
        """The median, or ``default`` before any call has been timed."""
        return statistics.median(self._seconds) if self._seconds else self._default
