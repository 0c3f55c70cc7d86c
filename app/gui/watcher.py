"""Watch folders: notice new, changed, moved and deleted photos while the app runs.

:class:`FolderWatcher` follows the library's folders with ``watchdog`` (inotify on Linux,
FSEvents on macOS, ReadDirectoryChangesW on Windows). Its observer thread only notes which
library folder saw a relevant event; the GUI thread collects them and, once the folders have
been quiet for ``debounce_ms`` (or at the latest ``max_delay_ms`` after the first event, so a
long copy still shows photos as it goes), emits ``changed(list[str])`` once. Copying 1,000
photos thus costs a handful of index runs, not thousands, and the observer thread does
almost nothing per event, so the window stays responsive.

:class:`AutoIndexer` connects that to the session: each ``changed`` becomes
``Session.index_soon(folders)``; it follows the library's folder list and the on/off setting.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections.abc import Iterable
from typing import Any

from PySide6.QtCore import QObject, QTimer, Signal
from watchdog.observers import Observer

from app.library.paths import innermost, is_within_any
from app.library.scanner import IMAGE_EXTENSIONS

log = logging.getLogger(__name__)

DEBOUNCE_MS = 800
MAX_DELAY_MS = 4000


def is_relevant(path: str, is_directory: bool) -> bool:
    """Events that can change what the library holds: picture files and whole folders."""
    if is_directory:
        return True
    name = os.path.basename(path)
    if name.startswith("."):
        return False  # editors' and copiers' temporary files; the final rename is seen
    return os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS


class _Handler:
    """watchdog's event handler; runs in the observer thread, so it only records roots."""

    def __init__(self, watcher: FolderWatcher) -> None:
        self.watcher = watcher

    def dispatch(self, event: Any) -> None:  # the watchdog handler interface
        if event.event_type in ("opened", "closed_no_write"):
            return
        if event.is_directory and event.event_type == "modified":
            return  # a file event inside says more
        paths = [event.src_path, getattr(event, "dest_path", "") or ""]
        for raw in paths:
            if not raw:
                continue
            path = os.fsdecode(raw)
            if is_relevant(path, event.is_directory):
                self.watcher._note(path)


