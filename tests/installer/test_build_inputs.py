"""What the installer's scripts say to a wrong invocation: one clear line and a failed exit, before any work."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.installer.build_script import ROOT, run_build


def _build(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return run_build(tmp_path / "build", *args, timeout=60)


@pytest.mark.parametrize(("args", "said"), [
    (["--bogus"], "build: error: unknown option: --bogus (see --help)"),
    (["--deb-version"], "build: error: --deb-version needs a version"),
    (["--deb-only", "--deb-version", "v1.2"], "build: error: a Debian version starts with a digit: v1.2"),
    (["--deb-only"], "build: error: no application in {build}/dist/bulwark: build without --deb-only first"),
])
def test_build_refuses_with_one_line_and_builds_nothing(tmp_path: Path, args: list[str], said: str) -> None:
    result = _build(tmp_path, *args)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == said.format(build=tmp_path / "build")
    assert list(tmp_path.rglob("*.deb")) == []


def test_build_help_lists_its_options(tmp_path: Path) -> None:
    result = _build(tmp_path, "--help")
    assert result.returncode == 0
    for option in ("--deb-only", "--deb-version V", "--no-measure", "--check-debian"):
        assert option in result.stdout
    assert not (tmp_path / "build").exists()


def test_check_deb_refuses_a_package_that_is_not_there(tmp_path: Path) -> None:
    result = subprocess.run([sys.executable, str(ROOT / "installer" / "check_deb.py"), str(tmp_path / "none.deb")],
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 2
    assert f"no such package: {tmp_path / 'none.deb'}" in result.stderr
