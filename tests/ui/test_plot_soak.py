"""The 60-second live-plot soak (DESIGN.md, toolchain facts): PySide6 6.12.0 on Python 3.11 aborted
within seconds of live pyqtgraph plotting (``Fatal Python error: none_dealloc``). A wheel that brings
that back must fail here, so the soak runs in a subprocess: an abort is a failed test, not a dead pytest."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SECONDS = 60
HZ = 20


@pytest.mark.slow
# A minute of synthetic data, drawn as fast as the wheel allows: no date in it (the charts' own dates are
# tested at every moved date by tests/ui/test_charts.py).
@pytest.mark.once
def test_exposure_panel_plots_live_at_20_hz_for_a_minute_without_aborting() -> None:
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "PYTHONFAULTHANDLER": "1"}
    done = subprocess.run(
        [sys.executable, "-m", "tests.ui.plot_soak", "--seconds", str(SECONDS), "--hz", str(HZ)],
        check=False,
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=SECONDS + 120,
    )
    assert done.returncode == 0, f"exit {done.returncode}\n{done.stdout[-2000:]}\n{done.stderr[-4000:]}"
    found = re.search(r"frames=(\d+) paints=(\d+) ticks=(\d+)", done.stdout)
    assert found, done.stdout
    frames, paints, ticks = (int(group) for group in found.groups())
    print(f"\nsoak: {ticks} timer ticks, {frames} frames drawn, {paints} chart paints in {SECONDS} s")
    # 20 Hz for 60 s is 1,200 frames; more than half must have been drawn and painted.
    assert frames > 600
    assert paints > 600
