"""Breeze answers and SDK exceptions to BrokerError codes the engine acts on."""

from __future__ import annotations

import json
from typing import Any

import pytest
import requests

from app.brokers.base import BrokerError, BrokerErrorCode
from app.brokers.breeze.errors import (
    AUTH_ERRORS,
    SESSION_ERRORS,
    HttpStatusError,
    classify_text,
    from_exception,
    unwrap,
)

Code = BrokerErrorCode


def answer(success: Any = None, status: Any = 200, error: Any = None, **extra: Any) -> dict[str, Any]:
    return {"Success": success, "Status": status, "Error": error, **extra}


def unwrap_error(response: object, *, empty_ok: bool = False) -> BrokerError:
    with pytest.raises(BrokerError) as caught:
        unwrap(response, "get_order_list", empty_ok=empty_ok)
    return caught.value


# -- unwrap ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("success", [[{"order_id": "1"}], {"order_id": "1"}, [], None, "ok"])
def test_unwrap_returns_success(success: object) -> None:
    assert unwrap(answer(success), "call") == success
    assert unwrap(answer(success, error=""), "call") == success


def test_unwrap_no_data_found_is_an_empty_list_when_allowed() -> None:
    response = answer(None, 500, "No Data Found")
    assert unwrap(response, "get_order_list", empty_ok=True) == []
    assert unwrap(answer(None, 200, "No Data Found"), "get_trade_list", empty_ok=True) == []


def test_unwrap_no_data_found_is_rejected_otherwise() -> None:
    error = unwrap_error(answer(None, 500, "No Data Found"))
    assert error.code is Code.REJECTED
    assert "No Data Found" in error.message and "get_order_list" in error.message


@pytest.mark.parametrize("text", ["Resource not available.", "Invalid session.", "Session key is expired.",
                                  "Could not authenticate credentials. Please check session key."])
def test_unwrap_session_ended(text: str) -> None:
    assert unwrap_error(answer(None, 401, text)).code is Code.SESSION_EXPIRED
    # "Resource not available." with a 5xx is still the session, not an outage.
    assert unwrap_error(answer(None, 500, text)).code is Code.SESSION_EXPIRED


@pytest.mark.parametrize("text", ["Public Key does not exist.", "Checksum mismatch.",
                                  "Could not authenticate credentials. Please check api key."])
def test_unwrap_auth_failed(text: str) -> None:
    assert unwrap_error(answer(None, 401, text)).code is Code.AUTH_FAILED


@pytest.mark.parametrize("response", [answer(None, 429, "Some text"), answer(None, 429, None),
                                      answer(None, 500, "Too many requests"), answer(None, 200, "Rate limit reached"),
                                      answer(None, 500, "Limit exceeded: API calls per minute")])
def test_unwrap_rate_limited(response: dict[str, Any]) -> None:
    assert unwrap_error(response).code is Code.RATE_LIMITED


def test_unwrap_service_not_available_is_unavailable() -> None:
    assert unwrap_error(answer(None, 503, "Service not available")).code is Code.UNAVAILABLE


@pytest.mark.parametrize("response", [answer(None, 500, "Insufficient balance"),
                                      answer(None, 200, "Order price is out of the price band"),
                                      answer(None, 400, None)])
def test_unwrap_other_errors_are_rejections(response: dict[str, Any]) -> None:
    error = unwrap_error(response)
    assert error.code is Code.REJECTED
    assert error.message.startswith("get_order_list: ")


def test_unwrap_error_without_text_says_the_status() -> None:
    assert "status 400 without an error text" in unwrap_error(answer(None, 400, None)).message


@pytest.mark.parametrize("response", [None, [], "Success", 200, b"{}", [answer([])]])
def test_unwrap_non_object_is_malformed(response: object) -> None:
    error = unwrap_error(response)
    assert error.code is Code.MALFORMED
    assert type(response).__name__ in error.message


