"""Every benchmark, run as its users run it on a tiny size: one JSON object naming the machine, the
targets and the misses, and an exit status that agrees with the misses (1 on any, else 0).

The figures themselves are not checked (a tiny run on a loaded machine may miss any target); what
is checked is that a miss can never pass unnoticed and that every report can be compared with
another: the machine, and the file system of the data wherever the benchmark has data.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# name: (tiny arguments, whether it keeps data on disk)
BENCHES: dict[str, tuple[list[str], bool]] = {
    "api_load": (["--seconds", "1", "--kill-seconds", "1", "--clients", "4", "--rate", "20", "--kills", "1",
                  "--processes", "1"], True),
    "audit": (["--appends", "300", "--window", "50", "--latency-samples", "5", "--verify-records", "1000",
               "--rounds", "1", "--verify-rounds", "1"], True),
    "audit_anchor": (["--appends", "300", "--latency-samples", "5"], True),
    "breeze": (["--orders", "3"], False),
    "firm": (["--desks", "2", "--seconds", "1", "--latency-samples", "5", "--window", "10"], True),
    "governor": (["--acquires", "100", "--cancels", "3", "--cap", "1000"], False),
    # Sizes only (no start): any folder and file stand for the bundle and the .deb; tests/installer runs it whole.
    "installer": (["--bundle", "resources/icons", "--deb", "resources/icons/bulwark.svg", "--starts", "0"], True),
    "kill_switch": (["--orders", "3", "--latency-ms", "1", "--cap", "100"], False),
    "login": (["--verifies", "3", "--lag-verifies", "2"], False),
    "risk_gate": (["--instruments", "20", "--orders", "300", "--rounds", "2"], False),
    "startup": (["--runs", "1"], True),
    "startup_cli": (["--runs", "1"], True),
    "ticks": (["--instruments", "10", "--ticks", "200", "--batch", "50", "--single", "20"], False),
    "ui_load": (["--seconds", "1", "--presses", "1", "--instruments", "20"], True),
}


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(BENCHES))
def test_a_bench_reports_its_machine_targets_and_misses_and_exits_on_a_miss(name: str, tmp_path: Path) -> None:
    arguments, has_data = BENCHES[name]
    if has_data:
        arguments = [*arguments, "--data-folder", str(tmp_path)]
    environ = {**os.environ, "QT_QPA_PLATFORM": "offscreen"}
    proc = subprocess.run([sys.executable, "-m", f"tests.bench.{name}", "--json", *arguments], cwd=ROOT,
                          capture_output=True, text=True, env=environ, timeout=300, check=False)

    assert proc.stdout.strip(), f"{name} printed nothing (exit {proc.returncode}): {proc.stderr[-2000:]}"
    report = json.loads(proc.stdout)
    assert isinstance(report, dict)
    assert {"cpus", "cpus_usable", "python"} <= report["machine"].keys()
    assert isinstance(report["targets"], dict)
    assert isinstance(report["misses"], list)
    assert proc.returncode == (1 if report["misses"] else 0), (proc.returncode, report["misses"])
    assert report["ok"] == (not report["misses"])
    if has_data:
        # Its data went where it was told, and the report says on what file system.
        assert Path(report["machine"]["data_folder"]).resolve().is_relative_to(tmp_path.resolve())
        assert report["machine"]["filesystem"]
    # The folder it made is gone again.
    assert list(tmp_path.iterdir()) == []


def test_every_benchmark_with_an_entry_point_is_run_here() -> None:
    # A benchmark added without a line above would never be checked for its machine, targets and exit status.
    bench = Path(__file__).resolve().parent / "bench"
    runnable = {path.stem for path in bench.glob("*.py") if 'if __name__ == "__main__":' in path.read_text(encoding="utf-8")}
    helpers = {"breeze_peer"}  # the emulator's own process for breeze.py, not a benchmark
    assert runnable - helpers == set(BENCHES)
