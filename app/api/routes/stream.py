"""``WS /v1/stream``: order updates, fills, rejections, trading-state changes and alerts as they happen.

Each connection has its own bounded queue on the engine's bus (``subscribe_queue``, lossy, of
``settings.stream_queue`` events). The bus never waits for a subscriber: ``publish`` appends to the
queue and, when the queue is full, drops its oldest event and counts the drop. The stream never
passes a gap on silently: a connection whose queue dropped anything, or whose socket would not take
a message within ``SEND_TIMEOUT_S`` (its reader stopped and the TCP window is full), is too slow.
Its queue is released at once, and it is told so with a ``bye`` event and close code 1013 (try again
later) if those can still go out within ``GOODBYE_TIMEOUT_S``; else the socket is simply closed. A
client that reconnects re-reads ``GET /v1/orders`` for what it missed. Every message is a
``StreamEvent`` whose ``seq`` counts up by one on the connection (``hello`` is 0), so a client can
see for itself that nothing was skipped.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from fastapi import APIRouter, FastAPI, WebSocket
from starlette.websockets import WebSocketDisconnect

from app.api.auth import (
    POLICY_VIOLATION,
    Principal,
    authenticate,
    websocket_principal,
    websocket_token,
)
from app.api.context import ApiContext, get_context
from app.api.convert import ist_time
from app.api.errors import ApiProblem
from app.api.models import API_PREFIX, StreamEvent
from app.api.routes.orders import order_out, rejection_out
from app.domain.actors import ApiScope
from app.domain.events import Alert, OrderEvent, OrderRejected, TradingStateChanged
from app.domain.fills import Fill
from app.domain.money import paise_to_rupees
from app.engine.bus import QueueSubscription
from app.engine.engine import Engine

router = APIRouter(prefix=API_PREFIX, tags=["stream"])

STREAM_QUEUE_PREFIX = "api.stream:"
"""Bus queue names of stream connections start so (``api.stream:<client>``); the metrics count them apart."""
SEND_TIMEOUT_S = 2.0
"""A message the client's socket has not taken within this long marks the client too slow."""
GOODBYE_TIMEOUT_S = 2.0
"""How long a too-slow connection's ``bye`` and close frame may wait for its socket before it is just closed."""
TOO_SLOW_CODE = 1013
TOO_SLOW_REASON = "too slow; reconnect and re-read /v1/orders"
BAD_REQUEST_CODE = POLICY_VIOLATION
MAX_STREAMS_PER_CLIENT = 4
"""Open streams one client may hold; one more is refused (each costs a bus queue of ``stream_queue`` events)."""
TOO_MANY_REASON = f"too many streams: an API client may hold {MAX_STREAMS_PER_CLIENT} at once"


@dataclass(slots=True)
class StreamStats:
    """The stream's connections, for the metrics: open now (in all and by client), and those dropped for
    being too slow."""

    open: int = 0
    too_slow: int = 0
    by_client: Counter[str] = field(default_factory=Counter)


def stream_stats(app: FastAPI) -> StreamStats:
    """The stream statistics of ``app`` (created on first use and kept on its state)."""
    state = app.state
    stats: StreamStats | None = getattr(state, "stream_stats", None)
    if stats is None:
        stats = state.stream_stats = StreamStats()
    return stats


# -- events as the stream shows them ------------------------------------------------------------

Data = dict[str, Any]


def _order(event: OrderEvent) -> tuple[int | None, Data]:
    # GET /v1/orders' OrderOut (one mapping for both), plus the status the order came from.
    data: Data = order_out(event.order).model_dump(mode="json")
    data["previous"] = str(event.previous) if event.previous is not None else None
    return event.order.ts_ns, data


def _fill(fill: Fill) -> tuple[int | None, Data]:
    return fill.ts_ns, {
        "fill_id": fill.fill_id,
        "client_order_id": fill.client_order_id,
        "instrument": fill.instrument_key,
        "side": str(fill.side),
        "quantity": fill.quantity,
        "price": str(paise_to_rupees(fill.price)),
    }


def _state(event: TradingStateChanged) -> tuple[int | None, Data]:
    return None, {
        "trading_state": str(event.current),
        "previous": str(event.previous),
        "reason": event.reason,
        "by": event.actor,
    }


