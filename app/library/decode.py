"""Decode one image file for indexing: pixels for the model plus what the store records.

Runs in the indexer's decode threads (Pillow releases the GIL while decoding and resizing).
The file is read once; ``lotlip.transforms.load_image`` decodes it (JPEG draft mode at the
model resolution, EXIF orientation, RGB, decompression-bomb guard) and the model's
``preprocess`` makes the pixel tensor. Width and height are those of the *original* image as
it is displayed (EXIF rotation applied), the capture date is EXIF ``DateTimeOriginal`` (or
``DateTimeDigitized``) as ISO text. Every problem becomes a :class:`DecodeFailure` with a
reason a person understands; nothing here raises for a bad file.
"""

from __future__ import annotations

import io
import logging
import os
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, BinaryIO

import torch
from PIL import Image, features

from app.library.scanner import FileInfo, hash_bytes
from app.library.store import ImageRecord
from lotlip.transforms import ImageLoadError, load_image, open_regular_file

if TYPE_CHECKING:
    from lotlip.model import LoTLIP

logger = logging.getLogger(__name__)

try:  # HEIC support is an optional extra (pip install "lotlip-search[heif]")
    import pillow_heif

    pillow_heif.register_heif_opener()
    HEIF_AVAILABLE = True
except Exception:  # not installed, or a broken native library
    HEIF_AVAILABLE = False
try:
    _AVIF_NATIVE = bool(features.check_module("avif"))
except (ValueError, KeyError):  # a Pillow that does not know the module
    _AVIF_NATIVE = False
UNSUPPORTED_FORMATS = frozenset(
    name
    for name, ok in (("heic", HEIF_AVAILABLE), ("avif", HEIF_AVAILABLE or _AVIF_NATIVE))
    if not ok
)
"""Formats the scanner finds but this installation cannot decode."""

EXIF_IFD = 0x8769
ORIENTATION = 0x0112
DATE_TIME_ORIGINAL = 36867
DATE_TIME_DIGITIZED = 36868
_SWAPPED_ORIENTATIONS = frozenset({5, 6, 7, 8})
_EXIF_DATE_PATTERNS = (
    (19, "%Y:%m:%d %H:%M:%S"),
    (19, "%Y-%m-%d %H:%M:%S"),
    (16, "%Y:%m:%d %H:%M"),
    (10, "%Y:%m:%d"),
)


@dataclass(frozen=True, slots=True)
class Decoded:
    """A decoded image: the model's input and the store's row."""

    info: FileInfo
    pixels: torch.Tensor
    record: ImageRecord


@dataclass(frozen=True, slots=True)
class DecodeFailure:
    """A file that could not be used, with the reason and the size/mtime it had."""

    info: FileInfo
    reason: str
    size: int
    mtime_ns: int


def exif_datetime(value: object) -> str | None:
    """EXIF ``"YYYY:MM:DD HH:MM:SS"`` -> ISO ``"YYYY-MM-DDTHH:MM:SS"``; ``None`` if unusable."""
    if isinstance(value, bytes):
        value = value.decode("ascii", "replace")
    if not isinstance(value, str):
        return None
    text = value.strip().strip("\x00").strip()
    for length, pattern in _EXIF_DATE_PATTERNS:  # trailing sub-seconds or zones are ignored
        try:
            return datetime.strptime(text[:length], pattern).isoformat(timespec="seconds")
        except ValueError:
            continue
    return None


def read_metadata(source: BinaryIO) -> tuple[int, int, str | None]:
    """``(width, height, taken_at)`` of an image file: upright size and EXIF capture date."""
    with Image.open(source) as im:
        width, height = im.size
        try:
            exif = im.getexif()
        except Exception:  # a damaged EXIF block must not lose the picture
            logger.debug("unreadable EXIF block", exc_info=True)
            return width, height, None
        if exif.get(ORIENTATION) in _SWAPPED_ORIENTATIONS:
            width, height = height, width
        try:
            sub = exif.get_ifd(EXIF_IFD)
        except Exception:
            sub = {}
        taken = exif_datetime(sub.get(DATE_TIME_ORIGINAL)) or exif_datetime(
            sub.get(DATE_TIME_DIGITIZED)
        )
        return width, height, taken


