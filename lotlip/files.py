"""Atomic file writes: a reader sees the old complete file or the new complete file, never half.

The data goes to a temporary file in the same folder, is flushed to disk, and is renamed over
the target (``os.replace`` is atomic on POSIX and Windows). A failure removes the temporary file
and leaves the target as it was.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import uuid
from collections.abc import Callable
from pathlib import Path


def write_atomic(
    path: str | os.PathLike[str], write: Callable[[Path], object], *, fsync: bool = True
) -> Path:
    """Call ``write(tmp)`` to fill a temporary file next to ``path``, then rename it into place.

    ``fsync=False`` skips the flush to disk (a cache that can be made again after a crash).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        write(tmp)
        if fsync:
            with open(tmp, "r+b") as fh:  # (Windows cannot fsync a read-only handle)
                os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    return path


def write_text_atomic(path: str | os.PathLike[str], text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    return write_atomic(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def file_digest(path: str | os.PathLike[str]) -> tuple[str, int]:
    """(BLAKE2b-128 hex digest of every byte, size) of a file."""
    digest = hashlib.blake2b(digest_size=16)
    size = 0
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size
