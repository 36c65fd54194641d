"""The order flow both pre-trade benchmarks replay: one plan, turned into our orders and into Nautilus's.

``n`` cash instruments (lot 1, tick 5 paise, last price 1,000.00 to 2,995.00 rupees, at least 20 of them) and a list of
orders planned once from a seed: 10-30 units within four ticks of the last price, none repeating an
instrument, side, quantity and price within ``DEDUPE_SPAN`` orders (so our duplicate check, which
Nautilus has no counterpart for, refuses nothing by accident). About 1 % each are planned to break a
limit both sides enforce the same way (``OVERSIZE``: above the maximum order quantity; ``OVERVALUE``:
above the maximum order value), and about 1 % to break the price collar, which only we check.
"""

from __future__ import annotations

import enum
import random
from dataclasses import dataclass

TICK_PAISE = 5
MAX_ORDER_QUANTITY = 250  # units (lot 1): ours max_order_lots, theirs the instrument's max_quantity
MAX_ORDER_VALUE_INR = 500_000  # ours max_order_value_inr, theirs max_notional_per_order
COLLAR_PCT = 5
VIOLATION_RATE = 0.01  # per kind
DEDUPE_SPAN = 2_500  # orders; the duplicate window is 2 s and orders come 1 ms apart
_STEPS = 400  # price steps of 5 rupees from 1,000 rupees
_EXPENSIVE_FROM = 220  # steps from here up price an instrument at 2,100 rupees or more


class Kind(enum.Enum):
    """What an order in the plan is meant to meet."""

    PASS = "pass"
    OVERSIZE = "oversize"  # refused by both: quantity above the maximum
    OVERVALUE = "overvalue"  # refused by both: value above the maximum
    COLLAR = "collar"  # refused by ours only: 10 % off the last price


REFUSED_BY_BOTH = frozenset({Kind.OVERSIZE, Kind.OVERVALUE})


@dataclass(frozen=True, slots=True)
class Spec:
    """One planned order: instrument index, side, quantity in units, limit price in paise."""

    instrument: int
    buy: bool
    quantity: int
    price: int
    kind: Kind


def last_price(index: int) -> int:
    """The instrument's last price in paise (what the quote says on both sides); any 20 neighbours spread over the range."""
    return 100_000 + 500 * _step(index)


def _step(index: int) -> int:
    return index * 37 % _STEPS  # 37 is prime to 400: every step is taken once per 400 instruments


def plan(instruments: int, orders: int, seed: int) -> list[Spec]:
    """``orders`` specs over ``instruments`` instruments, the same for a given seed."""
    if instruments < 20:
        raise ValueError(f"the flow needs at least 20 instruments, not {instruments}")
    rng = random.Random(seed)
    expensive = [i for i in range(instruments) if _step(i) >= _EXPENSIVE_FROM]
    last_seen: dict[tuple[int, bool, int, int], int] = {}
    specs: list[Spec] = []
    for n in range(orders):
        roll = rng.random()
        buy = rng.random() < 0.5
        if roll < VIOLATION_RATE:
            k = rng.randrange(instruments)
            spec = Spec(k, buy, MAX_ORDER_QUANTITY + 50, last_price(k), Kind.OVERSIZE)
        elif roll < 2 * VIOLATION_RATE:
            k = rng.choice(expensive)
            price = last_price(k)
            spec = Spec(k, buy, MAX_ORDER_VALUE_INR * 100 // price + 1, price, Kind.OVERVALUE)
        elif roll < 3 * VIOLATION_RATE:
            k = rng.randrange(instruments)
            spec = Spec(k, buy, 10, last_price(k) * 110 // 100 // TICK_PAISE * TICK_PAISE, Kind.COLLAR)
        else:
            while True:
                k = rng.randrange(instruments)
                quantity = rng.randint(1, 3) * 10
                price = last_price(k) + rng.randint(-4, 4) * TICK_PAISE
                seen = last_seen.get((k, buy, quantity, price))
                if seen is None or n - seen > DEDUPE_SPAN:
                    break
            spec = Spec(k, buy, quantity, price, Kind.PASS)
        last_seen[(spec.instrument, spec.buy, spec.quantity, spec.price)] = n
        specs.append(spec)
    return specs
