"""Breeze payloads to the desk's types: exact paise, strict rows, and MALFORMED (never a KeyError) on bad data.

Rows follow the breeze-connect README samples, with stock codes changed to contracts the emulator's
security master holds (ICICI's ``RELIND`` for RELIANCE). Stream dicts follow the SDK's ``parse_data``.
"""

from __future__ import annotations

import importlib.util
import math
from collections.abc import Callable, Mapping
from datetime import date
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.brokers.base import BrokerError, BrokerErrorCode, PlaceRequest
from app.brokers.breeze import mapping
from app.brokers.breeze.contracts import BreezeContract, rupees_text
from app.brokers.breeze.master import SecurityMaster, parse_master
from app.domain.broker_messages import (
    BrokerOrder,
    BrokerOrderUpdate,
    BrokerPosition,
    BrokerTrade,
    Funds,
)
from app.domain.market import Tick
from app.domain.orders import OrderStatus, OrderType, Product, Side, Validity
from tests.breeze_emulator import default_contracts
from tests.breeze_emulator.master import build_master_zip
from tests.support.calendar import PAPER_SESSION_DAY

RELIANCE = "NSE:RELIANCE"
BSE_RELIANCE = "BSE:RELIANCE"
NIFTY_FUT = "NFO:NIFTY:2026-12-29:FUT"
NIFTY_CALL = "NFO:NIFTY:2026-12-29:25800:CE"
NIFTY_PUT = "NFO:NIFTY:2026-12-29:25800:PE"
SENSEX_FUT = "BFO:SENSEX:2026-12-31:FUT"
TS = 1_770_000_000_000_000_000


@cache
def _master() -> SecurityMaster:
    return parse_master(build_master_zip(default_contracts(PAPER_SESSION_DAY)))


@pytest.fixture(scope="module")
def master() -> SecurityMaster:
    return _master()


def contract(key: str) -> BreezeContract:
    return _master().by_key[key]


def assert_malformed(call: Callable[[], object], *names: str) -> BrokerError:
    """``call`` raises BrokerError(MALFORMED) whose message names every one of ``names``."""
    with pytest.raises(BrokerError) as caught:
        call()
    error = caught.value
    assert error.code is BrokerErrorCode.MALFORMED, error
    for name in names:
        assert name in error.message, (name, error.message)
    return error


# -- payload samples ------------------------------------------------------------------------------


def cash_order_row(**changes: Any) -> dict[str, Any]:
    """The README's order-list row, for RELIANCE (ICICI code RELIND) instead of ITC."""
    row: dict[str, Any] = {
        "order_id": "20250205N300001234",
        "exchange_order_id": None,
        "exchange_code": "NSE",
        "stock_code": "RELIND",
        "product_type": "Cash",
        "action": "Buy",
        "order_type": "Limit",
        "stoploss": "0.00",
        "quantity": "10",
        "price": "420.05",
        "validity": "Day",
        "disclosed_quantity": "0",
        "expiry_date": None,
        "right": None,
        "strike_price": 0.0,
        "average_price": "0",
        "cancelled_quantity": "0",
        "pending_quantity": "10",
        "status": "Ordered",
        "user_remark": "DA1B2C3-000001",
        "order_datetime": "05-Feb-2025 09:26",
        "parent_order_id": None,
        "modification_number": None,
        "exchange_acknowledgement_date": None,
        "SLTP_price": None,
        "exchange_acknowledge_number": None,
        "initial_limit": None,
        "intial_sltp": None,
        "LTP": None,
        "limit_offset": None,
        "mbc_flag": None,
        "cutoff_price": None,
        "validity_date": "",
    }
    row.update(changes)
    return row


def option_order_row(**changes: Any) -> dict[str, Any]:
    """An NFO option row: Breeze names the underlying, the expiry as ``29-Dec-2026``, the right ``Call``."""
    row = cash_order_row(
        order_id="20251229N100000042", exchange_code="NFO", stock_code="NIFTY", product_type="Options",
        quantity="130", price="123.45", expiry_date="29-Dec-2026", right="Call", strike_price="25800",
        pending_quantity="130",
    )
    row.update(changes)
    return row


def position_row(**changes: Any) -> dict[str, Any]:
    """The README's positions row, for a NIFTY call in the master."""
    row: dict[str, Any] = {
        "segment": "fno", "product_type": "Options", "exchange_code": "NFO", "stock_code": "NIFTY",
        "expiry_date": "29-Dec-2026", "strike_price": "25800", "right": "Call", "action": "Buy",
        "quantity": "65", "average_price": "28.85", "settlement_id": None, "margin_amount": None,
        "ltp": "29.95", "price": "28.85", "stock_index_indicator": "Index", "cover_quantity": "0",
        "stoploss_trigger": "0", "order_id": "", "underlying": "NIFTY",
    }
    row.update(changes)
    return row


def trade_row(**changes: Any) -> dict[str, Any]:
    """The README's trade-list row, for RELIND."""
    row: dict[str, Any] = {
        "book_type": "Trade-Book", "trade_date": "05-Feb-2025", "stock_code": "RELIND", "action": "Buy",
        "quantity": "1", "average_cost": "452.20", "brokerage_amount": "0.00", "product_type": "Margin",
        "exchange_code": "NSE", "order_id": "20250205N300012345", "segment": "M",
        "settlement_code": "2025027", "ltp": "451.95", "order_type": "Market", "expiry_date": None,
        "right": None, "strike_price": None,
    }
    row.update(changes)
    return row


def funds_payload(**changes: Any) -> dict[str, Any]:
    """The README's get_funds ``Success`` object."""
    payload: dict[str, Any] = {
        "bank_account": "123456789012",
        "total_bank_balance": 800000000.0,
        "allocated_equity": 200000000.0,
        "allocated_fno": 200000000.0,
        "allocated_commodity": 200000000.0,
        "allocated_currency": 200000000.0,
        "block_by_trade_equity": 0.0,
        "block_by_trade_fno": 12500000.53,
        "block_by_trade_commodity": 0.0,
        "block_by_trade_currency": 0.0,
        "block_by_trade_balance": 15500000,
        "unallocated_balance": "87500000",
    }
    payload.update(changes)
    return payload


