"""Thumbnails: made lazily in a thread pool, cached on disk and in memory.

The grid's delegate asks :meth:`ThumbnailCache.pixmap` for a path while painting. A miss queues
the path and returns None (the delegate paints a placeholder); pool threads take the *newest*
requests first, so what is on screen now is made before what scrolled past. A finished
thumbnail is announced with ``ready(path)`` and the row repaints.

On disk a thumbnail is ``<library>/thumbnails/<k[:2]>/<k>.jpg`` where ``k`` hashes the path,
modification time, size and edge, so an edited photo gets a fresh one. Decoding uses
:func:`lotlip.transforms.load_image` (EXIF orientation, JPEG draft decoding at reduced scale).
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
from collections import OrderedDict, deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, QRunnable, QSize, Qt, QThreadPool, Signal
from PySide6.QtGui import QImage, QPixmap

from lotlip.files import write_atomic

log = logging.getLogger(__name__)

THUMB_EDGE = 256
MAX_PENDING = 600


def thumbnail_key(path: str, mtime_ns: int, size: int, edge: int = THUMB_EDGE) -> str:
    """A stable name for the thumbnail of one version of one file."""
    raw = f"{path}\0{mtime_ns}\0{size}\0{edge}".encode("utf-8", "surrogateescape")
    return hashlib.sha1(raw).hexdigest()


def thumbnail_file(cache_dir: Path, key: str) -> Path:
    """Where the thumbnail called ``key`` is stored (two-level fan-out)."""
    return cache_dir / key[:2] / f"{key}.jpg"


def pil_to_qimage(image: object) -> QImage:
    """An RGB PIL image as a QImage that owns its pixels (safe to pass between threads)."""
    rgb = image.convert("RGB") if image.mode != "RGB" else image  # type: ignore[attr-defined]
    width, height = rgb.size
    data = rgb.tobytes("raw", "RGB")
    return QImage(data, width, height, 3 * width, QImage.Format.Format_RGB888).copy()


def decode_scaled(path: str, edge: int) -> object:
    """``path`` decoded upright (PIL, RGB) with its longest side at most ``edge``.

    Raises :class:`lotlip.ImageLoadError` (or ``OSError``) for files that cannot be used.
    """
    from PIL import Image

    from lotlip.transforms import load_image

    image = load_image(path, size=edge)
    image.thumbnail((edge, edge), Image.Resampling.BICUBIC, reducing_gap=2.0)
    return image


def load_scaled(path: str, edge: int) -> QImage:
    """``path`` as a QImage with its longest side at most ``edge`` (for the preview pane)."""
    return pil_to_qimage(decode_scaled(path, edge))


def load_scaled_in_background(
    owner: QObject,
    tasks: Any,
    previous: Any,
    path: str,
    edge: int,
    loaded: Callable[[str, QImage], None],
    failed: Callable[[str, str], None],
) -> Any:
    """Cancel ``previous`` and decode ``path`` at ``edge`` in a worker (a ``Task`` of ``tasks``).

    ``loaded(path, image)`` or ``failed(path, message)`` runs on the GUI thread while ``owner``
    lives; the path lets the receiver ignore a result for a photo it no longer shows.
    """
    from app.gui.tasks import Task, bound

    if previous is not None:
        previous.cancel()
    task = Task(lambda _r, _c: load_scaled(path, edge), name=f"load-{edge}")
    task.succeeded.connect(bound(owner, lambda image: loaded(path, image)))
    task.failed.connect(bound(owner, lambda message: failed(path, message)))
    return tasks.start(task)


def make_thumbnail(path: str, cache_dir: Path | None, edge: int = THUMB_EDGE) -> QImage:
    """The thumbnail of ``path``: from the disk cache, or decoded and written there."""
    st = os.stat(path)
    target = None
    if cache_dir is not None:
        target = thumbnail_file(cache_dir, thumbnail_key(path, st.st_mtime_ns, st.st_size, edge))
        if target.is_file():
            cached = QImage(str(target))
            if not cached.isNull():
                return cached
    image = decode_scaled(path, edge)
    if target is not None:
        try:
            write_atomic(
                target, lambda tmp: image.save(tmp, "JPEG", quality=85, optimize=True), fsync=False
            )
        except OSError as exc:  # a read-only cache still gives thumbnails
            log.debug("cannot cache thumbnail of %s: %s", path, exc)
    return pil_to_qimage(image)


class _Bridge(QObject):
    """Lives in the GUI thread; pool threads emit through it."""

    done = Signal(str, QImage)
    broken = Signal(str, str)


class _Runner(QRunnable):
    def __init__(self, cache: ThumbnailCache) -> None:
        super().__init__()
        self.cache = cache

    def run(self) -> None:
        self.cache._drain()


class _LRU:
    """A byte-bounded least-recently-used map."""

    def __init__(self, budget_bytes: int) -> None:
        self.budget = budget_bytes
        self.used = 0
        self.items: OrderedDict[object, tuple[object, int]] = OrderedDict()

    def get(self, key: object) -> object | None:
        found = self.items.get(key)
        if found is None:
            return None
        self.items.move_to_end(key)
        return found[0]

    def put(self, key: object, value: object, cost: int) -> None:
        old = self.items.pop(key, None)
        if old is not None:
            self.used -= old[1]
        self.items[key] = (value, cost)
        self.used += cost
        while self.used > self.budget and len(self.items) > 1:
            _, (_, dropped) = self.items.popitem(last=False)
            self.used -= dropped


class ThumbnailCache(QObject):
    """Thumbnails for the grid (see the module docstring).

    Signals: ``ready(path)`` when a thumbnail became available, ``broken(path, reason)`` when
    a file cannot be decoded (it is not retried while the cache lives).
    """

    ready = Signal(str)
    broken = Signal(str, str)

    def __init__(
        self,
        cache_dir: Path | None = None,
        *,
        edge: int = THUMB_EDGE,
        threads: int | None = None,
        memory_mb: int = 96,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self.cache_dir = cache_dir
        self.edge = edge
        self._pool = QThreadPool(self)
        self._pool.setMaxThreadCount(threads or max(1, min(4, (os.cpu_count() or 2) - 1)))
        self._bridge = _Bridge()
        self._bridge.done.connect(self._on_done)
        self._bridge.broken.connect(self._on_broken)
        self._lock = threading.Lock()
        self._pending: deque[str] = deque()
        self._queued: set[str] = set()
        self._runners = 0
        self._closed = False
        self._images = _LRU(memory_mb * 1024 * 1024)
        self._scaled = _LRU(memory_mb * 1024 * 1024 // 2)
        self._failed: dict[str, str] = {}

    # -- GUI thread ----------------------------------------------------------------------------
    def image(self, path: str) -> QImage | None:
        """The full-size thumbnail if it is in memory (no request)."""
        found = self._images.get(path)
        return found if isinstance(found, QImage) else None

    def pixmap(self, path: str, edge: int, device_ratio: float = 1.0) -> QPixmap | None:
        """A pixmap of ``path`` fitting ``edge`` x ``edge``, or None (and a request) on a miss."""
        pixels = max(1, round(edge * device_ratio))
        key = (path, pixels)
        found = self._scaled.get(key)
        if isinstance(found, QPixmap):
            return found
        image = self.image(path)
        if image is None:
            self.request(path)
            return None
        if max(image.width(), image.height()) > pixels:
            image = image.scaled(
                QSize(pixels, pixels),
                Qt.AspectRatioMode.KeepAspectRatio,
                Qt.TransformationMode.SmoothTransformation,
            )
        pixmap = QPixmap.fromImage(image)
        pixmap.setDevicePixelRatio(device_ratio)
        self._scaled.put(key, pixmap, pixmap.width() * pixmap.height() * 4)
        return pixmap

    def failure(self, path: str) -> str | None:
        """Why ``path`` has no thumbnail, if it failed."""
        return self._failed.get(path)

    def request(self, path: str) -> None:
        """Queue ``path`` (newest first); old requests beyond :data:`MAX_PENDING` are dropped."""
        if path in self._failed:
            return
        with self._lock:
            if self._closed:
                return
            if path in self._queued:
                try:  # move to the front: it is on screen again
                    self._pending.remove(path)
                except ValueError:
                    return  # being made right now
                self._pending.append(path)
                return
            self._pending.append(path)
            self._queued.add(path)
            while len(self._pending) > MAX_PENDING:
                self._queued.discard(self._pending.popleft())
            start = self._runners < self._pool.maxThreadCount()
            if start:
                self._runners += 1
        if start:
            self._pool.start(_Runner(self))

    def cancel_pending(self) -> None:
        """Forget queued requests (e.g. the results changed)."""
        with self._lock:
            for path in self._pending:
                self._queued.discard(path)
            self._pending.clear()

    def shutdown(self, timeout_ms: int = 5000) -> None:
        """Drop the queue and wait for running decodes (at exit)."""
        with self._lock:
            self._closed = True
            self._pending.clear()
            self._queued.clear()
        self._pool.waitForDone(timeout_ms)

    def _on_done(self, path: str, image: QImage) -> None:
        with self._lock:
            self._queued.discard(path)
        self._images.put(path, image, image.sizeInBytes())
        self.ready.emit(path)

    def _on_broken(self, path: str, reason: str) -> None:
        with self._lock:
            self._queued.discard(path)
        self._failed[path] = reason
        self.broken.emit(path, reason)

    # -- pool threads --------------------------------------------------------------------------
    def _next(self) -> str | None:
        with self._lock:
            if self._pending and not self._closed:
                return self._pending.pop()
            self._runners -= 1
            return None

    def _drain(self) -> None:
        while (path := self._next()) is not None:
            try:
                image = make_thumbnail(path, self.cache_dir, self.edge)
            except Exception as exc:  # any undecodable file becomes a "broken" tile
                reason = str(exc) or type(exc).__name__
                self._bridge.broken.emit(path, reason)
                continue
            self._bridge.done.emit(path, image)
