"""The two socket.io servers (quotes on ``stock``, order notifications on ``order``) and their payloads."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import defaultdict
from collections.abc import Callable
from typing import Any

import socketio  # type: ignore[import-untyped]
from aiohttp import web
from aiohttp.typedefs import Handler

from tests.breeze_emulator.contracts import (
    Contract,
    breeze_date,
    rupees_float,
    rupees_text,
    strike_text,
)
from tests.breeze_emulator.market import (
    CANCELLED,
    EXECUTED,
    EXPIRED,
    ORDERED,
    PARTIAL,
    REJECTED,
    Order,
    Quote,
    now_ist,
)

log = logging.getLogger(__name__)

ORDER_MESSAGE_LENGTH = 47

_STATUS_CODES = {ORDERED: "O", PARTIAL: "P", EXECUTED: "E", CANCELLED: "C", REJECTED: "J", EXPIRED: "X"}


def tick_payload(c: Contract, q: Quote, to_rupees: Callable[[int], float] = rupees_float) -> list[Any]:
    """A ``stock`` event in the SDK's "data_type 1" layout: 21 elements for cash, 23 for F&O.

    ``to_rupees`` writes each price: Breeze's are JSON floats, which may carry noise (see
    ``BreezeEmulator``'s ``price_noise``).
    """
    average = to_rupees(round(q.turnover_paise / q.ttq)) if q.ttq else to_rupees(q.last)
    change = round((q.last - q.close) * 100 / q.close, 2) if q.close else 0.0
    depth = c.lot_size * 10
    head = [
        c.stream_symbol,
        to_rupees(q.open),
        to_rupees(q.last),
        to_rupees(q.high),
        to_rupees(q.low),
        change,
        to_rupees(q.last - c.tick_paise),
        depth,
        to_rupees(q.last + c.tick_paise),
        depth,
        q.ltq,
        average,
    ]
    volume = [q.ttq, depth * 5, depth * 5, f"{q.turnover_paise / 100 / 10**7:.2f}C"]
    tail = [
        "+" if q.last >= q.close else "-",
        to_rupees(q.lower_circuit),
        to_rupees(q.upper_circuit),
        int(q.ltt.timestamp()),
        to_rupees(q.close),
    ]
    if c.is_derivative:
        return [*head, q.oi, 0, *volume, *tail]
    return [*head, *volume, *tail]


def order_payload(order: Order, *, user_id: str, sequence: int) -> list[str]:
    """An ``order`` event: 47 strings in the SDK's order-notification layout (type 4 cash, 6 F&O).

    A partially executed order that is then cancelled reports ``D``; a rejection's reason goes in
    element 41, which the SDK reads as a harmless flag in both layouts.
    """
    c = order.contract
    now = now_ist()
    today = breeze_date(now.date())
    status = _STATUS_CODES[order.status]
    if order.status == CANCELLED and order.filled:
        status = "D"
    flow = "B" if order.action == "buy" else "S"
    average = rupees_text(order.average_paise) if order.filled else "0.00"
    m = [""] * ORDER_MESSAGE_LENGTH
    m[0] = "1"
    m[2] = user_id
    m[6] = str(sequence)
    m[7] = today
    m[8] = f"{now:%H:%M:%S}"
    m[13] = c.exchange_code
    m[14] = c.stock_code
    m[34] = "API"
    m[41] = order.reason
    if not c.is_derivative:
        m[11] = "4"
        m[15] = flow
        m[16] = "L"
        m[17] = "T"
        m[18] = rupees_text(order.price_paise)
        m[19] = "C"
        m[20] = status
        m[21] = breeze_date(order.placed_at.date())
        m[22] = today
        m[23] = order.order_id
        m[24] = str(order.quantity)
        m[25] = str(order.pending)
        m[26] = str(order.filled)
        m[27] = str(order.cancelled)
        m[28] = str(order.expired)
        m[42] = average
    else:
        m[11] = "6"
        m[15] = "F" if c.product_type == "futures" else "O"
        m[16] = {"call": "C", "put": "P"}.get(c.right or "", "*")
        m[17] = "E"
        m[18] = strike_text(c.strike_paise) if c.strike_paise else "0"
        m[19] = c.expiry_text or ""
        m[21] = flow
        m[22] = "L"
        m[23] = "T"
        m[24] = rupees_text(order.price_paise)
        m[25] = status
        m[26] = order.order_id
        m[27] = str(order.quantity)
        m[28] = str(order.filled)
        m[29] = str(order.cancelled)
        m[30] = str(order.expired)
        m[36] = today
        m[39] = average
    return m


def _rooms(data: object) -> list[str]:
    if isinstance(data, str):
        return [data]
    if isinstance(data, list):
        return [room for room in data if isinstance(room, str)]
    return []


class SocketServer:
    """One socket.io server on its own aiohttp app, as Breeze runs its live stream and live feeds.

    ``authorize`` gets the client's ``auth`` dict and returns why it is refused, or ``None``.
    Clients ``join``/``leave`` rooms (stream tokens such as ``4.1!2885``). Events go out in the
    order they are sent, through one queue drained by one task, whatever thread produced them.
    """

    def __init__(self, name: str, authorize: Callable[[object], str | None]) -> None:
        self.name = name
        self._authorize = authorize
        self.sio = socketio.AsyncServer(async_mode="aiohttp", logger=False, engineio_logger=False)
        self._transports: set[asyncio.Transport] = set()
        self.app = web.Application(middlewares=[self._track_transport])
        self.sio.attach(self.app)
        self.clients: set[str] = set()
        self._members: defaultdict[str, set[str]] = defaultdict(set)
        self._outbox: asyncio.Queue[tuple[str, Any, str | None]] = asyncio.Queue()
        self._sender: asyncio.Task[None] | None = None
        self.sio.on("connect", self._connect)
        self.sio.on("disconnect", self._disconnect)
        self.sio.on("join", self._join)
        self.sio.on("leave", self._leave)

    @web.middleware
    async def _track_transport(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        # The websocket's TCP transport, kept so that drop_transports() can cut it like a network failure.
        transport = request.transport
        if transport is None:
            return await handler(request)
        self._transports.add(transport)
        try:
            return await handler(request)
        finally:
            self._transports.discard(transport)

    def start(self) -> None:
        self._sender = asyncio.get_running_loop().create_task(self._drain())

    async def _drain(self) -> None:
        while True:
            event, data, room = await self._outbox.get()
            try:
                await self.sio.emit(event, data, to=room)
            except Exception:  # a client vanishing mid-emit must not stop the stream for the others
                log.exception("%s: emitting %s failed", self.name, event)

    async def _connect(self, sid: str, environ: dict[str, Any], auth: object = None) -> None:
        reason = self._authorize(auth)
        if reason is not None:
            raise socketio.exceptions.ConnectionRefusedError(reason)
        self.clients.add(sid)

    async def _disconnect(self, sid: str, reason: object = None) -> None:
        self.clients.discard(sid)
        for members in self._members.values():
            members.discard(sid)

    async def _join(self, sid: str, data: object = None) -> None:
        for room in _rooms(data):
            await self.sio.enter_room(sid, room)
            self._members[room].add(sid)

    async def _leave(self, sid: str, data: object = None) -> None:
        for room in _rooms(data):
            await self.sio.leave_room(sid, room)
            self._members[room].discard(sid)

    def has_listeners(self, room: str) -> bool:
        return bool(self._members.get(room))

    def send(self, event: str, data: Any, room: str | None = None) -> None:
        """Queue an event for every client (or the clients in ``room``); call on the loop thread."""
        self._outbox.put_nowait((event, data, room))

    async def disconnect_all(self) -> None:
        """A socket.io disconnect: python-socketio clients take it as deliberate and do not reconnect."""
        for sid in list(self.clients):
            await self.sio.disconnect(sid)

    def drop_transports(self) -> None:
        """Reset every client's TCP connection: clients see a network failure and reconnect on their own."""
        for transport in list(self._transports):
            transport.abort()

    async def close(self) -> None:
        await self.disconnect_all()
        if self._sender is not None:
            self._sender.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sender
