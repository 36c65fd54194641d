"""The emulator's contracts: what Breeze calls a stock code, a token and a product, per desk instrument."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal, InvalidOperation

# ICICI Direct's own stock codes; every other symbol is its own code.
ICICI_CODES: dict[str, str] = {
    "RELIANCE": "RELIND",
    "HDFCBANK": "HDFBAN",
    "ICICIBANK": "ICIBAN",
    "BHARTIARTL": "BHAAIR",
    "KOTAKBANK": "KOTMAH",
    "HINDUNILVR": "HINLEV",
    "SUNPHARMA": "SUNPHA",
    "AXISBANK": "AXIBAN",
    "TATASTEEL": "TATSTE",
    "INFY": "INFTEC",
    "SBIN": "STABAN",
    "LT": "LARTOU",
    "BANKNIFTY": "CNXBAN",
    "SENSEX": "BSESEN",
}

INDICES = frozenset({"NIFTY", "BANKNIFTY", "SENSEX"})

# The stream's symbol prefix: exchange number, then ".1!" for exchange quotes (the SDK's data_type 1).
STREAM_PREFIX: dict[str, str] = {"NSE": "4.1!", "NFO": "4.1!", "BSE": "1.1!", "BFO": "8.1!"}

# Distinct token ranges per exchange keep tokens unique across the whole emulator, which the
# stream rooms rely on ("4.1!<token>" is shared by NSE and NFO).
_TOKEN_BASE: dict[str, int] = {"NSE": 2000, "BSE": 500000, "NFO": 35000, "BFO": 860000}

MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def breeze_date(day: date) -> str:
    """Breeze's date text: ``29-Dec-2026`` (month names fixed, whatever the locale)."""
    return f"{day.day:02d}-{MONTHS[day.month - 1]}-{day.year}"


def rupees_text(paise: int) -> str:
    """Paise as Breeze prints money in its REST rows: ``"1500.05"``."""
    sign = "-" if paise < 0 else ""
    rupees, rest = divmod(abs(paise), 100)
    return f"{sign}{rupees}.{rest:02d}"


def rupees_float(paise: int) -> float:
    return paise / 100


def strike_text(paise: int) -> str:
    """A strike in rupees without needless decimals, as the security master and F&O rows show it."""
    rupees, rest = divmod(paise, 100)
    return str(rupees) if rest == 0 else f"{rupees}.{rest:02d}"


def parse_rupees(text: object) -> int | None:
    """Rupee text or number to integer paise; ``None`` for anything not a number or finer than a paisa.

    Float noise is forgiven: the SDK's aggressive-limit price for a "market" order is computed in
    binary floating point (``434.90000000000003``), and Breeze accepts it.
    """
    if isinstance(text, bool) or text is None:
        return None
    try:
        value = Decimal(str(text).strip())
    except InvalidOperation:
        return None
    if not value.is_finite():
        return None
    paise = value * 100
    whole = paise.to_integral_value()
    if abs(paise - whole) > Decimal("0.0001"):
        return None
    return int(whole)


@dataclass(frozen=True, slots=True)
class Contract:
    """One tradable contract as Breeze knows it. Money is integer paise.

    ``key`` is the desk's instrument key; ``stock_code`` is ICICI's code (``RELIND``), of the
    underlying for derivatives; ``exchange_symbol`` is the exchange's symbol (``RELIANCE``).
    ``product_type`` is ``cash``, ``futures`` or ``options``; ``right`` is ``call``, ``put`` or None.
    ``price_paise`` is the price the market starts from.
    """

    key: str
    token: str
    exchange_code: str
    stock_code: str
    exchange_symbol: str
    product_type: str
    expiry: date | None
    strike_paise: int | None
    right: str | None
    lot_size: int
    tick_paise: int
    freeze_quantity: int
    company_name: str
    price_paise: int

    @property
    def is_derivative(self) -> bool:
        return self.exchange_code in ("NFO", "BFO")

    @property
    def is_index(self) -> bool:
        return self.exchange_symbol in INDICES

    @property
    def stream_symbol(self) -> str:
        """The room name a stream client joins, and element 0 of every tick: ``4.1!2885``."""
        return STREAM_PREFIX[self.exchange_code] + self.token

    @property
    def expiry_text(self) -> str | None:
        return breeze_date(self.expiry) if self.expiry else None

    @property
    def right_title(self) -> str:
        """``Call``/``Put`` for options, ``Others`` otherwise, as REST rows spell the right."""
        return self.right.title() if self.right else "Others"

    @property
    def product_title(self) -> str:
        return self.product_type.title()


def default_contracts(session_day: date | None = None) -> list[Contract]:
    """One contract per entry of the paper universe (``resources/instruments.json``), with deterministic tokens.

    The derivatives are the contracts trading on ``session_day`` (default: the day a desk started now
    trades on), as the paper universe rolls them; tests that name contracts by key pass a fixed day.
    """
    from app.brokers.paper import load_universe
    from app.domain.instruments import OptionRight, Segment
    from tests.support.calendar import calendar_covering_now, desk_session_day

    products = {Segment.CASH: "cash", Segment.FUTURES: "futures", Segment.OPTIONS: "options"}
    rights = {OptionRight.CALL: "call", OptionRight.PUT: "put"}
    counters = dict.fromkeys(_TOKEN_BASE, 0)
    contracts: list[Contract] = []
    # Rolled on the desk's calendar, as `simulate` rolls them, so both name the same contracts.
    universe = load_universe(session_day=session_day or desk_session_day(), is_session=calendar_covering_now().is_session_day)
    for entry in universe:
        inst = entry.instrument
        exchange = str(inst.exchange)
        counters[exchange] += 1
        symbol = inst.underlying if inst.exchange.is_derivatives else inst.symbol
        code = ICICI_CODES.get(symbol, symbol)
        if inst.segment is Segment.CASH:
            name = f"{symbol.title()} Ltd"
        elif inst.segment is Segment.FUTURES:
            name = f"{symbol} {breeze_date(inst.expiry)} Future" if inst.expiry else symbol
        else:
            assert inst.expiry is not None and inst.strike is not None and inst.right is not None
            suffix = "CE" if inst.right is OptionRight.CALL else "PE"
            name = f"{symbol} {breeze_date(inst.expiry)} {strike_text(inst.strike)} {suffix}"
        contracts.append(
            Contract(
                key=inst.key,
                token=str(_TOKEN_BASE[exchange] + counters[exchange]),
                exchange_code=exchange,
                stock_code=code,
                exchange_symbol=symbol,
                product_type=products[inst.segment],
                expiry=inst.expiry,
                strike_paise=inst.strike,
                right=rights[inst.right] if inst.right else None,
                lot_size=inst.lot_size,
                tick_paise=inst.tick_size,
                freeze_quantity=inst.freeze_quantity,
                company_name=name,
                price_paise=entry.start_price,
            )
        )
    return contracts
