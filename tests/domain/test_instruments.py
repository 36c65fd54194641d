"""Instrument definitions: valid contracts construct, every inconsistent one raises InstrumentError."""

from __future__ import annotations

import dataclasses
from datetime import date
from typing import Any

import pytest

from app.domain.instruments import (
    Exchange,
    Instrument,
    InstrumentError,
    OptionRight,
    Segment,
)

EXPIRY = date(2026, 12, 29)


def cash(**overrides: Any) -> Instrument:
    fields: dict[str, Any] = {
        "key": "NSE:RELIANCE",
        "exchange": Exchange.NSE,
        "symbol": "RELIANCE",
        "underlying": "RELIANCE",
        "segment": Segment.CASH,
        "lot_size": 1,
        "tick_size": 10,
        "freeze_quantity": 100_000,
    }
    fields.update(overrides)
    return Instrument(**fields)


def future(**overrides: Any) -> Instrument:
    fields: dict[str, Any] = {
        "key": "NFO:NIFTY:2026-12-29:FUT",
        "exchange": Exchange.NFO,
        "symbol": "NIFTY",
        "underlying": "NIFTY",
        "segment": Segment.FUTURES,
        "lot_size": 65,
        "tick_size": 10,
        "freeze_quantity": 1_755,
        "expiry": EXPIRY,
    }
    fields.update(overrides)
    return Instrument(**fields)


def option(**overrides: Any) -> Instrument:
    fields: dict[str, Any] = {
        "key": "NFO:NIFTY:2026-12-29:CE:2600000",
        "exchange": Exchange.NFO,
        "symbol": "NIFTY",
        "underlying": "NIFTY",
        "segment": Segment.OPTIONS,
        "lot_size": 65,
        "tick_size": 5,
        "freeze_quantity": 1_755,
        "expiry": EXPIRY,
        "strike": 2_600_000,  # ₹26,000
        "right": OptionRight.CALL,
    }
    fields.update(overrides)
    return Instrument(**fields)


# --------------------------------------------------------------------------- valid


def test_valid_cash_on_nse_and_bse() -> None:
    nse = cash()
    assert nse.segment is Segment.CASH and nse.expiry is None and nse.strike is None and nse.right is None
    bse = cash(key="BSE:RELIANCE", exchange=Exchange.BSE)
    assert bse.exchange is Exchange.BSE


def test_valid_future_on_nfo_and_bfo() -> None:
    fut = future()
    assert fut.expiry == EXPIRY and fut.strike is None and fut.right is None
    bfo = future(key="BFO:SENSEX:2026-12-29:FUT", exchange=Exchange.BFO, symbol="SENSEX", underlying="SENSEX", lot_size=20, freeze_quantity=1_000)
    assert bfo.exchange is Exchange.BFO


@pytest.mark.parametrize("right", [OptionRight.CALL, OptionRight.PUT])
def test_valid_options(right: OptionRight) -> None:
    opt = option(right=right)
    assert opt.right is right
    assert opt.strike == 2_600_000


def test_freeze_quantity_equal_to_one_lot_is_allowed() -> None:
    assert future(freeze_quantity=65).freeze_quantity == 65


def test_instrument_is_immutable_and_hashable() -> None:
    fut = future()
    with pytest.raises(dataclasses.FrozenInstanceError):
        fut.lot_size = 75  # type: ignore[misc]
    assert fut == future()
    assert len({fut, future()}) == 1


def test_exchange_is_derivatives() -> None:
    assert {e for e in Exchange if e.is_derivatives} == {Exchange.NFO, Exchange.BFO}


@pytest.mark.parametrize(("price", "on_tick"), [(0, True), (10, True), (2_450_050, True), (5, False), (2_450_055, False), (1, False)])
def test_is_on_tick(price: int, on_tick: bool) -> None:
    assert future().is_on_tick(price) is on_tick  # tick 10 paise


@pytest.mark.parametrize(("quantity", "ok"), [(65, True), (130, True), (1_755, True), (64, False), (66, False), (100, False)])
def test_is_lot_multiple(quantity: int, ok: bool) -> None:
    assert future().is_lot_multiple(quantity) is ok


# --------------------------------------------------------------------------- invalid


@pytest.mark.parametrize(
    ("build", "overrides", "message"),
    [
        # required text
        (cash, {"key": ""}, "required"),
        (cash, {"symbol": ""}, "required"),
        (future, {"underlying": ""}, "required"),
        # sizes
        (cash, {"lot_size": 0}, "lot_size"),
        (future, {"lot_size": -65}, "lot_size"),
        (cash, {"tick_size": 0}, "tick_size"),
        (option, {"tick_size": -5}, "tick_size"),
        (future, {"freeze_quantity": 64}, "freeze_quantity"),
        (cash, {"lot_size": 10, "freeze_quantity": 9}, "freeze_quantity"),
        (future, {"freeze_quantity": 0}, "freeze_quantity"),
        # cash on a derivatives exchange, or with derivative fields
        (cash, {"exchange": Exchange.NFO}, "NSE or BSE"),
        (cash, {"exchange": Exchange.BFO}, "NSE or BSE"),
        (cash, {"expiry": EXPIRY}, "no expiry"),
        (cash, {"strike": 100_000}, "no expiry"),
        (cash, {"right": OptionRight.PUT}, "no expiry"),
        # derivatives on a cash exchange
        (future, {"exchange": Exchange.NSE}, "NFO or BFO"),
        (option, {"exchange": Exchange.BSE}, "NFO or BFO"),
        # future without expiry, or with option fields
        (future, {"expiry": None}, "expiry"),
        (future, {"strike": 2_600_000}, "no strike"),
        (future, {"right": OptionRight.CALL}, "no strike"),
        # option without expiry / strike / right, or a bad strike
        (option, {"expiry": None}, "expiry"),
        (option, {"strike": None}, "strike"),
        (option, {"right": None}, "right"),
        (option, {"strike": 0}, "positive strike"),
        (option, {"strike": -2_600_000}, "positive strike"),
        (option, {"strike": 2_600_003}, "off the tick"),
        (option, {"tick_size": 500, "strike": 2_600_250}, "off the tick"),
    ],
    ids=lambda v: v.__name__ if callable(v) else repr(v) if isinstance(v, dict) else v,
)
def test_invalid_instruments_raise(build: Any, overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(InstrumentError, match=message):
        build(**overrides)


def test_instrument_error_is_a_value_error() -> None:
    with pytest.raises(ValueError):
        future(lot_size=0)