def _alert(alert: Alert) -> tuple[int | None, Data]:
    return alert.ts_ns, {"level": str(alert.level), "component": alert.component, "message": alert.message}


def _rejected(event: OrderRejected) -> tuple[int | None, Data]:
    # The same shape as a refused submit's `rejection`.
    rejection = rejection_out(event.rejection)
    return None, {
        "client_order_id": event.client_order_id,
        "instrument": event.instrument_key,
        "source": str(event.source),
        "actor": event.actor,
        "rejection": rejection.model_dump(mode="json") if rejection is not None else None,
    }


@dataclass(frozen=True, slots=True)
class _Kind:
    name: str
    event_type: type
    data: Callable[[Any], tuple[int | None, Data]]


KINDS: dict[str, _Kind] = {
    kind.name: kind
    for kind in (
        _Kind("order", OrderEvent, _order),
        _Kind("fill", Fill, _fill),
        _Kind("state", TradingStateChanged, _state),
        _Kind("alert", Alert, _alert),
        _Kind("rejected", OrderRejected, _rejected),
    )
}
_BY_TYPE: dict[type, _Kind] = {kind.event_type: kind for kind in KINDS.values()}


def _kinds(types: str | None) -> list[_Kind] | str:
    """The kinds ``?types=order,fill`` asks for (all when absent), or why the list is not valid."""
    if types is None or not types.strip():
        return list(KINDS.values())
    names = [name.strip() for name in types.split(",") if name.strip()]
    unknown = [name for name in names if name not in KINDS]
    if unknown:
        return f"unknown event type {unknown[0][:20]!r} in types: choose from {', '.join(KINDS)}"
    return [KINDS[name] for name in dict.fromkeys(names)]


class _TooSlow(Exception):
    """The client fell behind: its queue dropped events, or its socket stopped taking them."""


class _Revoked(Exception):
    """The connection's token no longer authenticates (its client was disabled, or the token rotated)."""

    def __init__(self, problem: ApiProblem) -> None:
        super().__init__(problem.message)
        self.reason = problem.message[:120]


class _Connection:
    """One client's stream: numbers the messages and sends them, each within ``SEND_TIMEOUT_S``, while the
    token it presented still authenticates (kept here, in memory only, to ask the directory again)."""

    def __init__(self, websocket: WebSocket, context: ApiContext, queue: QueueSubscription, token: str | None) -> None:
        self._ws = websocket
        self._context = context
        self._engine = context.engine
        self.queue = queue
        self._token = token
        self._seq = 0

    def __repr__(self) -> str:
        return f"<stream connection seq={self._seq}>"  # never the token

    def check(self) -> None:
        """``_Revoked`` (audited) once the token no longer authenticates: a disable or rotate ends an open stream
        before its next message. In memory (the directory never reads the store to answer), microseconds."""
        found = authenticate(self._context, self._ws, self._token, ApiScope.READ)
        if isinstance(found, ApiProblem):
            raise _Revoked(found)

    def message(self, kind: str, ts_ns: int | None, data: Data) -> str:
        """The next message's text (its ``seq`` is taken only once ``send`` has sent it)."""
        at = ist_time(ts_ns if ts_ns else self._engine.clock_ns())
        # Built by us from known parts: constructed without validation (the stream's hot path).
        return StreamEvent.model_construct(type=kind, seq=self._seq, at=at, data=data).model_dump_json()

    async def send(self, text: str, timeout: float) -> None:
        async with asyncio.timeout(timeout):
            await self._ws.send_text(text)
        self._seq += 1

    async def pump(self) -> None:
        """Send every queued event in order until the client disconnects; ``_TooSlow`` when it falls behind."""
        queue = self.queue
        while True:
            event = await queue.get()
            if queue.dropped:
                # Events older than this one were dropped: sending it would skip them silently.
                raise _TooSlow
            self.check()
            kind = _BY_TYPE[type(event)]
            ts_ns, data = kind.data(event)
            try:
                await self.send(self.message(kind.name, ts_ns, data), SEND_TIMEOUT_S)
            except TimeoutError:
                raise _TooSlow from None


