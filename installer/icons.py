"""Render the application icon (resources/icons/bulwark.svg) for the installers.

    python installer/icons.py OUT_DIR

writes ``OUT_DIR/hicolor/<N>x<N>/apps/bulwark.png`` for the freedesktop sizes (the .deb's icon theme
folders), ``OUT_DIR/bulwark.ico`` (Windows: the executable and Inno Setup) and ``OUT_DIR/bulwark.icns``
(macOS: the .app). Rendered with Qt, which the desk ships anyway: no image tool to install.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

SOURCE = Path(__file__).resolve().parents[1] / "resources" / "icons" / "bulwark.svg"
PNG_SIZES = (16, 24, 32, 48, 64, 128, 256, 512)
ICO_SIZES = (16, 24, 32, 48, 64, 128, 256)


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print(__doc__, file=sys.stderr)
        return 2
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtCore import Qt
    from PySide6.QtGui import QGuiApplication, QImage, QImageWriter, QPainter
    from PySide6.QtSvg import QSvgRenderer

    out = Path(argv[0])
    app = QGuiApplication.instance() or QGuiApplication([])
    renderer = QSvgRenderer(str(SOURCE))
    if not renderer.isValid():
        print(f"icons: {SOURCE} is not a valid SVG", file=sys.stderr)
        return 1

    def render(size: int) -> QImage:
        image = QImage(size, size, QImage.Format.Format_ARGB32)
        image.fill(Qt.GlobalColor.transparent)
        painter = QPainter(image)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        renderer.render(painter)
        painter.end()
        return image

    for size in PNG_SIZES:
        path = out / "hicolor" / f"{size}x{size}" / "apps" / "bulwark.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        if not render(size).save(str(path)):  # the format from the suffix
            print(f"icons: could not write {path}", file=sys.stderr)
            return 1
    # Qt's ico and icns writers take one image; each holds the largest, and Windows and macOS scale it down.
    for name, fmt, size in (("bulwark.ico", b"ico", max(ICO_SIZES)), ("bulwark.icns", b"icns", 512)):
        writer = QImageWriter(str(out / name), fmt)
        if not writer.write(render(size)):
            print(f"icons: could not write {out / name}: {writer.errorString()}", file=sys.stderr)
            return 1
    del app
    print(f"icons: written to {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
