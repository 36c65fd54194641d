"""The generated order flow of ``simulate`` and of the desk's ``--demo``: a seeded stream of actions through the one submit path.

It mixes buys and sells around the last price (some marketable, some resting), cancels a share
of working orders, sends a share of malformed orders that validation must refuse and a share of
well-formed orders the risk gate must refuse (too large, off the collar, repeated at once).
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
from collections import Counter
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from app.brokers.paper.universe import UniverseEntry
from app.domain.audit import AuditSource
from app.domain.orders import OrderSource, OrderType, Product, Side
from app.domain.requests import OrderRequest
from app.engine.engine import Engine

log = logging.getLogger(__name__)

ACTOR = "simulator"


@dataclass(frozen=True, slots=True)
class FlowOptions:
    """The flow's pace and mix; the shares are fractions of its actions."""

    seed: int = 1
    orders_per_sec: float = 1.5
    bad_share: float = 0.08
    gate_share: float = 0.08
    cancel_share: float = 0.15
    actor: str = ACTOR

    def __post_init__(self) -> None:
        if not math.isfinite(self.orders_per_sec) or not 0 < self.orders_per_sec <= 1_000:
            raise ValueError(f"--orders-per-sec must be in (0, 1000], got {self.orders_per_sec}")


class OrderFlow:
    """Seeded generator of order-flow actions against a running engine."""

    def __init__(self, engine: Engine, entries: list[UniverseEntry], options: FlowOptions) -> None:
        self.engine = engine
        self.entries = entries
        self.options = options
        self.rng = random.Random(f"flow:{options.seed}")
        self.cancels_sent = 0
        self.bad_sent = 0
        self.results: Counter[str] = Counter()
        self.last_request: OrderRequest | None = None

    def _bad_request(self) -> OrderRequest:
        entry = self.rng.choice(self.entries)
        inst = entry.instrument
        key, lot = inst.key, inst.lot_size
        price = Decimal(entry.start_price) / 100
        off_tick = Decimal(entry.start_price + (1 if inst.tick_size > 1 else 0)) / 100 + Decimal("0.001")
        choices: list[tuple[Any, Any, str]] = [
            (0, price, key),
            (-lot, price, key),
            (lot * Decimal("1.5") if lot == 1 else lot + 1, price, key),
            (lot, off_tick, key),
            (lot, float("nan"), key),
            (lot, float("inf"), key),
            (lot, -price, key),
            (lot, price, "NSE:NOSUCHSTOCK"),
        ]
        quantity, bad_price, bad_key = self.rng.choice(choices)
        return OrderRequest(bad_key, Side.BUY, quantity, bad_price, source=OrderSource.SIMULATION, actor=self.options.actor)

    def _gate_probe(self) -> OrderRequest | None:
        """A well-formed order the risk gate must refuse: too large, off the collar, or a duplicate."""
        entry = self.rng.choice(self.entries)
        inst = entry.instrument
        last = self.engine.market_data.last_price(inst.key)
        limits = self.engine.gate.limits.for_instrument(inst)
        if last is None or limits is None:
            return None
        kind = self.rng.choice(("oversize", "collar", "duplicate"))
        if kind == "oversize":
            lots = min(limits.max_order_quantity // inst.lot_size + 1, inst.freeze_quantity // inst.lot_size)
            if lots * inst.lot_size <= limits.max_order_quantity:
                kind = "collar"
            else:
                price = Decimal(last - last % inst.tick_size) / 100
                return OrderRequest(inst.key, Side.BUY, lots * inst.lot_size, price, source=OrderSource.SIMULATION, actor=self.options.actor)
        if kind == "collar":
            far = last * (10_000 + 2 * limits.price_collar_bps) // 10_000
            price = Decimal(far - far % inst.tick_size) / 100
            return OrderRequest(inst.key, Side.SELL, inst.lot_size, price, source=OrderSource.SIMULATION, actor=self.options.actor)
        return self.last_request

    def _good_request(self) -> OrderRequest | None:
        entry = self.rng.choice(self.entries)
        inst = entry.instrument
        last = self.engine.market_data.last_price(inst.key)
        if last is None:
            return None
        side = self.rng.choice((Side.BUY, Side.SELL))
        # Offsets from -4 to +2 ticks on the aggressive side: about a third cross the spread.
        offset = self.rng.randint(-4, 2) * inst.tick_size
        price = last + offset if side is Side.BUY else last - offset
        price = max(price - price % inst.tick_size, inst.tick_size)
        quantity = self.rng.randint(1, 3) * inst.lot_size
        if self.rng.random() < 0.1:
            return OrderRequest(
                inst.key, side, quantity, None, order_type=OrderType.MARKET,
                product=Product.INTRADAY, source=OrderSource.SIMULATION, actor=self.options.actor,
            )
        return OrderRequest(
            inst.key, side, quantity, Decimal(price) / 100,
            product=Product.INTRADAY, source=OrderSource.SIMULATION, actor=self.options.actor,
        )

    async def act(self) -> None:
        roll = self.rng.random()
        if roll < self.options.bad_share:
            self.bad_sent += 1
            result = await self.engine.submit(self._bad_request())
            self.results["bad_accepted" if result.accepted else "bad_rejected"] += 1
            return
        if roll < self.options.bad_share + self.options.gate_share:
            probe = self._gate_probe()
            if probe is not None:
                result = await self.engine.submit(probe)
                self.results["probe_accepted" if result.accepted else "probe_rejected"] += 1
                return
        if roll < self.options.bad_share + self.options.gate_share + self.options.cancel_share:
            working = sorted(o.client_order_id for o in self.engine.oms.working())
            if working:
                self.cancels_sent += 1
                outcome = await self.engine.cancel(self.rng.choice(working), actor=self.options.actor, source=AuditSource.SIMULATION)
                self.results["cancel_ok" if outcome.ok else "cancel_failed"] += 1
                return
        request = self._good_request()
        if request is None:
            self.results["no_price_yet"] += 1
            return
        self.last_request = request
        result = await self.engine.submit(request)
        self.results["accepted" if result.accepted else "rejected"] += 1

    async def run(self, seconds: float) -> None:
        loop = asyncio.get_running_loop()
        interval = 1.0 / self.options.orders_per_sec
        pending: set[asyncio.Task[None]] = set()
        start = loop.time()
        n = 0
        try:
            while True:
                due = start + n * interval
                if due - start >= seconds:
                    break
                await asyncio.sleep(max(0.0, due - loop.time()))
                # Each action runs as its own task, like independent order sources: a slow broker
                # reply must not hold back the flow's pace.
                task = loop.create_task(self.act())
                pending.add(task)
                task.add_done_callback(pending.discard)
                n += 1
            if pending:
                await asyncio.wait(pending)
        finally:
            # Stopped (the desk closing): no action of this flow goes on submitting behind it.
            for task in pending:
                task.cancel()
            for outcome in await asyncio.gather(*pending, return_exceptions=True):
                if isinstance(outcome, Exception):
                    log.error("order flow action failed: %s", outcome)
