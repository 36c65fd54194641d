"""The Linux installer, end to end: build the application and the .deb, install it on a minimal Debian 12 with
only its declared dependencies, run the installed ``bulwark --self-test`` offscreen, upgrade it, remove it.

Root only (dpkg, debootstrap, chroot): in CI, where ``.ci/run`` runs as root, a missing privilege fails the
test; elsewhere it is skipped, as the PostgreSQL tests are without a server.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import app
from tests.breeze_emulator import BreezeEmulator
from tests.installer.build_script import ROOT, run_build
from tests.pg_server import in_ci
from tests.support.calendar import cover_today

# Test values for throwaway keyring files and the emulator's session: nobody's secrets.
PASSPHRASE = "installer-test passphrase"
TOKEN = "48213577"
STEPS = ("minimal Debian 12", "apt-get install", "installed files", "bulwark --version", "bulwark --self-test",
         "the trader's data", "apt-get upgrade", "data after the upgrade", "apt-get remove and purge",
         "data after removal")


def _privileged() -> None:
    missing = [tool for tool in ("dpkg-deb", "debootstrap", "readelf", "strip") if shutil.which(tool) is None]
    why = "not root" if os.geteuid() != 0 else f"missing {', '.join(missing)}" if missing else None
    if why is None:
        return
    message = f"the installer test needs root and dpkg-deb, debootstrap, binutils ({why}): sh installer/setup.sh --test"
    if in_ci():
        pytest.fail(message)
    pytest.skip(message)


def _build(build: Path, *args: str) -> subprocess.CompletedProcess[str]:
    result = run_build(build, *args)
    assert result.returncode == 0, result.stdout + result.stderr[-4000:]
    return result


@pytest.fixture(scope="module")
def build(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The application and its .deb, built once for this module's tests; build.sh's figures printed."""
    _privileged()
    folder = tmp_path_factory.mktemp("installer") / "build"
    built = _build(folder)
    print(built.stdout)
    yield folder


@pytest.mark.slow
# The application carries its own Python, which .ci/at-date's moved clock does not reach.
@pytest.mark.once
def test_the_deb_installs_on_a_minimal_debian_12_passes_its_self_test_keeps_the_data_on_upgrade_and_removal(
    build: Path, tmp_path: Path,
) -> None:
    figures = json.loads((build / "bench.json").read_text(encoding="utf-8"))
    # The size is the bundle's, whatever the machine's load; the start-up time is printed, not judged, here.
    assert figures["bundle_mb"] <= 250, figures
    assert figures["installed_first_paint_s"]["median"] > 0
    version = app.__version__
    arch = subprocess.run(["dpkg", "--print-architecture"], capture_output=True, text=True, check=True).stdout.strip()
    first = build / f"bulwark_{version}_{arch}.deb"
    control = subprocess.run(["dpkg-deb", "--field", str(first)], capture_output=True, text=True, check=True).stdout
    assert f"Version: {version}\n" in control
    assert re.search(r"^Depends: libc6 \(>= 2\.\d+\), libegl1, libgl1, ", control, re.MULTILINE), control
    listing = subprocess.run(["dpkg-deb", "--contents", str(first)], capture_output=True, text=True, check=True).stdout
    for path in ("./opt/bulwark/bulwark", "./usr/bin/bulwark", "./usr/share/applications/bulwark.desktop",
                 "./usr/share/icons/hicolor/256x256/apps/bulwark.png", "./usr/share/icons/hicolor/scalable/apps/bulwark.svg"):
        assert f" {path}" in listing, path
    # Owned by root, whoever built it.
    assert all(" root/root " in line for line in listing.splitlines())

    # The same application as a later version, to upgrade to.
    _build(build, "--deb-only", "--no-measure", "--deb-version", f"{version}+upgrade1")
    newer = build / f"bulwark_{version}+upgrade1_{arch}.deb"
    checked = subprocess.run(
        [sys.executable, str(ROOT / "installer" / "check_deb.py"), str(first), "--upgrade-to", str(newer), "--json"],
        capture_output=True, text=True, timeout=1800, check=False, env={**os.environ, "BULWARK_CHECK_DIR": str(tmp_path)},
    )
    print(checked.stdout)
    report = json.loads(checked.stdout.strip().splitlines()[-1])
    steps = {step["name"]: step for step in report["steps"]}
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert tuple(steps) == STEPS
    assert all(step["passed"] for step in report["steps"])
    assert "every library resolved" in steps["installed files"]["detail"]
    assert steps["bulwark --version"]["detail"].startswith(f"Bulwark {version} (packaged: commit ")
    assert steps["bulwark --self-test"]["detail"].startswith("self-test passed: 18 checks")
    assert f"bulwark {version}+upgrade1" in steps["apt-get upgrade"]["detail"]
    assert "keyring.cfg" in steps["the trader's data"]["detail"]
    assert "Breeze API key: stored" in steps["data after the upgrade"]["detail"]
    assert "verified" in steps["data after the upgrade"]["detail"]
    # Nothing of the Debian tree is left behind.
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith("bulwark-debian12-")] == []


@pytest.mark.slow
@pytest.mark.once
def test_the_packaged_desk_trades_on_breeze_through_its_bundled_sdk(build: Path, tmp_path: Path) -> None:
    # The bundle's own Breeze SDK, socket.io client and pandas against the local emulator, as the source desk is
    # in tests/brokers/breeze/test_breeze_cli.py; its secrets in an encrypted keyring file, as a trader's would be.
    executable = build / "dist" / "bulwark" / "bulwark"
    home = cover_today(tmp_path / "home")
    unlock = tmp_path / "unlock"
    unlock.write_text(f"{PASSPHRASE}\n", encoding="utf-8")
    with BreezeEmulator(tick_interval_s=0.05) as emulator:

        def bulwark(*args: str, stdin: str) -> subprocess.CompletedProcess[str]:
            descriptor = os.open(unlock, os.O_RDONLY)
            try:
                environ = {k: v for k, v in os.environ.items() if not k.startswith(("BULWARK_", "PYTHON"))}
                environ.update(emulator.env(), BULWARK_HOME=str(home), BULWARK_KEYRING_PASSPHRASE_FD=str(descriptor),
                               QT_QPA_PLATFORM="offscreen")
                return subprocess.run([str(executable), *args], input=stdin, capture_output=True, text=True, env=environ,
                                      cwd=tmp_path, timeout=180, check=False, pass_fds=(descriptor,))
            finally:
                os.close(descriptor)

        made = bulwark("keyring", "use-file", "--passphrase-stdin", "--no-copy", stdin=f"{PASSPHRASE}\n")
        assert made.returncode == 0, made.stderr
        stored = bulwark("credentials", "set", "--broker", "breeze", "--stdin",
                         stdin=f"{emulator.api_key}\n{emulator.api_secret}\n")
        assert stored.returncode == 0, stored.stderr
        run = bulwark("simulate", "--broker", "breeze", "--session-token-stdin", "--seconds", "4", "--json",
                      "--orders-per-sec", "4", "--instruments", "6", stdin=f"{TOKEN}\n")
        assert run.returncode == 0, run.stderr[-3000:]
        report = json.loads(run.stdout)
        assert report["broker"]["name"] == "breeze"
        assert report["orders"]["submitted"] >= 8 and report["orders"]["accepted"] > 0
        assert report["audit"]["verified"] is True
        assert report["broker"]["total_requests"] == len(emulator.calls) > 0
        assert report["broker"]["handler_errors"] == {} and report["broker"]["refused_prices"] == 0
