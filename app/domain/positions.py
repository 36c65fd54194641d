"""Net positions, average cost and P&L in exact integer paise."""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

from .money import round_div


@dataclass(slots=True)
class Position:
    """A signed net position in one instrument.

    ``cost`` is the signed paise value of the open quantity at its average price (negative for a
    short). Closing part of a position removes the proportional share of ``cost``; the last close
    removes all that is left, so a round trip's realized P&L equals its cash flow exactly.
    """

    instrument_key: str
    quantity: int = 0
    cost: int = 0
    realized: int = 0

    @property
    def average_price(self) -> Fraction | None:
        """Exact average entry price in paise, or ``None`` when flat."""
        if self.quantity == 0:
            return None
        return Fraction(self.cost, self.quantity)

    def unrealized(self, mark: int) -> int:
        """Paise gained if the open quantity were closed at ``mark``."""
        return self.quantity * mark - self.cost

    def market_value(self, mark: int) -> int:
        """Signed paise value of the open quantity at ``mark``: the position's net exposure."""
        return self.quantity * mark

    def apply(self, signed_quantity: int, price: int) -> int:
        """Apply a fill (positive buys, negative sells) and return the realized P&L it produced."""
        if signed_quantity == 0:
            return 0
        realized = 0
        if self.quantity != 0 and (self.quantity > 0) != (signed_quantity > 0):
            closing = min(abs(signed_quantity), abs(self.quantity))
            if closing == abs(self.quantity):
                cost_removed = self.cost
            else:
                cost_removed = round_div(self.cost * closing, abs(self.quantity))
            closing_signed = closing if signed_quantity > 0 else -closing
            realized = -closing_signed * price - cost_removed
            self.cost -= cost_removed
            self.quantity += closing_signed
            signed_quantity -= closing_signed
        if signed_quantity:
            self.quantity += signed_quantity
            self.cost += signed_quantity * price
        self.realized += realized
        return realized
