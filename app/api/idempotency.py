"""Idempotency keys on submit: a retried request with the same key never places a second order.

Per client, a key maps to the fingerprint of the order and the answer given. The same key with the
same order answers the stored ``SubmitOut`` again (``replayed`` true); the same key with another order
is a client's bug and gets 422 naming the header. Two requests with one key at once: the second waits
for the first's answer. Only answers that created an order are kept: a refusal (halted desk, a rate
limit, the audit trail down) placed nothing, so a retry with the key tries again. Keys are kept 24
hours (monotonic clock) and at most 10,000 per client, the oldest dropped first, so a script cannot
grow the desk's memory without end. The key's shape (``MAX_KEY_LENGTH``, ``KEY_PATTERN``) is checked
where the route declares its header, so the served schema says it too.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from decimal import Decimal

from app.api.errors import ApiProblem
from app.api.models import IDEMPOTENCY_HEADER, FieldProblem, OrderIn, SubmitOut

MAX_KEY_LENGTH = 128
KEY_PATTERN = r"^[ -~]+$"
"""Printable ASCII: a key is a header value, and shown in no other form."""
KEEP_SECONDS = 24 * 3600.0
KEYS_PER_CLIENT = 10_000

_PAISA = Decimal("0.01")


@dataclass(slots=True)
class _Entry:
    fingerprint: str
    answer: asyncio.Future[SubmitOut]
    at: float


def fingerprint(order: OrderIn) -> str:
    """A digest of what ``order`` asks for, not of how it was written: "1500", "1500.00" and "1.5E+3" are
    one price, and key order and spacing do not count, so a client that re-serialises its retry still
    matches its first attempt."""
    fields = order.model_dump(mode="json")
    if order.price is not None:
        # The model allows at most two decimal places, so quantizing loses nothing; it fixes the exponent.
        fields["price"] = str(order.price.quantize(_PAISA))
    canonical = json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(canonical.encode()).hexdigest()


class IdempotencyStore:
    """Submit answers by (client, idempotency key). ``clock`` is monotonic seconds (injectable for tests)."""

    def __init__(
        self, *, keys_per_client: int = KEYS_PER_CLIENT, keep_seconds: float = KEEP_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._keys_per_client = keys_per_client
        self._keep = keep_seconds
        self._clock = clock
        self._clients: dict[str, OrderedDict[str, _Entry]] = {}

    def __len__(self) -> int:
        return sum(len(keys) for keys in self._clients.values())

    async def submit_once(
        self, client: str, key: str, order_fingerprint: str, submit: Callable[[], Awaitable[SubmitOut]],
    ) -> SubmitOut:
        """``submit()``'s answer, run at most once per (client, key) while an order it placed is kept."""
        keys = self._clients.setdefault(client, OrderedDict())
        self._expire(keys)
        entry = keys.get(key)
        if entry is not None:
            if entry.fingerprint != order_fingerprint:
                reason = "was used before with a different order"
                raise ApiProblem(
                    422, "IDEMPOTENCY_KEY_REUSED",
                    f"the {IDEMPOTENCY_HEADER} header {reason}: use a new key for a new order",
                    fields=[FieldProblem(field=f"header.{IDEMPOTENCY_HEADER}", reason=reason)],
                )
            # A request with the key still in flight: its answer, whatever it is, is this one's too.
            answer = await asyncio.shield(entry.answer)
            return answer.model_copy(update={"replayed": True})
        # A task of its own, so a request cancelled half-way (client gone) still lets the submit finish and
        # its answer be kept for the retry: the order may have reached the broker.
        task: asyncio.Task[SubmitOut] = asyncio.ensure_future(submit())
        keys[key] = _Entry(order_fingerprint, task, self._clock())
        while len(keys) > self._keys_per_client:
            keys.popitem(last=False)
        task.add_done_callback(lambda done: self._settled(client, key, done))
        return await asyncio.shield(task)

    def _settled(self, client: str, key: str, done: asyncio.Future[SubmitOut]) -> None:
        # Kept only when an order was created. A failure or a refusal placed nothing: the client was told,
        # and a retry with the key gets a fresh attempt (the refusal may have been transient).
        if not done.cancelled() and done.exception() is None and done.result().client_order_id is not None:
            return
        keys = self._clients.get(client)
        if keys is not None and (entry := keys.get(key)) is not None and entry.answer is done:
            del keys[key]

    def _expire(self, keys: OrderedDict[str, _Entry]) -> None:
        limit = self._clock() - self._keep
        while keys:
            oldest = next(iter(keys.values()))
            if oldest.at > limit:
                break
            keys.popitem(last=False)
