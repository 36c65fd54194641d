"""``Bulwark``: the blocking client for the desk's local API (httpx underneath).

```python
with Bulwark(token=token) as desk:                      # or BULWARK_API_TOKEN in the environment
    decision = desk.buy("NSE:RELIANCE", 1, price="1500")
    if not decision.accepted:
        print(decision.rejection.code, decision.rejection.message)
```

A refused order is an answer, not an exception: ``SubmitOut.accepted`` is false and its rejection
names the code, the value and the limit. Exceptions (``app.api.client.errors``) are for calls the
API refused or could not answer.
"""

from __future__ import annotations

import os
import ssl
import time
from types import TracebackType
from typing import Self, TypeVar

import httpx

from app.api.client import calls
from app.api.client.calls import (
    DEFAULT_RETRY,
    DEFAULT_TIMEOUT_S,
    DEFAULT_URL,
    Call,
    Price,
    RetryPolicy,
)
from app.api.client.errors import ApiError
from app.api.models import (
    AlertOut,
    CancelOut,
    DeskStatus,
    InstrumentOut,
    KillOut,
    LimitsOut,
    Liveness,
    ModifyOut,
    OrderIn,
    OrderOut,
    PositionOut,
    PreviewOut,
    Quote,
    Readiness,
    SubmitOut,
)
from app.domain.orders import Side

T = TypeVar("T")


class Bulwark:
    """A blocking client. ``token`` defaults to ``BULWARK_API_TOKEN``; ``verify`` is for a TLS desk's CA.

    Every call times out after ``timeout`` seconds and is retried as ``retry`` says (see
    ``RetryPolicy``); each submit carries a fresh idempotency key, reused on its retries, so a
    resent order is placed once.
    """

    def __init__(
        self,
        url: str = DEFAULT_URL,
        token: str | None = None,
        *,
        timeout: float = DEFAULT_TIMEOUT_S,
        retry: RetryPolicy = DEFAULT_RETRY,
        verify: ssl.SSLContext | str | bool = True,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.url = url.rstrip("/")
        self.retry = retry
        self._http = httpx.Client(
            base_url=self.url, auth=calls.bearer(token, os.environ), timeout=timeout, verify=verify,
            transport=transport, headers={"User-Agent": "bulwark-client"},
        )

    def __repr__(self) -> str:
        return f"Bulwark(url={self.url!r})"

    def __enter__(self) -> Self:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    # -- desk --------------------------------------------------------------------------------------

    def health(self) -> Liveness:
        return self._send(calls.health())

    def ready(self) -> Readiness:
        """Whether the desk can take orders now (``ready`` false rather than an exception when not)."""
        return self._send(calls.ready())

    def status(self) -> DeskStatus:
        return self._send(calls.status())

    def limits(self) -> LimitsOut:
        return self._send(calls.limits())

    def alerts(self, after: int = 0, limit: int | None = None) -> list[AlertOut]:
        """Alerts with ``seq`` above ``after``: pass the last one seen to get only new ones."""
        return self._send(calls.alerts(after, limit))

    def kill(self, reason: str | None = None) -> KillOut:
        """Engage the kill switch: the desk is HALTED when this returns. Re-arming is for an operator at the desk."""
        return self._send(calls.kill(reason))

    # -- market ------------------------------------------------------------------------------------

    def instruments(self, q: str = "", limit: int | None = None) -> list[InstrumentOut]:
        return self._send(calls.instruments(q, limit))

    def quotes(self, *keys: str) -> list[Quote]:
        return self._send(calls.quotes(keys))

    def quote(self, key: str) -> Quote:
        return self._send(calls.quote(key))

    def positions(self) -> list[PositionOut]:
        return self._send(calls.positions())

    # -- orders ------------------------------------------------------------------------------------

    def orders(self, working: bool = True, mine: bool = False) -> list[OrderOut]:
        return self._send(calls.orders(working, mine))

    def order(self, client_order_id: str) -> OrderOut:
        return self._send(calls.order(client_order_id))

    def buy(self, instrument: str, quantity: int, price: Price | None = None, **opts: object) -> SubmitOut:
        """Buy ``quantity`` units (a multiple of the lot); ``price`` in rupees, none for a market order."""
        return self.submit(calls.order_in(instrument, Side.BUY, quantity, price, **opts))

    def sell(self, instrument: str, quantity: int, price: Price | None = None, **opts: object) -> SubmitOut:
        return self.submit(calls.order_in(instrument, Side.SELL, quantity, price, **opts))

    def submit(self, order: OrderIn, *, idempotency_key: str | None = None) -> SubmitOut:
        """Send an order through the gate; the answer is its decision (``accepted`` false is not an exception)."""
        return self._send(calls.submit(order, idempotency_key))

    def preview(self, order: OrderIn) -> PreviewOut:
        """What the gate would say now, sending nothing."""
        return self._send(calls.preview(order))

    def modify(self, client_order_id: str, quantity: int | None = None, price: Price | None = None) -> ModifyOut:
        return self._send(calls.modify(client_order_id, quantity, price))

    def cancel(self, client_order_id: str) -> CancelOut:
        return self._send(calls.cancel(client_order_id))

    def cancel_all_mine(self) -> list[CancelOut]:
        """Cancel every working order this client placed."""
        return [self.cancel(o.client_order_id) for o in self.orders(working=True, mine=True)]

    # -- transport ---------------------------------------------------------------------------------

    def _send(self, call: Call[T]) -> T:
        content = call.content()
        headers = call.headers | ({"Content-Type": "application/json"} if content is not None else {})
        attempt = 1
        while True:
            error: ApiError | httpx.TransportError
            try:
                response = self._http.request(call.method, call.path, params=call.params, content=content, headers=headers)
                return calls.answer(call, response.status_code, response.content, response.headers)
            except ApiError as exc:
                error = exc
            except httpx.TransportError as exc:
                error = exc
            wait = self.retry.wait(call, attempt, error)
            if wait is None:
                if isinstance(error, ApiError):
                    raise error
                raise calls.unreachable(error) from None
            time.sleep(wait)
            attempt += 1
