"""Ticks through a started engine: from the broker adapter's tick stream to the portfolio's marks.

The engine is started (``Engine.start``) on the paper broker with its market frozen
(``tick_interval_ms=None``: it never steps by itself). The benchmark puts ticks on the broker's
tick stream, the ``Stream`` every adapter hands its ticks to, so the point where a tick leaves the
adapter is the ``put``. The ticks are built beforehand from a seeded random walk, so every run
feeds the same ones. From the stream a tick goes the desk's own way: the engine's supervised tick
pump, the bus, market data, the portfolio. A probe subscribed on the bus right after the portfolio
stamps each tick once the portfolio has marked it (its position's exposure and P&L updated); the
stream is first in, first out, so the n-th stamp is the n-th tick put. The probe costs one call
and one append per tick, inside the figures.

500 instruments by default, every one holding a position (the worst case: each tick re-marks
exposure and P&L in total and per underlying). Two runs:

- burst: ``--ticks`` ticks put ``--batch`` at a time (as a socket frame or a paper market step
  hands over many at once), the next burst once the last is marked. ``ticks_per_sec`` is the ticks
  over the time from the first put to the last mark. ``burst_latency_us`` is put to mark, so it
  includes the wait behind the rest of the burst; ``service_us`` is the gap between consecutive
  marks within a burst, the desk's cost per tick once the pump is awake.
- single: ``--single`` ticks put one at a time, each awaited until marked: put to mark with
  nothing queued, the event loop waking the pump included (``single_latency_us``).

Targets: 100,000 ticks/s through the whole path (kept from the bus-only benchmark: the paper market
at its fastest and Breeze's feed for a few hundred instruments are far under it, so it keeps the
desk's head room honest now that the stream and the pump are inside), and a lone tick marked
within 1 ms at the p99 (well under the 10 ms an operator could notice on a price; the paper
market's fastest step is 10 ms). The garbage collector stays on, as in the desk; only the prebuilt
ticks are frozen out of it (``gc.freeze``), since the desk never holds a million of them.
Run: ``python -m tests.bench.ticks --json``.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import random
import statistics
import sys
import time
from array import array
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any

from app.brokers.paper import PaperBroker, PaperConfig
from app.brokers.paper.universe import UniverseEntry
from app.brokers.stream import Stream
from app.domain.fills import Fill
from app.domain.instruments import Exchange, Instrument, Segment
from app.domain.market import Tick
from app.domain.orders import Side
from app.engine.engine import Engine
from tests.support.limits import wide_limits

from .machine import finish, percentile

TARGET_TICKS_PER_SEC = 100_000
TARGET_SINGLE_P99_US = 1_000.0
PATH = "broker tick stream -> engine tick pump -> bus -> market data -> portfolio (started engine, paper broker)"


def universe(n: int) -> list[UniverseEntry]:
    """``n`` cash instruments under 50 underlyings, priced from ₹1,000 up."""
    entries = []
    for i in range(n):
        inst = Instrument(
            key=f"NSE:SYN{i:04d}", exchange=Exchange.NSE, symbol=f"SYN{i:04d}",
            underlying=f"U{i % 50:02d}", segment=Segment.CASH, lot_size=1, tick_size=5, freeze_quantity=100_000,
        )
        entries.append(UniverseEntry(inst, 100_000 + 5 * i))
    return entries


class FedPaperBroker(PaperBroker):
    """The paper broker with its market frozen: the benchmark puts the ticks on its stream itself."""

    def __init__(self, universe: Sequence[UniverseEntry]) -> None:
        config = PaperConfig(tick_interval_ms=None)
        super().__init__(config, universe=universe)
        self.feed: Stream[Tick] = Stream(config.tick_queue_size)

    def ticks(self) -> AsyncIterator[Tick]:
        return self.feed.iterate()

    async def disconnect(self) -> None:
        await super().disconnect()
        self.feed.close()


class MarkProbe:
    """Stamps ``perf_counter_ns`` as each tick leaves the portfolio; sets ``reached`` at ``until`` stamps."""

    def __init__(self) -> None:
        self.stamps: array[int] = array("q")
        self.until = 0
        self.reached = asyncio.Event()

    def __call__(self, tick: Tick) -> None:
        stamps = self.stamps
        stamps.append(time.perf_counter_ns())
        if len(stamps) == self.until:
            self.reached.set()


@dataclass(frozen=True, slots=True)
class Fed:
    """One run's put and mark times (ns), tick by tick, and the size of its bursts."""

    puts: array[int]
    marks: array[int]
    batch: int

    def latency_us(self) -> list[float]:
        return [(mark - put) / 1000 for put, mark in zip(self.puts, self.marks, strict=True)]

    def service_us(self) -> list[float]:
        """Gaps between consecutive marks within a burst (not across bursts: the feeder ran between)."""
        marks = self.marks
        return [(marks[i] - marks[i - 1]) / 1000 for i in range(1, len(marks)) if i % self.batch]

    def ticks_per_sec(self) -> float:
        return len(self.puts) / ((self.marks[-1] - self.puts[0]) / 1e9)


