#!/bin/sh
# Set up Bulwark from a source checkout, in ./.venv.
#
#   sh installer/setup.sh            the application
#   sh installer/setup.sh --test     the application and the test tools (pytest, import-linter, ...)
#   sh installer/setup.sh --installer  the application and PyInstaller, to build the installers (installer/build.sh)
#   sh installer/setup.sh --force    reinstall the Python packages even if they look up to date
#
# Steps, each skipped when already done (running it again is cheap and changes nothing):
#   1. Debian/Ubuntu packages: python3-venv (to create the virtualenv) and the system libraries
#      Qt needs even offscreen (with --test also xvfb, the X server the hotkey tests type into, and what the
#      installer test builds and checks the .deb with; with --installer binutils, which PyInstaller needs). Checked with dpkg -s; installed with apt-get when missing, as
#      root or through sudo; otherwise the exact apt-get command is printed and setup stops.
#   2. The virtualenv .venv (created with $PYTHON, default python3; Python 3.11 to 3.13).
#   3. pip install -e . (or -e '.[test]'), recorded in .venv/.bulwark-setup so a rerun with an
#      unchanged pyproject.toml skips it.
set -eu
# Progress goes to stderr, so `sh installer/setup.sh && ... --json > report.json` keeps the JSON clean.
exec 1>&2

QT_PACKAGES="libegl1 libgl1 libxkbcommon0 libfontconfig1 libglib2.0-0 libdbus-1-3"
# --installer: PyInstaller reads binaries with objdump, and the build strips them (binutils).
INSTALLER_PACKAGES="binutils"
# --test: the OS-wide kill hotkey is tested by typing into a real X server; the installer tests validate the
# desktop entry, build the .deb and install it on a minimal Debian they make with debootstrap.
TEST_PACKAGES="xvfb $INSTALLER_PACKAGES debootstrap desktop-file-utils"

say() { printf 'setup: %s\n' "$*"; }
die() { printf 'setup: error: %s\n' "$*" >&2; exit 1; }

usage() {
    sed -n '2,7p' "$0" | sed 's/^# \{0,1\}//'
}

mode=app
force=0
for arg in "$@"; do
    case $arg in
        --test) mode=test ;;
        --installer) mode=installer ;;
        --force) force=1 ;;
        -h | --help) usage; exit 0 ;;
        *) usage >&2; die "unknown option: $arg" ;;
    esac
done

# Work from the repository root, wherever we were started from.
root=$(CDPATH='' cd -- "$(dirname -- "$0")/.." && pwd)
cd "$root"
[ -f pyproject.toml ] && [ -d app ] || die "run this from a Bulwark checkout (no pyproject.toml/app in $root)"

# --- Python -------------------------------------------------------------------------------------
PYTHON=${PYTHON:-python3}
command -v "$PYTHON" >/dev/null 2>&1 || die "$PYTHON not found: Bulwark needs Python 3.11 to 3.13 (set PYTHON=/path/to/python3.x)"
if ! "$PYTHON" -c 'import sys; sys.exit(not ((3, 11) <= sys.version_info[:2] < (3, 14)))'; then
    die "$PYTHON is Python $("$PYTHON" -c 'import platform; print(platform.python_version())'); Bulwark needs 3.11 to 3.13 (set PYTHON=/path/to/python3.x)"
fi
pyver=$("$PYTHON" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
pyexe=$("$PYTHON" -c 'import os, sys; print(os.path.realpath(sys.executable))')
say "using Python $pyver ($pyexe) in $root"

# --- 1. system packages ---------------------------------------------------------------------------
missing=""
need_venv=0
if [ ! -x .venv/bin/python ] && ! "$PYTHON" -c 'import ensurepip, venv' >/dev/null 2>&1; then
    need_venv=1
fi

if command -v dpkg >/dev/null 2>&1; then
    venv_pkg=""
    case $pyexe in
        /usr/bin/python3*)
            # the distribution's Python: its venv module comes in a package
            if [ "$(/usr/bin/python3 -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null)" = "$pyver" ]; then
                venv_pkg=python3-venv
            else
                venv_pkg=python$pyver-venv
            fi
            ;;
    esac
    if [ -n "$venv_pkg" ] && [ ! -x .venv/bin/python ]; then
        if [ "$need_venv" = 1 ] || ! dpkg -s "$venv_pkg" >/dev/null 2>&1; then
            missing="$venv_pkg"
        fi
    elif [ "$need_venv" = 1 ]; then
        die "$PYTHON has no venv/ensurepip module and is not the system Python; reinstall it with venv support or set PYTHON to one that has it"
    fi
    packages=$QT_PACKAGES
    [ "$mode" = test ] && packages="$packages $TEST_PACKAGES"
    [ "$mode" = installer ] && packages="$packages $INSTALLER_PACKAGES"
    for pkg in $packages; do
        dpkg -s "$pkg" >/dev/null 2>&1 || missing="${missing:+$missing }$pkg"
    done
