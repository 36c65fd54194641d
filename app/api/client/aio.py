"""``AsyncBulwark``: the asyncio client, the same calls as ``Bulwark`` plus the WebSocket event stream.

```python
async with AsyncBulwark(token=token) as desk:
    async for event in desk.stream(types={"fill", "state"}):
        if event.type == "state" and event.data.get("trading_state") == "HALTED":
            break
```
"""

from __future__ import annotations

import asyncio
import os
import ssl
from collections.abc import AsyncIterator, Iterable
from types import TracebackType
from typing import Self, TypeVar
from urllib.parse import urlencode

import httpx
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, ConnectionClosedOK, InvalidStatus

from app.api.client import calls
from app.api.client.calls import (
    DEFAULT_RETRY,
    DEFAULT_TIMEOUT_S,
    DEFAULT_URL,
    Call,
    Price,
    RetryPolicy,
)
from app.api.client.errors import (
    ApiError,
    ConnectionFailed,
    StreamRefused,
    error_from_response,
)
from app.api.models import (
    API_PREFIX,
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
    StreamEvent,
    SubmitOut,
)
from app.domain.orders import Side

T = TypeVar("T")

# The server closes with 1008 (policy violation) when it refuses the token, the scope or the types.
_POLICY_VIOLATION = 1008


def _why(exc: Exception) -> str:
    if isinstance(exc, ConnectionClosed) and exc.rcvd is not None:
        return f"closed {exc.rcvd.code} {exc.rcvd.reason}".strip()
    return type(exc).__name__