async def _until_disconnect(websocket: WebSocket) -> None:
    """Read (and ignore) what the client sends until it disconnects."""
    while (await websocket.receive())["type"] != "websocket.disconnect":
        pass


async def _first_done(tasks: Sequence[asyncio.Task[None]]) -> asyncio.Task[None]:
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    return done.pop()


@router.websocket("/stream", name="stream")
async def stream(websocket: WebSocket) -> None:
    """Order updates, fills, rejections, trading-state changes and alerts as ``StreamEvent`` JSON messages.

    Needs a token with the read scope (``Authorization: Bearer`` or ``?token=``). ``?types=order,fill``
    limits the kinds. The first message is ``hello`` (client, trading state); a client that falls
    more than ``stream_queue`` events behind gets ``bye`` and close code 1013.
    """
    # Accepted first, so that a refusal reaches the client as close code 1008 with its reason (closed
    # during the handshake, it would be a bare HTTP 403).
    await websocket.accept()
    principal = await websocket_principal(websocket, ApiScope.READ)
    if principal is None:
        return
    kinds = _kinds(websocket.query_params.get("types"))
    if isinstance(kinds, str):
        await websocket.close(BAD_REQUEST_CODE, kinds)
        return
    context = get_context(websocket)
    engine = context.engine
    stats = stream_stats(websocket.app)
    client = principal.client.name
    if stats.by_client[client] >= MAX_STREAMS_PER_CLIENT:
        await websocket.close(POLICY_VIOLATION, TOO_MANY_REASON)
        return
    # Subscribed and greeted in one step (no await between): the state in hello is the one the
    # queue's first event follows.
    queue = engine.bus.subscribe_queue(
        [kind.event_type for kind in kinds], name=f"{STREAM_QUEUE_PREFIX}{principal.client.name}",
        maxsize=context.settings.stream_queue, lossy=True,
    )
    connection = _Connection(websocket, context, queue, websocket_token(websocket))
    hello = connection.message("hello", None, _hello(principal, engine, kinds, context.settings.stream_queue))
    stats.open += 1
    stats.by_client[client] += 1
    subscribed = True
    try:
        await connection.send(hello, SEND_TIMEOUT_S)
        ended = await _first_done([
            asyncio.create_task(connection.pump(), name="stream.pump"),
            asyncio.create_task(_until_disconnect(websocket), name="stream.receive"),
        ])
        error = ended.exception()
        if isinstance(error, _TooSlow):
            engine.bus.unsubscribe_queue(queue)
            subscribed = False
            stats.too_slow += 1
            await _goodbye(websocket, connection)
        elif isinstance(error, _Revoked):
            engine.bus.unsubscribe_queue(queue)
            subscribed = False
            with contextlib.suppress(TimeoutError, WebSocketDisconnect):
                async with asyncio.timeout(GOODBYE_TIMEOUT_S):
                    await websocket.close(POLICY_VIOLATION, error.reason)
        elif error is not None and not isinstance(error, WebSocketDisconnect):
            raise error
    except (TimeoutError, WebSocketDisconnect):
        pass  # hello not taken, or the client left: nothing to tell it
    finally:
        stats.open -= 1
        stats.by_client[client] -= 1
        if not stats.by_client[client]:
            del stats.by_client[client]
        if subscribed:
            engine.bus.unsubscribe_queue(queue)


def _hello(principal: Principal, engine: Engine, kinds: list[_Kind], queue: int) -> Data:
    return {
        "client": principal.client.name,
        "trading_state": str(engine.trading_state),
        "reason": engine.halt_reason,
        "types": [kind.name for kind in kinds],
        "queue": queue,
    }


async def _goodbye(websocket: WebSocket, connection: _Connection) -> None:
    """Tell a too-slow client why it is dropped, if its socket takes the words in time; else just close."""
    bye = connection.message("bye", None, {"code": TOO_SLOW_CODE, "reason": TOO_SLOW_REASON})
    with contextlib.suppress(TimeoutError, WebSocketDisconnect):
        async with asyncio.timeout(GOODBYE_TIMEOUT_S):
            await connection.send(bye, GOODBYE_TIMEOUT_S)
            await websocket.close(TOO_SLOW_CODE, TOO_SLOW_REASON)
