"""Executions reported by a broker."""

from __future__ import annotations

from dataclasses import dataclass

from .orders import Side


@dataclass(frozen=True, slots=True)
class Fill:
    """One execution: ``fill_id`` is unique per broker and lets the desk drop duplicates."""

    fill_id: str
    client_order_id: str
    instrument_key: str
    side: Side
    quantity: int
    price: int
    ts_ns: int

    @property
    def signed_quantity(self) -> int:
        return self.side.sign * self.quantity

    @property
    def cash_flow(self) -> int:
        """Paise received (positive) or paid (negative) for this fill."""
        return -self.signed_quantity * self.price
