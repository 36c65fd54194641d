"""Numbers as an Indian trader reads them: ₹ with lakh/crore grouping, and short forms for tight cells."""

from __future__ import annotations

from app.domain.india_time import IST_OFFSET_S
from app.domain.money import PAISE_PER_RUPEE, format_inr, group_indian

_LAKH = 100_000 * PAISE_PER_RUPEE
_CRORE = 10_000_000 * PAISE_PER_RUPEE


def inr(paise: int) -> str:
    """Full amount in rupees, whole rupees only: 1234567890 paise -> '₹1,23,45,679'."""
    rupees = (abs(paise) + PAISE_PER_RUPEE // 2) // PAISE_PER_RUPEE
    # A loss of a few paise shows as ₹0, not "-₹0".
    sign = "-" if paise < 0 and rupees else ""
    return f"{sign}₹{group_indian(str(rupees))}"


def inr_exact(paise: int) -> str:
    """Full amount with paise: '₹1,23,45,678.90'."""
    return format_inr(paise)


def inr_short(paise: int) -> str:
    """Compact amount for banners and axes: '₹4.20 Cr', '₹3.41 L', '₹56,780'."""
    sign = "-" if paise < 0 else ""
    size = abs(paise)
    if size >= _CRORE:
        return f"{sign}₹{size / _CRORE:,.2f} Cr"
    if size >= _LAKH:
        return f"{sign}₹{size / _LAKH:.2f} L"
    return f"{sign}₹{group_indian(str((size + PAISE_PER_RUPEE // 2) // PAISE_PER_RUPEE))}"


def signed_inr_short(paise: int) -> str:
    """``inr_short`` with an explicit sign for P&L: '+₹3.41 L', '-₹12,000', '₹0'."""
    if paise > 0:
        return "+" + inr_short(paise)
    return inr_short(paise)


def price(paise: int) -> str:
    """A price in rupees with paise and Indian grouping, no symbol: '2,456.35'."""
    return format_inr(paise, symbol=False)


def quantity(units: int) -> str:
    """A signed quantity with Indian grouping: -1,50,000."""
    sign = "-" if units < 0 else ""
    return sign + group_indian(str(abs(units)))


def ist_hms(ts_ns: int) -> str:
    """'11:42:07': India time of day for an epoch instant in nanoseconds."""
    seconds = (ts_ns // 1_000_000_000 + IST_OFFSET_S) % 86_400
    return f"{seconds // 3600:02d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"