def _os_reason(exc: OSError) -> str:
    return f"cannot read the file: {exc.strerror or exc}"


def decode_file(
    info: FileInfo,
    *,
    size: int,
    preprocess: Callable[[Image.Image], torch.Tensor],
    folder_id: int | None = None,
    known_hash: str | None = None,
) -> Decoded | DecodeFailure:
    """Read, decode and preprocess ``info.path`` at model resolution ``size``."""
    if info.format in UNSUPPORTED_FORMATS:
        return DecodeFailure(
            info,
            f"{info.format.upper()} pictures need the optional pillow-heif package "
            '(pip install "lotlip-search[heif]")',
            info.size,
            info.mtime_ns,
        )
    try:
        with open_regular_file(info.path) as fh:  # swapped for a FIFO since the scan: no wait
            st = os.fstat(fh.fileno())
            data = fh.read()
    except ImageLoadError as exc:
        return DecodeFailure(info, str(exc), info.size, info.mtime_ns)
    except OSError as exc:
        return DecodeFailure(info, _os_reason(exc), info.size, info.mtime_ns)
    if not data:
        return DecodeFailure(info, "empty file (0 bytes)", st.st_size, st.st_mtime_ns)
    try:
        image = load_image(io.BytesIO(data), size)
        width, height, taken = read_metadata(io.BytesIO(data))
        pixels = preprocess(image)
        digest = known_hash or hash_bytes(data)  # the very bytes that were decoded
    except ImageLoadError as exc:
        return DecodeFailure(info, str(exc), st.st_size, st.st_mtime_ns)
    except OSError as exc:
        return DecodeFailure(info, _os_reason(exc), st.st_size, st.st_mtime_ns)
    except Exception as exc:  # a decoder bug on one odd file must not stop the whole run
        logger.debug("unexpected error decoding %s", info.path, exc_info=True)
        return DecodeFailure(
            info, f"could not decode ({type(exc).__name__}: {exc})", st.st_size, st.st_mtime_ns
        )
    record = ImageRecord(
        path=info.path,
        size=st.st_size,
        mtime_ns=st.st_mtime_ns,
        folder_id=folder_id,
        hash=digest,
        width=width,
        height=height,
        taken_at=taken,
    )
    return Decoded(info, pixels, record)


def decode_ahead(
    files: Sequence[FileInfo],
    model: LoTLIP,
    *,
    batch_size: int,
    workers: int,
    lookahead: int = 2,
    hashes: dict[str, str] | None = None,
    folder_ids: dict[str, int] | None = None,
    stop: Callable[[], bool] = lambda: False,
) -> Iterator[Decoded | DecodeFailure]:
    """Decode ``files`` for ``model`` in a thread pool, in order.

    At most ``batch_size * lookahead + workers`` files are in flight, so memory stays flat
    however many files there are; ``stop()`` ends the iteration early.
    """
    size = model.config.vision.image_size
    hashes = hashes or {}
    folder_ids = folder_ids or {}
    window = batch_size * lookahead + workers
    pool = ThreadPoolExecutor(workers, thread_name_prefix="lotlip-decode")
    pending: deque[Future[Decoded | DecodeFailure]] = deque()
    remaining = iter(files)

    def submit(info: FileInfo) -> None:
        pending.append(
            pool.submit(
                decode_file,
                info,
                size=size,
                preprocess=model.preprocess,
                folder_id=folder_ids.get(info.root),
                known_hash=hashes.get(info.path),
            )
        )

    try:
        for info in remaining:
            submit(info)
            if len(pending) >= window:
                break
        while pending and not stop():
            result = pending.popleft().result()
            following = next(remaining, None)
            if following is not None:
                submit(following)
            yield result
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
