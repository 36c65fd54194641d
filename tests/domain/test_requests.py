"""validate_request: loosely typed requests become typed NewOrders or stable-coded Rejections, never exceptions."""

from __future__ import annotations

import tracemalloc
from datetime import date
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.domain.instruments import Exchange, Instrument, OptionRight, Segment
from app.domain.orders import OrderSource, OrderType, Product, Side, Validity
from app.domain.rejections import Rejection, RejectReason
from app.domain.requests import NewOrder, OrderRequest, validate_request

R = RejectReason

CASH = Instrument(
    key="NSE:RELIANCE",
    exchange=Exchange.NSE,
    symbol="RELIANCE",
    underlying="RELIANCE",
    segment=Segment.CASH,
    lot_size=1,
    tick_size=5,
    freeze_quantity=100_000,
)
FUT = Instrument(
    key="NFO:NIFTY:2026-12-29:FUT",
    exchange=Exchange.NFO,
    symbol="NIFTY",
    underlying="NIFTY",
    segment=Segment.FUTURES,
    lot_size=65,
    tick_size=10,
    freeze_quantity=1_755,  # 27 lots
    expiry=date(2026, 12, 29),
)
OPT = Instrument(
    key="NFO:NIFTY:2026-12-29:PE:2500000",
    exchange=Exchange.NFO,
    symbol="NIFTY",
    underlying="NIFTY",
    segment=Segment.OPTIONS,
    lot_size=65,
    tick_size=5,
    freeze_quantity=1_755,
    expiry=date(2026, 12, 29),
    strike=2_500_000,
    right=OptionRight.PUT,
)


def show(value: object) -> str:
    """Test id: repr, except for ints too long for repr (over 4,300 digits)."""
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > 10**100:
        return f"{'-' if value < 0 else ''}int-huge"
    return repr(value)


def request(instrument: Instrument = FUT, **overrides: Any) -> OrderRequest:
    fields: dict[str, Any] = {
        "instrument_key": instrument.key,
        "side": Side.BUY,
        "quantity": 130,
        "price": "24500.50",
        "order_type": OrderType.LIMIT,
        "product": Product.INTRADAY,
        "validity": Validity.DAY,
        "source": OrderSource.TICKET,
        "actor": "alice",
        "tag": "t-1",
    }
    fields.update(overrides)
    return OrderRequest(**fields)


def rejected(result: NewOrder | Rejection, reason: RejectReason) -> Rejection:
    assert isinstance(result, Rejection), f"expected {reason}, got {result!r}"
    assert result.reason is reason, result
    assert result.message.strip(), "a rejection needs a sentence for a person"
    return result


# --------------------------------------------------------------------------- accepted


def test_good_limit_order_on_a_future() -> None:
    result = validate_request(request(), FUT)
    assert isinstance(result, NewOrder)
    assert result.instrument is FUT
    assert result.side is Side.BUY
    assert result.quantity == 130 and type(result.quantity) is int
    assert result.price == 2_450_050
    assert result.order_type is OrderType.LIMIT
    assert result.product is Product.INTRADAY
    assert result.validity is Validity.DAY
    assert result.source is OrderSource.TICKET
    assert result.actor == "alice"
    assert result.tag == "t-1"


def test_good_market_order_has_no_price() -> None:
    result = validate_request(request(order_type=OrderType.MARKET, price=None, side=Side.SELL), FUT)
    assert isinstance(result, NewOrder)
    assert result.order_type is OrderType.MARKET
    assert result.price is None
    assert result.side is Side.SELL


def test_good_cash_delivery_order() -> None:
    result = validate_request(request(CASH, quantity=7, price=Decimal("2450.05"), product=Product.DELIVERY, validity=Validity.IOC), CASH)
    assert isinstance(result, NewOrder)
    assert (result.quantity, result.price, result.product, result.validity) == (7, 245_005, Product.DELIVERY, Validity.IOC)


def test_good_carry_order_on_an_option() -> None:
    result = validate_request(request(OPT, quantity=65, price="12.05", product="carry"), OPT)
    assert isinstance(result, NewOrder)
    assert result.price == 1_205
    assert result.product is Product.CARRY


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("side", "buy", Side.BUY),
        ("side", "Sell", Side.SELL),
        ("side", "  BUY ", Side.BUY),
        ("order_type", "limit", OrderType.LIMIT),
        ("order_type", "Market", OrderType.MARKET),
        ("product", "intraday", Product.INTRADAY),
        ("product", "Carry", Product.CARRY),
        ("validity", "ioc", Validity.IOC),
        ("validity", "day", Validity.DAY),
    ],
)
def test_enum_strings_are_case_insensitive(field: str, value: str, expected: object) -> None:
    overrides: dict[str, Any] = {field: value}
    if expected is OrderType.MARKET:
        overrides["price"] = None
    result = validate_request(request(**overrides), FUT)
    assert isinstance(result, NewOrder), result
    assert getattr(result, field) is expected