else
    [ "$need_venv" = 1 ] && die "$PYTHON cannot create virtualenvs (no venv/ensurepip module); install your distribution's venv package"
    say "not a Debian/Ubuntu system: make sure Qt's libraries (EGL, OpenGL, xkbcommon, fontconfig, GLib, D-Bus) are installed"
fi

if [ -n "$missing" ]; then
    install_cmd="apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $missing"
    if ! command -v apt-get >/dev/null 2>&1; then
        die "missing system packages: $missing (and no apt-get here to install them)"
    fi
    if [ "$(id -u)" = 0 ]; then
        sudo=""
    elif command -v sudo >/dev/null 2>&1; then
        sudo="sudo"
    else
        printf 'setup: missing system packages: %s\n' "$missing" >&2
        printf 'setup: install them as root, then run this script again:\n\n    %s\n\n' "$install_cmd" >&2
        exit 1
    fi
    say "installing system packages: $missing"
    say "running: ${sudo:+sudo }$install_cmd"
    $sudo apt-get update
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $missing
else
    say "system packages: all present"
fi

# --- 2. virtualenv --------------------------------------------------------------------------------
if [ -x .venv/bin/python ]; then
    say "virtualenv: .venv exists ($(.venv/bin/python -c 'import platform; print("Python " + platform.python_version())'))"
else
    say "creating virtualenv: $PYTHON -m venv .venv"
    "$PYTHON" -m venv .venv
fi
if ! .venv/bin/python -m pip --version >/dev/null 2>&1; then
    say "virtualenv has no pip: running .venv/bin/python -m ensurepip"
    .venv/bin/python -m ensurepip --upgrade
fi

# --- 3. Python packages ---------------------------------------------------------------------------
case $mode in
    test) spec='.[test]' ;;
    installer) spec='.[installer]' ;;
    *) spec='.' ;;
esac
stamp=.venv/.bulwark-setup
digest=$(.venv/bin/python -c 'import hashlib, sys; print(hashlib.sha256(open(sys.argv[1], "rb").read()).hexdigest())' pyproject.toml)

up_to_date=0
if [ "$force" = 0 ] && [ -f "$stamp" ]; then
    read -r done_digest done_mode <"$stamp" || true
    if [ "${done_digest:-}" = "$digest" ] && { [ "${done_mode:-}" = "$mode" ] || [ "${done_mode:-}" = test ]; }; then
        # ... and the editable install still points at this checkout
        if (cd / && "$root/.venv/bin/python" -c 'import sys, app; sys.exit(not app.__file__.startswith(sys.argv[1]))' "$root/app/") >/dev/null 2>&1; then
            up_to_date=1
        fi
    fi
fi

if [ "$up_to_date" = 1 ]; then
    say "python packages: up to date for this pyproject.toml ($spec); --force reinstalls"
else
    say "running: .venv/bin/python -m pip install -e '$spec'"
    .venv/bin/python -m pip install --disable-pip-version-check -e "$spec"
    printf '%s %s\n' "$digest" "$mode" >"$stamp"
fi

say "done. Open the desk on the paper broker with its demo flow: .venv/bin/python main.py --demo"
[ "$mode" = test ] && say "run the tests: .venv/bin/python -m pytest"
[ "$mode" = installer ] && say "build the application and the .deb: sh installer/build.sh"
exit 0
