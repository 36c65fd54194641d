"""Audit store benchmark: durable appends/s with group commit, single-append latency, verify time.

Run: ``python -m tests.bench.audit --json`` (SQLite file in a temp folder by default; ``--db-url``
for PostgreSQL). Targets: >= 20,000 appends/s on SQLite; verify of 1,000,000 records <= 10 s.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

from app.store.audit_writer import AuditWriter
from app.store.migrate import open_store
from app.store.verify import verify_chain

PAYLOAD = {"client_order_id": "BW1A2B3C-000001", "instrument": "NSE:RELIANCE", "side": "BUY", "quantity": 10,
           "price_paise": 150_005, "order_type": "LIMIT", "product": "INTRADAY", "validity": "DAY"}


async def throughput(writer: AuditWriter, n: int, window: int) -> float:
    """Appends kept ``window`` in flight at a time (many sources at once), all awaited durable."""
    started = time.perf_counter()
    pending: set[asyncio.Future[object]] = set()
    for i in range(n):
        pending.add(writer.append("order.sent", {**PAYLOAD, "i": i}, actor="bench", source="simulation"))  # type: ignore[arg-type]
        if len(pending) >= window:
            done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            for future in done:
                future.result()
    for future in asyncio.as_completed(pending):
        await future
    return n / (time.perf_counter() - started)


async def latency(writer: AuditWriter, n: int) -> list[float]:
    samples = []
    for i in range(n):
        started = time.perf_counter()
        await writer.append("order.sent", {**PAYLOAD, "i": i}, actor="bench", source="simulation")
        samples.append((time.perf_counter() - started) * 1000)
    return samples


def pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q / 100 * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--db-url", default=None)
    parser.add_argument("--appends", type=int, default=100_000)
    parser.add_argument("--window", type=int, default=1_000)
    parser.add_argument("--latency-samples", type=int, default=500)
    parser.add_argument("--verify-records", type=int, default=1_000_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        url = args.db_url or f"sqlite:///{Path(tmp) / 'bench.db'}"
        writer = AuditWriter(open_store(url))
        writer.start()
        rate = asyncio.run(throughput(writer, args.appends, args.window))
        commits = writer.commits
        samples = asyncio.run(latency(writer, args.latency_samples))
        remaining = args.verify_records - args.appends - args.latency_samples
        if remaining > 0:
            asyncio.run(throughput(writer, remaining, 5_000))
        writer.close()
        started = time.perf_counter()
        result = verify_chain(writer.engine)
        verify_s = time.perf_counter() - started
        assert result.ok and result.records == max(args.verify_records, args.appends + args.latency_samples)
        report = {
            "bench": "audit",
            "backend": writer.engine.dialect.name,
            "durable_appends_per_sec": round(rate),
            "appends": args.appends,
            "commits_for_appends": commits,
            "single_append_ms": {"p50": round(statistics.median(samples), 3), "p99": round(pct(samples, 99), 3)},
            "verify_records": result.records,
            "verify_seconds": round(verify_s, 2),
            "targets": {"durable_appends_per_sec": 20_000, "verify_seconds_per_million": 10},
            "meets_targets": rate >= 20_000 and verify_s / result.records * 1_000_000 <= 10,
            "python": sys.version.split()[0],
        }
    print(json.dumps(report) if args.json else "\n".join(f"{k}: {v}" for k, v in report.items()))


if __name__ == "__main__":
    main()
