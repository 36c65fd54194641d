"""Flatten: close every open position, as a separate, confirmed operator action.

The kill switch never does this on its own. Flatten moves the desk to REDUCING, cancels what is
still working, then sends protected marketable limit orders (the desk's own market-order pricing)
through the one submit path and the gate, sliced so no slice exceeds the exchange's freeze quantity
or the order-size limit. It waits for them to end, re-prices what did not fill, and finally reads
the broker's positions to verify the desk is flat. It always ends HALTED: trading resumes only by
an authorised re-arm.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field

from app.brokers.base import BrokerError
from app.domain.actors import Actor, Permission
from app.domain.audit import AuditEventType, AuditSource
from app.domain.orders import OrderSource, OrderType, Product, Side
from app.domain.requests import OrderRequest

from .ports import FlattenOps

log = logging.getLogger(__name__)


@dataclass(slots=True)
class FlattenReport:
    """What flatten sent and what the broker shows afterwards."""

    actor: str
    rounds: int = 0
    orders_sent: int = 0
    refused: list[str] = field(default_factory=list)
    remaining_at_desk: dict[str, int] = field(default_factory=dict)
    remaining_at_broker: dict[str, int] = field(default_factory=dict)
    verified_flat: bool = False

    def summary(self) -> dict[str, object]:
        return {
            "actor": self.actor, "rounds": self.rounds, "orders_sent": self.orders_sent, "refused": self.refused,
            "remaining_at_desk": self.remaining_at_desk, "remaining_at_broker": self.remaining_at_broker,
            "verified_flat": self.verified_flat,
        }


def slices(quantity: int, lot_size: int, largest: int) -> list[int]:
    """Split ``quantity`` into whole-lot slices of at most ``largest`` (itself rounded down to lots)."""
    step = max(lot_size, largest // lot_size * lot_size)
    full, rest = divmod(quantity, step)
    return [step] * full + ([rest] if rest else [])


class Flattener:
    """Runs one flatten at a time, acting on the desk through ``desk``."""

    def __init__(self, desk: FlattenOps, *, rounds: int = 3, wait_s: float = 5.0) -> None:
        self._desk = desk
        self._rounds = rounds
        self._wait_s = wait_s
        self.running = False

    async def run(self, actor: Actor, *, confirmed: bool) -> FlattenReport:
        if not actor.can(Permission.FLATTEN):
            raise PermissionError(f"{actor.name} may not flatten (needs the {Permission.FLATTEN} permission)")
        if not confirmed:
            raise ValueError("flatten closes every position at market: it must be confirmed")
        if self.running:
            raise ValueError("a flatten is already running")
        desk = self._desk
        self.running = True
        report = FlattenReport(actor.name)
        try:
            await desk.durable_or_log(
                AuditEventType.FLATTEN_REQUESTED, {"positions": self._positions()}, actor.name, AuditSource.OPERATOR,
            )
            desk.reduce_only(f"flatten by {actor.name}", actor.name)
            await self._cancel_working(actor)
            for _ in range(self._rounds):
                positions = self._positions()
                if not positions:
                    break
                report.rounds += 1
                sent = await self._send_round(positions, actor, report)
                await self._wait_for(sent)
                await self._cancel_working(actor)
            report.remaining_at_desk = self._positions()
            at_broker = await self._broker_positions()
            if at_broker is None:
                report.refused.append("could not read the broker's positions: flatness is not verified")
            else:
                report.remaining_at_broker = at_broker
            report.verified_flat = at_broker is not None and not report.remaining_at_desk and not at_broker
        finally:
            desk.halt(f"flatten by {actor.name} finished", actor.name)
            self.running = False
        desk.record(AuditEventType.FLATTEN_DONE, report.summary(), actor.name, AuditSource.OPERATOR)
        log.warning("flatten done: %s", report.summary())
        return report

    def _positions(self) -> dict[str, int]:
        return dict(sorted(self._desk.open_positions().items()))

    async def _cancel_working(self, actor: Actor) -> None:
        desk = self._desk
        working = desk.working_orders()
        if working:
            await asyncio.gather(*(desk.cancel(o.client_order_id, actor=actor.name, source=AuditSource.OPERATOR) for o in working))
            await asyncio.sleep(0.05)
            try:
                await desk.reconcile()
            except (BrokerError, TimeoutError) as exc:
                log.error("flatten: reconcile after cancels failed: %s", exc)

    async def _send_round(self, positions: dict[str, int], actor: Actor, report: FlattenReport) -> list[str]:
        desk = self._desk
        sent: list[str] = []
        for key, quantity in positions.items():
            instrument = desk.instrument(key)
            if instrument is None:
                report.refused.append(f"{key}: not in the desk's instrument list; close it at the broker")
                continue
            cap = desk.max_order_quantity(instrument)
            largest = min(instrument.freeze_quantity, cap if cap is not None else instrument.freeze_quantity)
            side = Side.SELL if quantity > 0 else Side.BUY
            for part in slices(abs(quantity), instrument.lot_size, largest):
                result = await desk.submit(OrderRequest(
                    key, side, part, None, order_type=OrderType.MARKET,
                    # Positions are netted across products at the desk; INTRADAY is what a closing
                    # order of the day's trading carries.
                    product=Product.INTRADAY,
                    source=OrderSource.FLATTEN, actor=actor.name, tag="flatten",
                ))
                if result.accepted and result.client_order_id is not None:
                    report.orders_sent += 1
                    sent.append(result.client_order_id)
                elif result.rejection is not None:
                    report.refused.append(f"{key} {side} {part}: {result.rejection.reason}: {result.rejection.message}")
        return sent

    async def _wait_for(self, client_ids: list[str]) -> None:
        desk = self._desk
        deadline = asyncio.get_running_loop().time() + self._wait_s
        while asyncio.get_running_loop().time() < deadline:
            orders = [desk.order(cid) for cid in client_ids]
            if all(o is None or not o.status.is_working for o in orders):
                return
            await asyncio.sleep(0.05)

    async def _broker_positions(self) -> dict[str, int] | None:
        try:
            rows = await self._desk.broker_positions()
        except (BrokerError, TimeoutError) as exc:
            log.error("flatten: could not read the broker's positions: %s", exc)
            return None
        return {row.instrument_key: row.quantity for row in rows if row.quantity}