class FolderWatcher(QObject):
    """Follows folders recursively; emits ``changed(list[str])`` with the folders that changed.

    Call :meth:`watch` with the folders (again whenever they change) and :meth:`stop` at the
    end. Paths under ``ignore`` (the library folder) never count.
    """

    changed = Signal(list)
    _poke = Signal()

    def __init__(
        self,
        parent: QObject | None = None,
        *,
        debounce_ms: int = DEBOUNCE_MS,
        max_delay_ms: int = MAX_DELAY_MS,
        ignore: Iterable[str] = (),
    ) -> None:
        super().__init__(parent)
        self._lock = threading.Lock()
        self._dirty: set[str] = set()
        self._last_event = 0.0
        self._roots: tuple[str, ...] = ()
        self._ignore = tuple(os.path.abspath(p) for p in ignore)
        self._observer: Any = None
        self._watches: dict[str, Any] = {}  # only the scheduler thread touches it
        self._scheduled: tuple[str, ...] = ()
        self._scheduler: threading.Thread | None = None
        self._wake = threading.Event()
        self._debounce_ms = debounce_ms
        self._quiet = QTimer(self)
        self._quiet.setSingleShot(True)
        self._quiet.timeout.connect(self._quiet_over)
        self._deadline = QTimer(self)
        self._deadline.setSingleShot(True)
        self._deadline.setInterval(max_delay_ms)
        self._deadline.timeout.connect(self._flush)
        self._poke.connect(self._poked)

    @property
    def roots(self) -> tuple[str, ...]:
        """The folders whose watches are in place (events under them are seen)."""
        with self._lock:
            return self._scheduled

    @property
    def wanted(self) -> tuple[str, ...]:
        """The folders asked for by the last :meth:`watch`."""
        with self._lock:
            return self._roots

    @property
    def active(self) -> bool:
        """True while an observer runs."""
        return self._observer is not None

    def watch(self, roots: Iterable[str]) -> None:
        """Watch exactly ``roots`` (existing folders; others are skipped until next time).

        Returns at once: adding the watches walks every subfolder (one inotify watch each),
        which for a large library takes a while, so a background thread does it.
        """
        wanted = tuple(sorted({os.path.abspath(r) for r in roots}))
        with self._lock:
            self._roots = wanted
        if self._observer is None:
            self._observer = Observer()
            self._observer.daemon = True
            self._observer.start()
        if self._scheduler is None:
            self._scheduler = threading.Thread(
                target=self._schedule_loop, name="watch-scheduler", daemon=True
            )
            self._scheduler.start()
        self._wake.set()

    def _schedule_loop(self) -> None:
        while True:
            self._wake.wait()
            self._wake.clear()
            observer = self._observer
            if observer is None:
                return
            with self._lock:
                wanted = self._roots
            try:
                self._apply(observer, wanted)
            except Exception:  # the watcher must never take the app down
                log.exception("updating the watched folders failed")

    def _apply(self, observer: Any, wanted: tuple[str, ...]) -> None:
        for root in list(self._watches):
            if root not in wanted:
                observer.unschedule(self._watches.pop(root))
        for root in wanted:
            if root in self._watches or not os.path.isdir(root):
                continue
            if is_within_any(root, self._watches):
                continue  # inside a folder watched recursively already
            try:
                self._watches[root] = observer.schedule(_Handler(self), root, recursive=True)
            except OSError as exc:  # inotify limits, permissions, a vanished drive
                log.warning("cannot watch %s: %s", root, exc)
        covered = tuple(r for r in wanted if is_within_any(r, self._watches))
        with self._lock:
            self._scheduled = covered

    def stop(self) -> None:
        """Stop watching (pending changes are dropped)."""
        self._quiet.stop()
        self._deadline.stop()
        observer, self._observer = self._observer, None
        scheduler, self._scheduler = self._scheduler, None
        self._wake.set()  # the scheduler sees no observer and ends
        if scheduler is not None:
            scheduler.join(timeout=0.2)  # a daemon thread: quitting never waits for a walk
        self._watches.clear()
        with self._lock:
            self._dirty.clear()
            self._scheduled = ()
        if observer is not None:
            observer.stop()
            observer.join(timeout=0.3)

    # -- observer thread -------------------------------------------------------------------------
    def _note(self, path: str) -> None:
        if is_within_any(path, self._ignore):
            return
        with self._lock:
            root = innermost(path, self._roots)
            if root is None:
                return
            self._last_event = time.monotonic()
            if root in self._dirty:
                return  # one signal per folder and quiet period, however many events
            self._dirty.add(root)
        self._poke.emit()  # queued into the GUI thread

    # -- GUI thread ----------------------------------------------------------------------------
    def _poked(self) -> None:
        if not self._quiet.isActive():
            self._quiet.start(self._debounce_ms)
        if not self._deadline.isActive():
            self._deadline.start()

    def _quiet_over(self) -> None:
        with self._lock:
            since = time.monotonic() - self._last_event
        left_ms = self._debounce_ms - int(since * 1000)
        if left_ms > 10:  # events kept coming: wait until they pause (or the deadline)
            self._quiet.start(left_ms)
            return
        self._flush()

    def _flush(self) -> None:
        self._quiet.stop()
        self._deadline.stop()
        with self._lock:
            roots, self._dirty = sorted(self._dirty), set()
        if roots:
            log.debug("watched folders changed: %s", roots)
            self.changed.emit(roots)


class AutoIndexer(QObject):
    """Indexes the library's folders when the watcher sees them change (see the module doc)."""

    def __init__(self, session: Any, *, debounce_ms: int = DEBOUNCE_MS) -> None:
        super().__init__(session)
        self.session = session
        library = session.library
        self.watcher = FolderWatcher(
            self, debounce_ms=debounce_ms, ignore=[library.ann_dir, library.thumbnails_dir]
        )
        self.watcher.changed.connect(self._changed)
        session.libraryInfo.connect(self._library_info)
        self.watcher.watch(session.info.folders or [f.path for f in library.folders()])

    def _library_info(self, info: Any) -> None:
        if set(info.folders) != set(self.watcher.wanted):
            self.watcher.watch(info.folders)

    def _changed(self, roots: list[str]) -> None:
        self.session.index_soon(roots)

    def stop(self) -> None:
        """Stop watching and let go of the session."""
        self.watcher.stop()
        with contextlib.suppress(RuntimeError, TypeError):  # already disconnected
            self.session.libraryInfo.disconnect(self._library_info)
