"""What every benchmark prints besides its figures: the machine, its targets, and whether it met them.

A figure without its machine cannot be compared with another, and fsync-bound figures mean nothing
without the file system underneath (a tmpfs makes fsync free). ``finish`` prints the one JSON
object (or a readable list) and gives the exit status: non-zero when any target was missed.
"""

from __future__ import annotations

import json
import math
import os
import platform
import sys
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import platformdirs

from app.settings import resolve_home

# File systems where fsync costs nothing or is not what a desk's disk does: durable-write figures
# measured on them flatter the store.
VOLATILE_FILESYSTEMS = frozenset({"tmpfs", "ramfs", "devtmpfs", "overlay", "unknown"})


def filesystem(folder: str | os.PathLike[str]) -> str:
    """The type of the file system holding ``folder`` (its longest mount point), as ``df -T`` says."""
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


def default_data_parent() -> Path:
    """Where benchmarks make their data by default: the user's cache folder (``~/.cache/Bulwark/bench``
    on Linux), on the file system of the user's home like the desk's data folder, never ``/tmp``,
    which may be a tmpfs."""
    return Path(platformdirs.user_cache_dir("Bulwark", appauthor=False)) / "bench"


@contextmanager
def scratch_folder(parent: str | os.PathLike[str] | None, prefix: str) -> Iterator[Path]:
    """A fresh folder under ``parent`` (default :func:`default_data_parent`), removed afterwards."""
    base = Path(parent) if parent is not None else default_data_parent()
    base.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=prefix, dir=base) as folder:
        yield Path(folder)


def filesystem_warning(kind: str) -> str | None:
    """Why figures on a file system of type ``kind`` may not hold on a desk's disk, or ``None``."""
    if kind not in VOLATILE_FILESYSTEMS:
        return None
    where = "on a file system of unknown type" if kind == "unknown" else f"on {kind}"
    return (f"the data folder is {where}: fsync may cost nothing there, so durable-write figures may flatter "
            "the store; pass --data-folder on a local disk")


def machine(data_folder: str | os.PathLike[str] | None = None) -> dict[str, object]:
    """Cores (all and usable), Python, the OS, and the file system of the benchmark's data if it has any."""
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    found: dict[str, object] = {
        "cpus": os.cpu_count(),
        "cpus_usable": usable,
        "python": sys.version.split()[0],
        "implementation": platform.python_implementation(),
        "os": f"{platform.system()} {platform.release()}",
    }
    if data_folder is not None:
        found["data_folder"] = os.fspath(data_folder)
        found["filesystem"] = filesystem(data_folder)
        # The desk's own data folder (BULWARK_HOME or its default): a figure on another file system
        # than the desk writes to says so here.
        home = resolve_home()
        found["desk_data_folder"] = os.fspath(home)
        found["desk_data_filesystem"] = filesystem(home)
    return found


def percentile(samples: Sequence[float], q: float) -> float:
    """The nearest-rank percentile ``q`` (0-100) of ``samples``."""
    ordered = sorted(samples)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


def finish(result: Mapping[str, Any], targets: Mapping[str, Any], misses: Sequence[str], *, as_json: bool,
           data_folder: str | os.PathLike[str] | None = None) -> int:
    """Print ``result`` with the machine, the targets and the misses; return the exit status (1 on a miss).

    ``misses`` names each missed target in words, e.g. ``"p99 1.8 ms > 1.0 ms"``; the caller decides
    what a miss is, this only makes every benchmark say it the same way.
    """
    found = machine(data_folder)
    out = {**result, "machine": found, "targets": dict(targets), "misses": list(misses), "ok": not misses}
    warning = filesystem_warning(str(found["filesystem"])) if data_folder is not None else None
    if warning is not None:
        out["warnings"] = [*out.get("warnings", []), warning]
        print(f"warning: {warning}", file=sys.stderr)
    if as_json:
        print(json.dumps(out, default=str))
    else:
        for key, value in out.items():
            print(f"{key}: {value}")
    return 1 if misses else 0