def quote_row(**changes: Any) -> dict[str, Any]:
    """The README's get_quotes row (NIFTY future)."""
    row: dict[str, Any] = {
        "exchange_code": "NFO", "product_type": "Future", "stock_code": "NIFTY", "expiry_date": "29-Dec-2026",
        "right": "*", "strike_price": 0.0, "ltp": 23832.85, "ltt": "05-Feb-2025 09:36:56",
        "best_bid_price": 23832.0, "best_bid_quantity": "1500", "best_offer_price": 23833.8,
        "best_offer_quantity": "150", "open": 23825.0, "high": 23840.6, "low": 23808.0,
        "previous_close": 23785.4, "total_quantity_traded": "623325", "spot_price": "23783.7",
    }
    row.update(changes)
    return row


def stock_tick(symbol: str, **changes: Any) -> dict[str, Any]:
    """What ``parse_data`` hands the callback for an exchange quote (``data_type`` 1, NSE/BSE shape)."""
    data: dict[str, Any] = {
        "symbol": symbol, "open": 2480.0, "last": 2500.55, "high": 2510.0, "low": 2470.05, "change": 0.5,
        "bPrice": 2500.5, "bQty": 120, "sPrice": 2500.6, "sQty": 80, "ltq": 5, "avgPrice": 2495.1,
        "quotes": "Quotes Data", "ttq": 123456, "totalBuyQt": 1000, "totalSellQ": 900, "ttv": "3.08C",
        "trend": "", "lowerCktLm": 2250.0, "upperCktLm": 2750.0, "ltt": "Thu Feb  5 09:36:56 2026",
        "close": 2488.0, "exchange": "NSE Equity", "stock_name": "RELIANCE INDUSTRIES",
    }
    data.update(changes)
    return data


def cash_notification(**changes: Any) -> dict[str, Any]:
    """A cash order notification as ``parse_data`` builds it (message type 4/5)."""
    data: dict[str, Any] = {
        "sourceNumber": "1", "group": "", "userId": "U1", "key": "", "messageLength": "", "requestType": "",
        "messageSequence": "17", "messageDate": "05-Feb-2026", "messageTime": "09:40:01", "messageCategory": "",
        "messagePriority": "", "messageType": "4", "orderMatchAccount": "", "orderExchangeCode": "NSE",
        "stockCode": "RELIND", "orderFlow": "Buy", "limitMarketFlag": "Limit", "orderType": "Day",
        "orderLimitRate": "420.05", "productType": "Margin", "orderStatus": "Partially Executed",
        "orderDate": "05-Feb-2026", "orderTradeDate": "05-Feb-2026", "orderReference": "20260205N300000123",
        "orderQuantity": "10", "openQuantity": "6", "orderExecutedQuantity": "4", "cancelledQuantity": "0",
        "expiredQuantity": "0", "averageExecutedRate": "420.05",
    }
    data.update(changes)
    return data


def fno_notification(**changes: Any) -> dict[str, Any]:
    """An F&O order notification (message type 6/7): the executed quantity is ``executedQuantity``."""
    data: dict[str, Any] = {
        "sourceNumber": "1", "messageType": "6", "orderExchangeCode": "NFO", "stockCode": "NIFTY",
        "productType": "Options", "optionType": "Call", "strikePrice": "25800", "expiryDate": "29-Dec-2026",
        "orderFlow": "Sell", "limitMarketFlag": "Limit", "orderType": "Day", "limitRate": "123.45",
        "orderStatus": "Executed", "orderReference": "20261229N100000042", "orderTotalQuantity": "130",
        "executedQuantity": "130", "cancelledQuantity": "0", "expiredQuantity": "0",
        "averageExecutedRate": "123.475",
    }
    data.update(changes)
    return data


# -- numbers --------------------------------------------------------------------------------------

# Up to the largest amount the desk reads (just under ten trillion rupees).
WIDE_PAISE = st.integers(min_value=-(10**15) + 1, max_value=10**15 - 1)


@given(WIDE_PAISE)
def test_paise_reads_back_rupees_text(value: int) -> None:
    assert mapping.paise(rupees_text(value), "x") == value
    assert mapping.paise(rupees_text(value, trim=True), "x") == value


@given(st.integers(min_value=-(10**12), max_value=10**12))
def test_paise_reads_whole_rupee_ints(rupees: int) -> None:
    assert mapping.paise(rupees, "x") == rupees * 100


@given(st.integers(min_value=0, max_value=10**11))
def test_paise_reads_floats_with_at_most_two_decimals(value: int) -> None:
    """A float Breeze prints as ``23832.85`` is exactly 2383285 paise, whatever its binary value."""
    assert mapping.paise(value / 100, "x") == value


@pytest.mark.parametrize(
    ("value", "expected"),
    [(23832.85, 2383285), (23832.0, 2383200), (0.05, 5), ("420.00", 42000), ("420", 42000), (420, 42000),
     (" 420.5 ", 42050), ("1,500.25", 150025), ("-3.10", -310), (200000000.0, 20000000000)],
)
def test_paise_examples(value: object, expected: int) -> None:
    assert mapping.paise(value, "x") == expected


@pytest.mark.parametrize("value", ["420.005", 420.005, "0.001", "abc", "", "  ", None, True, False, [], {}, "NaN",
                                   "inf", "-Infinity", "sNaN", float("nan"), float("inf"), b"420"])
def test_paise_refuses_what_is_not_whole_paise(value: object) -> None:
    assert_malformed(lambda: mapping.paise(value, "order row.price"), "order row.price")


@given(st.integers(min_value=1, max_value=10**11), st.integers(min_value=-4, max_value=4))
def test_paise_forgives_float_noise(value: int, ulps: int) -> None:
    """Stream prices are floats and carry noise (``1000.4000000000001``): a few units in the last place
    off a whole paisa is that paisa.

    Found: such ticks were refused as "which the desk cannot read", so most ticks were thrown away.
    """
    noisy = value / 100
    for _ in range(abs(ulps)):
        noisy = math.nextafter(noisy, math.inf if ulps > 0 else -math.inf)
    assert mapping.paise(noisy, "x") == value
    assert mapping.price(noisy, "x") == value


@pytest.mark.parametrize(("value", "expected"), [(1000.4000000000001, 100040), (0.1 + 0.2, 30), (1209.05 * 3, 362715),
                                                 ("1000.400000001", 100040), (99999.99999999999, 10000000)])
def test_paise_noise_examples(value: object, expected: int) -> None:
    assert mapping.paise(value, "x") == expected


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf, -1.0, -0.05, "-420.00", 420.005, 1000.4001,
                                   1000.40001, "420.0001", "abc", None, True, [], 0.0, 0])