@pytest.mark.parametrize(
    ("quantity", "expected"),
    [(65, 65), ("130", 130), (" 195 ", 195), (130.0, 130), (Decimal(260), 260), ("1.3e2", 130), (1_755, 1_755)],
    ids=show,
)
def test_quantity_forms_accepted(quantity: object, expected: int) -> None:
    result = validate_request(request(quantity=quantity), FUT)
    assert isinstance(result, NewOrder), result
    assert result.quantity == expected
    assert type(result.quantity) is int


@pytest.mark.parametrize(
    ("price", "paise"),
    [("24500.50", 2_450_050), (24500.5, 2_450_050), (24500, 2_450_000), (Decimal("0.10"), 10), (" 100.10 ", 10_010), ("100.100", 10_010)],
    ids=show,
)
def test_price_forms_accepted(price: object, paise: int) -> None:
    result = validate_request(request(price=price), FUT)
    assert isinstance(result, NewOrder), result
    assert result.price == paise


# --------------------------------------------------------------------------- rejected: instrument and enums


def test_unknown_instrument() -> None:
    result = rejected(validate_request(request(instrument_key="NSE:NOPE"), None), R.UNKNOWN_INSTRUMENT)
    assert "NSE:NOPE" in (result.value or "")


@pytest.mark.parametrize("side", ["", "B", "BUYY", "long", "short", None, 1, -1, True, Side, OrderType.LIMIT], ids=show)
def test_bad_side(side: object) -> None:
    rejected(validate_request(request(side=side), FUT), R.INVALID_SIDE)


@pytest.mark.parametrize("order_type", ["", "STOP", "SL", "limit order", None, 0, Side.BUY], ids=show)
def test_bad_order_type(order_type: object) -> None:
    rejected(validate_request(request(order_type=order_type), FUT), R.INVALID_ORDER_TYPE)


@pytest.mark.parametrize("product", ["", "MIS", "NRML", "CNC", "margin", None, 3], ids=show)
def test_bad_product(product: object) -> None:
    rejected(validate_request(request(product=product), FUT), R.INVALID_PRODUCT)


@pytest.mark.parametrize("validity", ["", "GTC", "GTT", "week", None, 1], ids=show)
def test_bad_validity(validity: object) -> None:
    rejected(validate_request(request(validity=validity), FUT), R.INVALID_VALIDITY)


@pytest.mark.parametrize("product", [Product.CARRY, "CARRY", "carry"])
def test_carry_on_cash_refused(product: object) -> None:
    result = rejected(validate_request(request(CASH, quantity=1, price="100", product=product), CASH), R.INVALID_PRODUCT)
    assert result.value == "CARRY"
    assert "DELIVERY" in (result.limit or "")


@pytest.mark.parametrize("instrument", [FUT, OPT], ids=["future", "option"])
def test_delivery_on_derivatives_refused(instrument: Instrument) -> None:
    result = rejected(validate_request(request(instrument, quantity=65, price="100", product="delivery"), instrument), R.INVALID_PRODUCT)
    assert result.value == "DELIVERY"
    assert "CARRY" in (result.limit or "")


# --------------------------------------------------------------------------- rejected: quantity


