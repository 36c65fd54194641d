"""Cancel every working order at Breeze from outside the desk: ``panic``'s last resort.

Used when no desk answers: it reads the order book on every exchange, cancels what is working at
the broker's pace (the same governor the desk uses), and reads the book again until nothing shows
as working. It raises when anything is left, so ``panic`` tells the operator to act.
"""

from __future__ import annotations

import asyncio
import sys

from app.brokers.base import BrokerCall, BrokerError
from app.brokers.breeze import BreezeBroker
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
        working = [order.broker_order_id for order in await broker.order_book() if order.status.is_working]
        failed: list[str] = []
        for order_id in working:
            await governor.acquire(CallKind.CANCEL)
            try:
                await broker.cancel(order_id)
            except BrokerError as exc:
                failed.append(f"{order_id} ({exc.message})")
        still: list[str] = []
        for attempt in range(VERIFY_ATTEMPTS):
            await governor.acquire(CallKind.READ, book_calls)
            still = [order.broker_order_id for order in await broker.order_book() if order.status.is_working]
            if not still:
                break
            await asyncio.sleep(VERIFY_PAUSE_S * (attempt + 1))
    finally:
        await broker.disconnect()
    if still:
        detail = f"; refused: {', '.join(failed[:5])}" if failed else ""
        raise RuntimeError(
            f"{len(still)} orders still show as working at Breeze after cancelling {len(working)}: "
            f"{', '.join(still[:10])}{detail}"
        )
    return f"cancelled {len(working)} working orders at Breeze; its order book shows none working"
