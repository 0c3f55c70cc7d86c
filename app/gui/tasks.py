"""Background work for the GUI: run a function in its own thread, report back through signals.

Every slow thing the GUI starts (loading a model, indexing, searching, scanning, fine-tuning,
importing) is a :class:`Task`. The function runs in a ``QThread``; it gets a ``report``
callable for progress and a ``cancelled`` callable to poll. A ``context`` (e.g.
``library.own_connection``) wraps the function in its thread: the session's tasks use it so
each worker thread has its own database connection. Signals are emitted from the worker
thread and delivered (queued) in the GUI thread, so slots never race with widgets.

Progress is throttled: reports are collected and delivered as a list at most ``rate`` times a
second (plus once more before the result), so a pipeline that reports per image cannot flood the
event loop. Consumers that need every report (a loss curve) get them all; consumers that only
show the latest state use ``reports[-1]``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from typing import Any

import shiboken6
from PySide6.QtCore import QObject, QThread, Signal

log = logging.getLogger(__name__)

Report = Callable[[Any], None]
Cancelled = Callable[[], bool]
TaskFunction = Callable[[Report, Cancelled], Any]

DEFAULT_RATE = 20.0


class Throttle:
    """Says whether enough time has passed since the last emission (``rate`` per second)."""

    def __init__(self, rate: float = DEFAULT_RATE, clock: Callable[[], float] = time.monotonic):
        self.interval = 1.0 / rate if rate > 0 else 0.0
        self.clock = clock
        self._last = -float("inf")

    def ready(self) -> bool:
        """True (and restart the interval) when an emission is due."""
        now = self.clock()
        if now - self._last >= self.interval:
            self._last = now
            return True
        return False


def bound(owner: QObject, fn: Callable[..., Any]) -> Callable[..., None]:
    """``fn`` as a slot that does nothing once ``owner`` was deleted.

    A task may finish after the dialog that started it was closed and deleted; Qt disconnects
    bound methods of deleted objects by itself, but not lambdas, so wrap those.
    """

    def call(*args: Any) -> None:
        if shiboken6.isValid(owner):
            fn(*args)

    return call


class TaskCancelled(Exception):
    """Raised by a task function that wants to end because it was cancelled."""


def error_message(exc: BaseException) -> str:
    """A one-paragraph message for a dialog: the exception's text, or its type."""
    text = str(exc).strip()
    if isinstance(exc, (KeyError,)) and text.startswith("'"):
        text = text.strip("'")
    return text or type(exc).__name__


class Task(QThread):
    """Runs ``fn(report, cancelled)`` in a thread.

    Signals (delivered in the thread that owns the task, normally the GUI thread):

    * ``progressed(list)``: the reports since the last delivery, oldest first.
    * ``succeeded(object)``: the function's return value.
    * ``failed(str)``: a user-readable message when it raised (not for cancellation).
    * ``cancelled_(object)``: the function ended after :meth:`cancel` (its value, or None).
    * ``finished()`` (from ``QThread``): always last.
    """

    progressed = Signal(list)
    succeeded = Signal(object)
    failed = Signal(str)
    cancelled_ = Signal(object)

    def __init__(
        self,
        fn: TaskFunction,
        *,
        name: str = "task",
        rate: float = DEFAULT_RATE,
        parent: QObject | None = None,
        context: Callable[[], AbstractContextManager[Any]] | None = None,
    ) -> None:
        super().__init__(parent)
        self.setObjectName(name)
        self._fn = fn
        self._context = context or nullcontext
        self._throttle = Throttle(rate)
        self._lock = threading.Lock()
        self._pending: list[Any] = []
        self._cancel = threading.Event()
        self.result: Any = None
        self.error: str | None = None

    # -- called from the worker thread ----------------------------------------------------------
    def report(self, item: Any) -> None:
        """Queue a progress report; deliver the batch if the throttle allows."""
        with self._lock:
            self._pending.append(item)
            due = self._throttle.ready()
        if due:
            self._flush()

    def is_cancelled(self) -> bool:
        """True once :meth:`cancel` was called (poll it between units of work)."""
        return self._cancel.is_set()

    def _flush(self) -> None:
        with self._lock:
            batch, self._pending = self._pending, []
        if batch:
            self.progressed.emit(batch)

    def run(self) -> None:  # the thread's body
        """Run the function and emit its outcome."""
        try:
            with self._context():
                result = self._fn(self.report, self.is_cancelled)
        except TaskCancelled:
            self._flush()
            self.cancelled_.emit(None)
            return
        except Exception as exc:  # a task must never take the GUI down
            if self.is_cancelled():  # e.g. the library closed under it while quitting
                log.debug("%s ended after cancel: %s", self.objectName(), exc)
            else:
                log.exception("%s failed", self.objectName())
            self._flush()
            self.error = error_message(exc)
            if self.is_cancelled():
                self.cancelled_.emit(None)
            else:
                self.failed.emit(self.error)
            return
        self._flush()
        self.result = result
        if self.is_cancelled():
            self.cancelled_.emit(result)
        else:
            self.succeeded.emit(result)

    # -- called from the GUI thread --------------------------------------------------------------
    def cancel(self) -> None:
        """Ask the function to stop (it decides when, by polling ``cancelled``)."""
        self._cancel.set()

    def stop(self, timeout_ms: int = 30_000) -> bool:
        """Cancel and wait for the thread to end; true when it ended in time."""
        self.cancel()
        if not self.isRunning():
            return True
        return self.wait(timeout_ms)


class TaskSet(QObject):
    """Keeps running tasks alive (a ``QThread`` must outlive its run) and stops them together."""

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._tasks: set[Task] = set()

    def start(self, task: Task) -> Task:
        """Start ``task`` and hold it until it finishes."""
        self._tasks.add(task)
        task.finished.connect(lambda: self._tasks.discard(task))
        task.start()
        return task

    def running(self) -> list[Task]:
        """Tasks that have not finished yet."""
        return [t for t in self._tasks if t.isRunning()]

    def stop_all(self, timeout_ms: int = 30_000) -> bool:
        """Cancel every task, then wait for them (``timeout_ms`` in all); true when all ended."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        deadline = time.monotonic() + timeout_ms / 1000
        ended = True
        for task in tasks:
            left = max(0, int((deadline - time.monotonic()) * 1000))
            ended = task.wait(left) and ended
        return ended


def run_task(
    owner: TaskSet,
    fn: TaskFunction,
    *,
    name: str,
    on_success: Callable[[Any], None] | None = None,
    on_failure: Callable[[str], None] | None = None,
) -> Task:
    """Create, wire and start a task in one call (for the many small jobs)."""
    task = Task(fn, name=name)
    if on_success is not None:
        task.succeeded.connect(on_success)
    if on_failure is not None:
        task.failed.connect(on_failure)
    return owner.start(task)
