"""Today's P&L for the daily and trailing loss limits.

Today's P&L is the desk's total P&L (realized + unrealized, from the portfolio) less what it stood
at when the IST day began. At a restart the engine sets the start-of-day mark from the fills of
earlier days (their realized P&L); a position carried overnight is then measured against its cost,
because the desk does not know yesterday's closing mark. When the desk runs across midnight the mark
is taken at the roll, so a carried position starts the new day at zero.
"""

from __future__ import annotations

from app.domain.india_time import ist_day_number

from ..portfolio import Portfolio


class DayPnl:
    """Today's P&L and its peak so far (for the trailing loss limit)."""

    def __init__(self, portfolio: Portfolio) -> None:
        self._portfolio = portfolio
        self.day = -1
        self.start_of_day = 0
        self.peak = 0

    def begin_day(self, day: int, start_of_day: int) -> None:
        """Set the start-of-day mark explicitly (at resume: realized P&L of the fills before today)."""
        self.day = day
        self.start_of_day = start_of_day
        self.peak = max(0, self.total() - start_of_day)

    def total(self) -> int:
        portfolio = self._portfolio
        return portfolio.realized + portfolio.unrealized

    def current(self, now_ns: int) -> int:
        """Today's P&L in paise; also moves the peak and rolls the day at IST midnight."""
        day = ist_day_number(now_ns)
        total = self.total()
        if day != self.day:
            self.day = day
            self.start_of_day = total
            self.peak = 0
        pnl = total - self.start_of_day
        self.peak = max(self.peak, pnl)
        return pnl
