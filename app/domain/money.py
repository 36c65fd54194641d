"""Money as integer paise; rupees and Indian digit grouping only at the edges."""

from __future__ import annotations

import math
from decimal import Decimal, InvalidOperation

PAISE_PER_RUPEE = 100
# Amounts must be below 10**16 rupees (10**18 paise, inside a signed 64-bit column).
MAX_RUPEES_EXPONENT = 15


class MoneyError(ValueError):
    """A value cannot be read as an amount of money."""


def rupees_to_paise(value: Decimal | float | str) -> int:
    """Convert a rupee amount to integer paise, refusing anything that is not an exact paise amount.

    Floats are read through their shortest repr (``0.1`` is ten paise), never through their binary value.
    """
    if isinstance(value, bool):
        raise MoneyError(f"not a price: {value!r}")
    if isinstance(value, float):
        if not math.isfinite(value):
            raise MoneyError(f"not a finite price: {value!r}")
        value = repr(value)
    try:
        amount = Decimal(value)
    except (InvalidOperation, TypeError, ValueError):
        raise MoneyError(f"not a number: {value!r}") from None
    if not amount.is_finite():
        raise MoneyError(f"not a finite price: {value!r}")
    if amount.is_zero():
        return 0
    if amount.adjusted() > MAX_RUPEES_EXPONENT:
        # Not repr(value): Python refuses to print an int of more than 4,300 digits.
        raise MoneyError(f"too large: about 1E+{amount.adjusted()} rupees")
    # Exact digit arithmetic: ``amount * 100`` would round to the context's 28 digits, silently
    # accepting "1.000000000000000000000000000001" as 100 paise.
    sign, digits, exponent = amount.as_tuple()
    if not isinstance(exponent, int):  # finite amounts never carry the 'n'/'N'/'F' markers
        raise MoneyError(f"not a finite price: {value!r}")
    shift = exponent + 2  # paise = coefficient * 10**shift
    if shift < 0:
        if any(digits[shift:]):
            raise MoneyError(f"finer than one paisa: {value!r}")
        digits, shift = digits[:shift], 0
    paise: int = int("".join(map(str, digits)) or "0") * 10**shift
    return -paise if sign else paise


def paise_to_rupees(paise: int) -> Decimal:
    """Exact rupee value of an integer paise amount."""
    return (Decimal(paise) / PAISE_PER_RUPEE).quantize(Decimal("0.01"))


def group_indian(digits: str) -> str:
    """Group a string of digits the Indian way: last three, then pairs (1,23,45,678)."""
    if len(digits) <= 3:
        return digits
    head, tail = digits[:-3], digits[-3:]
    pairs = []
    while len(head) > 2:
        pairs.append(head[-2:])
        head = head[:-2]
    if head:
        pairs.append(head)
    return ",".join(reversed(pairs)) + "," + tail


def format_inr(paise: int, *, symbol: bool = True) -> str:
    """Format paise as rupees with Indian grouping: 1234567890 -> '₹1,23,45,678.90'."""
    sign = "-" if paise < 0 else ""
    rupees, rem = divmod(abs(paise), PAISE_PER_RUPEE)
    return f"{sign}{'₹' if symbol else ''}{group_indian(str(rupees))}.{rem:02d}"


def round_div(numerator: int, denominator: int) -> int:
    """Integer division rounded half to even, exact for any sign (no float on the way)."""
    if denominator == 0:
        raise ZeroDivisionError("round_div by zero")
    if denominator < 0:
        numerator, denominator = -numerator, -denominator
    quotient, remainder = divmod(numerator, denominator)
    twice = 2 * remainder
    if twice > denominator or (twice == denominator and quotient % 2 == 1):
        quotient += 1
    return quotient
