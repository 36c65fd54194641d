from __future__ import annotations

from datetime import date

import pytest

from app.domain.instruments import Exchange, Instrument, OptionRight, Segment


def cash(symbol: str, underlying: str | None = None, exchange: Exchange = Exchange.NSE) -> Instrument:
    return Instrument(
        key=f"{exchange}:{symbol}",
        exchange=exchange,
        symbol=symbol,
        underlying=underlying or symbol,
        segment=Segment.CASH,
        lot_size=1,
        tick_size=5,
        freeze_quantity=100_000,
    )


def future(symbol: str, lot: int = 65, freeze: int = 1_755) -> Instrument:
    return Instrument(
        key=f"NFO:{symbol}:2026-12-29:FUT",
        exchange=Exchange.NFO,
        symbol=symbol,
        underlying=symbol,
        segment=Segment.FUTURES,
        lot_size=lot,
        tick_size=10,
        freeze_quantity=freeze,
        expiry=date(2026, 12, 29),
    )


def option(symbol: str, strike_rupees: int, right: OptionRight) -> Instrument:
    return Instrument(
        key=f"NFO:{symbol}:2026-12-29:{strike_rupees}:{'CE' if right is OptionRight.CALL else 'PE'}",
        exchange=Exchange.NFO,
        symbol=symbol,
        underlying=symbol,
        segment=Segment.OPTIONS,
        lot_size=65,
        tick_size=5,
        freeze_quantity=1_755,
        expiry=date(2026, 12, 29),
        strike=strike_rupees * 100,
        right=right,
    )


@pytest.fixture
def instruments() -> dict[str, Instrument]:
    items = [
        cash("RELIANCE"),
        cash("RELIANCE", exchange=Exchange.BSE),
        cash("TCS"),
        future("NIFTY"),
        option("NIFTY", 26000, OptionRight.CALL),
        future("RELIANCE", lot=500, freeze=10_000),
    ]
    return {i.key: i for i in items}
