"""Typed publish/subscribe for engine events.

Two kinds of subscriber:

* inline handlers run synchronously inside ``publish`` (OMS, portfolio, audit feeders). They must
  be cheap. One that raises is logged and counted and the others still get the event; because a
  failing critical handler means the desk's picture may be wrong, the bus reports it through
  ``on_critical_error`` (the engine halts trading on it).
* queue subscribers (the UI bridge, reporters) read at their own pace from a bounded queue. A full
  lossy queue drops its oldest event and counts the drop; it never blocks the publisher. A
  lossless queue never drops (for consumers that must see everything) and records its high-water mark.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, TypeVar

log = logging.getLogger(__name__)

E = TypeVar("E")
Handler = Callable[[Any], None]


@dataclass(slots=True)
class _InlineSubscription:
    event_type: type
    handler: Handler
    critical: bool
    name: str


class QueueSubscription:
    """A subscriber's own queue of events. ``get()`` waits for the next one."""

    def __init__(self, name: str, event_types: tuple[type, ...], maxsize: int | None, lossy: bool) -> None:
        if lossy and (maxsize is None or maxsize <= 0):
            raise ValueError("a lossy queue needs a positive maxsize")
        self.name = name
        self.event_types = event_types
        self.maxsize = maxsize
        self.lossy = lossy
        self.dropped = 0
        self.high_water = 0
        self._items: deque[object] = deque()
        self._ready = asyncio.Event()

    def put(self, event: object) -> None:
        items = self._items
        if self.lossy and len(items) >= self.maxsize:  # type: ignore[operator]
            items.popleft()
            self.dropped += 1
        items.append(event)
        self.high_water = max(self.high_water, len(items))
        self._ready.set()

    def __len__(self) -> int:
        return len(self._items)

    def get_nowait(self) -> object | None:
        if not self._items:
            return None
        item = self._items.popleft()
        if not self._items:
            self._ready.clear()
        return item

    def drain(self) -> list[object]:
        items = list(self._items)
        self._items.clear()
        self._ready.clear()
        return items

    async def get(self) -> object:
        while not self._items:
            await self._ready.wait()
        item = self._items.popleft()
        if not self._items:
            self._ready.clear()
        return item


class EventBus:
    """Routes each published event to the subscribers of its type or any of its base classes."""

    def __init__(self, on_critical_error: Callable[[str, BaseException], None] | None = None) -> None:
        self._inline: list[_InlineSubscription] = []
        self._queues: list[QueueSubscription] = []
        self._routes: dict[type, tuple[tuple[_InlineSubscription, ...], tuple[QueueSubscription, ...]]] = {}
        self.on_critical_error = on_critical_error
        self.published = 0
        self.handler_errors = 0

    def subscribe(self, event_type: type[E], handler: Callable[[E], None], *, critical: bool = True, name: str = "") -> None:
        """Call ``handler`` synchronously for every event that is an instance of ``event_type``."""
        sub = _InlineSubscription(event_type, handler, critical, name or getattr(handler, "__qualname__", repr(handler)))
        self._inline.append(sub)
        self._routes.clear()

    def subscribe_queue(
        self, event_types: Iterable[type], *, name: str, maxsize: int | None = 10_000, lossy: bool = True
    ) -> QueueSubscription:
        """A queue fed with every event of the given types; lossy queues drop the oldest when full."""
        queue = QueueSubscription(name, tuple(event_types), maxsize, lossy)
        self._queues.append(queue)
        self._routes.clear()
        return queue

    def unsubscribe(self, handler: Callable[[Any], None]) -> None:
        """Stop calling ``handler`` inline (every subscription of it, whatever the event type); unknown is a no-op."""
        self._inline = [sub for sub in self._inline if sub.handler != handler]
        self._routes.clear()

    def unsubscribe_queue(self, queue: QueueSubscription) -> None:
        self._queues.remove(queue)
        self._routes.clear()

    def _route(self, event_type: type) -> tuple[tuple[_InlineSubscription, ...], tuple[QueueSubscription, ...]]:
        handlers = tuple(s for s in self._inline if issubclass(event_type, s.event_type))
        queues = tuple(q for q in self._queues if issubclass(event_type, q.event_types))
        route = (handlers, queues)
        self._routes[event_type] = route
        return route

    def publish(self, event: object) -> None:
        """Deliver ``event`` now to every inline handler and queue; never raises for a subscriber's fault."""
        self.published += 1
        route = self._routes.get(type(event))
        if route is None:
            route = self._route(type(event))
        handlers, queues = route
        for sub in handlers:
            try:
                sub.handler(event)
            except Exception as exc:  # noqa: BLE001 - isolation is the point: one bad handler must not stop the rest
                self._handler_failed(sub, event, exc)
        for queue in queues:
            queue.put(event)

    def _handler_failed(self, sub: _InlineSubscription, event: object, exc: Exception) -> None:
        self.handler_errors += 1
        log.error("handler %s failed on %s", sub.name, type(event).__name__, exc_info=exc)
        if sub.critical and self.on_critical_error is not None:
            self.on_critical_error(sub.name, exc)

    def queue_stats(self) -> dict[str, dict[str, int]]:
        return {q.name: {"dropped": q.dropped, "high_water": q.high_water, "pending": len(q)} for q in self._queues}
