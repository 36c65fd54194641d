#!/bin/sh
# Build Bulwark for Linux: the one-folder application (PyInstaller) and the .deb around it, then measure them.
#
#   sh installer/build.sh                     build both, print the bundle size and the installed cold start
#   sh installer/build.sh --deb-only          repackage the last bundle as a .deb (no PyInstaller run)
#   sh installer/build.sh --deb-version V     the .deb's version (default: app.__version__); e.g. an upgrade test
#   sh installer/build.sh --no-measure        skip the start-up measurement
#   sh installer/build.sh --check-debian      also install the .deb on a minimal Debian 12 and run its self-test there
#                                             (root, debootstrap, the Debian mirror; installer/check_deb.py)
#
# Needs the virtualenv from `sh installer/setup.sh --installer` (PyInstaller) and dpkg-deb. Output, in
# $BULWARK_BUILD_DIR (default build/installer): dist/bulwark/ (the application), bulwark_V_ARCH.deb, icons/,
# and bench.json (the figures). The .deb installs the application in /opt/bulwark, the launcher
# /usr/bin/bulwark, a desktop entry and the icon; its Depends are the system libraries Qt needs.
# Upgrading or removing it never touches a trader's data folder or keyring: they live in the user's home
# (~/.local/share/Bulwark, the desktop keyring), which no package owns.
set -eu

say() { printf 'build: %s\n' "$*" >&2; }
die() { printf 'build: error: %s\n' "$*" >&2; exit 1; }

root=$(CDPATH='' cd -- "$(dirname -- "$0")/.." && pwd)
cd "$root"
python=${PYTHON:-$root/.venv/bin/python}
out=${BULWARK_BUILD_DIR:-$root/build/installer}

bundle=1
measure=1
check_debian=0
deb_version=
while [ $# -gt 0 ]; do
    case $1 in
        --deb-only) bundle=0 ;;
        --no-measure) measure=0 ;;
        --deb-version) [ $# -ge 2 ] || die "--deb-version needs a version"; deb_version=$2; shift ;;
        --check-debian) check_debian=1 ;;
        -h | --help) sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) die "unknown option: $1 (see --help)" ;;
    esac
    shift
done

[ -x "$python" ] || die "no virtualenv at $root/.venv: run sh installer/setup.sh --installer first"
"$python" -c 'import PyInstaller' 2>/dev/null || die "PyInstaller is not installed: run sh installer/setup.sh --installer"
command -v dpkg-deb >/dev/null 2>&1 || die "dpkg-deb not found: build the .deb on Debian or Ubuntu"

version=$("$python" -c 'import app; print(app.__version__)')
deb_version=${deb_version:-$version}
case $deb_version in
    [0-9]*) ;;
    *) die "a Debian version starts with a digit: $deb_version" ;;
esac
arch=$(dpkg --print-architecture)
mkdir -p "$out"

