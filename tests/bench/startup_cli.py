"""Command-line start-up: `main.py --help` to exit, and `main.py panic` to "written: ... HALTED" on SQLite.

Each run is a cold start: a new interpreter (bytecode caches and the OS file cache as earlier runs
left them; nothing is imported ahead). ``panic`` runs on a data folder whose store a desk has
already created and migrated (created once, untimed, before the runs), with no desk running; the
time is from starting the process to the line saying the HALTED flag is written. Median, p99 and
max over ``--runs`` runs (default 5). Targets: ``--help`` <= 0.3 s, panic to the flag <= 1 s.
Exit 1 when a median misses its target.
Run: ``python -m tests.bench.startup_cli --json`` (the data folder is made under the user's cache
folder; ``--home DIR`` or ``--data-folder DIR`` puts it under DIR, to measure another filesystem).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from app.store.migrate import open_store

from .machine import finish, scratch_folder

ROOT = Path(__file__).resolve().parents[2]
TARGET_HELP_S = 0.3
TARGET_PANIC_S = 1.0
WRITTEN = "written: the next start of the desk is HALTED"


def _env(home: Path) -> dict[str, str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("BULWARK_")}
    environ["BULWARK_HOME"] = str(home)
    return environ


def time_help(home: Path) -> float:
    started = time.perf_counter()
    proc = subprocess.run([sys.executable, str(ROOT / "main.py"), "--help"], capture_output=True, text=True,
                          env=_env(home), timeout=60, check=False)
    elapsed = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(f"main.py --help failed: {proc.stderr}")
    return elapsed


def time_panic(home: Path) -> float:
    """Seconds from starting ``panic`` to its line saying the flag is written."""
    started = time.perf_counter()
    process = subprocess.Popen([sys.executable, str(ROOT / "main.py"), "panic", "--timeout", "0.2"],
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=_env(home))
    assert process.stdout is not None
    written: float | None = None
    for line in process.stdout:
        if WRITTEN in line and written is None:
            written = time.perf_counter() - started
    process.wait(timeout=60)
    if written is None:
        raise SystemExit(f"panic never said {WRITTEN!r} (exit {process.returncode})")
    return written


def summary(samples: list[float]) -> dict[str, object]:
    ordered = sorted(samples)
    p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
    return {"median_s": round(statistics.median(ordered), 3), "p99_s": round(p99, 3), "max_s": round(ordered[-1], 3),
            "runs_s": [round(s, 3) for s in samples]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="cold runs of each command (default 5)")
    parser.add_argument("--home", "--data-folder", type=Path, default=None,
                        help="folder to make the data folder in (default: the user's cache folder, never /tmp)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    with scratch_folder(args.home, "bulwark-bench-cli-") as folder:
        home = folder / "home"
        home.mkdir()
        open_store(f"sqlite:///{home}/bulwark.db").dispose()
        helps = [time_help(home) for _ in range(args.runs)]
        panics = [time_panic(home) for _ in range(args.runs)]
        result: dict[str, object] = {
            "bench": "startup_cli",
            "help": summary(helps),
            "panic_to_halted_written": summary(panics),
            "cold": "a new interpreter per run; bytecode and OS file caches as earlier runs left them",
        }
        misses = []
        if statistics.median(helps) > TARGET_HELP_S:
            misses.append(f"--help median {statistics.median(helps):.3f} s > {TARGET_HELP_S} s")
        if statistics.median(panics) > TARGET_PANIC_S:
            misses.append(f"panic to the flag median {statistics.median(panics):.3f} s > {TARGET_PANIC_S} s")
        targets = {"help_median_s_at_most": TARGET_HELP_S, "panic_to_halted_written_median_s_at_most": TARGET_PANIC_S}
        return finish(result, targets, misses, as_json=args.json, data_folder=home)

if __name__ == "__main__":
    sys.exit(main())
