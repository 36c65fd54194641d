"""What each API call sends and how its answer parses, shared by the sync and the async client.

A ``Call`` is data (method, path, query, body, headers, which answers are success, and whether it may
be resent after a dropped connection); the two clients only differ in how they send it. The answer
is parsed with the same pydantic models the server validates against (``app.api.models``).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Generator, Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Generic, TypeVar
from urllib.parse import quote as quote_path

import httpx
from pydantic import BaseModel, TypeAdapter, ValidationError

from app.api.client.errors import (
    ApiError,
    ConnectionFailed,
    NotFound,
    RateLimited,
    error_from_response,
    invalid_locally,
)
from app.api.models import (
    API_PREFIX,
    IDEMPOTENCY_HEADER,
    AlertOut,
    CancelOut,
    DeskStatus,
    InstrumentOut,
    KillIn,
    KillOut,
    LimitsOut,
    Liveness,
    ModifyIn,
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

DEFAULT_URL = "http://127.0.0.1:8740"
TOKEN_ENV = "BULWARK_API_TOKEN"
DEFAULT_TIMEOUT_S = 5.0

T = TypeVar("T")
M = TypeVar("M", bound=BaseModel)
Price = Decimal | str | int | float


@dataclass(frozen=True)
class Call(Generic[T]):
    """One request and the parser for its answer.

    ``resendable``: sending it twice does no more than sending it once (reads, previews, and a submit
    carrying its idempotency key), so it may be resent when the connection dropped after sending.
    """

    method: str
    path: str
    parse: Callable[[bytes], T]
    params: dict[str, str] = field(default_factory=dict)
    body: BaseModel | None = None
    headers: dict[str, str] = field(default_factory=dict)
    resendable: bool = True
    success: frozenset[int] = frozenset({200})

    def content(self) -> bytes | None:
        return None if self.body is None else self.body.model_dump_json(exclude_none=False).encode()


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how long the clients retry before raising.

    Retried: a 429 (the limiter refuses before anything happens, so any call may be resent), after its
    ``Retry-After``; a connection that could not be opened (nothing was sent); and, for resendable
    calls only, a connection that dropped or timed out after sending. A ``Retry-After`` above
    ``max_wait_s`` is raised at once rather than slept through.
    """

    attempts: int = 4
    max_wait_s: float = 10.0
    backoff_s: float = 0.1

    def wait(self, call: Call[Any], attempt: int, error: ApiError | httpx.TransportError) -> float | None:
        """Seconds to wait before attempt ``attempt + 1``, or ``None`` to give up and raise."""
        if attempt >= self.attempts:
            return None
        if isinstance(error, RateLimited):
            return error.retry_after if error.retry_after <= self.max_wait_s else None
        if isinstance(error, ApiError):
            return None
        never_sent = isinstance(error, (httpx.ConnectError, httpx.ConnectTimeout))
        if never_sent or call.resendable:
            return min(self.backoff_s * 2.0 ** (attempt - 1), self.max_wait_s)
        return None


DEFAULT_RETRY = RetryPolicy()


def answer(call: Call[T], status: int, content: bytes, headers: httpx.Headers) -> T:
    """The parsed answer, or the ``ApiError`` for an error status."""
    if status not in call.success:
        raise error_from_response(status, content, headers)
    return call.parse(content)


def unreachable(error: httpx.TransportError) -> ConnectionFailed:
    """The exception for a call that got no answer (httpx's text names the cause, never the headers)."""
    return ConnectionFailed(0, "CONNECTION", f"{type(error).__name__}: {error}" if str(error) else type(error).__name__)


def _one(model: type[M]) -> Callable[[bytes], M]:
    return model.model_validate_json


def _many(model: type[M]) -> Callable[[bytes], list[M]]:
    adapter = TypeAdapter(list[model])  # type: ignore[valid-type]
    return adapter.validate_json


def _id(client_order_id: str) -> str:
    return f"{API_PREFIX}/orders/{quote_path(client_order_id, safe='')}"


def _validated(model: type[M], **values: object) -> M:
    try:
        return model.model_validate(values)
    except ValidationError as exc:
        raise invalid_locally(exc) from None


def order_in(instrument: str, side: Side, quantity: int, price: Price | None, **opts: object) -> OrderIn:
    """An ``OrderIn`` from keyword terms (``price`` in rupees; a float goes through its shortest text)."""
    rupees = str(price) if isinstance(price, float) else price
    return _validated(OrderIn, instrument=instrument, side=side, quantity=quantity, price=rupees, **opts)