# --- the application ------------------------------------------------------------------------------
if [ "$bundle" -eq 1 ]; then
    commit=$(git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
    if [ -n "$(git status --porcelain --untracked-files=no 2>/dev/null)" ]; then commit="$commit+changes"; fi
    . /etc/os-release
    printf '{"commit": "%s", "built": "%s", "platform": "%s-%s-%s"}\n' \
        "$commit" "$(date -u +%Y-%m-%d)" "$ID" "${VERSION_ID:-unknown}" "$(uname -m)" >"$out/build-info.json"
    "$python" installer/icons.py "$out/icons" >&2
    say "PyInstaller: $out/dist/bulwark"
    started=$(date +%s)
    BULWARK_BUILD_INFO="$out/build-info.json" BULWARK_ICON="$out/icons/hicolor/256x256/apps/bulwark.png" \
        "$python" -m PyInstaller --noconfirm --log-level WARN --distpath "$out/dist" --workpath "$out/work" \
        installer/bulwark.spec >&2
    say "PyInstaller took $(( $(date +%s) - started )) s"
fi
app_dir="$out/dist/bulwark"
[ -x "$app_dir/bulwark" ] || die "no application in $app_dir: build without --deb-only first"
[ -f "$out/icons/hicolor/256x256/apps/bulwark.png" ] || die "no icons in $out/icons: build without --deb-only first"
if [ "$check_debian" -eq 1 ] && [ "$(id -u)" -ne 0 ]; then
    die "--check-debian needs root (debootstrap, chroot and mounts)"
fi

# --- the .deb -------------------------------------------------------------------------------------
stage="$out/deb/bulwark_${deb_version}_${arch}"
rm -rf "$stage"
mkdir -p "$stage/DEBIAN" "$stage/opt" "$stage/usr/bin" "$stage/usr/share/applications" "$stage/usr/share/doc/bulwark"
cp -a "$app_dir" "$stage/opt/bulwark"
# A script, not a link: the application finds its _internal folder beside its own executable.
cat >"$stage/usr/bin/bulwark" <<'EOF'
#!/bin/sh
exec /opt/bulwark/bulwark "$@"
EOF
chmod 0755 "$stage/usr/bin/bulwark"
for png in "$out"/icons/hicolor/*/apps/bulwark.png; do
    size_dir=$(basename "$(dirname "$(dirname "$png")")")
    mkdir -p "$stage/usr/share/icons/hicolor/$size_dir/apps"
    cp "$png" "$stage/usr/share/icons/hicolor/$size_dir/apps/bulwark.png"
done
mkdir -p "$stage/usr/share/icons/hicolor/scalable/apps"
cp resources/icons/bulwark.svg "$stage/usr/share/icons/hicolor/scalable/apps/bulwark.svg"
cp installer/linux/bulwark.desktop "$stage/usr/share/applications/bulwark.desktop"
cp installer/linux/copyright "$stage/usr/share/doc/bulwark/copyright"
# dpkg-deb keeps modes: files readable by all, directories and executables 0755, whatever the umask here.
find "$stage" -type d -exec chmod 0755 {} +
find "$stage" -type f -exec chmod u+rw,go+r,go-w {} +
installed_kb=$(du -sk --exclude=DEBIAN "$stage" | cut -f1)
# The newest glibc any binary of the application asks for: the bundle runs where libc6 is at least that.
glibc=$(find "$stage/opt/bulwark" -type f \( -name '*.so*' -o -name bulwark \) -exec objdump -T {} + 2>/dev/null |
    grep -o 'GLIBC_[0-9][0-9.]*' | sed 's/GLIBC_//' | sort -u -V | tail -n 1)
[ -n "$glibc" ] || die "no glibc version found in the application's binaries (objdump -T; binutils)"
sed -e "s/@VERSION@/$deb_version/" -e "s/@ARCH@/$arch/" -e "s/@INSTALLED_SIZE@/$installed_kb/" -e "s/@GLIBC@/$glibc/" \
    installer/linux/control.in >"$stage/DEBIAN/control"
deb="$out/bulwark_${deb_version}_${arch}.deb"
say "dpkg-deb: $deb"
dpkg-deb --root-owner-group -Zzstd --build "$stage" "$deb" >&2
rm -rf "$stage"

# --- the figures ----------------------------------------------------------------------------------
set -- --bundle "$app_dir" --deb "$deb" --json
if [ "$measure" -eq 0 ]; then set -- "$@" --starts 0; fi
# Exit 1 is a missed target (printed below); anything else is a benchmark that did not run.
bench_status=0
"$python" -m tests.bench.installer "$@" >"$out/bench.json" || bench_status=$?
[ "$bench_status" -le 1 ] || die "the measurement failed (exit $bench_status): python -m tests.bench.installer $*"
"$python" - "$out/bench.json" <<'EOF'
import json, sys
figures = json.load(open(sys.argv[1]))
print(f"bundle:      {figures['bundle_mb']} MB in {figures['bundle']} (target <= {figures['targets']['bundle_mb_at_most']} MB)")
print(f".deb:        {figures['deb_mb']} MB, {figures['deb']}")
start = figures.get("installed_first_paint_s")
if start:
    print(f"cold start:  first paint median {start['median']} s, p99 {start['p99']} s over {figures['starts']} starts "
          f"of the installed layout, page cache {figures['page_cache']} "
          f"(target median <= {figures['targets']['first_paint_median_s_at_most']} s)")
for miss in figures["misses"]:
    print(f"MISSED: {miss}")
EOF

if [ "$check_debian" -eq 1 ]; then
    say "installing it on a minimal Debian 12: installer/check_deb.py (log in $out/check-debian.txt)"
    if "$python" installer/check_deb.py "$deb" >"$out/check-debian.txt" 2>&1; then
        added=$(sed -n 's/^ok  .*apt-get install ([^)]*): bulwark [^;]*; \([0-9]*\) packages added.*/\1/p' "$out/check-debian.txt")
        echo "Debian 12:   installs on a minimal Debian 12 with only its Depends ($added packages with bulwark); every library resolved; the installed self-test passed"
    else
        echo "MISSED: the .deb did not install and pass on a minimal Debian 12: $(grep '^FAIL' "$out/check-debian.txt" | head -n 1)"
        exit 1
    fi
fi
