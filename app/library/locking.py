"""The library's write lock: one writer (indexer, forget, ...) per library, via ``filelock``.

``filelock.FileLock`` takes an OS lock (``fcntl.flock`` on POSIX, ``msvcrt.locking`` on
Windows) on a small file in the library folder. The operating system drops it when the holding
process ends, however it ends (SIGKILL included), so a crashed indexer never leaves a stale lock
behind. The lock is process-wide (``thread_local=False``): threads of the holding process may
nest acquisitions. The holder writes its pid into the file so a refused writer can say who
holds it. Readers (searches) never take the lock; they only use it to decide whether they may
save a rebuilt ANN index file (see :meth:`app.library.library.Library.ann`).
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import filelock


class LockBusyError(RuntimeError):
    """Another process holds the lock."""


def _write_pid(fd: int) -> None:
    with contextlib.suppress(OSError):
        os.ftruncate(fd, 0)
        os.lseek(fd, 0, os.SEEK_SET)
        os.write(fd, str(os.getpid()).encode())


class FileLock:
    """A re-entrant (within this process) exclusive lock on ``path`` that never waits.

    :meth:`acquire` raises :class:`LockBusyError` when another process holds the lock.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._lock = filelock.FileLock(
            self.path, timeout=0, thread_local=False, on_acquired=_write_pid
        )

    @property
    def held(self) -> bool:
        """True while this process holds the lock."""
        return self._lock.is_locked

    def acquire(self) -> None:
        """Take the lock (or nest one level deeper); :class:`LockBusyError` if taken elsewhere."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._lock.acquire()
        except filelock.Timeout:
            raise LockBusyError(f"{self.path} is locked by another process") from None

    def try_acquire(self) -> bool:
        """Like :meth:`acquire` but returns false instead of raising."""
        try:
            self.acquire()
        except LockBusyError:
            return False
        return True

    def release(self) -> None:
        """Undo one :meth:`acquire`; the OS lock goes with the outermost one."""
        if not self._lock.is_locked:
            raise RuntimeError("release() of a lock that is not held")
        self._lock.release()

    def holder_pid(self) -> int | None:
        """The pid written by the process that holds (or last held) the lock, if readable."""
        try:
            text = self.path.read_text(encoding="ascii").strip()
        except (OSError, UnicodeDecodeError):
            return None
        return int(text) if text.isdigit() else None
