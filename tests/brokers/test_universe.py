"""The paper market's universe file: it loads, every entry is a valid instrument, and bad files fail clearly."""

from __future__ import annotations

import copy
import json
from datetime import date
from pathlib import Path

import pytest

from app.brokers.paper import UniverseError, load_universe
from app.brokers.paper.universe import DEFAULT_UNIVERSE_PATH
from app.domain.instruments import (
    Exchange,
    Instrument,
    OptionRight,
    Segment,
    instrument_key,
)


def test_default_file_is_the_repository_resource() -> None:
    assert DEFAULT_UNIVERSE_PATH == Path(__file__).resolve().parents[2] / "resources" / "instruments.json"
    document = json.loads(DEFAULT_UNIVERSE_PATH.read_text(encoding="utf-8"))
    assert "illustrative" in document["note"].lower()
    assert "2026-11" in document["note"]


def test_universe_loads_valid_unique_instruments() -> None:
    entries = load_universe()
    assert 25 <= len(entries) <= 30
    keys = [entry.instrument.key for entry in entries]
    assert len(keys) == len(set(keys))
    for entry in entries:
        instrument = entry.instrument
        assert isinstance(instrument, Instrument)
        assert entry.start_price > 0 and instrument.is_on_tick(entry.start_price)
        assert instrument.key == instrument_key(
            instrument.exchange, instrument.symbol, instrument.expiry, instrument.strike, instrument.right
        )
    assert {entry.instrument.exchange for entry in entries} == set(Exchange)
    assert {entry.instrument.segment for entry in entries} == set(Segment)


# A fixed session day keeps the rolled contracts' keys fixed (December 2026 contracts).
SESSION = date(2026, 12, 1)


def test_universe_contract_terms() -> None:
    by_key = {entry.instrument.key: entry for entry in load_universe(session_day=SESSION)}
    nifty = by_key["NFO:NIFTY:2026-12-29:FUT"].instrument
    assert (nifty.lot_size, nifty.freeze_quantity, nifty.tick_size, nifty.expiry) == (65, 1755, 5, date(2026, 12, 29))
    banknifty = by_key["NFO:BANKNIFTY:2026-12-29:FUT"].instrument
    assert (banknifty.lot_size, banknifty.freeze_quantity) == (30, 600)
    sensex = by_key["BFO:SENSEX:2026-12-31:FUT"].instrument
    assert (sensex.lot_size, sensex.freeze_quantity, sensex.expiry) == (20, 1000, date(2026, 12, 31))
    call = by_key["NFO:NIFTY:2026-12-29:26000:CE"].instrument
    assert (call.strike, call.right, call.segment) == (26000_00, OptionRight.CALL, Segment.OPTIONS)
    assert by_key["NFO:NIFTY:2026-12-29:26000:PE"].instrument.right is OptionRight.PUT
    assert by_key["NFO:RELIANCE:2026-12-29:FUT"].instrument.lot_size == 500
    underlyings = {key: entry.instrument.underlying for key, entry in by_key.items()}
    assert underlyings["NSE:RELIANCE"] == underlyings["BSE:RELIANCE"] == underlyings["NFO:RELIANCE:2026-12-29:FUT"]
    # Reference prices in paise, in a realistic range.
    assert 1_000_00 <= by_key["NSE:RELIANCE"].start_price <= 2_000_00
    assert 24_000_00 <= by_key["NFO:NIFTY:2026-12-29:FUT"].start_price <= 28_000_00
    assert 100_00 <= by_key["NFO:NIFTY:2026-12-29:26000:CE"].start_price <= 300_00


@pytest.mark.parametrize(
    ("session", "nifty", "sensex"),
    [
        (date(2026, 12, 29), date(2026, 12, 29), date(2026, 12, 31)),  # expiry day: still that contract
        (date(2026, 12, 30), date(2027, 1, 26), date(2026, 12, 31)),  # the day after: the next month's
        (date(2027, 1, 4), date(2027, 1, 26), date(2027, 1, 28)),
        (date(2030, 6, 3), date(2030, 6, 25), date(2030, 6, 27)),
    ],
)
def test_derivatives_roll_to_the_nearest_unexpired_contract(session: date, nifty: date, sensex: date) -> None:
    entries = load_universe(session_day=session)
    expiries = {(e.instrument.exchange, e.instrument.symbol): e.instrument.expiry for e in entries if e.instrument.expiry}
    assert expiries[(Exchange.NFO, "NIFTY")] == nifty and expiries[(Exchange.BFO, "SENSEX")] == sensex
    assert all(expiry >= session for expiry in expiries.values())


def test_an_expiry_on_a_holiday_moves_to_the_previous_session() -> None:
    republic_day = date(2027, 1, 26)
    entries = load_universe(session_day=date(2027, 1, 4), is_session=lambda _exchange, day: day.weekday() < 5 and day != republic_day)
    nifty = next(e.instrument for e in entries if e.instrument.key.startswith("NFO:NIFTY:") and e.instrument.right is None)
    assert nifty.expiry == date(2027, 1, 25) and nifty.key == "NFO:NIFTY:2027-01-25:FUT"