def test_price_refuses_what_is_clearly_not_a_price(value: object) -> None:
    with pytest.raises(mapping.RefusedPrice) as caught:
        mapping.price(value, "stock.last")
    assert caught.value.code is BrokerErrorCode.MALFORMED and "stock.last" in caught.value.message


@pytest.mark.parametrize("value", ["1e30", 1e30, "1e13", 1e13, "-1e13", 10**13, "10000000000000.00", "1e3000000",
                                   "1" + "0" * 100_000, 1.7e308])
def test_numbers_far_beyond_any_price_are_refused_at_once(value: object) -> None:
    """Found: ``paise("1e30")`` was accepted as a price, and ``Fraction(Decimal("1e3000000"))`` took over a
    second on the event loop (an ``int`` of it far longer). Ten trillion rupees and more is no number
    Breeze means: refused as a price, malformed as an amount, average or quantity."""
    with pytest.raises(mapping.RefusedPrice):
        mapping.price(value, "stock.last")
    assert_malformed(lambda: mapping.paise(value, "order row.price"), "order row.price")
    assert_malformed(lambda: mapping.average_paise(value, "order row.average_price"), "order row.average_price")
    assert_malformed(lambda: mapping.quantity(value, "order row.quantity"), "order row.quantity")


def test_the_largest_amount_still_reads() -> None:
    assert mapping.paise("9999999999999.99", "x") == 999_999_999_999_999
    assert mapping.paise(9_999_999_999_999.0, "x") == 999_999_999_999_900
    assert mapping.quantity("9999999999999", "x") == 9_999_999_999_999


def test_paise_never_rounds_a_long_number() -> None:
    """Decimal's default 28-digit context rounds ``x * 100`` silently; a strict parser must not.

    (₹10^27 is absurd as money, but the contract is "exact paise or MALFORMED".)
    """
    text = "1234567890123456789012345678.91"
    try:
        result = mapping.paise(text, "x")
    except BrokerError as error:
        assert error.code is BrokerErrorCode.MALFORMED
    else:
        assert result == 123456789012345678901234567891


@pytest.mark.parametrize(
    ("value", "expected"),
    [("420.005", 42000), ("420.015", 42002), ("420.025", 42002), ("420.0250001", 42003), ("0.125", 12),
     (452.2, 45220), ("452.20", 45220), (123.475, 12348), ("1", 100), (7, 700)],
)
def test_average_paise_rounds_half_to_even(value: object, expected: int) -> None:
    assert mapping.average_paise(value, "x") == expected


@pytest.mark.parametrize("value", [0, 0.0, "0", "0.00", "", "   ", None, "0.004"])
def test_average_paise_is_none_when_breeze_reports_none(value: object) -> None:
    assert mapping.average_paise(value, "x") is None


@pytest.mark.parametrize("value", ["-1", -0.5, "abc", "NaN", "inf", True, [], {}])
def test_average_paise_refuses_bad_values(value: object) -> None:
    assert_malformed(lambda: mapping.average_paise(value, "order row.average_price"), "order row.average_price")


@pytest.mark.parametrize(("value", "expected"), [("75", 75), (75, 75), ("75.0", 75), (75.0, 75), ("0", 0),
                                                 (" 130 ", 130), ("1,000", 1000)])
def test_quantity_reads_whole_numbers(value: object, expected: int) -> None:
    assert mapping.quantity(value, "x") == expected


@pytest.mark.parametrize("value", [-1, "-1", "1.5", 1.5, True, False, None, "", "abc", "NaN", "nan", "inf",
                                   "-inf", "Infinity", float("nan"), float("inf"), [], [75], {}, {"q": 1}, b"75"])
def test_quantity_refuses_bad_values(value: object) -> None:
    assert_malformed(lambda: mapping.quantity(value, "order row.quantity"), "order row.quantity")


@given(st.integers(min_value=0, max_value=10**12))
def test_quantity_round_trips_text(value: int) -> None:
    assert mapping.quantity(str(value), "x") == value


# -- order rows -----------------------------------------------------------------------------------


def test_order_row_maps_the_readme_row(master: SecurityMaster) -> None:
    order = mapping.order_row(cash_order_row(), master)
    assert order == BrokerOrder(
        broker_order_id="20250205N300001234", client_order_id="DA1B2C3-000001", instrument_key=RELIANCE,
        side=Side.BUY, quantity=10, price=42005, status=OrderStatus.OPEN, filled_quantity=0, average_price=None,
    )


def test_order_row_maps_an_option_row(master: SecurityMaster) -> None:
    row = option_order_row(action="Sell", status="Partially Executed", pending_quantity="65",
                           average_price="123.40")
    assert mapping.order_row(row, master) == BrokerOrder(
        broker_order_id="20251229N100000042", client_order_id="DA1B2C3-000001", instrument_key=NIFTY_CALL,
        side=Side.SELL, quantity=130, price=12345, status=OrderStatus.PARTIALLY_FILLED, filled_quantity=65,
        average_price=12340,
    )


@pytest.mark.parametrize(
    ("changes", "key"),
    [({"right": "Put"}, NIFTY_PUT), ({"right": "Others", "strike_price": "0"}, NIFTY_FUT),
     ({"right": None, "strike_price": None}, NIFTY_FUT), ({"expiry_date": "2026-12-29T06:00:00.000Z"}, NIFTY_CALL),
     ({"strike_price": 25800.0}, NIFTY_CALL), ({"strike_price": "25800.00"}, NIFTY_CALL),
     ({"exchange_code": "BFO", "stock_code": "BSESEN", "expiry_date": "31-Dec-2026", "right": "Others"}, SENSEX_FUT),
     ({"exchange_code": "BSE", "stock_code": "RELIND", "expiry_date": None, "right": None}, BSE_RELIANCE),
     ({"exchange_code": "nse", "stock_code": "relind", "expiry_date": None, "right": None}, RELIANCE)],
)
def test_order_row_finds_the_contract(master: SecurityMaster, changes: dict[str, Any], key: str) -> None:
    assert mapping.order_row(option_order_row(**changes), master).instrument_key == key


def test_order_row_fully_executed(master: SecurityMaster) -> None:
    order = mapping.order_row(cash_order_row(status="Executed", pending_quantity="0", average_price="420.03"), master)
    assert (order.status, order.filled_quantity, order.average_price) == (OrderStatus.FILLED, 10, 42003)


