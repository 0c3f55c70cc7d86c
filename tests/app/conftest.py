"""Shared fixtures for the app/library tests: real image files drawn with Pillow."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
from PIL import Image, ImageDraw

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # let `pytest` (not only `python -m pytest`) import `app`
    sys.path.insert(0, str(ROOT))

PIL_FORMATS = {"jpeg": "JPEG", "png": "PNG", "gif": "GIF", "bmp": "BMP", "webp": "WEBP",
               "tiff": "TIFF"}  # fmt: skip


def draw_image(
    path: str | os.PathLike[str] | bytes,
    fmt: str = "jpeg",
    size: tuple[int, int] = (48, 32),
    seed: int = 0,
) -> None:
    """Write a small picture (a few shapes that depend on ``seed``) in ``fmt`` to ``path``."""
    img = Image.new("RGB", size, (seed * 37 % 256, seed * 91 % 256, seed * 13 % 256))
    pen = ImageDraw.Draw(img)
    pen.rectangle((seed % 10, 2, size[0] // 2, size[1] - 3), fill=(250, 200 - seed % 50, 10))
    pen.ellipse((size[0] // 3, 4, size[0] - 2, size[1] // 2 + seed % 5), fill=(0, 90, 200))
    if isinstance(path, bytes):
        with open(path, "wb") as fh:
            img.save(fh, PIL_FORMATS[fmt])
    else:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        img.save(path, PIL_FORMATS[fmt])


@pytest.fixture
def draw():
    """The :func:`draw_image` helper."""
    return draw_image
