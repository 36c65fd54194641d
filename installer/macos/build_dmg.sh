#!/bin/sh
# macOS: the .app (PyInstaller's BUNDLE in installer/bulwark.spec) and a .dmg to drag it to Applications.
#
#   sh installer/macos/build_dmg.sh          on a Mac with the virtualenv from `pip install -e '.[installer]'`
#
# Run by .github/workflows/macos.yml; it cannot run on the Linux machines the project is developed on.
# Output in build/installer: dist/Bulwark.app and Bulwark-VERSION.dmg. The .app is not signed or notarised
# (that needs an Apple Developer ID): Gatekeeper asks the trader to open it with right-click > Open once.
# The trader's data folder (~/Library/Application Support/Bulwark) and Keychain entries are the user's:
# replacing or deleting the .app never touches them.
set -eu
root=$(CDPATH='' cd -- "$(dirname -- "$0")/../.." && pwd)
cd "$root"
python=${PYTHON:-$root/.venv/bin/python}
out=${BULWARK_BUILD_DIR:-$root/build/installer}
version=$("$python" -c 'import app; print(app.__version__)')
mkdir -p "$out"
printf '{"commit": "%s", "built": "%s", "platform": "macos-%s-%s"}\n' "$(git rev-parse --short=12 HEAD)" \
    "$(date -u +%Y-%m-%d)" "$(sw_vers -productVersion)" "$(uname -m)" >"$out/build-info.json"
"$python" installer/icons.py "$out/icons"
BULWARK_BUILD_INFO="$out/build-info.json" BULWARK_ICON="$out/icons/bulwark.icns" BULWARK_VERSION="$version" \
    "$python" -m PyInstaller --noconfirm --distpath "$out/dist" --workpath "$out/work" installer/bulwark.spec
app="$out/dist/Bulwark.app"
[ -x "$app/Contents/MacOS/bulwark" ] || { echo "build_dmg: no $app/Contents/MacOS/bulwark" >&2; exit 1; }
stage="$out/dmg"
rm -rf "$stage"
mkdir -p "$stage"
cp -R "$app" "$stage/"
ln -s /Applications "$stage/Applications"
dmg="$out/Bulwark-$version.dmg"
rm -f "$dmg"
hdiutil create -volname "Bulwark $version" -srcfolder "$stage" -ov -format UDZO "$dmg"
rm -rf "$stage"
echo "bundle: $(du -sk "$app" | cut -f1) KB in $app"
echo "dmg:    $(du -k "$dmg" | cut -f1) KB, $dmg"