def test_order_row_rejected_has_no_fills(master: SecurityMaster) -> None:
    """A rejected row may show nothing pending and nothing cancelled: still nothing filled."""
    order = mapping.order_row(cash_order_row(status="Rejected", pending_quantity="0", average_price="0"), master)
    assert (order.status, order.filled_quantity, order.average_price) == (OrderStatus.REJECTED, 0, None)


def test_order_row_partially_executed_and_cancelled_keeps_its_fills(master: SecurityMaster) -> None:
    row = cash_order_row(status="Partially Executed And Cancelled", pending_quantity="0", cancelled_quantity="6",
                         average_price="420.00")
    order = mapping.order_row(row, master)
    assert (order.status, order.filled_quantity, order.average_price) == (OrderStatus.CANCELLED, 4, 42000)


def test_order_row_cancelled_without_fills(master: SecurityMaster) -> None:
    row = cash_order_row(status="Cancelled", pending_quantity="0", cancelled_quantity="10")
    order = mapping.order_row(row, master)
    assert (order.status, order.filled_quantity, order.average_price) == (OrderStatus.CANCELLED, 0, None)


def test_order_row_expired_without_average_has_no_fills(master: SecurityMaster) -> None:
    order = mapping.order_row(cash_order_row(status="Expired", pending_quantity="0"), master)
    assert (order.status, order.filled_quantity, order.average_price) == (OrderStatus.EXPIRED, 0, None)


def test_order_row_partially_executed_and_expired(master: SecurityMaster) -> None:
    row = cash_order_row(status="Partially Executed And Expired", pending_quantity="0", cancelled_quantity="7",
                         average_price="419.95")
    order = mapping.order_row(row, master)
    assert (order.status, order.filled_quantity, order.average_price) == (OrderStatus.EXPIRED, 3, 41995)


def test_order_row_blank_remark_is_no_client_id(master: SecurityMaster) -> None:
    for remark in ("", "   ", None):
        assert mapping.order_row(cash_order_row(user_remark=remark), master).client_order_id is None
    assert mapping.order_row(cash_order_row(user_remark=" X-1 "), master).client_order_id == "X-1"
    without = cash_order_row()
    del without["user_remark"]
    assert mapping.order_row(without, master).client_order_id is None


# Every text in the SDK's orderStatus code table (less "All", which is a filter, not a state).
BREEZE_STATUSES = {
    "Requested": OrderStatus.OPEN,
    "Queued": OrderStatus.OPEN,
    "Ordered": OrderStatus.OPEN,
    "Freezed": OrderStatus.OPEN,
    "Partially Executed": OrderStatus.PARTIALLY_FILLED,
    "Executed": OrderStatus.FILLED,
    "Rejected": OrderStatus.REJECTED,
    "Expired": OrderStatus.EXPIRED,
    "Partially Executed And Expired": OrderStatus.EXPIRED,
    "Partially Executed And Cancelled": OrderStatus.CANCELLED,
    "Cancelled": OrderStatus.CANCELLED,
}


@pytest.mark.parametrize(("text", "expected"), sorted(BREEZE_STATUSES.items()))
def test_every_breeze_status_maps(master: SecurityMaster, text: str, expected: OrderStatus) -> None:
    assert mapping.order_row(cash_order_row(status=text), master).status is expected
    assert mapping.order_row(cash_order_row(status=text.upper()), master).status is expected
    assert mapping.status(f" {text.lower()} ", "x") is expected


def _sdk_config() -> Any:
    """The SDK's ``config`` module, loaded on its own: importing ``breeze_connect`` downloads a master."""
    spec = importlib.util.find_spec("breeze_connect")
    assert spec is not None and spec.submodule_search_locations
    path = Path(next(iter(spec.submodule_search_locations))) / "config.py"
    config_spec = importlib.util.spec_from_file_location("_breeze_config_for_tests", path)
    assert config_spec is not None and config_spec.loader is not None
    module = importlib.util.module_from_spec(config_spec)
    config_spec.loader.exec_module(module)
    return module


def test_status_table_covers_the_sdk_code_table() -> None:
    """The SDK turns order-feed codes into these texts; each must be one the mapping knows."""
    config = _sdk_config()
    texts = set(config.TUX_TO_USER_MAP["orderStatus"].values()) - {"All"}
    assert texts == set(BREEZE_STATUSES)


@pytest.mark.parametrize(
    ("changes", "names"),
    [
        ({"status": "Pending"}, ("order row.status", "Pending")),
        ({"status": "All"}, ("order row.status",)),
        ({"status": None}, ("order row.status",)),
        ({"order_id": ""}, ("order row.order_id",)),
        ({"order_id": None}, ("order row.order_id",)),
        ({"price": "abc"}, ("order row.price", "abc")),
        ({"price": None}, ("order row.price",)),
        ({"price": "420.001"}, ("order row.price",)),
        ({"quantity": "1.5"}, ("order row.quantity", "1.5")),
        ({"quantity": "-10"}, ("order row.quantity",)),
        ({"quantity": None}, ("order row.quantity",)),
        ({"pending_quantity": "x"}, ("order row.pending_quantity",)),
        ({"cancelled_quantity": "2.5"}, ("order row.cancelled_quantity",)),
        ({"average_price": "-1"}, ("order row.average_price",)),
        ({"action": "Hold"}, ("order row.action", "Hold")),
        ({"action": None}, ("order row.action",)),
        ({"exchange_code": "MCX"}, ("order row.exchange_code", "MCX")),
        ({"exchange_code": ""}, ("order row.exchange_code",)),
        ({"stock_code": "NOSUCH"}, ("security master", "NOSUCH")),
        ({"stock_code": "RELIANCE"}, ("security master", "RELIANCE")),
    ],
)
def test_order_row_refuses_bad_fields(master: SecurityMaster, changes: dict[str, Any], names: tuple[str, ...]) -> None:
    assert_malformed(lambda: mapping.order_row(cash_order_row(**changes), master), *names)


