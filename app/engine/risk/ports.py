"""The narrow ports through which the kill switch and flatten act on the desk.

Each component names only what it does to the desk, so it can be read and tested alone and never
imports the engine; the engine implements these (``EnginePorts`` in ``app.engine.engine``). The
breakers' port sits beside their pure check in ``breakers.py``, since it is the readings they check.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine, Sequence
from typing import Any, Protocol, TypeVar

from app.domain.audit import AuditEventType, AuditSource
from app.domain.broker_messages import BrokerPosition
from app.domain.events import AlertLevel
from app.domain.instruments import Instrument
from app.domain.orders import Order
from app.domain.requests import OrderRequest

from ..results import CancelResult, SubmitResult

T = TypeVar("T")


class DeskOps(Protocol):
    """What both the kill switch and flatten do to the desk: halt it, cancel its orders, audit."""

    def halt(self, reason: str, actor: str, *, restate: bool = False) -> None:
        """Latch HALTED synchronously: no new order passes once this returns (cancels still do).

        ``restate``: on a desk already HALTED, make this the reason shown and stored.
        """
        ...

    def working_orders(self) -> list[Order]:
        """The desk's working orders now (sent, acknowledged, partly filled or of unknown state)."""
        ...

    def order(self, client_order_id: str) -> Order | None:
        """The desk's order by its client order id, ``None`` if the desk has none."""
        ...

    async def cancel(self, client_order_id: str, *, actor: str, source: AuditSource) -> CancelResult:
        """Ask the broker to cancel a working order at the governor's priority; never raises."""
        ...

    def record(self, event: AuditEventType, payload: dict[str, Any], actor: str, source: AuditSource) -> None:
        """Append an audit record without waiting for it to be durable."""
        ...

    async def durable_or_log(self, event: AuditEventType, payload: dict[str, Any], actor: str, source: AuditSource) -> None:
        """Append an audit record and wait until it is durable; a store failure is logged, not raised
        (the desk has halted on it already, and the caller goes on: it only ever reduces risk)."""
        ...


class SweepOps(DeskOps, Protocol):
    """What the kill switch's sweep needs besides: the clock, announcing, running supervised, the book."""

    def clock_ns(self) -> int:
        """The desk's clock, epoch nanoseconds."""
        ...

    def publish(self, event: object) -> None:
        """Publish an event on the desk's bus (the window shows the switch and its report from these)."""
        ...

    def alert(self, level: AlertLevel, component: str, message: str) -> None:
        """Raise an alert for the operator."""
        ...

    def spawn(self, name: str, coro: Coroutine[Any, Any, T]) -> asyncio.Task[T]:
        """Run ``coro`` as a supervised task: a crash in it halts the desk and is reported."""
        ...

    async def wait_started(self) -> bool:
        """Wait until the desk's start is over (its orders restored, the broker's book read or given
        up); whether the desk then runs. A sweep engaged during the start waits for this."""
        ...

    async def reconcile_working(self) -> int:
        """Read the broker's order book, bring the desk's orders in line, and return how many orders
        the book itself shows working. Raises when the book cannot be read."""
        ...


class CancelPacer(Protocol):
    """The rate governor as the kill switch sees it: what is queued, and how long cancels take."""

    def entries_waiting(self) -> int:
        """Places and modifies waiting for the broker (cancels and reads are not counted)."""
        ...

    def drop_queued(self, reason: str) -> int:
        """Refuse every order still queued for the broker (they never go out); how many there were."""
        ...

    def expected_seconds(self, cancels: int) -> float:
        """How long ``cancels`` cancels take to go out at the broker's pace, from now."""
        ...

    def round_trip_s(self) -> float:
        """A broker call's round trip as observed lately (seconds)."""
        ...


class FlattenOps(DeskOps, Protocol):
    """What flatten needs besides: REDUCING, the one submit path, positions and the broker's reads."""

    def reduce_only(self, reason: str, actor: str) -> None:
        """Move the desk to REDUCING: only risk-reducing orders pass the gate."""
        ...

    async def submit(self, request: OrderRequest) -> SubmitResult:
        """The desk's one order path (validation, gate, durable audit, governor, broker); never raises."""
        ...

    async def reconcile(self) -> object:
        """Read the broker's order book and bring the desk's orders in line with it.

        Raises ``BrokerError`` or ``TimeoutError`` when the book cannot be read.
        """
        ...

    async def broker_positions(self) -> Sequence[BrokerPosition]:
        """The broker's own positions. Raises ``BrokerError`` or ``TimeoutError`` when they cannot be read."""
        ...

    def open_positions(self) -> dict[str, int]:
        """The desk's non-zero positions: signed net quantity by instrument key."""
        ...

    def instrument(self, instrument_key: str) -> Instrument | None:
        """The desk's instrument by key, ``None`` when it is not in the desk's list."""
        ...

    def max_order_quantity(self, instrument: Instrument) -> int | None:
        """The order-size limit in force for ``instrument`` (``None`` when the limits set none)."""
        ...
