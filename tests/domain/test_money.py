"""Money at the edges: rupees -> integer paise, Indian digit grouping, exact rounded division."""

from __future__ import annotations

import re
from decimal import Decimal
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.domain.money import (
    MoneyError,
    format_inr,
    group_indian,
    paise_to_rupees,
    round_div,
    rupees_to_paise,
)

# --------------------------------------------------------------------------- rupees_to_paise


@pytest.mark.parametrize(
    ("value", "paise"),
    [
        ("100", 10_000),
        ("100.5", 10_050),
        ("100.05", 10_005),
        ("0.01", 1),
        ("0.10000", 10),  # trailing zeros beyond the paisa are fine
        ("  2.50 ", 250),  # surrounding whitespace is tolerated by Decimal
        ("-12.34", -1_234),
        ("-0.00", 0),
        ("0", 0),
        ("1e3", 100_000),
        ("1.23E+1", 1_230),
        ("5E-2", 5),
        ("9999999999999999.99", 999_999_999_999_999_999),  # largest amount accepted
        ("-9999999999999999.99", -999_999_999_999_999_999),
        ("100." + "0" * 5_000, 10_000),  # many zero decimals are still an exact paise amount
    ],
)
def test_rupees_to_paise_from_str(value: str, paise: int) -> None:
    result = rupees_to_paise(value)
    assert result == paise
    assert type(result) is int


@pytest.mark.parametrize(
    ("value", "paise"),
    [
        (Decimal("1234.56"), 123_456),
        (Decimal("-0.01"), -1),
        (Decimal(7), 700),
        (Decimal("7.000"), 700),
        (Decimal("0E+100"), 0),
    ],
)
def test_rupees_to_paise_from_decimal(value: Decimal, paise: int) -> None:
    assert rupees_to_paise(value) == paise


@pytest.mark.parametrize(("value", "paise"), [(0, 0), (1, 100), (-3, -300), (2_500_000, 250_000_000)])
def test_rupees_to_paise_from_int(value: int, paise: int) -> None:
    result = rupees_to_paise(value)
    assert result == paise
    assert type(result) is int


@pytest.mark.parametrize(
    ("value", "paise"),
    [
        (0.1, 10),  # read through repr, not the binary value 0.1000000000000000055...
        (0.29, 29),  # 0.29 * 100 == 28.999999999999996 in binary floating point
        (1.15, 115),  # 1.15 * 100 == 114.99999999999999
        (19.99, 1_999),
        (-2.5, -250),
        (100.0, 10_000),
        (1e3, 100_000),
    ],
)
def test_rupees_to_paise_from_float_uses_shortest_repr(value: float, paise: int) -> None:
    assert rupees_to_paise(value) == paise


@pytest.mark.parametrize(
    "value",
    [
        float("nan"),
        float("inf"),
        float("-inf"),
        Decimal("NaN"),
        Decimal("sNaN"),
        Decimal("Infinity"),
        Decimal("-Infinity"),
        "NaN",
        "inf",
        "-Infinity",
    ],
    ids=repr,
)
def test_rupees_to_paise_refuses_non_finite(value: object) -> None:
    with pytest.raises(MoneyError, match="finite"):
        rupees_to_paise(value)  # type: ignore[arg-type]


@pytest.mark.parametrize("value", [True, False])
def test_rupees_to_paise_refuses_bool(value: bool) -> None:
    # bool is an int subclass: True must not silently become one rupee.
    with pytest.raises(MoneyError):
        rupees_to_paise(value)


