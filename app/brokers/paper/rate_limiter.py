"""Server-side enforcement of a broker's request limits, as the paper broker's "exchange" applies them."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from app.brokers.base import BrokerError, BrokerErrorCode, RateLimits

SECONDS_PER_DAY = 86_400.0


@dataclass(slots=True)
class _Window:
    name: str
    limit: int
    seconds: float
    stamps: deque[float]

    def prune(self, now: float) -> None:
        # A call made exactly one window ago no longer counts: after 1 s the per-second quota is back.
        while self.stamps and now - self.stamps[0] >= self.seconds:
            self.stamps.popleft()

    @property
    def full(self) -> bool:
        return len(self.stamps) >= self.limit


class RateLimiter:
    """Sliding-window limits: order actions per second, and all calls per minute and per day.

    ``acquire`` either records the call in every window that applies or raises ``RATE_LIMITED``
    with a Breeze-shaped body and records nothing, so a refused call never eats quota. ``clock``
    returns monotonic seconds; tests inject their own to step time exactly.
    """

    def __init__(self, limits: RateLimits, clock: Callable[[], float] = time.monotonic) -> None:
        for name, value in (
            ("order_actions_per_second", limits.order_actions_per_second),
            ("calls_per_minute", limits.calls_per_minute),
            ("calls_per_day", limits.calls_per_day),
        ):
            if value <= 0:
                raise ValueError(f"{name} must be positive, got {value}")
        self._clock = clock
        self._actions = _Window("order actions per second", limits.order_actions_per_second, 1.0, deque())
        self._calls = (
            _Window("calls per minute", limits.calls_per_minute, 60.0, deque()),
            _Window("calls per day", limits.calls_per_day, SECONDS_PER_DAY, deque()),
        )

    def acquire(self, call: str, *, order_action: bool) -> None:
        """Count one call (``order_action`` for place, modify and cancel) or refuse it."""
        now = self._clock()
        windows = (self._actions, *self._calls) if order_action else self._calls
        for window in windows:
            window.prune(now)
        for window in windows:
            if window.full:
                message = f"Rate limit exceeded: {window.limit} {window.name} (refused {call})"
                raise BrokerError(
                    BrokerErrorCode.RATE_LIMITED,
                    message,
                    body={"Success": None, "Status": 429, "Error": message},
                )
        for window in windows:
            window.stamps.append(now)