class AsyncBulwark:
    """An asyncio client; see ``Bulwark`` for the arguments. ``stream()`` yields the desk's events."""

    def __init__(
        self,
        url: str = DEFAULT_URL,
        token: str | None = None,
        *,
        timeout: float = DEFAULT_TIMEOUT_S,
        retry: RetryPolicy = DEFAULT_RETRY,
        verify: ssl.SSLContext | str | bool = True,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.url = url.rstrip("/")
        self.retry = retry
        self._timeout = timeout
        self._verify = verify
        self._auth = calls.bearer(token, os.environ)
        self._http = httpx.AsyncClient(
            base_url=self.url, auth=self._auth, timeout=timeout, verify=verify, transport=transport,
            headers={"User-Agent": "bulwark-client"},
        )

    def __repr__(self) -> str:
        return f"AsyncBulwark(url={self.url!r})"

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    # -- desk --------------------------------------------------------------------------------------

    async def health(self) -> Liveness:
        return await self._send(calls.health())

    async def ready(self) -> Readiness:
        return await self._send(calls.ready())

    async def status(self) -> DeskStatus:
        return await self._send(calls.status())

    async def limits(self) -> LimitsOut:
        return await self._send(calls.limits())

    async def alerts(self, after: int = 0, limit: int | None = None) -> list[AlertOut]:
        return await self._send(calls.alerts(after, limit))

    async def kill(self, reason: str | None = None) -> KillOut:
        return await self._send(calls.kill(reason))

    # -- market ------------------------------------------------------------------------------------

    async def instruments(self, q: str = "", limit: int | None = None) -> list[InstrumentOut]:
        return await self._send(calls.instruments(q, limit))

    async def quotes(self, *keys: str) -> list[Quote]:
        return await self._send(calls.quotes(keys))

    async def quote(self, key: str) -> Quote:
        return await self._send(calls.quote(key))

    async def positions(self) -> list[PositionOut]:
        return await self._send(calls.positions())

    # -- orders ------------------------------------------------------------------------------------

    async def orders(self, working: bool = True, mine: bool = False) -> list[OrderOut]:
        return await self._send(calls.orders(working, mine))

    async def order(self, client_order_id: str) -> OrderOut:
        return await self._send(calls.order(client_order_id))

    async def buy(self, instrument: str, quantity: int, price: Price | None = None, **opts: object) -> SubmitOut:
        return await self.submit(calls.order_in(instrument, Side.BUY, quantity, price, **opts))

    async def sell(self, instrument: str, quantity: int, price: Price | None = None, **opts: object) -> SubmitOut:
        return await self.submit(calls.order_in(instrument, Side.SELL, quantity, price, **opts))

    async def submit(self, order: OrderIn, *, idempotency_key: str | None = None) -> SubmitOut:
        return await self._send(calls.submit(order, idempotency_key))

    async def preview(self, order: OrderIn) -> PreviewOut:
        return await self._send(calls.preview(order))

    async def modify(self, client_order_id: str, quantity: int | None = None, price: Price | None = None) -> ModifyOut:
        return await self._send(calls.modify(client_order_id, quantity, price))

    async def cancel(self, client_order_id: str) -> CancelOut:
        return await self._send(calls.cancel(client_order_id))

    async def cancel_all_mine(self) -> list[CancelOut]:
        return [await self.cancel(o.client_order_id) for o in await self.orders(working=True, mine=True)]

    # -- stream ------------------------------------------------------------------------------------

    async def stream(
        self, types: Iterable[str] | None = None, *, reconnect: bool = False, reconnect_delay_s: float = 1.0,
    ) -> AsyncIterator[StreamEvent]:
        """The desk's events as they happen: ``hello`` first (with the trading state), then order, fill,
        state, alert and rejected events (``types`` keeps only those kinds; the server filters).

        The stream ends when the desk closes it normally. A connection dropped (or dropped for reading
        too slowly) raises ``ConnectionFailed`` unless ``reconnect``; events in the gap are lost, so
        re-read ``orders()`` or ``alerts(after=...)`` on each new ``hello``. A refused token, scope or
        ``types`` raises ``StreamRefused`` and is never retried.
        """
        kinds = ",".join(sorted(set(types))) if types is not None else ""
        while True:
            try:
                async with self._connect(kinds) as ws:
                    async for message in ws:
                        yield StreamEvent.model_validate_json(message)
                return
            except ConnectionClosedOK:
                return
            except InvalidStatus as refused:
                response = refused.response
                raise error_from_response(response.status_code, bytes(response.body or b""), response.headers) from None
            except (ConnectionClosed, OSError, TimeoutError) as exc:
                if isinstance(exc, ConnectionClosed) and exc.rcvd is not None and exc.rcvd.code == _POLICY_VIOLATION:
                    raise StreamRefused(0, "STREAM_REFUSED", exc.rcvd.reason or "the desk refused the stream") from None
                if not reconnect:
                    raise ConnectionFailed(0, "CONNECTION", f"the stream dropped: {_why(exc)}") from None
            await asyncio.sleep(reconnect_delay_s)

    def _connect(self, kinds: str) -> connect:
        base = "wss" + self.url[5:] if self.url.startswith("https") else "ws" + self.url[4:]
        query = f"?{urlencode({'types': kinds})}" if kinds else ""
        return connect(
            f"{base}{API_PREFIX}/stream{query}",
            additional_headers=self._auth.header() if self._auth else None,
            open_timeout=self._timeout, proxy=None, ssl=self._tls() if base.startswith("wss") else None,
            user_agent_header="bulwark-client",
        )

    def _tls(self) -> ssl.SSLContext:
        """The same trust as the HTTP calls: a given context, a CA file, the system's, or (``False``) none."""
        if isinstance(self._verify, ssl.SSLContext):
            return self._verify
        context = ssl.create_default_context(cafile=self._verify if isinstance(self._verify, str) else None)
        if self._verify is False:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        return context

    # -- transport ---------------------------------------------------------------------------------

    async def _send(self, call: Call[T]) -> T:
        content = call.content()
        headers = call.headers | ({"Content-Type": "application/json"} if content is not None else {})
        attempt = 1
        while True:
            error: ApiError | httpx.TransportError
            try:
                response = await self._http.request(
                    call.method, call.path, params=call.params, content=content, headers=headers,
                )
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
            await asyncio.sleep(wait)
            attempt += 1