@pytest.mark.parametrize(
    ("changes", "names"),
    [
        ({"expiry_date": "31-Dec-2026"}, ("security master", "NIFTY", "2026-12-31")),
        ({"expiry_date": "someday"}, ("order row.expiry_date", "someday")),
        ({"expiry_date": None}, ("order row.expiry_date",)),
        ({"strike_price": "25850"}, ("security master",)),
        ({"strike_price": "abc"}, ("order row.strike_price",)),
        ({"strike_price": None}, ("order row.strike_price",)),
        ({"stock_code": "BANKNIFTY"}, ("security master", "BANKNIFTY")),
    ],
)
def test_option_row_refuses_unknown_contracts(master: SecurityMaster, changes: dict[str, Any],
                                              names: tuple[str, ...]) -> None:
    row = option_order_row(**changes)
    assert_malformed(lambda: mapping.order_row(row, master), *names)


@pytest.mark.parametrize("name", ["order_id", "exchange_code", "stock_code", "quantity", "pending_quantity",
                                  "status", "action", "price"])
def test_order_row_missing_field_names_it(master: SecurityMaster, name: str) -> None:
    row = cash_order_row()
    del row[name]
    assert_malformed(lambda: mapping.order_row(row, master), repr(name))


def test_option_row_missing_expiry_names_it(master: SecurityMaster) -> None:
    row = option_order_row()
    del row["expiry_date"]
    assert_malformed(lambda: mapping.order_row(row, master), "'expiry_date'")


@pytest.mark.parametrize("row", [None, [], "row", 42])
def test_order_row_that_is_not_an_object(master: SecurityMaster, row: object) -> None:
    assert_malformed(lambda: mapping.order_row(row, master), "order row")  # type: ignore[arg-type]


@pytest.mark.parametrize("value", [[], {}, False, [0], {"q": 0}])
def test_order_row_unreadable_pending_quantity_is_malformed(master: SecurityMaster, value: object) -> None:
    """``pending_quantity or 0`` turns a list, a dict or False into 0, so a working order reads as filled.

    Found: mapping.order_row computes ``filled = ordered - 0 - cancelled`` = the whole order for an
    'Ordered' row whose pending quantity is ``[]``. Values the desk cannot read must be MALFORMED.
    """
    assert_malformed(lambda: mapping.order_row(cash_order_row(pending_quantity=value), master),
                     "order row.pending_quantity")


@pytest.mark.parametrize("value", [[], {}, False])
def test_order_row_unreadable_cancelled_quantity_is_malformed(master: SecurityMaster, value: object) -> None:
    assert_malformed(lambda: mapping.order_row(cash_order_row(cancelled_quantity=value), master),
                     "order row.cancelled_quantity")


@pytest.mark.parametrize("value", [None, ""])
def test_working_order_without_pending_quantity_claims_no_fills(master: SecurityMaster, value: object) -> None:
    """An 'Ordered' row with no pending quantity must not come back as OPEN yet fully filled."""
    try:
        order = mapping.order_row(cash_order_row(status="Ordered", pending_quantity=value), master)
    except BrokerError as error:
        assert error.code is BrokerErrorCode.MALFORMED
        return
    assert order.filled_quantity == 0, order


# -- never anything but BrokerError ---------------------------------------------------------------

JUNK: st.SearchStrategy[object] = st.sampled_from([None, "", "abc", -1, 1.5, [], {}, True])


def mutations(base: Mapping[str, Any]) -> st.SearchStrategy[dict[str, Any]]:
    """``base`` with one to three keys dropped or replaced by junk."""
    keys = sorted(base)

    @st.composite
    def mutate(draw: st.DrawFn) -> dict[str, Any]:
        row = dict(base)
        for key in draw(st.lists(st.sampled_from(keys), min_size=1, max_size=3, unique=True)):
            if draw(st.booleans()):
                del row[key]
            else:
                row[key] = draw(JUNK)
        return row

    return mutate()


def only_broker_errors(call: Callable[[], object], expected: type | tuple[type, ...]) -> None:
    try:
        result = call()
    except BrokerError as error:
        assert error.code is BrokerErrorCode.MALFORMED, error
    else:
        assert result is None or isinstance(result, expected), result


FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FUZZ
@given(st.one_of(mutations(cash_order_row()), mutations(option_order_row())))
def test_order_row_fuzz(row: dict[str, Any]) -> None:
    only_broker_errors(lambda: mapping.order_row(row, _master()), BrokerOrder)


@FUZZ
@given(mutations(position_row()))
def test_position_row_fuzz(row: dict[str, Any]) -> None:
    only_broker_errors(lambda: mapping.position_row(row, _master()), BrokerPosition)


@FUZZ
@given(mutations(trade_row()))
def test_trade_row_fuzz(row: dict[str, Any]) -> None:
    only_broker_errors(lambda: mapping.trade_row(row, _master()), BrokerTrade)


@FUZZ
@given(mutations(funds_payload()))
def test_funds_fuzz(payload: dict[str, Any]) -> None:
    only_broker_errors(lambda: mapping.funds(payload), Funds)


@FUZZ
@given(st.one_of(mutations(cash_notification()), mutations(fno_notification())))
def test_order_update_fuzz(data: dict[str, Any]) -> None:
    only_broker_errors(lambda: mapping.order_update(data, TS), BrokerOrderUpdate)


@FUZZ
@given(mutations(stock_tick("4.1!2001")))
def test_stream_tick_fuzz(data: dict[str, Any]) -> None:
    only_broker_errors(lambda: mapping.stream_tick(data, _master(), TS), Tick)


@FUZZ
@given(st.lists(mutations(quote_row()), min_size=1, max_size=2))
def test_quote_tick_fuzz(rows: list[dict[str, Any]]) -> None:
    only_broker_errors(lambda: mapping.quote_tick(rows, contract(NIFTY_FUT), TS), Tick)


# -- positions, trades, funds, quotes -------------------------------------------------------------


def test_position_row_buy_is_long(master: SecurityMaster) -> None:
    assert mapping.position_row(position_row(), master) == BrokerPosition(NIFTY_CALL, 65, 2885)


def test_position_row_sell_is_short(master: SecurityMaster) -> None:
    held = mapping.position_row(position_row(action="Sell", quantity="130", average_price="30.125"), master)
    assert held == BrokerPosition(NIFTY_CALL, -130, 3012)


def test_position_row_cash(master: SecurityMaster) -> None:
    row = position_row(segment="equity", product_type="Cash", exchange_code="NSE", stock_code="RELIND",
                       expiry_date=None, strike_price=None, right=None, quantity="5", average_price="2500.10")
    assert mapping.position_row(row, master) == BrokerPosition(RELIANCE, 5, 250010)


