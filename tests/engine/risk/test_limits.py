"""The limits document: parsing, exact values, resolution, default deny, and a clear error for every bad input."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from app.brokers.paper import load_universe
from app.domain.instruments import Exchange, Instrument, Segment
from app.domain.orders import OrderSource, OrderType, Product
from app.engine.risk.limits import (
    DEFAULT_LIMITS_PATH,
    LimitsError,
    RiskLimits,
    load_limits_file,
    parse_document,
    parse_limits,
)
from tests.support.calendar import PAPER_SESSION_DAY

NIFTY_FUT = "NFO:NIFTY:2026-12-29:FUT"
NIFTY_CALL = "NFO:NIFTY:2026-12-29:26000:CE"
RELIANCE_FUT = "NFO:RELIANCE:2026-12-29:FUT"


def base() -> dict[str, Any]:
    return {
        "desk": {
            "max_gross_exposure_inr": 2_500_000,
            "max_net_exposure_inr": 2_000_000,
            "daily_loss_limit_inr": 25_000,
            "max_open_orders": 20,
            "max_orders_per_day": 500,
            "duplicate_window_seconds": 2,
            "reference_max_age_seconds": 15,
            "allowed_order_types": ["LIMIT"],
            "allowed_products": ["INTRADAY"],
            "max_orders_per_second": {"default": 2, "ticket": 5},
        },
        "defaults": {
            "max_order_lots": 100,
            "max_order_value_inr": 200_000,
            "price_collar_pct": 5,
            "max_position_lots": 300,
            "max_position_value_inr": 500_000,
        },
        "underlyings": {
            "NIFTY": {
                "max_order_lots": 2,
                "max_position_lots": 4,
                "max_order_value_inr": 2_000_000,
                "max_position_value_inr": 4_000_000,
                "max_gross_exposure_inr": 3_000_000,
            },
        },
        "instruments": {
            "NSE:RELIANCE": {"max_order_lots": 50},
            NIFTY_CALL: {"max_order_lots": 1, "price_collar_pct": 20},
        },
    }


def problems_of(document: dict[str, Any]) -> list[str]:
    with pytest.raises(LimitsError) as caught:
        parse_document(document, "test.toml")
    assert "test.toml" in str(caught.value)
    return caught.value.problems


def with_value(section: tuple[str, ...], key: str, value: Any) -> dict[str, Any]:
    document = base()
    target = document
    for name in section:
        target = target.setdefault(name, {})
    target[key] = value
    return document


def shipped_text() -> str:
    return DEFAULT_LIMITS_PATH.read_text(encoding="utf-8")


# -- the shipped default ---------------------------------------------------------------------------


def test_the_shipped_default_covers_every_paper_instrument() -> None:
    limits = load_limits_file(DEFAULT_LIMITS_PATH)
    universe = [entry.instrument for entry in load_universe(session_day=PAPER_SESSION_DAY)]
    coverage = limits.review(universe)
    assert len(universe) == 27
    assert len(coverage.covered) == 27 and coverage.uncovered == ()
    assert coverage.warnings == ()
    assert limits.desk.daily_loss_limit == 25_000 * 100
    assert set(limits.desk.max_orders_per_second) == set(OrderSource)


def test_the_shipped_default_lets_one_lot_of_every_paper_instrument_through() -> None:
    limits = load_limits_file(DEFAULT_LIMITS_PATH)
    for entry in load_universe(session_day=PAPER_SESSION_DAY):
        instrument = entry.instrument
        caps = limits.for_instrument(instrument)
        assert caps is not None, instrument.key
        lot_value = instrument.lot_size * entry.start_price
        assert caps.max_order_quantity >= instrument.lot_size, instrument.key
        assert lot_value <= caps.max_order_value <= caps.max_position_value, instrument.key
        assert lot_value <= limits.desk.max_net_exposure <= limits.desk.max_gross_exposure
        underlying = limits.for_underlying(instrument.underlying)
        assert underlying is None or lot_value <= underlying.max_net_exposure <= underlying.max_gross_exposure


# -- resolution ------------------------------------------------------------------------------------


def test_instrument_overrides_underlying_overrides_defaults(instruments: dict[str, Instrument]) -> None:
    limits = parse_document(base(), "test.toml")
    reliance = limits.for_instrument(instruments["NSE:RELIANCE"])
    assert reliance is not None
    assert reliance.max_order_quantity == 50  # its own section
    assert reliance.max_order_value == 200_000 * 100  # [defaults]
    assert reliance.max_position_quantity == 300 and reliance.price_collar_bps == 500
    future = limits.for_instrument(instruments[NIFTY_FUT])
    assert future is not None
    assert future.max_order_quantity == 2 * 65 and future.max_position_quantity == 4 * 65  # [underlyings.NIFTY]
    assert future.price_collar_bps == 500  # [defaults]
    call = limits.for_instrument(instruments[NIFTY_CALL])
    assert call is not None
    assert call.max_order_quantity == 65 and call.price_collar_bps == 2_000  # its own section
    assert call.max_position_value == 4_000_000 * 100  # [underlyings.NIFTY]
    assert call.underlying == "NIFTY" and call.instrument_key == NIFTY_CALL


def test_order_quantity_is_clamped_to_the_freeze_quantity(instruments: dict[str, Instrument]) -> None:
    document = base()
    document["instruments"][RELIANCE_FUT] = {"max_order_lots": 50, "max_position_lots": 60}
    caps = parse_document(document, "test.toml").for_instrument(instruments[RELIANCE_FUT])
    assert caps is not None
    assert caps.max_order_quantity == 10_000  # 50 lots x 500 = 25,000 is above the freeze quantity
    assert caps.max_position_quantity == 60 * 500


def test_default_deny_covers_only_named_instruments_and_underlyings(instruments: dict[str, Instrument]) -> None:
    limits = parse_document(base(), "test.toml")
    assert limits.for_instrument(instruments["NSE:TCS"]) is None  # [defaults] alone covers nothing
    assert limits.for_instrument(instruments["BSE:RELIANCE"]) is None  # NSE:RELIANCE's section is not its
    assert limits.for_instrument(instruments[RELIANCE_FUT]) is None
    assert limits.for_underlying("RELIANCE") is None
    nifty = limits.for_underlying("NIFTY")
    assert nifty is not None and nifty.max_gross_exposure == nifty.max_net_exposure == 3_000_000 * 100


def test_deny_all_covers_nothing_and_allows_nothing(instruments: dict[str, Instrument]) -> None:
    limits = RiskLimits.deny_all()
    assert all(limits.for_instrument(instrument) is None for instrument in instruments.values())
    assert limits.for_underlying("NIFTY") is None
    assert limits.desk.allowed_order_types == frozenset() and limits.desk.allowed_products == frozenset()
    assert limits.desk.max_gross_exposure == 0 and limits.desk.daily_loss_limit == 0
    assert set(limits.desk.max_orders_per_second.values()) == {0}
    assert limits.document() == {}


def test_instrument_limits_are_memoised_per_key(instruments: dict[str, Instrument]) -> None:
    limits = parse_document(base(), "test.toml")
    first = limits.for_instrument(instruments["NSE:RELIANCE"])
    assert first is not None and limits.for_instrument(instruments["NSE:RELIANCE"]) is first


def test_restricted_instruments_stay_covered_and_are_marked(instruments: dict[str, Instrument]) -> None:
    limits = parse_document(with_value(("desk",), "restricted", ["NSE:RELIANCE"]), "test.toml")
    reliance = limits.for_instrument(instruments["NSE:RELIANCE"])
    future = limits.for_instrument(instruments[NIFTY_FUT])
    assert reliance is not None and reliance.restricted
    assert future is not None and not future.restricted


def test_underlying_net_cap_defaults_to_its_gross_cap() -> None:
    document = base()
    document["underlyings"]["NIFTY"]["max_net_exposure_inr"] = 1_000_000
    nifty = parse_document(document, "test.toml").for_underlying("NIFTY")
    assert nifty is not None and (nifty.max_gross_exposure, nifty.max_net_exposure) == (300_000_000, 100_000_000)


def test_desk_values_compile_to_paise_nanoseconds_and_every_source() -> None:
    desk = parse_document(base(), "test.toml").desk
    assert desk.max_gross_exposure == 250_000_000 and desk.trailing_loss_limit is None
    assert desk.duplicate_window_ns == 2_000_000_000 and desk.reference_max_age_ns == 15_000_000_000
    assert desk.allowed_order_types == frozenset({OrderType.LIMIT})
    assert desk.allowed_products == frozenset({Product.INTRADAY})
    assert desk.enforce_trading_hours is True
    rates = desk.max_orders_per_second
    assert rates[OrderSource.TICKET] == 5
    assert all(rates[source] == 2 for source in OrderSource if source is not OrderSource.TICKET)


def test_trailing_loss_limit_above_the_daily_limit_is_allowed() -> None:
    desk = parse_document(with_value(("desk",), "trailing_loss_limit_inr", 40_000), "test.toml").desk
    assert desk.trailing_loss_limit == 4_000_000 and desk.daily_loss_limit == 2_500_000


def test_breakers_default_when_left_out() -> None:
    breakers = parse_document(base(), "test.toml").breakers
    assert breakers.warn_fractions == (0.8, 0.9)
    assert breakers.error_storm_count == 5 and breakers.stale_data_seconds == 30.0


# -- exact values ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "paise"),
    [("0.05", 5), (0.05, 5), (0.1, 10), (1e3, 100_000), ("1e3", 100_000), (25_000, 2_500_000),
     ("1250.50", 125_050), ("25_000", 2_500_000), ("12345678.91", 1_234_567_891)],
)
def test_money_is_read_exactly(given: Any, paise: int) -> None:
    desk = parse_document(with_value(("desk",), "daily_loss_limit_inr", given), "test.toml").desk
    assert desk.daily_loss_limit == paise


@pytest.mark.parametrize(("given", "bps"), [(5, 500), (2.5, 250), ("0.01", 1), (100, 10_000), ("12.34", 1_234)])
def test_percentages_become_basis_points(instruments: dict[str, Instrument], given: Any, bps: int) -> None:
    limits = parse_document(with_value(("defaults",), "price_collar_pct", given), "test.toml")
    caps = limits.for_instrument(instruments["NSE:RELIANCE"])
    assert caps is not None and caps.price_collar_bps == bps


@pytest.mark.parametrize(("given", "ns"), [(0, 0), (0.3, 300_000_000), ("1.5", 1_500_000_000), (86_400, 86_400_000_000_000)])
def test_duplicate_window_in_nanoseconds_and_zero_turns_it_off(given: Any, ns: int) -> None:
    desk = parse_document(with_value(("desk",), "duplicate_window_seconds", given), "test.toml").desk
    assert desk.duplicate_window_ns == ns


def test_the_normalised_document_ignores_spelling_and_round_trips() -> None:
    spelled = [25_000, "25000", 25_000.0, "25_000", "2.5e4", "25000.00"]
    documents = [
        parse_document(with_value(("desk",), "daily_loss_limit_inr", value), "test.toml").document() for value in spelled
    ]
    assert all(document == documents[0] for document in documents)
    assert documents[0]["desk"]["daily_loss_limit_inr"] == "25000.00"
    reordered = base()
    reordered["desk"]["allowed_order_types"] = ["MARKET", "limit", "LIMIT"]
    again = parse_document(reordered, "test.toml").document()
    assert again["desk"]["allowed_order_types"] == ["LIMIT", "MARKET"]
    restored = parse_document(json.loads(json.dumps(again)), "stored").document()
    assert restored == again


def test_the_shipped_default_round_trips_through_its_document() -> None:
    limits = load_limits_file(DEFAULT_LIMITS_PATH)
    restored = parse_document(json.loads(json.dumps(limits.document())), "stored")
    assert restored.document() == limits.document()
    assert restored.desk == limits.desk and restored.breakers == limits.breakers


# -- bad input: each one named ---------------------------------------------------------------------

BAD_VALUES: list[tuple[tuple[str, ...], str, Any, str]] = [
    (("desk",), "max_gross_exposure_inr", -5, "desk.max_gross_exposure_inr = -5: must be more than zero"),
    (("desk",), "max_gross_exposure_inr", 0, "desk.max_gross_exposure_inr = 0: must be more than zero"),
    (("desk",), "daily_loss_limit_inr", "0.001", "desk.daily_loss_limit_inr = '0.001': finer than one paisa"),
    (("desk",), "daily_loss_limit_inr", "lots", "desk.daily_loss_limit_inr = 'lots': not a number"),
    (("desk",), "daily_loss_limit_inr", True, "desk.daily_loss_limit_inr = True: not a"),
    (("desk",), "daily_loss_limit_inr", float("inf"), "desk.daily_loss_limit_inr = inf: not a finite"),
    (("desk",), "daily_loss_limit_inr", float("nan"), "desk.daily_loss_limit_inr = nan: not a finite"),
    (("desk",), "trailing_loss_limit_inr", -1, "desk.trailing_loss_limit_inr = -1: must be more than zero"),
    (("desk",), "max_open_orders", 0, "desk.max_open_orders = 0: out of range"),
    (("desk",), "max_orders_per_day", -3, "desk.max_orders_per_day = -3: out of range"),
    (("desk",), "max_orders_per_day", 1.5, "desk.max_orders_per_day = 1.5: not a whole number"),
    (("desk",), "max_orders_per_day", "500", "desk.max_orders_per_day = '500': not a whole number"),
    (("desk",), "duplicate_window_seconds", -1, "desk.duplicate_window_seconds = -1: out of range"),
    (("desk",), "reference_max_age_seconds", 0, "desk.reference_max_age_seconds = 0: out of range"),
    (("desk",), "reference_max_age_seconds", float("nan"), "desk.reference_max_age_seconds = nan: not a finite"),
    (("desk",), "allowed_order_types", ["LIMIT", "STOP"], "desk.allowed_order_types = ['LIMIT', 'STOP']: 'STOP' is unknown"),
    (("desk",), "allowed_order_types", [], "desk.allowed_order_types = []: not a non-empty list"),
    (("desk",), "allowed_products", ["MTF"], "desk.allowed_products = ['MTF']: 'MTF' is unknown"),
    (("desk",), "enforce_trading_hours", "yes", "desk.enforce_trading_hours = 'yes': not true or false"),
    (("desk",), "restricted", ["RELIANCE"], "desk.restricted = ['RELIANCE']: 'RELIANCE' is not an instrument key"),
    (("desk",), "max_orders_per_second", {"default": 2, "tiket": 5}, "key 'tiket' is not an order source (did you mean 'ticket'?)"),
    (("desk",), "max_orders_per_second", {"ticket": 5}, "no rate for api, strategy"),
    (("desk",), "max_orders_per_second", {"default": 0}, "desk.max_orders_per_second = {...}: default = 0: out of range"),
    (("breakers",), "stale_data_seconds", float("inf"), "breakers.stale_data_seconds = inf: not a finite"),
    (("breakers",), "broker_disconnect_seconds", 0, "breakers.broker_disconnect_seconds = 0: out of range"),
    (("breakers",), "error_storm_count", 0, "breakers.error_storm_count = 0: out of range"),
    (("breakers",), "warn_fractions", [0.9, 0.8], "breakers.warn_fractions = [0.9, 0.8]: not strictly increasing"),
    (("breakers",), "warn_fractions", [0.8, 0.8], "breakers.warn_fractions = [0.8, 0.8]: not strictly increasing"),
    (("breakers",), "warn_fractions", [0, 0.5], "breakers.warn_fractions = [0, 0.5]: 0 is not a number between 0 and 1"),
    (("breakers",), "warn_fractions", [0.5, 1], "1 is not a number between 0 and 1"),
    (("breakers",), "warn_fractions", [], "breakers.warn_fractions = []: not a non-empty list"),
    (("defaults",), "price_collar_pct", 0, "defaults.price_collar_pct = 0: out of range"),
    (("defaults",), "price_collar_pct", 100.01, "defaults.price_collar_pct = 100.01: out of range"),
    (("defaults",), "price_collar_pct", -5, "defaults.price_collar_pct = -5: out of range"),
    (("defaults",), "price_collar_pct", 0.001, "defaults.price_collar_pct = 0.001: finer than 0.01 %"),
    (("defaults",), "max_order_lots", 0, "defaults.max_order_lots = 0: out of range"),
    (("underlyings", "NIFTY"), "max_position_value_inr", -1, "underlyings.NIFTY.max_position_value_inr = -1: must be more"),
    (("instruments", "NSE:RELIANCE"), "max_order_lots", 2.5, 'instruments."NSE:RELIANCE".max_order_lots = 2.5: not a whole'),
]


@pytest.mark.parametrize(("section", "key", "value", "expected"), BAD_VALUES, ids=[f"{'.'.join(s)}.{k}={v!r}" for s, k, v, _ in BAD_VALUES])
def test_a_bad_value_is_refused_naming_field_value_and_what_is_allowed(
    section: tuple[str, ...], key: str, value: Any, expected: str
) -> None:
    problems = problems_of(with_value(section, key, value))
    assert len(problems) == 1, problems
    assert expected in problems[0]
    assert "; allowed: " in problems[0]


FIELDS = {
    ("desk",): ["max_gross_exposure_inr", "max_net_exposure_inr", "daily_loss_limit_inr", "trailing_loss_limit_inr",
                "max_open_orders", "max_orders_per_day", "duplicate_window_seconds", "reference_max_age_seconds",
                "allowed_order_types", "allowed_products", "enforce_trading_hours", "restricted", "max_orders_per_second"],
    ("breakers",): ["broker_disconnect_seconds", "stale_data_seconds", "error_storm_count", "error_storm_seconds", "warn_fractions"],
    ("defaults",): ["max_order_lots", "max_order_value_inr", "price_collar_pct", "max_position_lots", "max_position_value_inr"],
    ("underlyings", "NIFTY"): ["max_gross_exposure_inr", "max_net_exposure_inr"],
}


@pytest.mark.parametrize(("section", "key"), [(section, key) for section, keys in FIELDS.items() for key in keys])
def test_every_field_says_what_it_allows(section: tuple[str, ...], key: str) -> None:
    problems = problems_of(with_value(section, key, {"bogus": 1}))
    assert problems[0].startswith(".".join(section) + "." + key)
    assert "; allowed: " in problems[0] and not problems[0].endswith("allowed: ")


@pytest.mark.parametrize("key", ["max_gross_exposure_inr", "max_net_exposure_inr", "daily_loss_limit_inr", "max_open_orders",
                                 "max_orders_per_day", "duplicate_window_seconds", "reference_max_age_seconds",
                                 "allowed_order_types", "allowed_products", "max_orders_per_second"])
def test_a_missing_required_desk_field_is_named(key: str) -> None:
    document = base()
    del document["desk"][key]
    problems = problems_of(document)
    assert len(problems) == 1 and problems[0].startswith(f"desk.{key}: missing; allowed: ")


def test_a_missing_desk_table_is_named() -> None:
    document = base()
    del document["desk"]
    assert problems_of(document) == ["desk: missing; allowed: a [desk] table"]


def test_a_table_given_as_a_value_is_refused() -> None:
    document = base()
    document["desk"] = 5
    assert problems_of(document)[0].startswith("desk = 5: must be a table")


@pytest.mark.parametrize(
    ("section", "key", "hint"),
    [((), "desks", "did you mean desk?"), (("desk",), "daily_loss_limt_inr", "did you mean daily_loss_limit_inr?"),
     (("breakers",), "warn_fraction", "did you mean warn_fractions?"),
     (("defaults",), "max_order_lot", "did you mean max_order_lots?"),
     (("underlyings", "NIFTY"), "max_gros_exposure_inr", "did you mean max_gross_exposure_inr?"),
     (("instruments", "NSE:RELIANCE"), "max_gross_exposure_inr", "allowed in [instruments.\"NSE:RELIANCE\"]")],
)
def test_an_unknown_key_is_refused_with_a_suggestion(section: tuple[str, ...], key: str, hint: str) -> None:
    problems = problems_of(with_value(section, key, 1))
    assert len(problems) == 1
    path = ".".join(f'"{part}"' if ":" in part else part for part in (*section, key))
    assert problems[0].startswith(f"{path}: unknown key")
    assert hint in problems[0]


@pytest.mark.parametrize("key", ["RELIANCE", "XYZ:RELIANCE", "NSE: RELIANCE", "nse:RELIANCE", "NSE:"])
def test_a_malformed_instrument_key_is_refused(key: str) -> None:
    document = base()
    document["instruments"][key] = {}
    problems = problems_of(document)
    assert len(problems) == 1 and "is not an instrument key" in problems[0] and "EXCHANGE:SYMBOL" in problems[0]


def test_a_malformed_underlying_name_is_refused() -> None:
    document = base()
    document["underlyings"]["NSE:NIFTY"] = {}
    assert "'NSE:NIFTY' is not an underlying name" in problems_of(document)[0]


def test_every_problem_is_listed_one_per_line() -> None:
    document = with_value(("desk",), "max_open_orders", 0)
    document["desk"]["daily_loss_limit_inr"] = -1
    document["defaults"]["price_collar_pct"] = 200
    with pytest.raises(LimitsError) as caught:
        parse_document(document, "mine.toml")
    assert len(caught.value.problems) == 3
    lines = str(caught.value).splitlines()
    assert lines[0] == "3 problems in limits mine.toml:"
    assert [line.removeprefix("  - ") for line in lines[1:]] == caught.value.problems


# -- contradictions ----------------------------------------------------------------------------------


def test_desk_net_cap_above_gross_cap_is_refused() -> None:
    problems = problems_of(with_value(("desk",), "max_net_exposure_inr", 3_000_000))
    assert len(problems) == 1 and problems[0].startswith("desk.max_net_exposure_inr = ₹30,00,000.00 is above")


def test_net_equal_to_gross_is_allowed() -> None:
    assert parse_document(with_value(("desk",), "max_net_exposure_inr", 2_500_000), "t").desk.max_net_exposure == 250_000_000


def test_position_lots_below_order_lots_in_defaults_is_refused() -> None:
    problems = problems_of(with_value(("defaults",), "max_position_lots", 50))
    assert len(problems) == 1
    assert problems[0].startswith("defaults: max_position_lots = 50 (from [defaults]) is below max_order_lots = 100")


def test_position_value_below_order_value_in_an_underlying_is_refused() -> None:
    problems = problems_of(with_value(("underlyings", "NIFTY"), "max_position_value_inr", 1_000_000))
    assert len(problems) == 1
    assert problems[0].startswith("underlyings.NIFTY: max_position_value_inr = ₹10,00,000.00 (from [underlyings.NIFTY])")
    assert "max_order_value_inr = ₹20,00,000.00" in problems[0]


def test_an_override_that_breaks_a_wider_limit_is_refused_where_it_is_made() -> None:
    # 5 lots per order against the 4-lot position limit NIFTY's section sets for every contract
    document = base()
    document["instruments"][NIFTY_FUT] = {"max_order_lots": 5}
    problems = problems_of(document)
    assert len(problems) == 1
    assert problems[0].startswith(f'instruments."{NIFTY_FUT}": max_position_lots = 4 (from [underlyings.NIFTY])')
    assert f'max_order_lots = 5 (from [instruments."{NIFTY_FUT}"])' in problems[0]


def test_an_override_of_the_defaults_is_checked_too() -> None:
    document = base()
    document["underlyings"]["TCS"] = {"max_order_value_inr": 600_000}  # above the default position value
    problems = problems_of(document)
    assert len(problems) == 1 and problems[0].startswith("underlyings.TCS: max_position_value_inr = ₹5,00,000.00 (from [defaults])")


def test_underlying_net_cap_above_its_gross_cap_is_refused() -> None:
    problems = problems_of(with_value(("underlyings", "NIFTY"), "max_net_exposure_inr", 4_000_000))
    assert len(problems) == 1 and problems[0].startswith("underlyings.NIFTY.max_net_exposure_inr = ₹40,00,000.00 is above")


def test_underlying_net_cap_without_a_gross_cap_is_refused() -> None:
    document = base()
    document["underlyings"]["TCS"] = {"max_net_exposure_inr": 100_000}
    problems = problems_of(document)
    assert len(problems) == 1 and problems[0].startswith("underlyings.TCS.max_net_exposure_inr is set without max_gross_exposure_inr")


def test_a_covering_section_left_incomplete_is_refused() -> None:
    document = base()
    del document["defaults"]["max_order_lots"]
    parse_document(document, "t")  # every covering section sets it itself
    document["underlyings"]["TCS"] = {}
    document["instruments"]["NSE:INFY"] = {}
    allowed = "allowed: a whole number of lots from 1 to 1000000000"
    assert problems_of(document) == [
        f"underlyings.TCS.max_order_lots: missing; set it here or in [defaults]; {allowed}",
        f'instruments."NSE:INFY".max_order_lots: missing; set it here or in [defaults]; {allowed}',
    ]


# -- TOML and files ----------------------------------------------------------------------------------


def test_the_shipped_text_parses_as_toml() -> None:
    assert parse_limits(shipped_text(), "x").document() == load_limits_file(DEFAULT_LIMITS_PATH).document()


def test_malformed_toml_is_refused_with_line_and_column() -> None:
    with pytest.raises(LimitsError) as caught:
        parse_limits("[desk]\nmax_open_orders = 20\n[underlyings\n", "broken.toml")
    assert caught.value.problems == [
        "not valid TOML: Expected ']' at the end of a table declaration (at line 3, column 13); see https://toml.io for the syntax"
    ]
    assert "broken.toml" in str(caught.value)


@pytest.mark.parametrize(("before", "after", "expected"), [
    ("stale_data_seconds = 30", "stale_data_seconds = nan", "breakers.stale_data_seconds = nan: not a finite number"),
    ("daily_loss_limit_inr = 25000", "daily_loss_limit_inr = inf", "desk.daily_loss_limit_inr = inf: not a finite"),
    ("daily_loss_limit_inr = 25000", "daily_loss_limit_inr = -inf", "desk.daily_loss_limit_inr = -inf: not a finite"),
    ("price_collar_pct = 5", "price_collar_pct = nan", "defaults.price_collar_pct = nan: not a finite number"),
])
def test_non_finite_toml_numbers_are_refused(before: str, after: str, expected: str) -> None:
    text = shipped_text()
    assert before in text
    with pytest.raises(LimitsError) as caught:
        parse_limits(text.replace(before, after), "x.toml")
    assert len(caught.value.problems) == 1 and caught.value.problems[0].startswith(expected)


def test_a_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(LimitsError) as caught:
        load_limits_file(tmp_path / "nope.toml")
    assert caught.value.problems == ["file not found"] and str(tmp_path / "nope.toml") in str(caught.value)


def test_a_file_that_is_not_utf8_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "latin1.toml"
    path.write_bytes(b"# \xe9\n[desk]\n")
    with pytest.raises(LimitsError) as caught:
        load_limits_file(path)
    assert caught.value.problems[0].startswith("not UTF-8 text")


# -- review against an instrument list -----------------------------------------------------------------


def test_review_reports_sections_that_meet_no_instrument_and_instruments_left_out(instruments: dict[str, Instrument]) -> None:
    document = base()
    document["instruments"]["NSE:GONE"] = {}
    document["underlyings"]["BANKNIFTY"] = {}
    document["desk"]["restricted"] = ["NSE:ALSOGONE"]
    coverage = parse_document(document, "t").review(instruments.values())
    assert set(coverage.covered) == {"NSE:RELIANCE", NIFTY_FUT, NIFTY_CALL}
    assert set(coverage.uncovered) == {"BSE:RELIANCE", "NSE:TCS", RELIANCE_FUT}
    warnings = "\n".join(coverage.warnings)
    assert 'instruments."NSE:GONE": not in the desk\'s instrument list' in warnings
    assert "underlyings.BANKNIFTY: no instrument in the desk's list has this underlying" in warnings
    assert "desk.restricted: NSE:ALSOGONE is not in the desk's instrument list" in warnings
    assert "3 of 6 instruments have no limits" in warnings


def test_an_instrument_whose_underlying_is_not_its_symbol_fails_closed_when_incomplete() -> None:
    # Parse time checks NSE:ABC with [underlyings.ABC] (its symbol); its real underlying is XYZ,
    # which has no section, so max_order_lots is set nowhere for it.
    document = base()
    del document["defaults"]["max_order_lots"]
    document["instruments"] = {"NSE:ABC": {}}
    document["underlyings"] = {"ABC": {"max_order_lots": 10}}
    limits = parse_document(document, "t")
    odd = Instrument("NSE:ABC", Exchange.NSE, "ABC", "XYZ", Segment.CASH, 1, 5, 100_000)
    assert limits.for_instrument(odd) is None
    coverage = limits.review([odd])
    assert coverage.uncovered == ("NSE:ABC",)
    assert any(warning.startswith("NSE:ABC: no value for max_order_lots") for warning in coverage.warnings)


def test_documents_are_independent_copies() -> None:
    limits = parse_document(base(), "t")
    document = limits.document()
    document["desk"]["max_open_orders"] = 1
    assert limits.document()["desk"]["max_open_orders"] == 20
    assert copy.deepcopy(limits.document()) == limits.document()