@pytest.mark.parametrize("value", ["abc", "", "   ", "1,000", "₹100", "1.2.3", "--1", None, [1], {"a": 1}, object()], ids=repr)
def test_rupees_to_paise_refuses_garbage(value: object) -> None:
    with pytest.raises(MoneyError, match="not a number"):
        rupees_to_paise(value)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "value",
    [
        "0.001",
        "100.001",
        "-0.005",
        "5E-3",
        0.001,
        1.005,
        Decimal("99.999"),
        # More significant digits than Decimal's default 28-digit context: must not be rounded away.
        "1.000000000000000000000000000001",
        "1e-999999999",
    ],
    ids=repr,
)
def test_rupees_to_paise_refuses_sub_paisa(value: object) -> None:
    with pytest.raises(MoneyError, match="finer than one paisa"):
        rupees_to_paise(value)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "value",
    ["1e16", "10000000000000000", "-1e16", "1e999999", "1e999999999", 10**16, 10**5000, 1e300, Decimal("1E+400")],
    ids=["1e16", "10**16-str", "-1e16", "1e999999", "1e999999999", "int-10**16", "int-10**5000", "float-1e300", "dec-1e400"],
)
def test_rupees_to_paise_refuses_absurdly_large_amounts_quickly(value: object) -> None:
    # Not an exception from decimal (Overflow) and not a silently rounded amount.
    with pytest.raises(MoneyError, match="too large"):
        rupees_to_paise(value)  # type: ignore[arg-type]


def test_rupees_to_paise_never_rounds_large_amounts() -> None:
    # 16 significant rupee digits + 2 paise digits: more than a float holds, exactly what we get back.
    assert rupees_to_paise("1234567890123456.78") == 123_456_789_012_345_678
    assert rupees_to_paise(Decimal("-1234567890123456.78")) == -123_456_789_012_345_678


@settings(max_examples=200)
@given(st.integers(min_value=-(10**18) + 1, max_value=10**18 - 1))
def test_rupees_to_paise_inverts_paise_to_rupees(paise: int) -> None:
    rupees = paise_to_rupees(paise)
    assert rupees.as_tuple().exponent == -2
    assert rupees_to_paise(rupees) == paise
    assert rupees_to_paise(str(rupees)) == paise


@settings(max_examples=200)
@given(st.integers(min_value=-(10**12), max_value=10**12), st.integers(min_value=1, max_value=9))
def test_rupees_to_paise_refuses_any_non_zero_third_decimal(paise: int, digit: int) -> None:
    text = f"{paise_to_rupees(paise)}{digit}"  # "12.34" -> "12.345"
    with pytest.raises(MoneyError, match="finer than one paisa"):
        rupees_to_paise(text)
    # ... while a trailing zero is harmless.
    assert rupees_to_paise(f"{paise_to_rupees(paise)}0") == paise


def test_paise_to_rupees_is_exact() -> None:
    assert paise_to_rupees(123_456) == Decimal("1234.56")
    assert paise_to_rupees(-5) == Decimal("-0.05")
    assert str(paise_to_rupees(0)) == "0.00"
    assert str(paise_to_rupees(10**18 - 1)) == "9999999999999999.99"


# --------------------------------------------------------------------------- format_inr


@pytest.mark.parametrize(
    ("paise", "text"),
    [
        (0, "₹0.00"),
        (1, "₹0.01"),
        (5, "₹0.05"),
        (99, "₹0.99"),
        (100, "₹1.00"),
        (99_999, "₹999.99"),
        (100_000, "₹1,000.00"),
        (1_234_567, "₹12,345.67"),
        (10_000_000, "₹1,00,000.00"),  # one lakh
        (123_456_789, "₹12,34,567.89"),
        (1_234_567_890, "₹1,23,45,678.90"),
        (1_000_000_000, "₹1,00,00,000.00"),  # one crore
        (100_000_000_000_000, "₹10,00,00,00,00,000.00"),
        (-1, "-₹0.01"),
        (-150, "-₹1.50"),
        (-1_234_567_890, "-₹1,23,45,678.90"),
    ],
)
def test_format_inr(paise: int, text: str) -> None:
    assert format_inr(paise) == text


def test_format_inr_without_symbol() -> None:
    assert format_inr(1_234_567_890, symbol=False) == "1,23,45,678.90"
    assert format_inr(-7, symbol=False) == "-0.07"
    assert format_inr(0, symbol=False) == "0.00"