@pytest.mark.parametrize("quantity", ["0", 0, "0.0"])
def test_position_row_flat_is_none(master: SecurityMaster, quantity: object) -> None:
    """The README's own sample: a closed position (action 'NA', quantity '0', strike not in the master)."""
    row = position_row(action="NA", quantity=quantity, expiry_date="27-Feb-2025", strike_price="24800")
    assert mapping.position_row(row, master) is None


def test_position_row_zero_average_is_none(master: SecurityMaster) -> None:
    held = mapping.position_row(position_row(average_price="0"), master)
    assert held is not None and held.average_price is None


@pytest.mark.parametrize(("changes", "names"), [({"action": "NA"}, ("position row.action",)),
                                                ({"quantity": "-5"}, ("position row.quantity",)),
                                                ({"quantity": "2.5"}, ("position row.quantity",)),
                                                ({"strike_price": "24800"}, ("security master",))])
def test_position_row_refuses_bad_fields(master: SecurityMaster, changes: dict[str, Any],
                                         names: tuple[str, ...]) -> None:
    assert_malformed(lambda: mapping.position_row(position_row(**changes), master), *names)


def test_trade_row_maps_the_readme_row(master: SecurityMaster) -> None:
    assert mapping.trade_row(trade_row(), master) == BrokerTrade(
        broker_order_id="20250205N300012345", instrument_key=RELIANCE, side=Side.BUY, quantity=1,
        average_price=45220, trade_date=date(2025, 2, 5),
    )
    sell = mapping.trade_row(trade_row(action="Sell", average_cost="452.55"), master)
    assert (sell.side, sell.average_price) == (Side.SELL, 45255)


@pytest.mark.parametrize("value", [None, ""])
def test_trade_row_without_a_price_is_malformed(master: SecurityMaster, value: object) -> None:
    """An execution always has a price: a missing one must not become a trade at ₹0."""
    assert_malformed(lambda: mapping.trade_row(trade_row(average_cost=value), master), "trade row.average_cost")


@pytest.mark.parametrize(("changes", "names"), [({"trade_date": "yesterday"}, ("trade row.trade_date",)),
                                                ({"average_cost": "abc"}, ("trade row.average_cost",)),
                                                ({"order_id": None}, ("trade row.order_id",)),
                                                ({"quantity": "1.5"}, ("trade row.quantity",))])
def test_trade_row_refuses_bad_fields(master: SecurityMaster, changes: dict[str, Any], names: tuple[str, ...]) -> None:
    assert_malformed(lambda: mapping.trade_row(trade_row(**changes), master), *names)


def test_funds_readme_sample() -> None:
    allocated = (200000000 + 200000000) * 100
    blocked = 0 + 1250000053
    assert mapping.funds(funds_payload()) == Funds(available=allocated - blocked, used_margin=blocked)
    assert mapping.funds(funds_payload()) == Funds(available=38749999947, used_margin=1250000053)


def test_funds_ignores_commodity_and_currency() -> None:
    payload = funds_payload(allocated_commodity="abc", block_by_trade_currency=None)
    assert mapping.funds(payload).used_margin == 1250000053


def test_funds_text_values() -> None:
    payload = funds_payload(allocated_equity="1000.50", allocated_fno="0", block_by_trade_equity="100.25",
                            block_by_trade_fno="0")
    assert mapping.funds(payload) == Funds(available=100050 - 10025, used_margin=10025)


@pytest.mark.parametrize(("changes", "names"), [({"allocated_equity": "abc"}, ("funds.allocated_equity",)),
                                                ({"allocated_fno": None}, ("funds.allocated_fno",)),
                                                ({"block_by_trade_fno": "-1"}, ("funds.block_by_trade_fno",))])
def test_funds_refuses_bad_fields(changes: dict[str, Any], names: tuple[str, ...]) -> None:
    assert_malformed(lambda: mapping.funds(funds_payload(**changes)), *names)


@pytest.mark.parametrize("name", ["allocated_equity", "allocated_fno", "block_by_trade_equity", "block_by_trade_fno"])
def test_funds_missing_field_names_it(name: str) -> None:
    payload = funds_payload()
    del payload[name]
    assert_malformed(lambda: mapping.funds(payload), repr(name))


@pytest.mark.parametrize("payload", [None, [], "funds", [funds_payload()]])
def test_funds_not_an_object(payload: object) -> None:
    assert_malformed(lambda: mapping.funds(payload), "funds")


def test_quote_tick_nfo_row() -> None:
    tick = mapping.quote_tick([quote_row()], contract(NIFTY_FUT), TS)
    assert tick == Tick(instrument_key=NIFTY_FUT, price=2383285, ts_ns=TS, bid=2383200, ask=2383380)


def test_quote_tick_nse_row() -> None:
    row = quote_row(exchange_code="NSE", product_type="", stock_code="RELIND", expiry_date="", ltp="2500.55",
                    best_bid_price="2500.50", best_offer_price="2500.60")
    assert mapping.quote_tick([row], contract(RELIANCE), TS) == Tick(RELIANCE, 250055, TS, 250050, 250060)


def test_quote_tick_bse_picks_the_bse_row() -> None:
    """Breeze answers a BSE quote with the NSE listing first and the BSE one second."""
    nse = quote_row(exchange_code="NSE", stock_code="RELIND", ltp=2500.55, best_bid_price=2500.5,
                    best_offer_price=2500.6)
    bse = quote_row(exchange_code="BSE", stock_code="RELIND", ltp=2501.05, best_bid_price=2501.0,
                    best_offer_price=2501.1)
    tick = mapping.quote_tick([nse, bse], contract(BSE_RELIANCE), TS)
    assert tick == Tick(BSE_RELIANCE, 250105, TS, 250100, 250110)
    assert mapping.quote_tick([nse, bse], contract(RELIANCE), TS).price == 250055


def test_quote_tick_without_touch() -> None:
    tick = mapping.quote_tick([quote_row(best_bid_price=0.0, best_offer_price="")], contract(NIFTY_FUT), TS)
    assert (tick.bid, tick.ask) == (None, None)


@pytest.mark.parametrize("payload", [[], None, {}, "x", [None], [quote_row(), "row"]])
def test_quote_tick_refuses_non_rows(payload: object) -> None:
    assert_malformed(lambda: mapping.quote_tick(payload, contract(NIFTY_FUT), TS), "quotes")


