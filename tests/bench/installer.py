"""The packaged desk: bundle size, .deb size, and the installed desk's cold start to the window's first paint.

The .deb is unpacked (``dpkg-deb -x``, no root needed) into a scratch root, which gives the files exactly as
installed; each start runs its ``opt/bulwark/bulwark`` on a fresh data folder (so the store is created and
migrated every time), offscreen unless a display is set, as ``tests.bench.startup`` does for ``main.py``.
Run as root, it drops the kernel's page cache before each start, so the application's files are read from
the disk as after a reboot; otherwise (or where the kernel refuses) the starts after the first find them
cached, and the report says which (``page_cache``).
Targets: bundle <= 250 MB (apparent size of the one-folder application), first paint median <= 3 s over
``--starts`` (default 5). Exit 1 on a miss. Run by ``installer/build.sh``, or:
``python -m tests.bench.installer --bundle build/installer/dist/bulwark --deb build/installer/bulwark_*.deb --json``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
from pathlib import Path

from .machine import finish, scratch_folder
from .startup import one_start, stats

TARGET_BUNDLE_MB = 250.0
TARGET_PAINT_S = 3.0


def apparent_size(folder: Path) -> int:
    """Bytes of every file under ``folder`` (links not followed), as ``du -sb`` counts them."""
    return sum(path.lstat().st_size for path in folder.rglob("*") if path.is_file() or path.is_symlink())


def drop_page_cache() -> str | None:
    """Drop the kernel's clean page cache; ``None`` when done, else why not."""
    if os.geteuid() != 0:
        return "not root"
    os.sync()
    try:
        Path("/proc/sys/vm/drop_caches").write_text("3\n", encoding="ascii")
    except OSError as exc:
        return f"the kernel refused: {exc.strerror or exc}"
    return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bundle", type=Path, required=True, help="the one-folder application (dist/bulwark)")
    parser.add_argument("--deb", type=Path, required=True, help="the .deb built from it")
    parser.add_argument("--starts", type=int, default=5, help="cold starts to time (0: none)")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--data-folder", type=Path, default=None,
                        help="folder to unpack and start in (default: the user's cache folder, never /tmp)")
    args = parser.parse_args(argv)
    if args.starts < 0:
        parser.error("--starts must be 0 or more")
    for path, kind in ((args.bundle, "bundle folder"), (args.deb, ".deb")):
        if not path.exists():
            parser.error(f"no {kind} at {path}")
    bundle_mb = round(apparent_size(args.bundle) / 1e6, 1)
    result: dict[str, object] = {
        "bench": "installer", "bundle": str(args.bundle), "bundle_mb": bundle_mb,
        "deb": str(args.deb), "deb_mb": round(args.deb.stat().st_size / 1e6, 1), "starts": args.starts,
    }
    misses = []
    if bundle_mb > TARGET_BUNDLE_MB:
        misses.append(f"bundle {bundle_mb} MB > {TARGET_BUNDLE_MB} MB")
    with scratch_folder(args.data_folder, "bulwark-bench-installer-") as folder:
        if args.starts:
            root = folder / "root"
            subprocess.run(["dpkg-deb", "-x", str(args.deb), str(root)], check=True)
            executable = root / "opt" / "bulwark" / "bulwark"
            paints, running, not_dropped = [], [], set()
            for n in range(args.starts):
                why = drop_page_cache()
                if why is not None:
                    not_dropped.add(why)
                paint, run = one_start(folder / f"home{n}", command=[str(executable)])
                paints.append(paint)
                running.append(run)
            result["page_cache"] = (f"warm after the first start ({', '.join(sorted(not_dropped))})" if not_dropped
                                    else "dropped before each start")
            result["installed_first_paint_s"] = stats(paints)
            result["installed_desk_running_s"] = stats(running)
            if statistics.median(paints) > TARGET_PAINT_S:
                misses.append(f"installed first paint median {statistics.median(paints):.3f} s > {TARGET_PAINT_S} s")
        return finish(result, {"bundle_mb_at_most": TARGET_BUNDLE_MB, "first_paint_median_s_at_most": TARGET_PAINT_S},
                      misses, as_json=args.json, data_folder=folder)


if __name__ == "__main__":
    raise SystemExit(main())