def test_unwrap_200_without_success_is_malformed() -> None:
    error = unwrap_error({"Status": 200, "Error": None})
    assert error.code is Code.MALFORMED and "Success" in error.message


def test_unwrap_body_keeps_only_status_and_error() -> None:
    response = answer({"session_token": "SECRET", "idirect_userid": "U1"}, 401, "Invalid session.",
                      api_key="KEY", headers={"X-SessionToken": "SECRET"})
    error = unwrap_error(response)
    assert dict(error.body) == {"Status": 401, "Error": "Invalid session."}
    assert "SECRET" not in str(error) and "KEY" not in str(error)


def test_classify_text() -> None:
    assert classify_text("Invalid session.") is Code.SESSION_EXPIRED
    assert classify_text("Checksum mismatch.") is Code.AUTH_FAILED
    assert classify_text("TOO MANY REQUESTS") is Code.RATE_LIMITED
    assert classify_text("anything", 429) is Code.RATE_LIMITED
    assert classify_text("Server not available", 502) is Code.UNAVAILABLE
    assert classify_text("Server not available", 400) is Code.REJECTED
    assert classify_text("Quantity should be multiple of lot size") is Code.REJECTED
    # Texts are matched exactly: a prefix of a session text is not a session error.
    assert classify_text("Invalid session") is Code.REJECTED


# -- from_exception -------------------------------------------------------------------------------


def sdk_wrapped(cause: BaseException, call: str = "place_order") -> BaseException:
    """What the SDK raises: ``error_exception`` builds a bare Exception inside the ``except`` block."""

    def sdk_call() -> None:
        try:
            raise cause
        except type(cause) as error:
            raise Exception(f"Error in {call}(): {error}").with_traceback(error.__traceback__)

    with pytest.raises(Exception, match=rf"^Error in {call}\(\): ") as caught:
        sdk_call()
    assert caught.value.__context__ is cause
    return caught.value


@pytest.mark.parametrize("cause", [requests.ReadTimeout("read timed out"), requests.ConnectTimeout("connect"),
                                   requests.Timeout("t")])
def test_sdk_timeout_is_timeout(cause: Exception) -> None:
    error = from_exception(sdk_wrapped(cause), "place")
    assert error.code is Code.TIMEOUT
    assert error.message.startswith("place: ") and type(cause).__name__ in error.message


def test_direct_timeout_is_timeout() -> None:
    assert from_exception(requests.ReadTimeout("x"), "order_book").code is Code.TIMEOUT


@pytest.mark.parametrize("cause", [requests.ConnectionError("refused"), requests.exceptions.SSLError("tls"),
                                   requests.exceptions.ProxyError("proxy")])
def test_connection_error_is_unavailable(cause: Exception) -> None:
    error = from_exception(sdk_wrapped(cause), "place")
    assert error.code is Code.UNAVAILABLE and "cannot reach Breeze" in error.message


def test_builtin_connection_error_is_unavailable() -> None:
    error = from_exception(sdk_wrapped(ConnectionRefusedError(111, "Connection refused")), "place")
    assert error.code is Code.UNAVAILABLE


def test_http_status_error_is_unavailable() -> None:
    error = from_exception(sdk_wrapped(HttpStatusError(503, "https://api.icicidirect.com/x")), "modify")
    assert error.code is Code.UNAVAILABLE and "HTTP 503" in error.message
    assert from_exception(HttpStatusError(502, "u"), "funds").code is Code.UNAVAILABLE


def test_json_decode_errors_are_malformed() -> None:
    body_error = requests.exceptions.JSONDecodeError("Expecting value", "<html>", 0)
    assert from_exception(sdk_wrapped(body_error), "funds").code is Code.MALFORMED
    assert from_exception(sdk_wrapped(json.JSONDecodeError("Expecting value", "x", 0)), "funds").code is Code.MALFORMED


