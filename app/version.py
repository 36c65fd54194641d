"""The desk's version line (``main.py --version``): the release, and the build it came from when packaged.

A packaged desk carries ``build-info.json`` beside this module (``installer/build.sh`` writes it: the
commit, when and on what it was built); a desk run from a source checkout has none and says so.
"""

from __future__ import annotations

import json
import platform
from pathlib import Path

from app import __version__

BUILD_INFO_PATH = Path(__file__).resolve().parent / "build-info.json"


def build_info(path: Path = BUILD_INFO_PATH) -> dict[str, str] | None:
    """The packaged build's facts, or ``None`` from a source checkout (or when the file is unreadable)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict):
        return None
    return {str(key): str(value) for key, value in data.items()}


def version_line(path: Path = BUILD_INFO_PATH) -> str:
    """``Bulwark 0.1.0 (packaged: commit abc1234, built 2026-11-30, on debian-12-x86_64; Python 3.11.2)``."""
    info = build_info(path)
    python = f"Python {platform.python_version()}"
    if info is None:
        return f"Bulwark {__version__} (from source; {python})"
    built = ", ".join(f"{label} {info[key]}" for key, label in (("commit", "commit"), ("built", "built"), ("platform", "on"))
                      if key in info)
    return f"Bulwark {__version__} (packaged: {built}; {python})"
