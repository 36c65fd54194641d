"""Fault injection for the emulator's REST API: each fault arms for the next ``count`` matching calls."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Fault:
    """One armed fault as the REST layer applies it; only the fields of its ``kind`` matter."""

    kind: str
    status: int = 500
    seconds: float = 0.0
    apply: bool = False
    html: bool = True
    field: str = ""
    value: Any = None
    text: str = ""
    order_id: str | None = None


@dataclass(slots=True)
class _Armed:
    fault: Fault
    endpoint: str | None
    method: str | None
    remaining: int

    def matches(self, endpoint: str, method: str) -> bool:
        return (self.endpoint is None or self.endpoint == endpoint) and (
            self.method is None or self.method == method
        )


class Faults:
    """Faults armed by a test (any thread) and consumed by the emulator's REST handlers.

    Every method arms one fault for the next ``count`` REST calls matching ``endpoint`` (``None``:
    any endpoint, ``customerdetails`` included) and ``method`` (``None``: any). When several armed
    faults match a call, the one armed first is used; a fault is spent when it is matched, whether
    or not the call would otherwise have succeeded. Faults are applied after the rate limiter
    (a faulted call still uses quota) and, except ``missing_field``/``bad_value``, instead of the
    emulator's own processing, so nothing changes on the emulated exchange.

    * ``timeout``: the answer comes only after ``seconds`` (an async sleep: other calls are served
      meanwhile). With ``apply=False`` (default) nothing is processed and the late answer is an
      HTTP 504 HTML page; with ``apply=True`` the call is processed at once (an order really is
      placed, cancelled...) and its normal answer is held back for ``seconds``: the ghost order
      a client sees after giving up on a slow request.
    * ``http_error``: HTTP ``status`` with an HTML body (``html=False``: a plain-text body).
    * ``malformed``: HTTP 200, content type JSON, body ``{"Success": {"order_id": `` (truncated).
    * ``rate_limit``: HTTP 429 ``{"Success": None, "Status": 429, "Error": "Too many requests"}``.
    * ``session_expired``: HTTP 200 ``{"Success": None, "Status": 500, "Error": "Resource not available."}``.
    * ``missing_field``/``bad_value``: the call is processed normally, then ``field`` is dropped from
      (or set to ``value`` in) the ``Success`` payload: the dict, or every row of a list (with
      ``order_id``: only the rows of that order).
    * ``reject``: HTTP 200 ``{"Success": None, "Status": 500, "Error": text}``.

    ``master_unavailable`` (a plain flag, not counted) makes the security master download answer
    HTTP 503 until it is set back to ``False``. ``books_ignore_exchange`` (a plain flag) makes the
    order and trade lists show every exchange's rows whichever exchange is asked for, as a Breeze
    server was seen to do.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._armed: list[_Armed] = []
        self.master_unavailable = False
        self.books_ignore_exchange = False

    def _arm(self, fault: Fault, endpoint: str | None, method: str | None, count: int) -> None:
        if count <= 0:
            raise ValueError(f"count must be positive, got {count}")
        with self._lock:
            self._armed.append(_Armed(fault, endpoint, method.upper() if method else None, count))

    def timeout(
        self,
        endpoint: str | None = None,
        method: str | None = None,
        count: int = 1,
        seconds: float = 30.0,
        apply: bool = False,
    ) -> None:
        self._arm(Fault("timeout", status=504, seconds=seconds, apply=apply), endpoint, method, count)

    def http_error(
        self,
        status: int = 500,
        endpoint: str | None = None,
        method: str | None = None,
        count: int = 1,
        html: bool = True,
    ) -> None:
        self._arm(Fault("http_error", status=status, html=html), endpoint, method, count)

    def malformed(self, endpoint: str | None = None, method: str | None = None, count: int = 1) -> None:
        self._arm(Fault("malformed", status=200), endpoint, method, count)

    def rate_limit(self, endpoint: str | None = None, method: str | None = None, count: int = 1) -> None:
        self._arm(Fault("rate_limit", status=429), endpoint, method, count)

    def session_expired(self, endpoint: str | None = None, method: str | None = None, count: int = 1) -> None:
        self._arm(Fault("session_expired", status=200), endpoint, method, count)

    def missing_field(
        self,
        field: str,
        endpoint: str | None = None,
        method: str | None = None,
        count: int = 1,
        order_id: str | None = None,
    ) -> None:
        self._arm(Fault("missing_field", field=field, order_id=order_id), endpoint, method, count)

    def bad_value(
        self,
        field: str,
        value: Any,
        endpoint: str | None = None,
        method: str | None = None,
        count: int = 1,
        order_id: str | None = None,
    ) -> None:
        self._arm(Fault("bad_value", field=field, value=value, order_id=order_id), endpoint, method, count)

    def reject(
        self, text: str, endpoint: str | None = None, method: str | None = None, count: int = 1
    ) -> None:
        self._arm(Fault("reject", status=200, text=text), endpoint, method, count)

    def clear(self) -> None:
        with self._lock:
            self._armed.clear()

    def armed(self) -> int:
        """How many faulted calls are still to come, over all armed faults."""
        with self._lock:
            return sum(armed.remaining for armed in self._armed)

    def take(self, endpoint: str, method: str) -> Fault | None:
        """Spend one use of the first armed fault matching this call, if any."""
        with self._lock:
            for armed in self._armed:
                if armed.matches(endpoint, method):
                    armed.remaining -= 1
                    if armed.remaining == 0:
                        self._armed.remove(armed)
                    return armed.fault
        return None
