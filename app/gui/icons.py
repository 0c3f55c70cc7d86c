"""The application icon (``resources/icons``: an SVG plus PNG renderings for small sizes)."""

from __future__ import annotations

from functools import cache
from importlib import resources
from pathlib import Path

from PySide6.QtGui import QIcon

ICON_NAME = "lotlip-search"
PNG_SIZES = (16, 24, 32, 48, 64, 128, 256, 512)


def icons_dir() -> Path:
    """The folder holding the icon files."""
    return Path(str(resources.files("resources"))) / "icons"


@cache
def app_icon() -> QIcon:
    """The application icon at every size (theme icon first, so an installed one wins)."""
    folder = icons_dir()
    icon = QIcon()
    for size in PNG_SIZES:
        png = folder / f"{ICON_NAME}-{size}.png"
        if png.is_file():
            icon.addFile(str(png))
    svg = folder / f"{ICON_NAME}.svg"
    if icon.isNull() and svg.is_file():
        icon.addFile(str(svg))
    return QIcon.fromTheme(ICON_NAME, icon)
