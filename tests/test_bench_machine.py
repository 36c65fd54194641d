"""The benchmarks' shared report (tests/bench/machine.py): exit status, file system, warnings."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from tests.bench.machine import (
    filesystem,
    filesystem_warning,
    finish,
    percentile,
    scratch_folder,
)


def test_a_missed_target_exits_one_and_is_named_in_the_one_json_object(capsys: pytest.CaptureFixture[str]) -> None:
    status = finish({"bench": "x", "p99_ms": 3.0}, {"p99_ms_at_most": 2.0}, ["p99 3.0 ms > 2.0 ms"], as_json=True)

    report = json.loads(capsys.readouterr().out)
    assert status == 1
    assert report["misses"] == ["p99 3.0 ms > 2.0 ms"] and report["ok"] is False
    assert report["targets"] == {"p99_ms_at_most": 2.0} and report["p99_ms"] == 3.0
    assert "cpus" in report["machine"] and "python" in report["machine"]


def test_met_targets_exit_zero(capsys: pytest.CaptureFixture[str]) -> None:
    assert finish({"bench": "x"}, {"t": 1}, [], as_json=True) == 0
    assert json.loads(capsys.readouterr().out)["ok"] is True


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/mounts")
def test_the_file_system_is_the_innermost_mount_holding_the_folder(tmp_path: Path) -> None:
    assert filesystem("/proc/self") == "proc"
    assert filesystem(tmp_path) not in ("", "proc")


def test_a_tmpfs_data_folder_is_warned_about_and_a_disk_is_not() -> None:
    for kind in ("tmpfs", "ramfs", "overlay", "unknown"):
        warning = filesystem_warning(kind)
        assert warning is not None and "fsync" in warning
    assert filesystem_warning("ext4") is None
    assert filesystem_warning("apfs") is None


def test_the_scratch_folder_is_made_under_the_parent_given_and_removed(tmp_path: Path) -> None:
    with scratch_folder(tmp_path / "made", "bench-") as folder:
        assert folder.parent == tmp_path / "made" and folder.is_dir()
        (folder / "data.db").write_text("x")
    assert list((tmp_path / "made").iterdir()) == []


def test_percentile_is_nearest_rank() -> None:
    samples = [float(n) for n in range(1, 101)]
    assert percentile(samples, 50) == 50.0
    assert percentile(samples, 99) == 99.0
    assert percentile(samples, 100) == 100.0
    assert percentile([7.0], 99) == 7.0


@pytest.mark.skipif(filesystem("/dev/shm") != "tmpfs", reason="needs /dev/shm on a tmpfs")
def test_a_report_on_a_tmpfs_says_so(capsys: pytest.CaptureFixture[str]) -> None:
    finish({"bench": "x"}, {}, [], as_json=True, data_folder="/dev/shm")

    report = json.loads(capsys.readouterr().out)
    assert report["machine"]["filesystem"] == "tmpfs"
    assert any("tmpfs" in warning for warning in report["warnings"])