def test_a_rolled_entry_must_not_carry_a_key_and_its_rule_must_be_known(tmp_path: Path) -> None:
    future = {"exchange": "NFO", "symbol": "NIFTY", "underlying": "NIFTY", "segment": "FUTURES", "lot_size": 65,
              "tick_size_paise": 5, "freeze_quantity": 1755, "expiry": {"monthly": "Tue"}, "start_price_paise": 2615000}
    with pytest.raises(UniverseError, match="field 'key' must be left out when the expiry is a rule"):
        load_universe(_write(tmp_path, {"instruments": [{**future, "key": "NFO:NIFTY:2026-12-29:FUT"}]}), session_day=SESSION)
    for rule in ({"monthly": "Sat"}, {"weekly": "Tue"}, {"monthly": "Tue", "extra": 1}):
        with pytest.raises(UniverseError, match="field 'expiry' must be a date"):
            load_universe(_write(tmp_path, {"instruments": [{**future, "expiry": rule}]}), session_day=SESSION)


def test_instrument_key_formats_strike_in_rupees() -> None:
    expiry = date(2026, 12, 29)
    assert instrument_key(Exchange.NSE, "SBIN") == "NSE:SBIN"
    assert instrument_key(Exchange.NFO, "NIFTY", expiry) == "NFO:NIFTY:2026-12-29:FUT"
    assert instrument_key(Exchange.NFO, "NIFTY", expiry, 26000_00, OptionRight.PUT) == "NFO:NIFTY:2026-12-29:26000:PE"
    assert instrument_key(Exchange.NFO, "X", expiry, 102_50, OptionRight.CALL) == "NFO:X:2026-12-29:102.50:CE"


def _write(tmp_path: Path, document: object) -> Path:
    path = tmp_path / "instruments.json"
    path.write_text(json.dumps(document), encoding="utf-8")
    return path


_GOOD = {
    "key": "NSE:SBIN",
    "exchange": "NSE",
    "symbol": "SBIN",
    "underlying": "SBIN",
    "segment": "CASH",
    "lot_size": 1,
    "tick_size_paise": 5,
    "freeze_quantity": 100000,
    "start_price_paise": 95000,
}


def test_loads_from_an_explicit_path(tmp_path: Path) -> None:
    entries = load_universe(str(_write(tmp_path, {"instruments": [_GOOD]})))
    assert [entry.instrument.key for entry in entries] == ["NSE:SBIN"]
    assert entries[0].start_price == 95000


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"tick_size_paise": "5"}, "field 'tick_size_paise'"),
        ({"tick_size_paise": True}, "field 'tick_size_paise'"),
        ({"lot_size": 0}, "field 'lot_size'"),
        ({"symbol": ""}, "field 'symbol'"),
        ({"exchange": "MCX"}, "field 'exchange'"),
        ({"segment": "SWAPS"}, "field 'segment'"),
        ({"expiry": "29-12-2026", "segment": "FUTURES", "exchange": "NFO"}, "field 'expiry'"),
        ({"start_price_paise": 95003}, "field 'start_price_paise'"),
        ({"start_price_paise": -5}, "field 'start_price_paise'"),
        ({"key": "NSE:SBI"}, "field 'key'"),
        ({"freeze_quantity": 0}, "field 'freeze_quantity'"),
        ({"expiry": "2026-12-29"}, "no expiry"),
        ({"exchange": "NFO"}, "cash instruments trade on NSE or BSE"),
    ],
)
def test_malformed_entry_names_entry_and_field(tmp_path: Path, change: dict[str, object], expected: str) -> None:
    bad = {**_GOOD, **change}
    path = _write(tmp_path, {"instruments": [_GOOD | {"key": "NSE:ITC", "symbol": "ITC", "underlying": "ITC"}, bad]})
    with pytest.raises(ValueError, match="instruments\\[1\\]") as raised:
        load_universe(path)
    assert isinstance(raised.value, UniverseError)
    assert expected in str(raised.value)


def test_missing_field_is_named(tmp_path: Path) -> None:
    bad = copy.deepcopy(_GOOD)
    del bad["underlying"]
    with pytest.raises(UniverseError, match=r"instruments\[0\] \(NSE:SBIN\): field 'underlying'"):
        load_universe(_write(tmp_path, {"instruments": [bad]}))


def test_duplicate_keys_are_refused(tmp_path: Path) -> None:
    with pytest.raises(UniverseError, match=r"instruments\[1\] \(NSE:SBIN\): duplicate key"):
        load_universe(_write(tmp_path, {"instruments": [_GOOD, _GOOD]}))


@pytest.mark.parametrize(
    ("document", "expected"),
    [
        ({"note": "no list"}, "'instruments' list"),
        ([_GOOD], "'instruments' list"),
        ({"instruments": []}, "no instruments"),
        ({"instruments": ["NSE:SBIN"]}, r"instruments\[0\]: expected an object"),
    ],
)
def test_malformed_document(tmp_path: Path, document: object, expected: str) -> None:
    with pytest.raises(UniverseError, match=expected):
        load_universe(_write(tmp_path, document))


def test_unreadable_and_missing_files(tmp_path: Path) -> None:
    broken = tmp_path / "broken.json"
    broken.write_text("{not json", encoding="utf-8")
    with pytest.raises(UniverseError, match="not readable JSON"):
        load_universe(broken)
    with pytest.raises(UniverseError, match="not found"):
        load_universe(tmp_path / "absent.json")
