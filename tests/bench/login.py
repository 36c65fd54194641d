"""Operator sign-in: the time one argon2id password verify takes with the desk's parameters, and the
GUI event loop's lag while verifies run beside it.

- Verify: ``--verifies`` (30) calls of ``verify_password`` on one hash made with the desk's own
  parameters (``app.security.passwords``), timed one by one with ``perf_counter``. Deliberately
  slow: the target is a median of at least 50 ms (a stolen database costs an attacker that much
  per guess) and a p99 of at most 500 ms (a sign-in must not feel stuck).
- Lag: an offscreen ``QApplication`` under a ``qasync`` loop, a single-shot precise ``QTimer``
  re-armed every ``PROBE_MS`` (5 ms) as in ``tests.bench.ui_load``, while ``--lag-verifies`` (10)
  verifies run one after another through ``asyncio.to_thread``, as the sign-in dialog runs them.
  argon2 releases the GIL, so the loop must keep its p99 lag at or under 30 ms.

Prints one JSON object; exit 1 when a target is missed. Run: ``python -m tests.bench.login --json``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from app.security.passwords import (
    MEMORY_COST_KIB,
    PARALLELISM,
    TIME_COST,
    hash_password,
    verify_password,
)

from .machine import finish, percentile
from .ui_load import LagProbe, stats

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

TARGET_VERIFY_MIN_MS = 50.0
TARGET_VERIFY_MAX_MS = 500.0
TARGET_LAG_P99_MS = 30.0
PROBE_MS = 5
PASSWORD = "correct horse battery staple"


def time_verifies(stored: str, count: int) -> list[float]:
    samples = []
    for _ in range(count):
        started = time.perf_counter()
        if not verify_password(stored, PASSWORD):
            raise SystemExit("the bench's own password did not verify")
        samples.append((time.perf_counter() - started) * 1000)
    return samples


async def lag_while_verifying(stored: str, count: int) -> tuple[list[float], list[float]]:
    """The probe's lag samples while ``count`` verifies run off the loop, and each verify's wall time."""
    probe = LagProbe(PROBE_MS)
    probe.start()
    await asyncio.sleep(0.1)  # the probe's own settling, before the first verify
    walls = []
    for _ in range(count):
        started = time.perf_counter()
        await asyncio.to_thread(verify_password, stored, PASSWORD)
        walls.append((time.perf_counter() - started) * 1000)
    probe.stop()
    return probe.samples_ms, walls


def run_on_qt(stored: str, count: int) -> tuple[list[float], list[float]]:
    import qasync
    from PySide6.QtWidgets import QApplication

    app = QApplication.instance() or QApplication([])
    if isinstance(app, QApplication):
        app.setQuitOnLastWindowClosed(False)
    loop = qasync.QEventLoop(app)
    # Our own pool: qasync's default executor would wait for its threads at exit.
    executor = ThreadPoolExecutor(max_workers=2, thread_name_prefix="login-bench")
    loop.set_default_executor(executor)
    try:
        return loop.run_until_complete(lag_while_verifying(stored, count))
    finally:
        executor.shutdown(wait=True)
        loop.close()


def run(verifies: int, lag_verifies: int) -> dict[str, Any]:
    stored = hash_password(PASSWORD)
    verify_ms = time_verifies(stored, verifies)
    lag_ms, wall_ms = run_on_qt(stored, lag_verifies)
    return {
        "bench": "login",
        "argon2id": {"memory_kib": MEMORY_COST_KIB, "time_cost": TIME_COST, "parallelism": PARALLELISM},
        "verify_ms": {"median": round(statistics.median(verify_ms), 2), "p99": round(percentile(verify_ms, 99), 2),
                      "min": round(min(verify_ms), 2), "max": round(max(verify_ms), 2), "samples": len(verify_ms)},
        "threaded_verify_wall_ms": stats(wall_ms, 2),
        "gui_loop_lag_ms": {"probe": f"single-shot Qt.PreciseTimer every {PROBE_MS} ms", **stats(lag_ms)},
    }


def misses(result: dict[str, Any]) -> list[str]:
    found = []
    verify = result["verify_ms"]
    if verify["median"] < TARGET_VERIFY_MIN_MS:
        found.append(f"verify median {verify['median']} ms < {TARGET_VERIFY_MIN_MS} ms (too cheap to guess against)")
    if verify["p99"] > TARGET_VERIFY_MAX_MS:
        found.append(f"verify p99 {verify['p99']} ms > {TARGET_VERIFY_MAX_MS} ms")
    lag = result["gui_loop_lag_ms"]["p99"]
    if lag > TARGET_LAG_P99_MS:
        found.append(f"GUI loop lag p99 {lag} ms > {TARGET_LAG_P99_MS} ms while verifying")
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--verifies", type=int, default=30, help="verifies timed one by one (default 30)")
    parser.add_argument("--lag-verifies", type=int, default=10, help="verifies run in a thread under the lag probe (default 10)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    if min(args.verifies, args.lag_verifies) < 1:
        parser.error("--verifies and --lag-verifies must be at least 1")
    result = run(args.verifies, args.lag_verifies)
    targets = {"verify_median_ms_at_least": TARGET_VERIFY_MIN_MS, "verify_p99_ms_at_most": TARGET_VERIFY_MAX_MS,
               "gui_loop_lag_p99_ms_at_most": TARGET_LAG_P99_MS}
    return finish(result, targets, misses(result), as_json=args.json)


if __name__ == "__main__":
    sys.exit(main())
