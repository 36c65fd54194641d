"""Audit store benchmark: durable appends/s with group commit, single-append latency, verify time.

Run: ``python -m tests.bench.audit --json`` (SQLite file in a temp folder by default; ``--db-url``
for PostgreSQL). The chain is keyed as the desk keys it (HMAC-SHA256, the key in an in-memory
keyring, never the user's). In the same run and folder it measures the bare-sqlite3 anchor
(``tests.bench.audit_anchor``) and holds the desk to it: appends/s >= 0.5x the anchor's, and the
verify walk of the chain <= 1.5x the anchor's per million records. Exits 1 when a target is missed.

A shared machine is noisy, so the two are interleaved: each append round runs the anchor then the
desk, and each verify round runs the anchor's verify walk again right before the desk's; medians
are compared. What the desk does beyond the anchor is listed in the report under ``differs``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from keyring.backend import KeyringBackend

from app.store.audit_writer import AuditEntry, AuditWriter
from app.store.chain_key import ChainKeys
from app.store.migrate import open_store
from app.store.verify import quick_check, verify_chain

from .audit_anchor import run_anchor, verify_again

APPEND_RATIO = 0.5
VERIFY_RATIO = 1.5
DIFFERS = [
    "desk records are HMAC-SHA256 under a chain key (two keyed SHA-256 states per record); the anchor's are SHA-256",
    ("desk hashes the previous hash and the whole record (seq, ts_ns, actor, source, event type, payload); "
     "the anchor the previous hash and the payload"),
    ("desk appends are AuditWriter.append from an asyncio loop: redaction, canonical JSON and a future per record, "
     "written by the writer thread and resolved on the loop after the commit; the anchor appends in one thread"),
    "desk commits whatever is queued, up to 500 records (commits_for_appends); the anchor commits every 500",
    "desk's table also has an index on ts_ns and a key_fp column; the anchor's has neither",
    ("desk verify reads 9 columns and also checks sequence numbers and key fingerprints and collects day digests; "
     "the anchor reads 4"),
    "the single append is one durable append with nothing else in flight; the anchor has no such figure",
]


class MemoryKeyring(KeyringBackend):
    """A keyring in a dict: the benchmark never touches the machine's keyring."""

    priority = 1

    def __init__(self) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self._stored: dict[tuple[str, str], str] = {}

    def get_password(self, service: str, username: str) -> str | None:
        return self._stored.get((service, username))

    def set_password(self, service: str, username: str, password: str) -> None:
        self._stored[(service, username)] = password

    def delete_password(self, service: str, username: str) -> None:
        self._stored.pop((service, username), None)

PAYLOAD = {"client_order_id": "BW1A2B3C-000001", "instrument": "NSE:RELIANCE", "side": "BUY", "quantity": 10,
           "price_paise": 150_005, "order_type": "LIMIT", "product": "INTRADAY", "validity": "DAY"}


async def throughput(writer: AuditWriter, n: int, window: int) -> float:
    """Appends kept ``window`` in flight at a time (many sources at once), all awaited durable.

    A slot frees as each append's future resolves (one callback per future): ``asyncio.wait`` over
    the whole window would cost the loop O(window) per wake-up, measuring the harness, not the store.
    """
    started = time.perf_counter()
    slots = asyncio.Semaphore(window)
    failures: list[BaseException] = []

    def settled(future: asyncio.Future[AuditEntry]) -> None:
        if future.exception() is not None:
            failures.append(future.exception())  # type: ignore[arg-type]
        slots.release()

    for i in range(n):
        await slots.acquire()
        future = writer.append("order.sent", {**PAYLOAD, "i": i}, actor="bench", source="simulation")
        future.add_done_callback(settled)
    for _ in range(window):
        await slots.acquire()
    if failures:
        raise failures[0]
    return n / (time.perf_counter() - started)


async def latency(writer: AuditWriter, n: int) -> list[float]:
    samples = []
    for i in range(n):
        started = time.perf_counter()
        await writer.append("order.sent", {**PAYLOAD, "i": i}, actor="bench", source="simulation")
        samples.append((time.perf_counter() - started) * 1000)
    return samples


def machine(folder: str) -> dict[str, object]:
    """Cores, Python and the file system the benchmark's databases live on (fsync cost depends on it)."""
    return {"cpus": os.cpu_count(), "cpus_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
            "python": sys.version.split()[0], "filesystem": filesystem(folder),
            "switch_interval_s": sys.getswitchinterval()}