@pytest.mark.parametrize(("changes", "names"), [({"ltp": "abc"}, ("quote.ltp",)), ({"ltp": None}, ("quote.ltp",)),
                                                ({"best_bid_price": "x"}, ("quote.best_bid_price",))])
def test_quote_tick_refuses_bad_fields(changes: dict[str, Any], names: tuple[str, ...]) -> None:
    assert_malformed(lambda: mapping.quote_tick([quote_row(**changes)], contract(NIFTY_FUT), TS), *names)


# -- stream ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("key", [RELIANCE, BSE_RELIANCE, NIFTY_FUT, NIFTY_CALL, SENSEX_FUT])
def test_stream_tick_for_a_known_symbol(master: SecurityMaster, key: str) -> None:
    symbol = master.by_key[key].stream_symbol
    tick = mapping.stream_tick(stock_tick(symbol), master, TS)
    assert tick == Tick(instrument_key=key, price=250055, ts_ns=TS, bid=250050, ask=250060, volume=123456)


def test_stream_tick_symbols_follow_the_exchange_prefix(master: SecurityMaster) -> None:
    assert master.by_key[RELIANCE].stream_symbol == "4.1!2001"
    assert master.by_key[BSE_RELIANCE].stream_symbol == "1.1!500001"
    assert master.by_key[NIFTY_FUT].stream_symbol == "4.1!35001"
    assert master.by_key[SENSEX_FUT].stream_symbol == "8.1!860001"


def test_stream_tick_fno_shape_and_text_numbers(master: SecurityMaster) -> None:
    data = stock_tick("4.1!35004", last="123.45", bPrice="123.40", sPrice="123.50", ttq="6500", OI=10, CHNGOI=1)
    assert mapping.stream_tick(data, master, TS) == Tick(NIFTY_CALL, 12345, TS, 12340, 12350, 6500)


def test_stream_tick_without_touch_or_volume(master: SecurityMaster) -> None:
    data = stock_tick("4.1!2001", bPrice=0, sPrice=None, ttq=None)
    assert mapping.stream_tick(data, master, TS) == Tick(RELIANCE, 250055, TS, None, None, 0)
    del data["ttq"]
    assert mapping.stream_tick(data, master, TS) == Tick(RELIANCE, 250055, TS, None, None, 0)


@pytest.mark.parametrize("symbol", ["4.1!999999", "6.1!2001", "", None, 2001, "NIFTY"])
def test_stream_tick_unknown_symbol_is_none(master: SecurityMaster, symbol: object) -> None:
    assert mapping.stream_tick({**stock_tick("x"), "symbol": symbol}, master, TS) is None


def test_stream_tick_reads_noisy_floats(master: SecurityMaster) -> None:
    data = stock_tick("4.1!2001", last=2500.5500000000002, bPrice=2500.4999999999995, sPrice=2500.6000000000004)
    assert mapping.stream_tick(data, master, TS) == Tick(RELIANCE, 250055, TS, 250050, 250060, 123456)


@pytest.mark.parametrize(("name", "value"), [("last", math.nan), ("last", -2500.55), ("last", 2500.555),
                                             ("bPrice", math.inf), ("sPrice", -1.0)])
def test_stream_tick_refuses_what_is_not_a_price(master: SecurityMaster, name: str, value: float) -> None:
    with pytest.raises(mapping.RefusedPrice) as caught:
        mapping.stream_tick(stock_tick("4.1!2001", **{name: value}), master, TS)
    assert f"stock.{name}" in caught.value.message


def test_stream_tick_without_last_is_none(master: SecurityMaster) -> None:
    assert mapping.stream_tick(stock_tick("4.1!2001", last=0.0), master, TS) is None
    assert mapping.stream_tick(stock_tick("4.1!2001", last=None), master, TS) is None
    data = stock_tick("4.1!2001")
    del data["last"]
    assert mapping.stream_tick(data, master, TS) is None


@pytest.mark.parametrize(("changes", "name"), [({"last": "x"}, "stock.last"), ({"last": 1.001}, "stock.last"),
                                               ({"bPrice": "x"}, "stock.bPrice"), ({"sPrice": []}, "stock.sPrice"),
                                               ({"ttq": "1.5"}, "stock.ttq"), ({"ttq": -1}, "stock.ttq")])
def test_stream_tick_bad_numbers_are_malformed(master: SecurityMaster, changes: dict[str, Any], name: str) -> None:
    assert_malformed(lambda: mapping.stream_tick(stock_tick("4.1!2001", **changes), master, TS), name)


def test_is_order_message() -> None:
    assert mapping.is_order_message(cash_notification())
    assert mapping.is_order_message(fno_notification())
    assert mapping.is_order_message({"sourceNumber": "1"})
    assert not mapping.is_order_message(stock_tick("4.1!2001"))


def test_order_update_cash() -> None:
    update = mapping.order_update(cash_notification(), TS)
    assert update == BrokerOrderUpdate(ts_ns=TS, broker_order_id="20260205N300000123",
                                       status=OrderStatus.PARTIALLY_FILLED, filled_quantity=4, average_price=42005)


def test_order_update_fno_uses_executed_quantity() -> None:
    update = mapping.order_update(fno_notification(), TS)
    assert update == BrokerOrderUpdate(ts_ns=TS, broker_order_id="20261229N100000042", status=OrderStatus.FILLED,
                                       filled_quantity=130, average_price=12348)


def test_order_update_is_cumulative() -> None:
    """Later notifications carry the running total, not the increment."""
    first = mapping.order_update(cash_notification(orderExecutedQuantity="4"), TS)
    second = mapping.order_update(cash_notification(orderExecutedQuantity="10", orderStatus="Executed",
                                                    averageExecutedRate="420.10"), TS + 1)
    assert (first.filled_quantity, second.filled_quantity) == (4, 10)
    assert (second.status, second.average_price) == (OrderStatus.FILLED, 42010)


@pytest.mark.parametrize(("text", "expected"), sorted(BREEZE_STATUSES.items()))
def test_order_update_status_texts(text: str, expected: OrderStatus) -> None:
    assert mapping.order_update(cash_notification(orderStatus=text), TS).status is expected


def test_order_update_ack_without_fills() -> None:
    update = mapping.order_update(cash_notification(orderStatus="Ordered", orderExecutedQuantity="0",
                                                    averageExecutedRate="0"), TS)
    assert (update.status, update.filled_quantity, update.average_price) == (OrderStatus.OPEN, 0, None)
    update = mapping.order_update(fno_notification(orderStatus="Ordered", executedQuantity="",
                                                   averageExecutedRate=""), TS)
    assert (update.status, update.filled_quantity, update.average_price) == (OrderStatus.OPEN, 0, None)


