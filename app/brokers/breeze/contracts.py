"""One Breeze contract: a desk instrument and the names Breeze knows it by."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import date

from app.domain.instruments import Exchange, Instrument, OptionRight, Segment


class BreezeProduct(enum.StrEnum):
    """Breeze's ``product_type`` for what a contract is (distinct from the order's product)."""

    CASH = "cash"
    FUTURES = "futures"
    OPTIONS = "options"


PRODUCT_OF_SEGMENT = {Segment.CASH: BreezeProduct.CASH, Segment.FUTURES: BreezeProduct.FUTURES, Segment.OPTIONS: BreezeProduct.OPTIONS}
RIGHT_NAME = {OptionRight.CALL: "call", OptionRight.PUT: "put"}

# The stream's symbol prefix per exchange ("4.1!2885"): NSE cash and NFO share 4; BFO live data is 8.
_STREAM_PREFIX = {Exchange.NSE: "4", Exchange.NFO: "4", Exchange.BSE: "1", Exchange.BFO: "8"}


@dataclass(frozen=True, slots=True)
class BreezeContract:
    """A desk instrument with Breeze's token and ICICI's own stock code for it (``RELIND`` for RELIANCE)."""

    instrument: Instrument
    token: str
    stock_code: str

    @property
    def exchange_code(self) -> str:
        return str(self.instrument.exchange)

    @property
    def product_type(self) -> BreezeProduct:
        return PRODUCT_OF_SEGMENT[self.instrument.segment]

    @property
    def stream_symbol(self) -> str:
        """The exchange-quote symbol the stream sends and ``subscribe_feeds(stock_token=...)`` takes."""
        return f"{_STREAM_PREFIX[self.instrument.exchange]}.1!{self.token}"

    def contract_fields(self) -> dict[str, str]:
        """The expiry, right and strike fields of a place or quote call, in the SDK's formats."""
        instrument = self.instrument
        if instrument.expiry is None:
            return {}
        fields = {
            # Breeze reads the date part; the time is what its own samples send.
            "expiry_date": f"{instrument.expiry.isoformat()}T06:00:00.000Z",
            "right": "others",
            "strike_price": "0",
        }
        if instrument.right is not None and instrument.strike is not None:
            fields["right"] = RIGHT_NAME[instrument.right]
            fields["strike_price"] = rupees_text(instrument.strike, trim=True)
        return fields


def rupees_text(paise: int, *, trim: bool = False) -> str:
    """``42005`` → ``"420.05"``; with ``trim`` whole rupees lose the decimals (``"25800"``), as strikes are written."""
    sign = "-" if paise < 0 else ""
    rupees, rest = divmod(abs(paise), 100)
    if trim and rest == 0:
        return f"{sign}{rupees}"
    return f"{sign}{rupees}.{rest:02d}"


_MONTHS = {name: n for n, name in enumerate(("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"), 1)}


def breeze_date(text: str) -> date:
    """Breeze's ``29-Dec-2026``, read without the process locale (``strptime``'s ``%b`` follows it,
    and Qt sets it from the desktop's language). ``ValueError`` for anything else."""
    parts = text.strip().split("-")
    if len(parts) != 3 or parts[1].upper() not in _MONTHS or not (parts[0].isdigit() and parts[2].isdigit()):
        raise ValueError(f"{text!r} is not a date like 29-Dec-2026")
    return date(int(parts[2]), _MONTHS[parts[1].upper()], int(parts[0]))
