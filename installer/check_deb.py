"""Install the .deb on a minimal Debian 12 that has nothing but its declared dependencies, and use it there.

    sudo python3 installer/check_deb.py build/installer/bulwark_0.1.0_amd64.deb [--upgrade-to NEWER.deb] [--json]

Root only (debootstrap, chroot, mounts). In a fresh ``debootstrap --variant=minbase bookworm`` tree, inside a
private mount namespace (so nothing stays mounted, whatever happens):

1. ``apt-get install --no-install-recommends ./bulwark.deb``: apt brings only the Depends (and theirs);
2. every library of /opt/bulwark resolves (``ldd``: nothing "not found"), the launcher is on the PATH, the
   desktop entry validates its Exec and Icon;
3. as an ordinary user, ``bulwark --version`` and ``bulwark --self-test`` (offscreen) pass;
4. the user makes a real data folder: an encrypted keyring file holding Breeze credentials, an administrator,
   an audit chain;
5. with ``--upgrade-to``: the newer package installs over it; the data folder's files are byte for byte the
   same, the chain still verifies and the upgraded desk still reads the credentials from the keyring file;
6. ``apt-get remove`` then ``purge``: /opt/bulwark and the launcher are gone, the data folder is untouched.

Prints each step as it goes, and with ``--json`` one JSON object at the end; exit 0 only if every step passed.
``BULWARK_DEBIAN_MIRROR`` overrides the mirror (default http://deb.debian.org/debian). Standard library only.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

SUITE = "bookworm"
MIRROR = os.environ.get("BULWARK_DEBIAN_MIRROR", "http://deb.debian.org/debian")
USER = "trader"
DATA = f"/home/{USER}/.local/share/Bulwark"
# Test values for a throwaway keyring file in a throwaway system: nobody's secrets.
PASSPHRASE = "check-deb passphrase"
ADMIN_PASSWORD = "check-deb admin password"
API_KEY_AND_SECRET = "check-deb-api-key\ncheck-deb-api-secret\n"


@dataclass
class Step:
    """One step of the check: what it did, whether it passed, what it saw, how long it took."""

    name: str
    passed: bool
    detail: str
    seconds: float


@dataclass
class Report:
    """Every step, in order."""

    deb: str
    upgrade_to: str | None
    steps: list[Step] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return bool(self.steps) and all(step.passed for step in self.steps)


class CheckFailed(Exception):
    """A step failed and the next ones cannot run."""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("deb", type=Path)
    parser.add_argument("--upgrade-to", type=Path, default=None, help="a newer build of the package to upgrade to")
    parser.add_argument("--json", action="store_true", help="also print one JSON object at the end")
    parser.add_argument("--keep", action="store_true", help="keep the Debian tree (its path is printed)")
    # Set by the script itself when it runs again in its private mount namespace.
    parser.add_argument("--inside", type=Path, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    for deb in (args.deb, args.upgrade_to):
        if deb is not None and not deb.is_file():
            parser.error(f"no such package: {deb}")
    if os.geteuid() != 0:
        print("check_deb: needs root (debootstrap, chroot and mounts)", file=sys.stderr)
        return 2
    if shutil.which("debootstrap") is None:
        print("check_deb: debootstrap not found: apt-get install debootstrap", file=sys.stderr)
        return 2
    if args.inside is not None:
        # unshare runs this in place of itself: the parent is the outer run, in the namespace to leave alone.
        if os.readlink("/proc/self/ns/mnt") == os.readlink(f"/proc/{os.getppid()}/ns/mnt"):
            print("check_deb: --inside outside a private mount namespace: refusing to mount anything", file=sys.stderr)
            return 2
        return _inside(args, args.inside)
    return _outside(args, argv if argv is not None else sys.argv[1:])


def _outside(args: argparse.Namespace, argv: list[str]) -> int:
    """Run the check in a private mount namespace; remove the tree after it, once nothing can be mounted in it."""
    root = Path(tempfile.mkdtemp(prefix="bulwark-debian12-", dir=os.environ.get("BULWARK_CHECK_DIR")))
    # It becomes the tree's "/": its users must be able to enter it (mkdtemp makes it 0700).
    root.chmod(0o755)
    try:
        command = ["unshare", "--mount", "--propagation", "private", sys.executable, str(Path(__file__).resolve()),
                   *argv, "--inside", str(root)]
        return subprocess.run(command, check=False).returncode
    finally:
        if args.keep:
            print(f"check_deb: the Debian tree is kept in {root}")
        elif _mounted_under(root):
            print(f"check_deb: {root} still has mounts; not removed", file=sys.stderr)
        else:
            shutil.rmtree(root, ignore_errors=True)


def _mounted_under(root: Path) -> bool:
    prefix = str(root.resolve())
    with open("/proc/self/mountinfo", encoding="utf-8") as handle:
        return any(line.split()[4].startswith(prefix) for line in handle)


def _inside(args: argparse.Namespace, root: Path) -> int:
    report = Report(str(args.deb), str(args.upgrade_to) if args.upgrade_to else None)
    try:
        _bootstrap(root, report)
        _install(root, args.deb, report, "install")
        _installed_files(root, report)
        _self_test(root, report)
        before = _trader_data(root, report)
        if args.upgrade_to is not None:
            _install(root, args.upgrade_to, report, "upgrade")
            _same_data(root, before, report, "after the upgrade")
        _remove(root, before, report)
    except CheckFailed:
        pass
    except (OSError, subprocess.SubprocessError) as exc:
        # A command that could not run or ran out of time: a failed step, in the report like the others.
        report.steps.append(Step("check_deb", False, f"{type(exc).__name__}: {exc}", 0.0))
        print(f"FAIL  check_deb: {type(exc).__name__}: {exc}", flush=True)
    finally:
        for mount in ("dev", "proc"):
            subprocess.run(["umount", "--recursive", "--lazy", str(root / mount)], capture_output=True, check=False)
    passed = report.passed
    print(f"check_deb: {'PASSED' if passed else 'FAILED'}: {sum(s.passed for s in report.steps)} of "
          f"{len(report.steps)} steps", flush=True)
    if args.json:
        print(json.dumps({**asdict(report), "passed": passed}))
    return 0 if passed else 1


def _step(report: Report, name: str, passed: bool, detail: str, started: float) -> None:
    step = Step(name, passed, detail, round(time.monotonic() - started, 1))
    report.steps.append(step)
    print(f"{'ok  ' if passed else 'FAIL'}  {name} ({step.seconds} s): {detail}", flush=True)
    if not passed:
        raise CheckFailed(name)


def _run(command: list[str], *, stdin: str | None = None, timeout: float = 900) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, input=stdin, capture_output=True, text=True, timeout=timeout, check=False)


def _chroot(root: Path, script: str, *, user: str | None = None, stdin: str | None = None,
            timeout: float = 900) -> subprocess.CompletedProcess[str]:
    """``script`` in the Debian tree, as root or as ``user`` (a login shell: its own HOME and PATH)."""
    env = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8",
           "DEBIAN_FRONTEND": "noninteractive", "HOME": "/root"}
    if user is None:
        command = ["chroot", str(root), "/bin/sh", "-c", script]
    else:
        command = ["chroot", str(root), "/bin/su", "--login", user, "--shell", "/bin/sh", "--command", script]
    return subprocess.run(command, input=stdin, capture_output=True, text=True, timeout=timeout, env=env, check=False)


def _tail(result: subprocess.CompletedProcess[str], lines: int = 15) -> str:
    text = (result.stdout + result.stderr).strip().splitlines()
    return " | ".join(text[-lines:])


def _bootstrap(root: Path, report: Report) -> None:
    started = time.monotonic()
    result = _run(["debootstrap", "--variant=minbase", SUITE, str(root), MIRROR])
    if result.returncode != 0:
        _step(report, "minimal Debian 12", False, f"debootstrap failed: {_tail(result)}", started)
    shutil.copy("/etc/resolv.conf", root / "etc" / "resolv.conf")
    for mount in (["mount", "-t", "proc", "proc", str(root / "proc")], ["mount", "--rbind", "/dev", str(root / "dev")]):
        done = _run(mount)
        if done.returncode != 0:
            _step(report, "minimal Debian 12", False, f"{' '.join(mount)} failed: {_tail(done)}", started)
    packages = _packages(root)
    added = _chroot(root, f"useradd --create-home --shell /bin/sh {USER}")
    _step(report, "minimal Debian 12", added.returncode == 0,
          f"debootstrap --variant=minbase {SUITE}: {len(packages)} packages; user {USER} "
          f"{'added' if added.returncode == 0 else 'not added: ' + _tail(added)}", started)


def _packages(root: Path) -> set[str]:
    listed = _chroot(root, "dpkg-query --show --showformat='${Package}\\n'")
    return set(listed.stdout.split())


def _install(root: Path, deb: Path, report: Report, what: str) -> None:
    started = time.monotonic()
    before = _packages(root)
    expected = _run(["dpkg-deb", "--field", str(deb), "Version"]).stdout.strip()
    staged = root / "tmp" / deb.name
    shutil.copy(deb, staged)
    result = _chroot(root, "apt-get update -qq && apt-get install --yes --no-install-recommends "
                     + shlex.quote(f"/tmp/{deb.name}"))
    staged.unlink(missing_ok=True)
    added = sorted(_packages(root) - before)
    version = _chroot(root, "dpkg-query --show --showformat='${Version}' bulwark").stdout.strip()
    # apt says "already the newest" and succeeds when nothing changes: the installed version must be the package's.
    _step(report, f"apt-get {what}", result.returncode == 0 and version == expected != "",
          f"bulwark {version}; {len(added)} packages added: {', '.join(added)}" if result.returncode == 0
          else _tail(result), started)


def _installed_files(root: Path, report: Report) -> None:
    started = time.monotonic()
    # Every ELF file in the application, with the library path its executable sets (PyInstaller: _internal).
    script = ("cd /opt/bulwark && find . -type f \\( -name '*.so*' -o -name bulwark \\) -print | while read -r f; do "
              "LD_LIBRARY_PATH=/opt/bulwark/_internal ldd \"$f\" 2>/dev/null | sed -n \"s|^[[:space:]]*\\(.*not found\\)|$f: \\1|p\"; "
              "done")
    missing = _chroot(root, script)
    unresolved = [line for line in missing.stdout.splitlines() if line.strip()]
    counted = _chroot(root, "find /opt/bulwark -type f \\( -name '*.so*' -o -name bulwark \\) | wc -l").stdout.strip()
    if missing.returncode != 0 or not counted.isdigit() or int(counted) == 0:
        unresolved.append(f"the libraries could not be listed ({counted or 'none'} binaries; {_tail(missing, 4)})")
    launcher = _chroot(root, "command -v bulwark")
    desktop = (root / "usr/share/applications/bulwark.desktop").read_text(encoding="utf-8") \
        if (root / "usr/share/applications/bulwark.desktop").is_file() else ""
    icon = (root / "usr/share/icons/hicolor/256x256/apps/bulwark.png").is_file()
    problems = [f"unresolved: {'; '.join(unresolved[:10])}"] if unresolved else []
    if launcher.stdout.strip() != "/usr/bin/bulwark":
        problems.append(f"no bulwark on the PATH ({_tail(launcher)})")
    if "\nExec=bulwark" not in desktop or "\nIcon=bulwark" not in desktop or not icon:
        problems.append("the desktop entry or its icon is missing")
    _step(report, "installed files", not problems,
          f"{counted} binaries in /opt/bulwark, every library resolved; /usr/bin/bulwark; desktop entry and icon"
          if not problems else "; ".join(problems), started)


def _self_test(root: Path, report: Report) -> None:
    started = time.monotonic()
    version = _chroot(root, "bulwark --version", user=USER, timeout=120)
    _step(report, "bulwark --version", version.returncode == 0 and version.stdout.startswith("Bulwark "),
          version.stdout.strip() or _tail(version), started)
    started = time.monotonic()
    tested = _chroot(root, "QT_QPA_PLATFORM=offscreen bulwark --self-test", user=USER, timeout=300)
    summary = [line for line in tested.stdout.splitlines() if line.startswith("self-test ")]
    failed = [line for line in tested.stdout.splitlines() if line.startswith("FAIL")]
    _step(report, "bulwark --self-test", tested.returncode == 0,
          (summary[-1] if summary else "no summary") + ("; " + "; ".join(failed) if failed else "")
          + ("" if tested.returncode == 0 else f" (exit {tested.returncode}: {_tail(tested, 8)})"), started)


def _as_trader(root: Path, command: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    """A bulwark command as the trader, the keyring file unlocked from a descriptor (no terminal here)."""
    unlock = f"printf '%s\\n' '{PASSPHRASE}' > ~/.unlock && BULWARK_KEYRING_PASSPHRASE_FD=3 QT_QPA_PLATFORM=offscreen"
    return _chroot(root, f"{unlock} {command} 3< ~/.unlock; status=$?; rm -f ~/.unlock; exit $status",
                   user=USER, stdin=stdin, timeout=120)


def _trader_data(root: Path, report: Report) -> dict[str, str]:
    """A real data folder: an encrypted keyring file with credentials, an administrator (a chain); what it holds."""
    started = time.monotonic()
    made = _chroot(root, "bulwark keyring use-file --passphrase-stdin --no-copy", user=USER,
                   stdin=f"{PASSPHRASE}\n", timeout=120)
    if made.returncode != 0:
        _step(report, "the trader's data", False, f"keyring use-file failed: {_tail(made)}", started)
    for command, stdin in (("bulwark credentials set --stdin", API_KEY_AND_SECRET),
                           ("bulwark operator add asha --role admin --password-stdin", f"{ADMIN_PASSWORD}\n")):
        done = _as_trader(root, command, stdin=stdin)
        if done.returncode != 0:
            _step(report, "the trader's data", False, f"{command} failed: {_tail(done)}", started)
    verified, said = _verified(root)
    stored = _credentials(root)
    digests = _digests(root)
    _step(report, "the trader's data", verified and "keyring.cfg" in digests and "API key: stored" in stored,
          f"{DATA}: {len(digests)} files ({', '.join(sorted(digests))}); audit verify: {said}; credentials: {stored}",
          started)
    digests["audit verify"] = said
    digests["credentials"] = stored
    return digests


def _credentials(root: Path) -> str:
    """What ``credentials status`` reads from the keyring (never the values)."""
    result = _as_trader(root, "bulwark credentials status")
    lines = [line for line in result.stdout.splitlines() if line.startswith(("keyring backend", "Breeze API"))]
    return "; ".join(lines) if result.returncode == 0 else f"unreadable (exit {result.returncode}): {_tail(result, 4)}"


def _verified(root: Path) -> tuple[bool, str]:
    """Whether ``audit verify`` passed, and its verdict lines (else its output)."""
    result = _as_trader(root, "bulwark audit verify")
    lines = [line for line in result.stdout.splitlines() if line.startswith(("keyed", "not keyed", "verified"))]
    if result.returncode != 0 or not any(line.startswith("verified") for line in lines):
        return False, f"did not verify (exit {result.returncode}): {_tail(result, 6)}"
    return True, "; ".join(lines)


def _digests(root: Path) -> dict[str, str]:
    folder = root / DATA.lstrip("/")
    found = {}
    for path in sorted(folder.rglob("*")):
        # The log is the one file every command appends to.
        if path.is_file() and "logs" not in path.relative_to(folder).parts:
            found[str(path.relative_to(folder))] = hashlib.sha256(path.read_bytes()).hexdigest()
    return found


def _same_data(root: Path, before: dict[str, str], report: Report, when: str) -> None:
    started = time.monotonic()
    now = _digests(root)
    now["audit verify"] = _verified(root)[1]
    now["credentials"] = _credentials(root)
    changed = sorted(name for name in before.keys() | now.keys() if before.get(name) != now.get(name))
    _step(report, f"data {when}", not changed,
          f"{len(before) - 2} files byte for byte the same; audit verify: {now['audit verify']}; credentials: "
          f"{now['credentials']}" if not changed
          else f"changed: {', '.join(changed)} (audit verify now: {now['audit verify']}; credentials: {now['credentials']})",
          started)


def _remove(root: Path, before: dict[str, str], report: Report) -> None:
    started = time.monotonic()
    # No conffiles: once removed, apt forgets the package, so the purge is dpkg's.
    removed = _chroot(root, "apt-get remove --yes bulwark && dpkg --purge bulwark")
    left = [path for path in ("opt/bulwark", "usr/bin/bulwark", "usr/share/applications/bulwark.desktop")
            if (root / path).exists()]
    _step(report, "apt-get remove and purge", removed.returncode == 0 and not left,
          "the application, launcher and desktop entry are gone" if not left and removed.returncode == 0
          else f"left behind: {left} ({_tail(removed)})", started)
    started = time.monotonic()
    now = _digests(root)
    changed = sorted(name for name in before.keys() - {"audit verify", "credentials"} if before.get(name) != now.get(name))
    _step(report, "data after removal", not changed,
          f"{len(now)} files in {DATA} byte for byte the same" if not changed else f"changed or gone: {changed}",
          started)


if __name__ == "__main__":
    raise SystemExit(main())
