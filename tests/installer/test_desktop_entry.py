"""The menu entry the .deb installs, checked by freedesktop's own validator, and its icon rendered from the SVG."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from PySide6.QtGui import QImage

ROOT = Path(__file__).resolve().parents[2]


def test_the_desktop_entry_is_valid_and_starts_bulwark_with_its_icon() -> None:
    entry = ROOT / "installer" / "linux" / "bulwark.desktop"
    validator = shutil.which("desktop-file-validate")
    assert validator is not None, "desktop-file-validate (Debian desktop-file-utils) is missing: sh installer/setup.sh --test"
    result = subprocess.run([validator, str(entry)], capture_output=True, text=True, check=False)
    assert result.returncode == 0 and result.stdout == "", result.stdout + result.stderr
    lines = entry.read_text(encoding="utf-8").splitlines()
    assert "Exec=bulwark" in lines and "Icon=bulwark" in lines and "Terminal=false" in lines


def test_the_icons_render_at_every_size_with_the_red_disc(tmp_path: Path) -> None:
    result = subprocess.run([sys.executable, str(ROOT / "installer" / "icons.py"), str(tmp_path)], capture_output=True,
                            text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    for size in (16, 48, 256, 512):
        image = QImage(str(tmp_path / "hicolor" / f"{size}x{size}" / "apps" / "bulwark.png"))
        assert (image.width(), image.height()) == (size, size)
        # Transparent corners (the rounded tile), the stop disc's red around the white square.
        assert image.pixelColor(0, 0).alpha() == 0
        centre, ring = image.pixelColor(size // 2, size // 2), image.pixelColor(size // 2, size * 3 // 10)
        assert (centre.red(), centre.green(), centre.blue()) == (255, 255, 255)
        assert ring.red() > 180 and ring.green() < 80 and ring.blue() < 80, ring.name()
    assert (tmp_path / "bulwark.ico").stat().st_size > 0 and (tmp_path / "bulwark.icns").stat().st_size > 0
