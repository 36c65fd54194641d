"""The engine's integers as the API shows them: paise as exact rupees, epoch nanoseconds as IST times.

One conversion for every route and the stream, so an order's time or average price reads the same
whichever way a client asks for it. Integer arithmetic only: a float would round a large amount.
"""

from __future__ import annotations

import datetime as dt
from decimal import ROUND_HALF_EVEN, Decimal

from app.domain.india_time import IST
from app.domain.money import PAISE_PER_RUPEE, paise_to_rupees

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_PAISA = Decimal("0.01")


def ist_time(ts_ns: int) -> dt.datetime:
    """Epoch nanoseconds as an aware datetime in IST (microseconds: the finest a datetime holds)."""
    return (_EPOCH + dt.timedelta(microseconds=ts_ns // 1_000)).astimezone(IST)


def optional_rupees(paise: int | None) -> Decimal | None:
    """``paise_to_rupees(paise)``, or None for None (a market order's price, a strike a future lacks)."""
    return None if paise is None else paise_to_rupees(paise)


def average_price(value_paise: int, quantity: int) -> Decimal | None:
    """The average rupee price of ``quantity`` units worth ``value_paise`` in all, to the paisa (half to
    even); None for no units. Signed amounts work: a short's negative cost over its negative quantity."""
    if quantity == 0:
        return None
    return (Decimal(value_paise) / quantity / PAISE_PER_RUPEE).quantize(_PAISA, ROUND_HALF_EVEN)
