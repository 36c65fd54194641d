"""Last price per instrument and how old it is."""

from __future__ import annotations

from app.domain.market import Tick


class MarketData:
    """Keeps the newest tick per instrument; older ticks arriving late are counted and ignored."""

    def __init__(self) -> None:
        self._last: dict[str, Tick] = {}
        self.ticks = 0
        self.out_of_order = 0
        # The newest tick over every instrument: how fresh the feed as a whole is, read at O(1).
        self.newest_ts_ns: int | None = None

    def on_tick(self, tick: Tick) -> None:
        self.ticks += 1
        previous = self._last.get(tick.instrument_key)
        if previous is not None and tick.ts_ns < previous.ts_ns:
            self.out_of_order += 1
            return
        self._last[tick.instrument_key] = tick
        newest = self.newest_ts_ns
        if newest is None or tick.ts_ns > newest:
            self.newest_ts_ns = tick.ts_ns

    def last(self, instrument_key: str) -> Tick | None:
        return self._last.get(instrument_key)

    def last_price(self, instrument_key: str) -> int | None:
        tick = self._last.get(instrument_key)
        return tick.price if tick is not None else None

    def age_ns(self, instrument_key: str, now_ns: int) -> int | None:
        """Nanoseconds since the last tick, or ``None`` if none has arrived."""
        tick = self._last.get(instrument_key)
        return None if tick is None else now_ns - tick.ts_ns

    def instruments(self) -> list[str]:
        return list(self._last)
