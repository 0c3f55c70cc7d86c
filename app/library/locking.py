"""An exclusive, process-wide lock file: one writer (indexer, forget, ...) per library.

The lock is an OS advisory lock (``fcntl.flock`` on POSIX, ``msvcrt.locking`` on Windows) on a
small file in the library folder. The operating system drops it when the holding process ends,
however it ends (SIGKILL included), so a crashed indexer never leaves a stale lock behind.
Readers (searches) never take it; they only use it to decide whether they may save a rebuilt
ANN index file (see :meth:`app.library.library.Library.ann`).
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import threading
from pathlib import Path
from typing import IO

logger = logging.getLogger(__name__)


class LockBusyError(RuntimeError):
    """Another process holds the lock."""


def _try_lock(fh: IO[bytes]) -> bool:
    if sys.platform == "win32":  # pragma: no cover - exercised on Windows only
        import msvcrt

        try:
            fh.seek(0)
            msvcrt.locking(fh.fileno(), msvcrt.LK_NBLCK, 1)
        except OSError:
            return False
        return True
    import fcntl

    try:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return False
    return True


def _unlock(fh: IO[bytes]) -> None:
    if sys.platform == "win32":  # pragma: no cover - exercised on Windows only
        import msvcrt

        fh.seek(0)
        with contextlib.suppress(OSError):
            msvcrt.locking(fh.fileno(), msvcrt.LK_UNLCK, 1)
        return
    import fcntl

    fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


class FileLock:
    """A re-entrant (within this process) exclusive lock on ``path``.

    :meth:`acquire` never blocks: it raises :class:`LockBusyError` when another process holds
    the lock. Threads of the holding process may nest acquisitions freely.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._fh: IO[bytes] | None = None
        self._depth = 0
        self._mutex = threading.RLock()

    @property
    def held(self) -> bool:
        """True while this process holds the lock."""
        return self._depth > 0

    def acquire(self) -> None:
        """Take the lock (or nest one level deeper); :class:`LockBusyError` if taken elsewhere."""
        with self._mutex:
            if self._depth:
                self._depth += 1
                return
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fh = open(self.path, "a+b")  # noqa: SIM115 - held open while locked
            if not _try_lock(fh):
                fh.close()
                raise LockBusyError(f"{self.path} is locked by another process")
            with contextlib.suppress(OSError):
                fh.seek(0)
                fh.truncate()
                fh.write(str(os.getpid()).encode())
                fh.flush()
            self._fh = fh
            self._depth = 1

    def try_acquire(self) -> bool:
        """Like :meth:`acquire` but returns false instead of raising."""
        try:
            self.acquire()
        except LockBusyError:
            return False
        return True

    def release(self) -> None:
        """Undo one :meth:`acquire`; the OS lock goes with the outermost one."""
        with self._mutex:
            if self._depth == 0:
                raise RuntimeError("release() of a lock that is not held")
            self._depth -= 1
            if self._depth == 0 and self._fh is not None:
                try:
                    _unlock(self._fh)
                finally:
                    self._fh.close()
                    self._fh = None

    def holder_pid(self) -> int | None:
        """The pid written by the process that holds (or last held) the lock, if readable."""
        try:
            text = self.path.read_text(encoding="ascii").strip()
        except (OSError, UnicodeDecodeError):
            return None
        return int(text) if text.isdigit() else None