def health() -> Call[Liveness]:
    return Call("GET", f"{API_PREFIX}/health/live", _one(Liveness))


def ready() -> Call[Readiness]:
    # 503 is an answer here, not an error: the body says which part is not ready.
    return Call("GET", f"{API_PREFIX}/health/ready", _one(Readiness), success=frozenset({200, 503}))


def status() -> Call[DeskStatus]:
    return Call("GET", f"{API_PREFIX}/status", _one(DeskStatus))


def instruments(q: str, limit: int | None) -> Call[list[InstrumentOut]]:
    params = {"q": q} | ({} if limit is None else {"limit": str(limit)})
    return Call("GET", f"{API_PREFIX}/instruments", _many(InstrumentOut), params=params)


def quotes(keys: Iterable[str]) -> Call[list[Quote]]:
    return Call("GET", f"{API_PREFIX}/quotes", _many(Quote), params={"keys": ",".join(keys)})


def quote(key: str) -> Call[Quote]:
    many = _many(Quote)

    def first(content: bytes) -> Quote:
        found = many(content)
        if not found:
            raise NotFound(404, "NOT_FOUND", f"no quote for {key!r}")
        return found[0]

    return Call("GET", f"{API_PREFIX}/quotes", first, params={"keys": key})


def positions() -> Call[list[PositionOut]]:
    return Call("GET", f"{API_PREFIX}/positions", _many(PositionOut))


def orders(working: bool, mine: bool) -> Call[list[OrderOut]]:
    params = {"status": "working" if working else "all", "mine": "true" if mine else "false"}
    return Call("GET", f"{API_PREFIX}/orders", _many(OrderOut), params=params)


def order(client_order_id: str) -> Call[OrderOut]:
    return Call("GET", _id(client_order_id), _one(OrderOut))


def submit(order: OrderIn, idempotency_key: str | None) -> Call[SubmitOut]:
    # The key makes the submit resendable: the server answers a repeat with the stored decision.
    key = idempotency_key or uuid.uuid4().hex
    return Call("POST", f"{API_PREFIX}/orders", _one(SubmitOut), body=order, headers={IDEMPOTENCY_HEADER: key})


def preview(order: OrderIn) -> Call[PreviewOut]:
    return Call("POST", f"{API_PREFIX}/orders/preview", _one(PreviewOut), body=order)


def modify(client_order_id: str, quantity: int | None, price: Price | None) -> Call[ModifyOut]:
    rupees = str(price) if isinstance(price, float) else price
    body = _validated(ModifyIn, quantity=quantity, price=rupees)
    return Call("PATCH", _id(client_order_id), _one(ModifyOut), body=body, resendable=False)


def cancel(client_order_id: str) -> Call[CancelOut]:
    return Call("DELETE", _id(client_order_id), _one(CancelOut), resendable=False)


def kill(reason: str | None) -> Call[KillOut]:
    # Resendable: engaging a desk that is already HALTED changes nothing, and a stop button must get through.
    body = KillIn() if reason is None else _validated(KillIn, reason=reason)
    return Call("POST", f"{API_PREFIX}/kill", _one(KillOut), body=body)


def limits() -> Call[LimitsOut]:
    return Call("GET", f"{API_PREFIX}/limits", _one(LimitsOut))


def alerts(after: int, limit: int | None) -> Call[list[AlertOut]]:
    params = {"after": str(after)} | ({} if limit is None else {"limit": str(limit)})
    return Call("GET", f"{API_PREFIX}/alerts", _many(AlertOut), params=params)


class BearerToken(httpx.Auth):
    """Adds ``Authorization: Bearer <token>`` to each request; its repr never shows the token."""

    def __init__(self, token: str) -> None:
        self._token = token

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers["Authorization"] = f"Bearer {self._token}"
        yield request

    def header(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self._token}"}

    def __repr__(self) -> str:
        return "BearerToken(<hidden>)"


def bearer(token: str | None, env: Mapping[str, str]) -> BearerToken | None:
    """The token given, else ``BULWARK_API_TOKEN`` from the environment; none for health checks only."""
    chosen = token if token is not None else env.get(TOKEN_ENV)
    return BearerToken(chosen) if chosen else None