def filesystem(folder: str) -> str:
    """The type of the file system holding ``folder`` (the longest mount point above it), as ``df -T`` says."""
    path = os.path.realpath(folder)
    best, kind = "", "unknown"
    try:
        with open("/proc/self/mounts", encoding="utf-8") as mounts:
            for line in mounts:
                fields = line.split()
                point = fields[1].replace("\\040", " ")
                inside = path == point or path.startswith(point.rstrip("/") + "/")
                if inside and len(point) > len(best):
                    best, kind = point, fields[2]
    except OSError:
        pass
    return kind


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
    parser.add_argument("--rounds", type=int, default=3,
                        help="anchor and desk append runs, interleaved; the medians are compared (a shared machine is noisy)")
    parser.add_argument("--verify-rounds", type=int, default=3,
                        help="anchor and desk verify walks, interleaved; the medians are compared")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        url = args.db_url or f"sqlite:///{Path(tmp) / 'bench.db'}"
        keys = ChainKeys(MemoryKeyring())
        writer = AuditWriter(open_store(url), keys=keys, create_key=True)
        writer.start()
        anchors: list[dict[str, object]] = []
        rates: list[float] = []
        for round_number in range(args.rounds):
            round_dir = Path(tmp) / f"anchor-{round_number}"
            round_dir.mkdir()
            anchors.append(run_anchor(str(round_dir), args.appends))
            rates.append(asyncio.run(throughput(writer, args.appends, args.window)))
        rate = statistics.median(rates)
        anchor_rate = statistics.median(float(str(a["appends_per_sec"])) for a in anchors)
        commits = writer.commits
        samples = asyncio.run(latency(writer, args.latency_samples))
        remaining = args.verify_records - args.appends * args.rounds - args.latency_samples
        if remaining > 0:
            asyncio.run(throughput(writer, remaining, 5_000))
        writer.close()
        verify_runs: list[float] = []
        anchor_verifies: list[float] = []
        # CPU seconds too: both walks are single-threaded, and CPU time is what other processes on
        # a shared machine change least.
        verify_cpu: list[float] = []
        anchor_cpu: list[float] = []
        for round_number in range(args.verify_rounds):
            cpu = time.process_time()
            anchor_verifies.append(verify_again(str(Path(tmp) / f"anchor-{round_number % args.rounds}"), args.appends))
            anchor_cpu.append((time.process_time() - cpu) * 1_000_000 / args.appends)
            started, cpu = time.perf_counter(), time.process_time()
            result = verify_chain(writer.engine, keys=keys, integrity=False)
            verify_runs.append(time.perf_counter() - started)
            verify_cpu.append(time.process_time() - cpu)
        verify_s = statistics.median(verify_runs)
        anchor_verify = statistics.median(anchor_verifies)
        started = time.perf_counter()
        damaged = quick_check(writer.engine)
        check_s = time.perf_counter() - started
        assert result.ok and not damaged and result.keys == [writer.key_fingerprint]
        # One more record than asked: the record that announces the chain's key.
        assert result.records == max(args.verify_records, args.appends * args.rounds + args.latency_samples) + 1
        per_million = verify_s / result.records * 1_000_000
        append_ratio = rate / anchor_rate
        verify_ratio = per_million / anchor_verify
        report = {
            "bench": "audit",
            "backend": writer.engine.dialect.name,
            "keyed": "HMAC-SHA256",
            "durable_appends_per_sec": round(rate),
            "appends_per_sec_rounds": [round(r) for r in rates],
            "appends": args.appends,
            "commits_for_appends": commits,
            "single_append_ms": {"p50": round(statistics.median(samples), 3), "p99": round(pct(samples, 99), 3),
                                 "samples": len(samples)},
            "verify_records": result.records,
            "verify_seconds": round(verify_s, 2),
            "verify_seconds_rounds": [round(v, 2) for v in verify_runs],
            "verify_s_per_million": round(per_million, 2),
            "quick_check_seconds": round(check_s, 2),
            "anchor": {"appends_per_sec": round(anchor_rate), "verify_s_per_million": round(anchor_verify, 2),
                       "verify_s_per_million_rounds": [round(v, 2) for v in anchor_verifies],
                       "rounds": anchors},
            "append_ratio": round(append_ratio, 2),
            "verify_ratio": round(verify_ratio, 2),
            "verify_cpu_s_per_million": {"desk": round(statistics.median(verify_cpu) / result.records * 1_000_000, 2),
                                         "anchor": round(statistics.median(anchor_cpu), 2),
                                         "ratio": round(statistics.median(verify_cpu) / result.records * 1_000_000
                                                        / statistics.median(anchor_cpu), 2)},
            "targets": {"append_ratio_at_least": APPEND_RATIO, "verify_ratio_at_most": VERIFY_RATIO},
            "meets_targets": append_ratio >= APPEND_RATIO and verify_ratio <= VERIFY_RATIO,
            "machine": machine(tmp),
            "differs": DIFFERS,
        }
    print(json.dumps(report) if args.json else "\n".join(f"{k}: {v}" for k, v in report.items()))
    if not report["meets_targets"]:
        sys.exit(1)


if __name__ == "__main__":
    main()