@pytest.mark.parametrize(
    ("quantity", "reason"),
    [
        (0, R.INVALID_QUANTITY),
        ("0", R.INVALID_QUANTITY),
        (-65, R.INVALID_QUANTITY),
        ("-130", R.INVALID_QUANTITY),
        (1.5, R.INVALID_QUANTITY),
        ("65.5", R.INVALID_QUANTITY),
        (Decimal("65.0001"), R.INVALID_QUANTITY),
        ("abc", R.INVALID_QUANTITY),
        ("", R.INVALID_QUANTITY),
        ("1,300", R.INVALID_QUANTITY),
        (None, R.INVALID_QUANTITY),
        (True, R.INVALID_QUANTITY),
        (False, R.INVALID_QUANTITY),
        (float("nan"), R.INVALID_QUANTITY),
        (float("inf"), R.INVALID_QUANTITY),
        (float("-inf"), R.INVALID_QUANTITY),
        ("NaN", R.INVALID_QUANTITY),
        (Decimal("sNaN"), R.INVALID_QUANTITY),
        ([65], R.INVALID_QUANTITY),
        (1, R.NOT_LOT_MULTIPLE),
        (64, R.NOT_LOT_MULTIPLE),
        (66, R.NOT_LOT_MULTIPLE),
        (100, R.NOT_LOT_MULTIPLE),
        ("1e6", R.NOT_LOT_MULTIPLE),
        (1_820, R.ABOVE_FREEZE_QUANTITY),  # 28 lots > 27-lot freeze
        (65 * 1_000, R.ABOVE_FREEZE_QUANTITY),
    ],
    ids=show,
)
def test_bad_quantity(quantity: object, reason: RejectReason) -> None:
    rejected(validate_request(request(quantity=quantity), FUT), reason)


def test_lot_and_freeze_rejections_carry_value_and_limit() -> None:
    lot = rejected(validate_request(request(quantity=100), FUT), R.NOT_LOT_MULTIPLE)
    assert (lot.value, lot.limit) == ("100", "65")
    freeze = rejected(validate_request(request(quantity=1_820), FUT), R.ABOVE_FREEZE_QUANTITY)
    assert (freeze.value, freeze.limit) == ("1820", "1755")
    negative = rejected(validate_request(request(quantity=-65), FUT), R.INVALID_QUANTITY)
    assert negative.value == "-65"


@pytest.mark.parametrize(
    ("quantity", "reason"),
    [
        ("1e999999", R.ABOVE_FREEZE_QUANTITY),
        (10**5000, R.ABOVE_FREEZE_QUANTITY),
        (-(10**5000), R.INVALID_QUANTITY),
        ("-1e30", R.INVALID_QUANTITY),
        (1e300, R.ABOVE_FREEZE_QUANTITY),
        ("1e9999999999999999999", R.INVALID_QUANTITY),  # beyond what Decimal can represent
    ],
    ids=["str-1e999999", "int-10**5000", "int--10**5000", "str--1e30", "float-1e300", "str-exp-overflow"],
)
def test_absurd_quantities_are_rejected_without_building_the_number(quantity: object, reason: RejectReason) -> None:
    # Turning 1e999999 into an int takes seconds and about 400 KB: the check must decide from the
    # exponent alone. What it allocates, unlike how long it takes, does not depend on the machine.
    tracing_here = not tracemalloc.is_tracing()
    if tracing_here:
        tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        before, _ = tracemalloc.get_traced_memory()
        rejected(validate_request(request(quantity=quantity), FUT), reason)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        if tracing_here:
            tracemalloc.stop()
    assert peak - before < 64 * 1024


# --------------------------------------------------------------------------- rejected: price


@pytest.mark.parametrize(
    ("price", "reason"),
    [
        ("24500.55", R.PRICE_OFF_TICK),  # tick is 10 paise
        ("24500.01", R.PRICE_OFF_TICK),
        (24500.05, R.PRICE_OFF_TICK),
        ("100.001", R.PRICE_OFF_TICK),  # finer than a paisa
        ("1.000000000000000000000000000001", R.PRICE_OFF_TICK),
        (float("nan"), R.INVALID_PRICE),
        (float("inf"), R.INVALID_PRICE),
        (float("-inf"), R.INVALID_PRICE),
        ("NaN", R.INVALID_PRICE),
        (Decimal("Infinity"), R.INVALID_PRICE),
        ("-100", R.INVALID_PRICE),
        (-100, R.INVALID_PRICE),
        (Decimal("-0.10"), R.INVALID_PRICE),
        (0, R.INVALID_PRICE),
        ("0.00", R.INVALID_PRICE),
        ("abc", R.INVALID_PRICE),
        ("", R.INVALID_PRICE),
        ("₹100", R.INVALID_PRICE),
        (True, R.INVALID_PRICE),
        ([100], R.INVALID_PRICE),
        ("1e999999", R.INVALID_PRICE),
        (10**5000, R.INVALID_PRICE),
    ],
    ids=show,
)
def test_bad_price_on_a_limit_order(price: object, reason: RejectReason) -> None:
    rejected(validate_request(request(price=price), FUT), reason)