@settings(max_examples=300)
@given(st.integers(min_value=-(10**20), max_value=10**20))
def test_format_inr_round_trips_through_rupees_to_paise(paise: int) -> None:
    text = format_inr(paise)
    assert re.fullmatch(r"-?₹\d{1,2}(,\d{2})*,\d{3}\.\d{2}|-?₹\d{1,3}\.\d{2}", text), text
    assert text.startswith("-") == (paise < 0)
    if abs(paise) < 10**18:
        assert rupees_to_paise(text.replace("₹", "").replace(",", "")) == paise


# --------------------------------------------------------------------------- group_indian


@pytest.mark.parametrize(
    ("digits", "grouped"),
    [
        ("", ""),
        ("0", "0"),
        ("12", "12"),
        ("123", "123"),
        ("1234", "1,234"),
        ("12345", "12,345"),
        ("123456", "1,23,456"),
        ("1234567", "12,34,567"),
        ("12345678", "1,23,45,678"),
        ("123456789", "12,34,56,789"),
        ("1000000000", "1,00,00,00,000"),
    ],
)
def test_group_indian_examples(digits: str, grouped: str) -> None:
    assert group_indian(digits) == grouped


@settings(max_examples=300)
@given(st.text(alphabet="0123456789", min_size=1, max_size=40))
def test_group_indian_structure(digits: str) -> None:
    grouped = group_indian(digits)
    # Stripping the commas gives the digits back, unchanged and in order.
    assert grouped.replace(",", "") == digits
    groups = grouped.split(",")
    # The last group holds three digits (or all of them when there are three or fewer) ...
    assert groups[-1] == digits[-3:]
    if len(digits) <= 3:
        assert groups == [digits]
        return
    # ... the leading group one or two, and every group in between exactly two.
    assert len(groups[0]) in (1, 2)
    assert all(len(g) == 2 for g in groups[1:-1])
    assert len(groups) == 1 + (len(digits) - 3 + 1) // 2


# --------------------------------------------------------------------------- round_div


def _half_even(fraction: Fraction) -> int:
    """Reference: Python's round() on a Fraction rounds half to even, exactly."""
    return round(fraction)


@settings(max_examples=500)
@given(
    st.integers(min_value=-(10**30), max_value=10**30),
    st.integers(min_value=-(10**15), max_value=10**15).filter(lambda d: d != 0),
)
def test_round_div_matches_exact_half_even(numerator: int, denominator: int) -> None:
    assert round_div(numerator, denominator) == _half_even(Fraction(numerator, denominator))


@settings(max_examples=300)
@given(st.integers(min_value=-(10**9), max_value=10**9), st.sampled_from([2, -2, 4, -4, 10, -10]))
def test_round_div_ties_go_to_even(k: int, denominator: int) -> None:
    # numerator / denominator lies exactly halfway between k and k + 1 (for positive denominators).
    numerator = (2 * k + 1) * denominator // 2
    result = round_div(numerator, denominator)
    assert result % 2 == 0
    assert abs(Fraction(numerator, denominator) - result) == Fraction(1, 2)


@pytest.mark.parametrize(
    ("numerator", "denominator", "expected"),
    [
        (5, 2, 2),
        (7, 2, 4),
        (-5, 2, -2),
        (-7, 2, -4),
        (5, -2, -2),
        (-5, -2, 2),
        (1, 3, 0),
        (2, 3, 1),
        (-2, 3, -1),
        (0, 7, 0),
        (10**40 + 1, 2, 5 * 10**39),  # larger than any float keeps exactly
        (10**40 + 3, 2, 5 * 10**39 + 2),
    ],
)
def test_round_div_examples(numerator: int, denominator: int, expected: int) -> None:
    assert round_div(numerator, denominator) == expected


@pytest.mark.parametrize("numerator", [0, 1, -1, 10**20])
def test_round_div_by_zero(numerator: int) -> None:
    with pytest.raises(ZeroDivisionError):
        round_div(numerator, 0)