@pytest.mark.parametrize(
    ("changes", "name"),
    [({"orderStatus": "X"}, "orderStatus"), ({"orderStatus": "J"}, "orderStatus"),
     ({"orderReference": ""}, "orderReference"), ({"orderExecutedQuantity": "2.5"}, "orderExecutedQuantity"),
     ({"orderExecutedQuantity": "-1"}, "orderExecutedQuantity"), ({"averageExecutedRate": "abc"}, "averageExecutedRate")],
)
def test_order_update_refuses_bad_fields(changes: dict[str, Any], name: str) -> None:
    assert_malformed(lambda: mapping.order_update(cash_notification(**changes), TS), f"order notification.{name}")


@pytest.mark.parametrize("name", ["orderReference", "orderStatus"])
def test_order_update_missing_field(name: str) -> None:
    data = cash_notification()
    del data[name]
    assert_malformed(lambda: mapping.order_update(data, TS), repr(name))


def test_order_update_without_any_executed_quantity() -> None:
    data = fno_notification()
    del data["executedQuantity"]
    assert_malformed(lambda: mapping.order_update(data, TS), "'executedQuantity'")


@pytest.mark.parametrize("value", [[], {}, False])
def test_order_update_unreadable_executed_quantity_is_malformed(value: object) -> None:
    """``executed or 0`` lets a list, a dict or False through as 0 fills."""
    assert_malformed(lambda: mapping.order_update(fno_notification(executedQuantity=value), TS),
                     "order notification.executedQuantity")


# -- place_kwargs ---------------------------------------------------------------------------------


def request(key: str, **changes: Any) -> PlaceRequest:
    fields: dict[str, Any] = {"client_order_id": "DA1B2C3-000001", "instrument": contract(key).instrument,
                              "side": Side.BUY, "quantity": 10, "price": 42005}
    fields.update(changes)
    return PlaceRequest(**fields)


def test_place_kwargs_cash_intraday_market_is_a_limit() -> None:
    kwargs = mapping.place_kwargs(request(RELIANCE, order_type=OrderType.MARKET), contract(RELIANCE))
    assert kwargs == {
        "stock_code": "RELIND", "exchange_code": "NSE", "product": "margin", "action": "buy", "order_type": "limit",
        "stoploss": "", "quantity": "10", "price": "420.05", "validity": "day", "user_remark": "DA1B2C3-000001",
    }


@pytest.mark.parametrize(("product", "expected"), [(Product.INTRADAY, "margin"), (Product.DELIVERY, "cash"),
                                                   (Product.CARRY, "cash")])
def test_place_kwargs_cash_products(product: Product, expected: str) -> None:
    assert mapping.place_kwargs(request(RELIANCE, product=product), contract(RELIANCE))["product"] == expected


def test_place_kwargs_bse_and_sell_ioc() -> None:
    kwargs = mapping.place_kwargs(request(BSE_RELIANCE, side=Side.SELL, validity=Validity.IOC, price=100),
                                  contract(BSE_RELIANCE))
    assert (kwargs["exchange_code"], kwargs["action"], kwargs["validity"], kwargs["price"]) == ("BSE", "sell",
                                                                                             "ioc", "1.00")


@pytest.mark.parametrize("product", list(Product))
def test_place_kwargs_future(product: Product) -> None:
    kwargs = mapping.place_kwargs(request(NIFTY_FUT, quantity=65, price=2383285, product=product,
                                          order_type=OrderType.MARKET), contract(NIFTY_FUT))
    assert kwargs == {
        "stock_code": "NIFTY", "exchange_code": "NFO", "product": "futures", "action": "buy", "order_type": "limit",
        "stoploss": "", "quantity": "65", "price": "23832.85", "validity": "day", "user_remark": "DA1B2C3-000001",
        "expiry_date": "2026-12-29T06:00:00.000Z", "right": "others", "strike_price": "0",
    }


def test_place_kwargs_icici_code_for_bfo_future() -> None:
    kwargs = mapping.place_kwargs(request(SENSEX_FUT, quantity=20), contract(SENSEX_FUT))
    assert (kwargs["stock_code"], kwargs["exchange_code"], kwargs["expiry_date"]) == (
        "BSESEN", "BFO", "2026-12-31T06:00:00.000Z")


@pytest.mark.parametrize(("key", "right"), [(NIFTY_CALL, "call"), (NIFTY_PUT, "put")])
def test_place_kwargs_option(key: str, right: str) -> None:
    kwargs = mapping.place_kwargs(request(key, side=Side.SELL, quantity=130, price=5), contract(key))
    assert kwargs == {
        "stock_code": "NIFTY", "exchange_code": "NFO", "product": "options", "action": "sell", "order_type": "limit",
        "stoploss": "", "quantity": "130", "price": "0.05", "validity": "day", "user_remark": "DA1B2C3-000001",
        "expiry_date": "2026-12-29T06:00:00.000Z", "right": right, "strike_price": "25800",
    }


def test_place_kwargs_truncates_the_remark() -> None:
    long_id = "X" * (mapping.MAX_REMARK + 7)
    kwargs = mapping.place_kwargs(request(RELIANCE, client_order_id=long_id), contract(RELIANCE))
    assert kwargs["user_remark"] == "X" * mapping.MAX_REMARK


def test_place_kwargs_remark_round_trips_through_an_order_row(master: SecurityMaster) -> None:
    """What place sends as the remark is what order_row reads back as the client order id."""
    kwargs = mapping.place_kwargs(request(NIFTY_CALL, quantity=130), contract(NIFTY_CALL))
    row = option_order_row(user_remark=kwargs["user_remark"], quantity=kwargs["quantity"], price=kwargs["price"])
    order = mapping.order_row(row, master)
    assert (order.client_order_id, order.instrument_key, order.quantity, order.price) == (
        "DA1B2C3-000001", NIFTY_CALL, 130, 42005)


@given(st.integers(min_value=1, max_value=10**12))
def test_place_kwargs_price_text_reads_back(price: int) -> None:
    kwargs = mapping.place_kwargs(request(RELIANCE, price=price), contract(RELIANCE))
    assert mapping.paise(kwargs["price"], "price") == price
    assert all(isinstance(value, str) for value in kwargs.values())
