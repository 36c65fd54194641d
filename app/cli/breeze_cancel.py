"""Cancel every working order at Breeze from outside the desk: ``panic``'s last resort.

Used when no desk answers: it reads the order book on every exchange, cancels what is working at
the broker's pace (the same governor the desk uses), and reads the book again until nothing shows
as working. An order is one order however many exchanges' books list it; a row it cannot read is
cancelled when its order id can be read and it may be working. It raises when anything is left, so
``panic`` tells the operator to act.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Sequence

from app.brokers.base import BrokerCall, BrokerError
from app.brokers.breeze import BreezeBroker
from app.domain.broker_messages import BookRow, UnreadableOrder
from app.domain.instruments import Exchange
from app.engine.governor import CallKind, Governor
from app.settings import Settings

from .breeze_profile import (
    ProfileError,
    credentials,
    load_master,
    open_breeze,
    read_session_token,
    stored_session_token,
)

VERIFY_ATTEMPTS = 4
VERIFY_PAUSE_S = 0.5


def cancel_all_at_breeze(settings: Settings, token_stdin: bool) -> str:
    """Cancel every working order at Breeze with the stored credentials and today's token (read from
    stdin when ``token_stdin``, else the one stored today); one line on what was done."""
    creds = credentials()
    token = read_session_token(sys.stdin, creds.api_key, prompt=sys.stdout) if token_stdin else stored_session_token()
    if token is None:
        raise ProfileError("no Breeze session token for today: run panic again with --session-token-stdin")
    loaded = load_master(settings)
    broker = open_breeze(settings, None, token, creds, loaded, book_exchanges=[str(e) for e in Exchange])
    return asyncio.run(_cancel_all(broker))


async def _cancel_all(broker: BreezeBroker) -> str:
    governor = Governor(broker.capabilities.rate_limits)
    book_calls = broker.capabilities.calls(BrokerCall.ORDER_BOOK)
    try:
        await broker.open(sockets=False)
        await governor.acquire(CallKind.READ, book_calls)
        working, _ = _working(await broker.order_book())
        failed: list[str] = []
        for order_id in working:
            await governor.acquire(CallKind.CANCEL)
            try:
                await broker.cancel(order_id)
            except BrokerError as exc:
                failed.append(f"{order_id} ({exc.message})")
        still: list[str] = []
        nameless = 0
        for attempt in range(VERIFY_ATTEMPTS):
            await governor.acquire(CallKind.READ, book_calls)
            still, nameless = _working(await broker.order_book())
            if not still and not nameless:
                break
            await asyncio.sleep(VERIFY_PAUSE_S * (attempt + 1))
    finally:
        await broker.disconnect()
    if still or nameless:
        detail = f"; refused: {', '.join(failed[:5])}" if failed else ""
        unread = f"; {nameless} unreadable rows without an order id may be working" if nameless else ""
        raise RuntimeError(
            f"{len(still)} orders still show as working at Breeze after cancelling {len(working)}: "
            f"{', '.join(still[:10])}{detail}{unread}"
        )
    return f"cancelled {len(working)} working orders at Breeze; its order book shows none working"


def _working(book: Sequence[BookRow]) -> tuple[list[str], int]:
    """The ids of the orders that are, or (unreadable) may be, working, each once; and how many
    unreadable rows that may be working have no readable id to cancel them by."""
    ids: dict[str, None] = {}
    nameless = 0
    for row in book:
        if not (row.may_be_working if isinstance(row, UnreadableOrder) else row.status.is_working):
            continue
        if row.broker_order_id is None:
            nameless += 1
        else:
            ids.setdefault(row.broker_order_id)
    return list(ids), nameless
