"""The anchor `tests.bench.audit` is measured against, run in the same process and the same temp folder.

Copied from ``/work/shared/bench/raw_sqlite_audit.py`` (the issue 12 anchor, which a fresh checkout
does not have), logic unchanged: the floor for a durable hash-chained audit append on SQLite with
the bare ``sqlite3`` module. Same durability as the desk's store (WAL, ``synchronous=FULL``, one
commit per batch of 500), same payload shape, SHA-256 chain computed in Python. The verify walk is
a function of its own so the benchmark can run it again right beside the desk's verify.
``single_appends`` is the one-row commit the desk's single durable append is shown beside.
Run alone: ``python -m tests.bench.audit_anchor --json`` (no targets: it is the floor).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sqlite3
import statistics
import sys
import time
from pathlib import Path

from .machine import finish, percentile, scratch_folder

BATCH = 500
PAYLOAD = {"client_order_id": "BW1A2B3C-000001", "instrument": "NSE:RELIANCE", "side": "BUY", "quantity": 10,
           "price_paise": 150_005, "order_type": "LIMIT", "product": "INTRADAY", "validity": "DAY"}
DB_NAME = "anchor.db"


def run_anchor(folder: str, n: int = 100_000) -> dict[str, object]:
    """Append ``n`` records to a fresh database in ``folder``, then verify them; the anchor's figures."""
    c = _create(folder)
    prev = "0" * 64
    t0 = time.perf_counter()
    seq = 0
    while seq < n:
        rows = []
        for _ in range(min(BATCH, n - seq)):
            seq += 1
            body = json.dumps({**PAYLOAD, "i": seq}, sort_keys=True, separators=(",", ":"))
            ts = time.time_ns()
            h = hashlib.sha256((prev + body).encode()).hexdigest()
            rows.append((seq, ts, "bench", "simulation", "order.sent", body, prev, h))
            prev = h
        c.execute("BEGIN IMMEDIATE")
        c.executemany("INSERT INTO audit VALUES (?,?,?,?,?,?,?,?)", rows)
        c.execute("COMMIT")
    el = time.perf_counter() - t0
    ve, ok = _verify(c)
    c.close()
    return {"anchor": "raw_sqlite3_audit", "appends": n, "appends_per_sec": round(n / el),
            "verify_s_per_million": round(ve * 1_000_000 / n, 2), "ok": ok}


def verify_again(folder: str, n: int) -> float:
    """The anchor's verify walk once more over the ``n`` records ``run_anchor`` left in ``folder``: s per million."""
    c = sqlite3.connect(os.path.join(folder, DB_NAME), isolation_level=None)
    try:
        ve, ok = _verify(c)
    finally:
        c.close()
    assert ok
    return ve * 1_000_000 / n


def _create(folder: str) -> sqlite3.Connection:
    """A fresh anchor database in ``folder``, as durable as the desk's store."""
    c = sqlite3.connect(os.path.join(folder, DB_NAME), isolation_level=None)
    c.execute("PRAGMA journal_mode=WAL")
    c.execute("PRAGMA synchronous=FULL")
    c.execute("CREATE TABLE audit(seq INTEGER PRIMARY KEY, ts_ns INTEGER, actor TEXT, source TEXT, event TEXT, "
              "payload TEXT, prev_hash TEXT, hash TEXT)")
    return c


def _verify(c: sqlite3.Connection) -> tuple[float, bool]:
    t1 = time.perf_counter()
    prev = "0" * 64
    ok = True
    for seq, body, p, h in c.execute("SELECT seq, payload, prev_hash, hash FROM audit ORDER BY seq"):
        ok &= (p == prev and hashlib.sha256((prev + body).encode()).hexdigest() == h)
        prev = h
    return time.perf_counter() - t1, ok


def single_appends(folder: str, n: int) -> list[float]:
    """``n`` one-row commits to a fresh chain in ``folder``, each its own durable transaction: ms each."""
    c = _create(folder)
    try:
        prev = "0" * 64
        samples = []
        for seq in range(1, n + 1):
            started = time.perf_counter()
            body = json.dumps({**PAYLOAD, "i": seq}, sort_keys=True, separators=(",", ":"))
            h = hashlib.sha256((prev + body).encode()).hexdigest()
            c.execute("BEGIN IMMEDIATE")
            c.execute("INSERT INTO audit VALUES (?,?,?,?,?,?,?,?)",
                      (seq, time.time_ns(), "bench", "simulation", "order.sent", body, prev, h))
            c.execute("COMMIT")
            samples.append((time.perf_counter() - started) * 1000)
            prev = h
        return samples
    finally:
        c.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="The bare-sqlite3 audit anchor on its own (no targets: it is the floor)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--appends", type=int, default=100_000)
    parser.add_argument("--latency-samples", type=int, default=500, help="one-row commits timed one by one")
    parser.add_argument("--data-folder", type=Path, default=None,
                        help="folder to make the data folder in (default: the user's cache folder, never /tmp)")
    args = parser.parse_args(argv)
    if min(args.appends, args.latency_samples) < 1:
        parser.error("--appends and --latency-samples must be at least 1")
    with scratch_folder(args.data_folder, "bulwark-bench-anchor-") as folder:
        (folder / "batched").mkdir()
        (folder / "single").mkdir()
        result = run_anchor(str(folder / "batched"), args.appends)
        samples = single_appends(str(folder / "single"), args.latency_samples)
        result["single_append_ms"] = {"p50": round(statistics.median(samples), 3),
                                      "p99": round(percentile(samples, 99), 3), "samples": len(samples)}
        misses = [] if result["ok"] else ["the anchor's own chain did not verify"]
        return finish({"bench": "audit_anchor", **result}, {}, misses, as_json=args.json, data_folder=folder)


if __name__ == "__main__":
    sys.exit(main())
