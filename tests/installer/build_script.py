"""Runs ``installer/build.sh`` for the installer tests, into a folder of the test's own."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def run_build(build: Path, *args: str, timeout: float = 1200) -> subprocess.CompletedProcess[str]:
    """``sh installer/build.sh ARGS`` with its output in ``build`` and this interpreter's virtualenv."""
    env = {**os.environ, "BULWARK_BUILD_DIR": str(build), "PYTHON": sys.executable}
    return subprocess.run(["sh", str(ROOT / "installer" / "build.sh"), *args], capture_output=True, text=True,
                          env=env, cwd=ROOT, timeout=timeout, check=False)