def test_off_tick_rejection_carries_the_tick() -> None:
    result = rejected(validate_request(request(price="24500.55"), FUT), R.PRICE_OFF_TICK)
    assert result.limit == "10"


def test_limit_order_without_price() -> None:
    rejected(validate_request(request(price=None), FUT), R.INVALID_PRICE)


@pytest.mark.parametrize("price", ["24500.50", 0, "abc", 10**5000], ids=["price", "zero", "garbage", "huge-int"])
def test_market_order_with_a_price(price: object) -> None:
    rejected(validate_request(request(order_type=OrderType.MARKET, price=price), FUT), R.INVALID_PRICE)


def test_checks_run_in_a_stable_order() -> None:
    # With several faults, the first in the documented order wins: instrument, side, type, product,
    # validity, quantity, price.
    everything_wrong: dict[str, Any] = {
        "side": "x", "order_type": "x", "product": "x", "validity": "x", "quantity": "x", "price": "x",
    }
    assert validate_request(request(**everything_wrong), None).reason is R.UNKNOWN_INSTRUMENT  # type: ignore[union-attr]
    expected = [
        ("side", R.INVALID_SIDE),
        ("order_type", R.INVALID_ORDER_TYPE),
        ("product", R.INVALID_PRODUCT),
        ("validity", R.INVALID_VALIDITY),
        ("quantity", R.INVALID_QUANTITY),
        ("price", R.INVALID_PRICE),
    ]
    faults = dict(everything_wrong)
    for field, reason in expected:
        rejected(validate_request(request(**faults), FUT), reason)
        del faults[field]
    assert isinstance(validate_request(request(**faults), FUT), NewOrder)


# --------------------------------------------------------------------------- property: never raises


anything = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=-10**6, max_value=10**6).map(lambda n: n * 65),
    st.floats(allow_nan=True, allow_infinity=True),
    st.decimals(allow_nan=True, allow_infinity=True),
    st.decimals(min_value=-10**6, max_value=10**6, places=3),
    st.text(max_size=20),
    st.from_regex(r"\s*-?\d{1,8}(\.\d{1,4})?([eE][-+]?\d{1,3})?\s*", fullmatch=True),
    st.sampled_from(["BUY", "sell", "Buy ", "LIMIT", "market", "NaN", "inf", "-0", "1e999999", "sNaN"]),
    st.sampled_from(list(Side) + list(OrderType) + list(Product) + list(Validity)),
)


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(
    instrument=st.sampled_from([CASH, FUT, OPT]),
    side=anything,
    quantity=anything,
    price=anything,
    order_type=st.one_of(st.sampled_from([OrderType.LIMIT, OrderType.MARKET, "limit", "market"]), anything),
    product=st.one_of(st.sampled_from(list(Product)), anything),
)
def test_validate_request_never_raises(
    instrument: Instrument, side: object, quantity: object, price: object, order_type: object, product: object
) -> None:
    result = validate_request(
        request(instrument, side=side, quantity=quantity, price=price, order_type=order_type, product=product), instrument
    )
    assert isinstance(result, (NewOrder, Rejection))
    if isinstance(result, Rejection):
        assert isinstance(result.reason, RejectReason)
        assert result.message.strip()
        assert result.value is None or isinstance(result.value, str)
        return
    assert isinstance(result.side, Side)
    assert isinstance(result.order_type, OrderType)
    assert isinstance(result.product, Product)
    assert type(result.quantity) is int
    assert result.quantity > 0
    assert result.quantity % instrument.lot_size == 0
    assert result.quantity <= instrument.freeze_quantity
    if result.order_type is OrderType.MARKET:
        assert result.price is None
    else:
        assert type(result.price) is int
        assert result.price > 0
        assert result.price % instrument.tick_size == 0
    # CARRY is F&O only; DELIVERY is cash only.
    if instrument.segment is Segment.CASH:
        assert result.product is not Product.CARRY
    else:
        assert result.product is not Product.DELIVERY


@settings(max_examples=200)
@given(lots=st.integers(min_value=1, max_value=27), ticks=st.integers(min_value=1, max_value=10**7), side=st.sampled_from(["buy", "SELL"]))
def test_every_lot_multiple_on_tick_is_accepted(lots: int, ticks: int, side: str) -> None:
    paise = ticks * FUT.tick_size
    result = validate_request(request(side=side, quantity=lots * 65, price=f"{paise // 100}.{paise % 100:02d}"), FUT)
    assert isinstance(result, NewOrder), result
    assert result.quantity == lots * 65
    assert result.price == paise
