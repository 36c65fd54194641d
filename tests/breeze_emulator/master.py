"""The security master zip (``SecurityMaster.zip``) the SDK downloads to map stock codes to stream tokens.

Laid out like ICICI's real files: the cash files (``NSEScripMaster.txt``, ``BSEScripMaster.txt``)
start with a quoted header padded after every comma (``"Token", "ShortName", ...``: the SDK's own
``get_names`` reads columns named ``' "ShortName"'``) and give tick sizes in rupees (``"0.05"``);
the F&O files' header is quoted without padding and their tick sizes are paise (``"5"``), expiries
``29-Dec-2026``. Data rows are quoted without padding in every file: the SDK's subscription lookup
reads them with a plain ``csv.reader`` and ``strip('"')``, which padded rows would break.
"""

from __future__ import annotations

import csv
import io
import zipfile
from collections.abc import Iterable, Sequence

from tests.breeze_emulator.contracts import (
    Contract,
    breeze_date,
    rupees_text,
    strike_text,
)

CASH_HEADER: tuple[str, ...] = (
    "Token", "ShortName", "Series", "CompanyName", "ticksize", "Lotsize", "DateOfListing",
    "DateOfDeListing", "IssuePrice", "FaceValue", "ISINCode", "52WeeksHigh", "52WeeksLow",
    "LifeTimeHigh", "LifeTimeLow", "HighDate", "LowDate", "Symbol", "InstrumentType",
    "PermittedToTrade", "IssueCapital", "WarningPercent", "FreezePercent", "CreditRating",
    "IssueRate", "IssueStartDate", "InterestPaymentDate", "IssueMaturityDate", "BoardLotQty",
    "AssetToken", "ExchangeCode",
)  # fmt: skip

FNO_HEADER: tuple[str, ...] = (
    "Token", "InstrumentName", "ShortName", "Series", "ExpiryDate", "StrikePrice", "OptionType",
    "ExerciseType", "LotSize", "TickSize", "FreezeQty", "ExchangeCode", "PermittedToTrade",
    "BasePrice", "DateOfListing", "DateOfDeListing", "IssuePrice", "ISINCode", "52WeeksHigh",
    "52WeeksLow", "LifeTimeHigh", "LifeTimeLow", "HighDate", "LowDate", "AssetToken",
    "WarningPercent", "FreezePercent", "CreditRating", "BoardLotQty", "CompanyName",
)  # fmt: skip

MASTER_FILES: dict[str, str] = {
    "NSE": "NSEScripMaster.txt",
    "BSE": "BSEScripMaster.txt",
    "NFO": "FONSEScripMaster.txt",
    "BFO": "FOBSEScripMaster.txt",
}


def _cash_row(c: Contract) -> list[str]:
    values = {
        "Token": c.token,
        "ShortName": c.stock_code,
        "Series": "EQ",
        "CompanyName": c.company_name,
        "ticksize": rupees_text(c.tick_paise),
        "Lotsize": str(c.lot_size),
        "DateOfListing": "29-Nov-1995",
        "DateOfDeListing": "",
        "IssuePrice": "10",
        "FaceValue": "10",
        "ISINCode": f"INE{int(c.token):06d}01",
        "52WeeksHigh": rupees_text(c.price_paise * 12 // 10),
        "52WeeksLow": rupees_text(c.price_paise * 8 // 10),
        "LifeTimeHigh": rupees_text(c.price_paise * 15 // 10),
        "LifeTimeLow": "1.00",
        "HighDate": "01-Jul-2026",
        "LowDate": "01-Jan-2026",
        "Symbol": c.exchange_symbol,
        "InstrumentType": "0",
        "PermittedToTrade": "1",
        "IssueCapital": "0",
        "WarningPercent": "0",
        "FreezePercent": "0",
        "CreditRating": "",
        "IssueRate": "0",
        "IssueStartDate": "",
        "InterestPaymentDate": "",
        "IssueMaturityDate": "",
        "BoardLotQty": str(c.lot_size),
        "AssetToken": c.token,
        "ExchangeCode": c.exchange_symbol,
    }
    return [values[name] for name in CASH_HEADER]


def _fno_row(c: Contract, underlying_tokens: dict[str, str]) -> list[str]:
    futures = c.product_type == "futures"
    values = {
        "Token": c.token,
        "InstrumentName": ("FUT" if futures else "OPT") + ("IDX" if c.is_index else "STK"),
        "ShortName": c.stock_code,
        "Series": "FUTURE" if futures else "OPTION",
        "ExpiryDate": breeze_date(c.expiry) if c.expiry else "",
        "StrikePrice": strike_text(c.strike_paise) if c.strike_paise else "0",
        "OptionType": {"call": "CE", "put": "PE"}.get(c.right or "", "XX"),
        "ExerciseType": "E" if not futures else "",
        "LotSize": str(c.lot_size),
        "TickSize": str(c.tick_paise),
        "FreezeQty": str(c.freeze_quantity),
        "ExchangeCode": c.exchange_symbol,
        "PermittedToTrade": "1",
        "BasePrice": str(c.price_paise),
        "DateOfListing": "01-Jan-2026",
        "DateOfDeListing": "",
        "IssuePrice": "0",
        "ISINCode": "",
        "52WeeksHigh": "0",
        "52WeeksLow": "0",
        "LifeTimeHigh": "0",
        "LifeTimeLow": "0",
        "HighDate": "",
        "LowDate": "",
        "AssetToken": underlying_tokens.get(c.exchange_symbol, "0"),
        "WarningPercent": "0",
        "FreezePercent": "0",
        "CreditRating": "",
        "BoardLotQty": str(c.lot_size),
        "CompanyName": c.company_name,
    }
    return [values[name] for name in FNO_HEADER]


def padded_header(header: Sequence[str]) -> str:
    """The cash files' header line: every name quoted, a space after every comma."""
    return ", ".join(f'"{name}"' for name in header) + "\r\n"


def csv_bytes(header: Sequence[str], rows: Iterable[Sequence[str]], *, padded: bool) -> bytes:
    """A scrip-master file: ``header`` (``padded`` as in the cash files, or not), then ``rows``,
    every field double-quoted, CRLF line ends (the SDK's csv.reader copes with both)."""
    out = io.StringIO()
    writer = csv.writer(out, quoting=csv.QUOTE_ALL, lineterminator="\r\n")
    if padded:
        out.write(padded_header(header))
    else:
        writer.writerow(header)
    writer.writerows(rows)
    return out.getvalue().encode("utf-8")


def build_master_zip(contracts: Sequence[Contract]) -> bytes:
    """The zip with the four scrip-master files in ICICI's layout (see the module docstring)."""
    cash_tokens = {c.exchange_symbol: c.token for c in contracts if c.exchange_code == "NSE"}
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for exchange, file_name in MASTER_FILES.items():
            chosen = [c for c in contracts if c.exchange_code == exchange]
            if exchange in ("NSE", "BSE"):
                data = csv_bytes(CASH_HEADER, (_cash_row(c) for c in chosen), padded=True)
            else:
                data = csv_bytes(FNO_HEADER, (_fno_row(c, cash_tokens) for c in chosen), padded=False)
            archive.writestr(file_name, data)
    return buffer.getvalue()
