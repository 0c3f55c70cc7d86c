"""Image loading and preprocessing, matching the reference eval transform (LOTLIP.md §5).

Loading: open, refuse decompression bombs before decoding, JPEG *draft* decode at a reduced
scale when the photo is much larger than the model needs, EXIF orientation, RGB (alpha over
white, 16-bit scaled down rather than clipped). Preprocessing: shortest side to the model
resolution (bicubic, antialiased), centre crop, scale to [-1, 1] (mean = std = 0.5).
"""

from __future__ import annotations

import os
import stat
from collections.abc import Sequence
from pathlib import Path
from typing import BinaryIO

import numpy as np
import torch
from PIL import Image, ImageOps

DEFAULT_MAX_PIXELS = 178_956_970  # Pillow's hard decompression-bomb limit (2x its warning level)


class ImageLoadError(Exception):
    """An image that cannot be used; the message says why in words a user understands."""


def file_kind(mode: int) -> str:
    """What a ``st_mode`` names, in words: ``"a folder"``, ``"a pipe"``, ``"a device"``, ..."""
    if stat.S_ISREG(mode):
        return "a file"
    if stat.S_ISDIR(mode):
        return "a folder"
    if stat.S_ISFIFO(mode):
        return "a pipe"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "a device"


def open_regular_file(path: str | os.PathLike[str]) -> BinaryIO:
    """Open ``path`` for reading if it is a regular file (after symlinks); never blocks.

    Reading a FIFO waits for a writer and a device may never end, so anything else raises
    :class:`ImageLoadError` ("... is a pipe, not an image file"). The type is checked on the
    opened descriptor (opened non-blocking), so the file cannot be swapped in between.
    ``OSError`` (missing file, no permission) passes through.
    """
    nonblock = getattr(os, "O_NONBLOCK", 0)  # POSIX; Windows has no FIFOs in the file system
    fd = os.open(path, os.O_RDONLY | nonblock | getattr(os, "O_BINARY", 0))
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            name = os.path.basename(os.path.normpath(os.fsdecode(path)))
            raise ImageLoadError(f"{name} is {file_kind(mode)}, not an image file")
        if nonblock:
            os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def load_image(
    source: str | Path | BinaryIO,
    size: int | None = None,
    *,
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> Image.Image:
    """Open an image as upright RGB, decoding JPEGs only as large as ``size`` needs.

    ``size`` is the model resolution: a JPEG is draft-decoded at the smallest DCT scale whose
    shortest side is still at least ``size`` (a 12 MP photo decodes ~4x faster at 1/8 scale).
    Raises :class:`ImageLoadError` for unreadable, truncated or oversized files, and at once
    for a path that is not a regular file (:func:`open_regular_file`).
    """
    if isinstance(source, (str, os.PathLike)):
        try:
            opened = open_regular_file(source)
        except OSError as exc:
            raise ImageLoadError(_describe(exc)) from exc
        with opened:
            return load_image(opened, size, max_pixels=max_pixels)
    try:
        with Image.open(source) as im:
            width, height = im.size
            if width * height > max_pixels:
                raise ImageLoadError(
                    f"image is {width}x{height} = {width * height:,} pixels, over the "
                    f"{max_pixels:,}-pixel safety limit (possible decompression bomb)"
                )
            if size and im.format == "JPEG":
                im.draft("RGB", (size, size))
            im.load()
            upright = ImageOps.exif_transpose(im) or im
            return to_rgb(upright)
    except ImageLoadError:
        raise
    except Image.DecompressionBombError as exc:
        raise ImageLoadError(f"decompression bomb refused: {exc}") from exc
    except (OSError, ValueError, SyntaxError, EOFError) as exc:
        raise ImageLoadError(_describe(exc)) from exc


def _describe(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    if "cannot identify image file" in text:
        return "not an image Pillow can read"
    if "truncated" in text.lower():
        return f"truncated or damaged image ({text})"
    return text


def to_rgb(im: Image.Image) -> Image.Image:
    """Convert any Pillow mode to 8-bit RGB; transparency is composited over white."""
    if im.mode == "RGB":
        return im
    if im.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        arr = np.asarray(im, dtype=np.float64)
        peak = 65535.0 if im.mode.startswith("I;16") or arr.max(initial=0) > 255 else 255.0
        gray = np.clip(arr * (255.0 / peak), 0, 255).round().astype(np.uint8)
        return Image.fromarray(gray, mode="L").convert("RGB")
    if im.mode == "P" and "transparency" in im.info:
        im = im.convert("RGBA")
    if im.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = im.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return im.convert("RGB")


def resize_shortest_side(im: Image.Image, size: int) -> Image.Image:
    """Bicubic (antialiased) resize so the shortest side is ``size`` (torchvision's rounding)."""
    width, height = im.size
    if width <= height:
        new_w, new_h = size, int(size * height / width)
    else:
        new_w, new_h = int(size * width / height), size
    if (new_w, new_h) == (width, height):
        return im
    return im.resize((new_w, new_h), Image.Resampling.BICUBIC)


def center_crop(im: Image.Image, size: int) -> Image.Image:
    """Centre ``size`` x ``size`` crop (torchvision's rounding of the offsets)."""
    width, height = im.size
    left = round((width - size) / 2.0)
    top = round((height - size) / 2.0)
    return im.crop((left, top, left + size, top + size))


def to_tensor(im: Image.Image) -> torch.Tensor:
    """RGB image -> float32 [3, H, W] normalized with mean = std = 0.5."""
    arr = np.asarray(im, dtype=np.float32) * (2.0 / 255.0) - 1.0
    return torch.from_numpy(np.ascontiguousarray(arr.transpose(2, 0, 1)))


class Preprocess:
    """The eval transform of a model at resolution ``size``: PIL image -> [3, size, size]."""

    def __init__(self, size: int) -> None:
        self.size = size

    def __call__(self, im: Image.Image) -> torch.Tensor:
        im = to_rgb(im)
        return to_tensor(center_crop(resize_shortest_side(im, self.size), self.size))

    def batch(self, images: Sequence[Image.Image]) -> torch.Tensor:
        """Stack several images into [B, 3, size, size]."""
        return torch.stack([self(im) for im in images])

    def __repr__(self) -> str:
        return f"Preprocess(size={self.size}, bicubic, center_crop, mean=std=0.5)"
