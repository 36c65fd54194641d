"""The desk's recent alerts, numbered, for ``GET /v1/alerts?after=SEQ``.

A client polls with the last number it saw and gets what came after; the log keeps only the newest
``keep``, so a client that fell further behind than that sees the gap in the numbers.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from itertools import islice

from app.domain.events import Alert
from app.engine.bus import EventBus


@dataclass(frozen=True, slots=True)
class NumberedAlert:
    """One alert and its number in the log (1, 2, 3, ... in the order the bus published them)."""

    seq: int
    alert: Alert


class AlertLog:
    """A ring buffer of the engine bus' ``Alert`` events, each with an increasing number.

    Subscribed inline and not critical: appending to a deque cannot fail in a way that should halt
    the desk, and an inline handler sees every alert in order, which a lossy queue would not promise.
    """

    def __init__(self, bus: EventBus, *, keep: int = 1000) -> None:
        if keep <= 0:
            raise ValueError(f"keep must be positive, got {keep}")
        self._entries: deque[NumberedAlert] = deque(maxlen=keep)
        self.last_seq = 0
        self._bus = bus
        bus.subscribe(Alert, self._on_alert, critical=False, name="api.alert_log")

    def close(self) -> None:
        """Stop hearing the bus (the engine outlives the API that made this log); what it holds stays readable."""
        self._bus.unsubscribe(self._on_alert)

    def _on_alert(self, alert: Alert) -> None:
        self.last_seq += 1
        self._entries.append(NumberedAlert(self.last_seq, alert))

    def since(self, after_seq: int, limit: int) -> list[NumberedAlert]:
        """Up to ``limit`` alerts numbered above ``after_seq``, oldest first."""
        entries = self._entries
        if not entries or limit <= 0 or after_seq >= self.last_seq:
            return []
        # Numbers are consecutive inside the buffer, so the first wanted one is found by arithmetic.
        start = max(0, after_seq - entries[0].seq + 1)
        return list(islice(entries, start, start + limit))
