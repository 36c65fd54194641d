"""Breeze's answers and the SDK's exceptions, turned into ``BrokerError`` codes the engine acts on.

Breeze answers ``{"Success": ..., "Status": 200, "Error": None}``, or a ``Status`` and an ``Error``
text. The SDK raises a bare ``Exception("Error in place_order(): ...")`` whose ``__context__`` holds
what really failed (a timeout, a refused connection, a body that is not JSON). Messages built here
carry no secrets: callers pass them through ``scrub`` as well.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from typing import Any

from app.brokers.base import BrokerError, BrokerErrorCode

# Exact texts Breeze (and the SDK, for the customer-details call) uses for an ended session.
SESSION_ERRORS = frozenset({
    "Resource not available.",
    "Invalid session.",
    "Session key is expired.",
    "Could not authenticate credentials. Please check session key.",
})
AUTH_ERRORS = frozenset({
    "Public Key does not exist.",
    "Checksum mismatch.",
    "Could not authenticate credentials. Please check api key.",
    "Could not authenticate credentials. Please check token and keys",
})
NO_DATA = "No Data Found"
# Breeze does not publish its text for a cancel or modify of an order that has already ended; the
# SDK's own check before a modify answers "Order has already been executed and cannot be modified.".
# So, conservatively: only a refusal of a cancel or modify that says it cannot (or already) and names
# a final status of Breeze's order vocabulary is ALREADY_FINAL; the engine then reads the order's
# real state from the book, so a wrong guess costs a read, never a lost order.
_CHANGE_CALLS = frozenset({"cancel_order", "modify_order"})
_REFUSAL = re.compile(r"cannot be (cancell?ed|modified)|already")
_FINAL = re.compile(r"\b(executed|cancell?ed|rejected|expired)\b")
_RATE_WORDS = ("too many request", "rate limit", "limit exceeded", "limit exceed")


class HttpStatusError(Exception):
    """The HTTP layer answered with a server error (5xx) before any Breeze body could be read."""

    def __init__(self, status: int, url: str) -> None:
        super().__init__(f"HTTP {status} from {url}")
        self.status = status


def unwrap(response: object, call: str, *, empty_ok: bool = False) -> Any:
    """The ``Success`` payload of a Breeze answer, or ``BrokerError`` saying why there is none.

    With ``empty_ok``, Breeze's "No Data Found" (how it answers an empty list) is an empty list.
    """
    if not isinstance(response, Mapping):
        raise BrokerError(BrokerErrorCode.MALFORMED, f"{call}: the broker's answer is not an object ({type(response).__name__})")
    status = response.get("Status")
    error = response.get("Error")
    if status == 200 and error in (None, ""):
        if "Success" not in response:
            raise BrokerError(BrokerErrorCode.MALFORMED, f"{call}: the broker's answer has no Success field")
        return response["Success"]
    text = str(error).strip() if error is not None else f"status {status} without an error text"
    if empty_ok and text == NO_DATA:
        return []
    raise BrokerError(classify_text(text, status, call), f"{call}: {text}", _public(response))


def classify_text(text: str, status: object = None, call: str = "") -> BrokerErrorCode:
    if text in SESSION_ERRORS:
        return BrokerErrorCode.SESSION_EXPIRED
    if text in AUTH_ERRORS:
        return BrokerErrorCode.AUTH_FAILED
    lowered = text.lower()
    if call in _CHANGE_CALLS and _already_final(lowered):
        return BrokerErrorCode.ALREADY_FINAL
    if status == 429 or any(word in lowered for word in _RATE_WORDS):
        return BrokerErrorCode.RATE_LIMITED
    if isinstance(status, int) and status >= 500 and "not available" in lowered:
        return BrokerErrorCode.UNAVAILABLE
    return BrokerErrorCode.REJECTED


def _already_final(lowered: str) -> bool:
    if _REFUSAL.search(lowered) is None:
        return False
    # The status is what is left once the refusal's own words are out ("cannot be cancelled" names no
    # status); "Partially Executed" alone is a working order, "Partially Executed And Cancelled" has ended.
    status = _REFUSAL.sub("", lowered).replace("partially executed and", "").replace("partially executed", "")
    return _FINAL.search(status) is not None


def from_exception(exc: BaseException, call: str) -> BrokerError:
    """The ``BrokerError`` for an exception out of an SDK call (walking the SDK's wrapping)."""
    import requests  # loaded with the SDK; never at desk start

    for cause in _chain(exc):
        if isinstance(cause, BrokerError):
            return cause
        if isinstance(cause, requests.Timeout):
            return BrokerError(BrokerErrorCode.TIMEOUT, f"{call}: no answer from Breeze in time ({type(cause).__name__})")
        if isinstance(cause, HttpStatusError):
            return BrokerError(BrokerErrorCode.UNAVAILABLE, f"{call}: Breeze answered HTTP {cause.status}")
        if isinstance(cause, requests.ConnectionError):
            return BrokerError(BrokerErrorCode.UNAVAILABLE, f"{call}: cannot reach Breeze ({type(cause).__name__})")
        if isinstance(cause, (json.JSONDecodeError, requests.exceptions.JSONDecodeError)):
            return BrokerError(BrokerErrorCode.MALFORMED, f"{call}: Breeze's answer is not JSON")
    text = str(exc).strip()
    for known in SESSION_ERRORS | AUTH_ERRORS:
        if known in text:
            return BrokerError(classify_text(known), f"{call}: {known}")
    return BrokerError(BrokerErrorCode.UNAVAILABLE, f"{call}: the Breeze SDK failed: {type(exc).__name__}: {text[:200]}")


def _chain(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def _public(response: Mapping[str, Any]) -> dict[str, object]:
    return {"Status": response.get("Status"), "Error": response.get("Error")}