def random_walk(entries: Sequence[UniverseEntry], n: int, rng: random.Random, prices: list[int], ts0: int) -> list[Tick]:
    """``n`` ticks on random instruments, each a few price steps from that instrument's last."""
    keys = [e.instrument.key for e in entries]
    ticks = []
    for i in range(n):
        k = rng.randrange(len(keys))
        prices[k] = max(5, prices[k] + 5 * rng.randint(-2, 2))
        ticks.append(Tick(keys[k], prices[k], ts0 + i))
    return ticks


async def feed(broker: FedPaperBroker, probe: MarkProbe, ticks: Sequence[Tick], batch: int) -> Fed:
    """Put ``ticks`` on the stream ``batch`` at a time, each burst awaited until the portfolio marked it."""
    first = len(probe.stamps)
    puts: array[int] = array("q")
    put, stamp = broker.feed.put, time.perf_counter_ns
    for start in range(0, len(ticks), batch):
        chunk = ticks[start : start + batch]
        probe.reached.clear()
        probe.until = len(probe.stamps) + len(chunk)
        for tick in chunk:
            puts.append(stamp())
            put(tick)
        await probe.reached.wait()
    return Fed(puts, probe.stamps[first:], batch)


def spread(samples: list[float]) -> dict[str, float]:
    return {"median": round(statistics.median(samples), 3), "p90": round(percentile(samples, 90), 3),
            "p99": round(percentile(samples, 99), 3), "max": round(max(samples), 3)}


async def run(instruments: int, ticks: int, batch: int, single: int, seed: int) -> dict[str, Any]:
    entries = universe(instruments)
    broker = FedPaperBroker(entries)
    listed = [e.instrument for e in entries]
    # Limits wide enough that no breaker trips: a kill switch sweep mid-run would time itself, not the ticks.
    engine = Engine(broker, listed, limits=wide_limits(listed))
    await engine.start()
    try:
        rng = random.Random(seed)
        for i, entry in enumerate(entries):
            side = Side.BUY if i % 2 else Side.SELL
            engine.bus.publish(Fill(f"f{i}", "c", entry.instrument.key, side, rng.randint(1, 100), entry.start_price,
                                    engine.clock_ns()))
        probe = MarkProbe()
        engine.bus.subscribe(Tick, probe, critical=False, name="bench.marked")
        prices = [e.start_price for e in entries]
        ts0 = engine.clock_ns()
        burst_ticks = random_walk(entries, ticks, rng, prices, ts0)
        single_ticks = random_walk(entries, single, rng, prices, ts0 + ticks)
        ticks_before = engine.market_data.ticks
        gc.collect()
        gc.freeze()
        try:
            burst = await feed(broker, probe, burst_ticks, batch)
            lone = await feed(broker, probe, single_ticks, 1)
        finally:
            gc.unfreeze()
        marked = engine.market_data.ticks - ticks_before
        if marked != ticks + single or broker.feed.dropped:
            raise SystemExit(f"the market data saw {marked} of {ticks + single} ticks ({broker.feed.dropped} dropped)")
        expected_gross = sum(abs(engine.portfolio.position(e.instrument.key) * price) for e, price in zip(entries, prices))
        if engine.portfolio.exposure.gross != expected_gross:
            raise SystemExit(f"gross exposure {engine.portfolio.exposure.gross} != {expected_gross} from the last ticks")
    finally:
        await engine.stop()
    return {
        "bench": "ticks",
        "path": PATH,
        "instruments": instruments,
        "positions": instruments,
        "ticks": ticks,
        "batch": batch,
        "single": single,
        "seed": seed,
        "ticks_per_sec": round(burst.ticks_per_sec()),
        "burst_latency_us": spread(burst.latency_us()),
        "service_us": spread(burst.service_us()) if batch > 1 else None,
        "single_latency_us": spread(lone.latency_us()),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--instruments", type=int, default=500)
    parser.add_argument("--ticks", type=int, default=1_000_000, help="ticks put in bursts (default 1,000,000)")
    parser.add_argument("--batch", type=int, default=1_000, help="ticks per burst (default 1,000)")
    parser.add_argument("--single", type=int, default=20_000, help="ticks put one at a time (default 20,000)")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    if min(args.instruments, args.ticks, args.batch, args.single) < 1:
        parser.error("--instruments, --ticks, --batch and --single must be at least 1")
    result = asyncio.run(run(args.instruments, args.ticks, args.batch, args.single, args.seed))
    targets = {"ticks_per_sec_at_least": TARGET_TICKS_PER_SEC, "single_latency_p99_us_at_most": TARGET_SINGLE_P99_US}
    misses = []
    rate = result["ticks_per_sec"]
    if rate < TARGET_TICKS_PER_SEC:
        misses.append(f"{rate} ticks/s < {TARGET_TICKS_PER_SEC}")
    single_p99 = result["single_latency_us"]["p99"]
    if single_p99 > TARGET_SINGLE_P99_US:
        misses.append(f"single tick p99 {single_p99} us > {TARGET_SINGLE_P99_US} us")
    return finish(result, targets, misses, as_json=args.json)


if __name__ == "__main__":
    sys.exit(main())
