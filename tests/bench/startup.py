"""Desk start-up: process start to the main window's first paint, and to the desk running, over cold starts.

Each run is a new interpreter running ``main.py`` (the desk window, paper broker, offscreen unless
a display is set) on a fresh data folder under ``--data-folder`` (default the user's cache folder),
so the store is created and migrated in every run (with a calendar that covers today, as
``calendar accept-weekdays`` would write past the shipped years: a desk refuses to start without
one, and a benchmark must not depend on the date it runs). The
window logs the epoch time of its first paint, and the engine logs when it runs; both are read
from the process's log against the wall time the process was spawned. The window closes itself
after ``--quit-after`` seconds. Median, p99 and max over ``--runs`` (default 5). Target: first
paint median <= 2 s. Exit 1 when the median misses it.
Run: ``python -m tests.bench.startup --json``.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

from tests.support.calendar import cover_today

from .machine import finish, scratch_folder

ROOT = Path(__file__).resolve().parents[2]
TARGET_PAINT_S = 2.0
PAINTED = re.compile(r"desk window first painted at epoch_ns=(\d+)")
RUNNING = re.compile(r"^(\S+) INFO app\.engine\.engine: engine running", re.MULTILINE)


def _env(home: Path) -> dict[str, str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("BULWARK_")}
    environ["BULWARK_HOME"] = str(home)
    environ["BULWARK_LOG_LEVEL"] = "INFO"
    environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    return environ


def one_start(home: Path, command: list[str] | None = None) -> tuple[float, float]:
    """Seconds from spawning the process to the first paint, and to the engine running.

    ``command`` starts the desk (default ``python main.py``; an installed ``bulwark`` for the installer's bench)."""
    from datetime import datetime

    cover_today(home)
    spawned_ns = time.time_ns()
    proc = subprocess.run(
        [*(command or [sys.executable, str(ROOT / "main.py")]), "--quit-after", "1", "--no-global-hotkey"],
        capture_output=True, text=True, env=_env(home), timeout=120, check=False,
    )
    if proc.returncode != 0:
        raise SystemExit(f"the desk failed ({proc.returncode}): {proc.stderr[-2000:]}")
    painted = PAINTED.search(proc.stderr)
    running = RUNNING.search(proc.stderr)
    if painted is None or running is None:
        raise SystemExit(f"no first-paint or engine-running line in the desk's log: {proc.stderr[-2000:]}")
    running_ns = int(datetime.fromisoformat(running.group(1)).timestamp() * 1e9)
    return (int(painted.group(1)) - spawned_ns) / 1e9, (running_ns - spawned_ns) / 1e9


def stats(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
    return {"median": round(statistics.median(ordered), 3), "p99": round(p99, 3), "max": round(ordered[-1], 3)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--data-folder", type=Path, default=None,
                        help="folder to make the data folders in (default: the user's cache folder, never /tmp)")
    args = parser.parse_args(argv)
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    paints, runs = [], []
    with scratch_folder(args.data_folder, "bulwark-bench-startup-") as folder:
        for n in range(args.runs):
            paint, running = one_start(folder / f"home{n}")
            paints.append(paint)
            runs.append(running)
        result = {
            "bench": "startup",
            "runs": args.runs,
            "first_paint_s": stats(paints),
            "desk_running_s": stats(runs),
            "qt_platform": os.environ.get("QT_QPA_PLATFORM", "offscreen"),
        }
        misses = []
        if statistics.median(paints) > TARGET_PAINT_S:
            misses.append(f"first paint median {statistics.median(paints):.3f} s > {TARGET_PAINT_S} s")
        return finish(result, {"first_paint_median_s_at_most": TARGET_PAINT_S}, misses, as_json=args.json,
                      data_folder=folder)

if __name__ == "__main__":
    raise SystemExit(main())
