"""The single-consumer stream behind every adapter's ``ticks()`` and ``order_updates()``."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Generic, TypeVar

_T = TypeVar("_T")


class Stream(Generic[_T]):
    """A single-consumer stream that never blocks the producer.

    With a ``limit``, a full stream drops its oldest item to make room and counts the drop. ``close``
    ends the consumer's iteration once it has read what is queued; the end marker is queued past the
    limit so that closing never costs an item. Use it from the event loop's thread only; producers on
    other threads hand items over with ``loop.call_soon_threadsafe(stream.put, item)``.
    """

    def __init__(self, limit: int | None = None) -> None:
        self._queue: asyncio.Queue[_T | None] = asyncio.Queue()
        self._limit = limit
        self.closed = False
        self.dropped = 0

    def put(self, item: _T) -> None:
        if self.closed:
            return
        if self._limit is not None and self._queue.qsize() >= self._limit:
            self._queue.get_nowait()
            self.dropped += 1
        self._queue.put_nowait(item)

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self._queue.put_nowait(None)

    async def iterate(self) -> AsyncIterator[_T]:
        while not (self.closed and self._queue.empty()):
            item = await self._queue.get()
            if item is None:
                return
            yield item