def test_real_response_json_failure_is_malformed() -> None:
    """``Response.json()`` on an HTML body raises requests' JSONDecodeError; wrapped by the SDK it is MALFORMED."""
    response = requests.Response()
    response._content = b"<html>502 Bad Gateway</html>"
    response.status_code = 200
    try:
        response.json()
    except requests.exceptions.JSONDecodeError as cause:
        error = from_exception(sdk_wrapped(cause, "get_funds"), "funds")
    else:
        pytest.fail("an HTML body parsed as JSON")
    assert error.code is Code.MALFORMED


@pytest.mark.parametrize("text", sorted(SESSION_ERRORS))
def test_session_text_in_a_bare_exception(text: str) -> None:
    error = from_exception(Exception(f"Error in get_customer_details(): {text}"), "renew_session")
    assert error.code is Code.SESSION_EXPIRED and text in error.message


@pytest.mark.parametrize("text", sorted(AUTH_ERRORS))
def test_auth_text_in_a_bare_exception(text: str) -> None:
    assert from_exception(Exception(text), "renew_session").code is Code.AUTH_FAILED


def test_anything_else_is_unavailable_with_the_type() -> None:
    error = from_exception(KeyError("Success"), "funds")
    assert error.code is Code.UNAVAILABLE
    assert "KeyError" in error.message and error.message.startswith("funds: ")
    error = from_exception(sdk_wrapped(ValueError("odd")), "place")
    assert error.code is Code.UNAVAILABLE and "Exception" in error.message and "odd" in error.message


def test_long_text_is_cut() -> None:
    error = from_exception(RuntimeError("x" * 5000), "place")
    assert len(error.message) < 300


def test_broker_error_in_the_chain_is_kept() -> None:
    original = BrokerError(Code.RATE_LIMITED, "slow down")
    assert from_exception(sdk_wrapped(original), "place") is original
    assert from_exception(original, "place") is original


def test_explicit_cause_is_followed() -> None:
    try:
        try:
            raise requests.ReadTimeout("slow")
        except requests.ReadTimeout as timeout:
            raise RuntimeError("wrapped") from timeout
    except RuntimeError as error:
        assert from_exception(error, "place").code is Code.TIMEOUT


def test_cyclic_chain_terminates() -> None:
    first, second = Exception("a"), Exception("b")
    first.__context__, second.__context__ = second, first
    assert from_exception(first, "place").code is Code.UNAVAILABLE


# -- a cancel or modify of an order that already ended ---------------------------------------------


@pytest.mark.parametrize("call, text", [
    # The emulator's answer to a cancel of an ended order, and the SDK's own refusal of a modify.
    ("cancel_order", "Order cannot be cancelled as it is Executed"),
    ("cancel_order", "Order cannot be cancelled as it is Cancelled"),
    ("cancel_order", "Order cannot be cancelled as it is Partially Executed And Cancelled"),
    ("cancel_order", "Order has already been executed"),
    ("modify_order", "Order has already been executed and cannot be modified."),
    ("modify_order", "Order cannot be modified as it is Expired"),
])
def test_a_refused_change_naming_a_final_status_is_already_final(call: str, text: str) -> None:
    with pytest.raises(BrokerError) as caught:
        unwrap(answer("", status=500, error=text), call)
    assert caught.value.code is Code.ALREADY_FINAL
    assert caught.value.message == f"{call}: {text}"


@pytest.mark.parametrize("call, text", [
    # Working, so the cancel really failed; or no final status named; or not a change of an order.
    ("cancel_order", "Order cannot be cancelled as it is Partially Executed"),
    ("cancel_order", "Order cannot be cancelled as it is Ordered"),
    ("cancel_order", "Order not found"),
    ("cancel_order", "Exchange-Code cannot be empty"),
    ("place_order", "Order has already been executed"),
    ("get_order_list", "Order cannot be cancelled as it is Executed"),
])
def test_other_refusals_stay_what_they_were(call: str, text: str) -> None:
    with pytest.raises(BrokerError) as caught:
        unwrap(answer("", status=500, error=text), call)
    assert caught.value.code is Code.REJECTED
