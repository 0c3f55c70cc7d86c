"""The GUI's connection to the library: the open library, the loaded model, background runs.

:class:`Session` opens an ``app.library`` :class:`Library`, loads the model in a worker thread
(the window is up before ``torch`` is even imported), answers searches in a worker thread and
owns the one :class:`IndexingRun` that may be going on. Widgets only talk to the session and
listen to its signals; all logic stays in ``app.library`` and ``training``. Each of the
session's worker threads reads and writes the library through its own SQLite connection
(:meth:`Library.own_connection`); the GUI thread keeps the one the library was opened with.

Quitting while indexing is safe: :meth:`Session.shutdown` cancels the run (the indexer stops at
the next batch, everything committed so far is kept) and leaves a note in the library so the
next start resumes it.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QObject, QTimer, Signal

from app.gui import config
from app.gui.requests import SearchOutcome, SearchRequest, run_search
from app.gui.tasks import DEFAULT_RATE, Task, TaskSet

if TYPE_CHECKING:
    from app.library.indexer import IndexReport
    from app.library.library import Library
    from app.library.models import ModelChoice

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LibraryInfo:
    """A snapshot of the library for the status bar, filters and the welcome decision."""

    folders: tuple[str, ...] = ()
    images: int = 0
    failures: int = 0
    captions: int = 0
    embeddings: dict[str, int] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)

    @property
    def empty(self) -> bool:
        """No folders and no photos yet (first start)."""
        return not self.folders and self.images == 0


GUI_SETTINGS = (
    config.LIB_MODEL,
    config.LIB_DEVICE,
    config.LIB_PRECISION,
    config.LIB_RESULT_COUNT,
    config.LIB_EXCLUDES,
    config.LIB_RESUME,
)
"""Library settings the GUI reads; they are cached so the GUI thread never waits on SQLite."""


def read_settings(library: Library) -> dict[str, Any]:
    """The values of :data:`GUI_SETTINGS` (None when unset)."""
    return {key: library.store.get_setting(key) for key in GUI_SETTINGS}


def read_library_info(library: Library) -> LibraryInfo:
    """Counts, folders and settings (runs in a worker thread, on its own connection)."""
    counts = library.store.counts()
    folders = tuple(f.path for f in library.folders())
    return LibraryInfo(
        folders=folders,
        images=counts.images,
        failures=counts.failures,
        captions=counts.captions,
        embeddings=dict(counts.embeddings),
        settings=read_settings(library),
    )


@dataclass(frozen=True)
class IndexRequest:
    """What to index: library folders (None = all) with which model on which device."""

    folders: tuple[str, ...] | None = None
    model: str | None = None
    device: str | None = None
    batch_size: int | None = None

    def as_setting(self) -> dict[str, Any]:
        """JSON for the resume note."""
        return {
            "folders": list(self.folders) if self.folders is not None else None,
            "model": self.model,
            "device": self.device,
        }

    @classmethod
    def from_setting(cls, value: Any) -> IndexRequest | None:
        """Read a resume note (None when absent or malformed)."""
        if not isinstance(value, dict):
            return None
        folders = value.get("folders")
        return cls(
            folders=tuple(folders) if isinstance(folders, list) else None,
            model=value.get("model"),
            device=value.get("device"),
        )


def leave_a_core_for_the_window() -> None:
    """Let torch use every core but one, so decoding and the event loop keep a core.

    Process-wide and only ever lowers the count; called before the first model runs.
    """
    import torch

    wanted = max(1, (os.cpu_count() or 2) - 1)
    if torch.get_num_threads() > wanted:
        torch.set_num_threads(wanted)


class IndexingRun(QObject):
    """One indexing run in a worker thread.

    Signals: ``progress(IndexProgress)`` (at most 20 per second), ``modelLoaded(ModelChoice)``
    (when the run had to load its own model), ``done(IndexReport)`` (completed or cancelled:
    see ``report.cancelled``), ``failed(str)``.
    """

    progress = Signal(object)
    modelLoaded = Signal(object)
    done = Signal(object)
    failed = Signal(str)

    def __init__(
        self, session: Session, request: IndexRequest, *, rate: float = DEFAULT_RATE
    ) -> None:
        super().__init__(session)
        self.session = session
        self.request = request
        self.last_progress: Any = None
        self.report: IndexReport | None = None
        self.error: str | None = None
        self.user_cancelled = False
        self.ended = False
        self.task = Task(
            self._work, name="indexing", rate=rate, context=session.library.own_connection
        )
        self.task.progressed.connect(self._on_progress)
        self.task.succeeded.connect(self._on_done)
        self.task.cancelled_.connect(self._on_done)
        self.task.failed.connect(self._on_failed)

    def start(self) -> None:
        """Start the worker thread."""
        self.task.start()

    @property
    def running(self) -> bool:
        """True until the run has delivered its report (or its error)."""
        return not self.ended

    def cancel(self) -> None:
        """Stop after the current batch; what is indexed so far is kept."""
        self.user_cancelled = True
        self.task.cancel()

    def wait(self, timeout_ms: int = 60_000) -> bool:
        """Block until the worker thread ended (tests and shutdown)."""
        return self.task.wait(timeout_ms)

    def _work(self, report: Any, cancelled: Any) -> Any:
        from app.library.indexer import Indexer

        leave_a_core_for_the_window()
        model = self.session.model_for_indexing(self.request.model, self.request.device)
        if model is None:
            from app.library.models import choose_model

            choice = choose_model(
                self.session.library,
                requested=self.request.model,
                device=self.request.device or self.session.device,
                precision=self.session.precision,
            )
            self.modelLoaded.emit(choice)
            model = choice.model
        if cancelled():
            return None
        options = {"batch_size": self.request.batch_size} if self.request.batch_size else {}
        indexer = Indexer(self.session.library, model, **options)
        folders = list(self.request.folders) if self.request.folders is not None else None
        return indexer.run(folders=folders, progress=report, cancel=cancelled)

    def _on_progress(self, reports: list[Any]) -> None:
        self.last_progress = reports[-1]
        self.progress.emit(reports[-1])

    def _on_done(self, report: Any) -> None:
        self.report = report
        self.ended = True
        self.done.emit(report)

    def _on_failed(self, message: str) -> None:
        self.error = message
        self.ended = True
        self.failed.emit(message)


class Session(QObject):
    """The open library and the loaded model (see the module docstring).

    Signals:

    * ``modelLoading(str)``: a model load started (its name, or "" for the default).
    * ``modelReady(ModelChoice)`` / ``modelFailed(str)``.
    * ``libraryInfo(LibraryInfo)``: fresh counts and folders.
    * ``indexingStarted(IndexingRun)`` / ``indexingDone(IndexingRun)``.
    * ``searchDone(SearchOutcome)`` / ``searchFailed(str)``.
    """

    modelLoading = Signal(str)
    modelReady = Signal(object)
    modelFailed = Signal(str)
    libraryInfo = Signal(object)
    indexingStarted = Signal(object)
    indexingDone = Signal(object)
    searchDone = Signal(object)
    searchFailed = Signal(str)

    def __init__(self, library_dir: str | os.PathLike[str] | None = None, parent: Any = None):
        super().__init__(parent)
        from app.library.library import Library

        self.library: Library = Library.open(library_dir)
        self._settings: dict[str, Any] = read_settings(self.library)
        self._written: set[str] = set()
        self.tasks = TaskSet(self)
        self.choice: ModelChoice | None = None
        self.searcher: Any = None
        self.model_error: str | None = None
        self.info = LibraryInfo()
        self.indexing: IndexingRun | None = None
        self._model_task: Task | None = None
        self._search_task: Task | None = None
        self._next_search: SearchRequest | None = None
        self._info_task: Task | None = None
        self._info_again = False
        self._queued: set[str] | None = set()  # folders to index after the run (None: all)
        self._closed = False
        self.auto_indexer: Any = None
        self._info_timer = QTimer(self)
        self._info_timer.setInterval(2000)
        self._info_timer.timeout.connect(self.refresh_info)

    # -- library settings -----------------------------------------------------------------------
    @property
    def library_dir(self) -> Path:
        """The library folder."""
        return Path(self.library.dir)

    def setting(self, key: str, default: Any = None) -> Any:
        """A library setting (shared with the CLI).

        The GUI's own settings are answered from a cache (filled at open, by every
        :meth:`refresh_info` and by :meth:`set_setting`): reading SQLite from the GUI thread
        could wait behind an indexing transaction.
        """
        if key not in self._settings:
            self._settings[key] = self.library.store.get_setting(key)
        value = self._settings[key]
        return default if value is None else value

    @property
    def read_only(self) -> bool:
        """True when the library cannot be written (search works; see ``app.gui.read_only``)."""
        return bool(self.library.store.read_only)

    def set_setting(self, key: str, value: Any) -> None:
        """Change a library setting (``None`` deletes it).

        In a read-only library the change holds for this run only (the controls that change
        settings are off there; this covers e.g. removing the library's model from disk).
        """
        if self.read_only:
            self._settings[key] = value
            return
        if value is None:
            self.library.store.delete_setting(key)
        else:
            self.library.store.set_setting(key, value)
        self._settings[key] = value
        self._written.add(key)  # a refresh already under way must not undo this

    @property
    def device(self) -> str:
        """The device models run on (library setting, ``auto`` by default)."""
        return str(self.setting(config.LIB_DEVICE, "auto") or "auto")

    @property
    def precision(self) -> str:
        """The numeric precision models run at (library setting, ``auto`` by default)."""
        return str(self.setting(config.LIB_PRECISION, "auto") or "auto")

    @property
    def result_count(self) -> int:
        """How many results a search returns."""
        try:
            return max(1, int(self.setting(config.LIB_RESULT_COUNT, config.DEFAULT_RESULT_COUNT)))
        except (TypeError, ValueError):
            return config.DEFAULT_RESULT_COUNT

    @property
    def excludes(self) -> list[str]:
        """Default exclusion patterns for new folders."""
        value = self.setting(config.LIB_EXCLUDES)
        return list(value) if isinstance(value, list) else list(config.DEFAULT_EXCLUDES)

    @property
    def thumbnails_dir(self) -> Path:
        """The disk cache of thumbnails."""
        return Path(self.library.thumbnails_dir)

    def worker_task(self, fn: Any, *, name: str) -> Task:
        """A task whose thread reads the library through its own database connection."""
        return Task(fn, name=name, context=self.library.own_connection)

    # -- library info ---------------------------------------------------------------------------
    def refresh_info(self) -> None:
        """Re-read counts and folders in a worker thread; emits ``libraryInfo``."""
        if self._closed:
            return
        if self._info_task is not None:
            self._info_again = True
            return
        self._written.clear()
        task = self.worker_task(lambda _r, _c: read_library_info(self.library), name="library-info")
        task.succeeded.connect(self._on_info)
        task.finished.connect(self._info_finished)
        self._info_task = self.tasks.start(task)

    def _on_info(self, info: LibraryInfo) -> None:
        self.info = info
        self._settings.update((k, v) for k, v in info.settings.items() if k not in self._written)
        self.libraryInfo.emit(info)

    def _info_finished(self) -> None:
        self._info_task = None
        if self._info_again:
            self._info_again = False
            self.refresh_info()

    # -- model ----------------------------------------------------------------------------------
    @property
    def model(self) -> Any:
        """The loaded LoTLIP model, or None."""
        return self.choice.model if self.choice is not None else None

    @property
    def model_loading(self) -> bool:
        """True while a model load runs."""
        return self._model_task is not None

    def load_model(self, requested: str | None = None, device: str | None = None) -> None:
        """(Re)load the library's model (or ``requested``) in a worker thread."""
        if self._closed:
            return
        if self._model_task is not None:
            self._model_task.cancel()
        device = device or self.device
        precision = self.precision
        library = self.library

        def work(_report: Any, _cancelled: Any) -> tuple[Any, Any]:
            from app.library.models import choose_model
            from app.library.search import Searcher

            leave_a_core_for_the_window()
            choice = choose_model(library, requested=requested, device=device, precision=precision)
            return choice, Searcher(library, choice.model)

        task = self.worker_task(work, name="model-load")
        task.succeeded.connect(lambda result, t=task: self._on_model(t, result))
        task.failed.connect(lambda message, t=task: self._on_model_failed(t, message))
        task.cancelled_.connect(lambda _r, t=task: self._model_task_ended(t))
        self._model_task = task
        self.modelLoading.emit(requested or "")
        self.tasks.start(task)

    def _model_task_ended(self, task: Task) -> bool:
        """Forget ``task`` as the load in flight; false when a newer load superseded it."""
        if self._model_task is not task:
            return False
        self._model_task = None
        return True

    def _on_model(self, task: Task, result: tuple[Any, Any]) -> None:
        if self._model_task_ended(task):
            self._adopt(*result)

    def _adopt(self, choice: ModelChoice, searcher: Any = None) -> None:
        if searcher is None:
            from app.library.search import Searcher

            searcher = Searcher(self.library, choice.model)
        self.choice, self.searcher, self.model_error = choice, searcher, None
        self.modelReady.emit(choice)

    def _on_model_failed(self, task: Task, message: str) -> None:
        if self._model_task_ended(task):
            self.model_error = message
            self.modelFailed.emit(message)

    def model_for_indexing(self, name: str | None, device: str | None) -> Any:
        """The loaded model when it is the one an indexing run wants (else None)."""
        choice = self.choice
        if choice is None:
            return None
        if name and name != choice.name:
            return None
        if device and device != "auto" and str(choice.model.device.type) != device.split(":")[0]:
            return None
        return choice.model

    # -- search ---------------------------------------------------------------------------------
    def search(self, request: SearchRequest) -> None:
        """Answer ``request`` in a worker thread; a newer request replaces a queued one."""
        if self._closed:
            return
        if self._search_task is not None:
            self._next_search = request
            return
        if request.mode != "browse" and self.searcher is None:
            self.searchFailed.emit(
                self.model_error or "The model is still loading; the search runs when it is ready."
            )
            return
        searcher, library = self.searcher, self.library
        task = self.worker_task(
            lambda _r, _c: run_search(searcher, library, request), name="search"
        )
        task.succeeded.connect(self._on_search)
        task.failed.connect(self._on_search_failed)
        task.finished.connect(self._search_finished)
        self._search_task = self.tasks.start(task)

    def _on_search(self, outcome: SearchOutcome) -> None:
        if self._next_search is None:  # a stale answer would only flash on screen
            self.searchDone.emit(outcome)

    def _on_search_failed(self, message: str) -> None:
        if self._next_search is None:  # a newer search is waiting: this failure is old news
            self.searchFailed.emit(message)

    def _search_finished(self) -> None:
        self._search_task = None
        pending, self._next_search = self._next_search, None
        if pending is not None:
            self.search(pending)

    @property
    def searching(self) -> bool:
        """True while a search runs."""
        return self._search_task is not None

    # -- indexing -------------------------------------------------------------------------------
    def add_folders(self, folders: Sequence[str], excludes: Sequence[str]) -> None:
        """Add (or update the exclusions of) library folders."""
        for folder in folders:
            self.library.add_folder(folder, excludes=tuple(excludes))
        self.refresh_info()

    def start_indexing(
        self,
        folders: Sequence[str] | None = None,
        *,
        model: str | None = None,
        device: str | None = None,
        batch_size: int | None = None,
        progress_rate: float = DEFAULT_RATE,
    ) -> IndexingRun:
        """Index ``folders`` (None = every library folder) in the background.

        A run already going on is returned as is. The run is noted in the library, so quitting
        before it ends resumes it at the next start. ``progress_rate``: progress signals per
        second (0 = every report; tests).
        """
        if self.indexing is not None and self.indexing.running:
            return self.indexing
        if self.read_only:
            from app.library.store import ReadOnlyStoreError

            raise ReadOnlyStoreError(f"the library at {self.library_dir} is read-only")
        request = IndexRequest(
            folders=tuple(os.path.abspath(f) for f in folders) if folders is not None else None,
            model=model,
            device=device,
            batch_size=batch_size,
        )
        if model and (self.choice is None or self.choice.name != model):
            # Searches must use the indexing model: the run loads it and the session adopts it
            # (a load in flight for another model is ignored).
            self._model_task = None
            self.choice, self.searcher = None, None
            self.modelLoading.emit(model)
        run = IndexingRun(self, request, rate=progress_rate)
        run.modelLoaded.connect(self._on_run_model)
        run.done.connect(lambda _report, r=run: self._on_run_done(r))
        run.failed.connect(lambda _message, r=run: self._on_run_done(r))
        self.indexing = run
        self.set_setting(config.LIB_RESUME, request.as_setting())
        run.start()
        self._info_timer.start()
        self.indexingStarted.emit(run)
        return run

    def index_soon(self, folders: Sequence[str] | None = None) -> IndexingRun | None:
        """Index ``folders`` (None = all) now, or right after the run that is going on.

        Watch folders, retries and rescans use this: a request that arrives during a run is
        merged with the others and started when the run ends. Returns the run started now.
        """
        if self._closed or self.read_only:
            return None
        if self.indexing is None or not self.indexing.running:
            return self.start_indexing(folders)
        if folders is None or self._queued is None:
            self._queued = None
        else:
            self._queued.update(os.path.abspath(f) for f in folders)
        return None

    @property
    def queued_folders(self) -> list[str] | None:
        """Folders waiting for the next run (``None``: every folder; ``[]``: nothing)."""
        return None if self._queued is None else sorted(self._queued)

    def _start_queued(self) -> None:
        if self._closed or (self.indexing is not None and self.indexing.running):
            return  # the queue waits for the end of that run
        queued, self._queued = self._queued, set()
        if queued is None or queued:
            self.start_indexing(None if queued is None else sorted(queued))

    @property
    def model_name(self) -> str | None:
        """The name of the model searches use (loaded, or the library's choice)."""
        if self.choice is not None:
            return self.choice.name
        value = self.setting(config.LIB_MODEL)
        return str(value) if value else None

    def _on_run_model(self, choice: ModelChoice) -> None:
        wanted = self.setting(config.LIB_MODEL)
        if self.choice is None or (wanted and choice.name == wanted):
            self._adopt(choice)

    def _on_run_done(self, run: IndexingRun) -> None:
        self._info_timer.stop()
        report = run.report
        finished = report is not None and not getattr(report, "cancelled", False)
        if (finished or run.user_cancelled or run.error) and not self._closed:
            self.set_setting(config.LIB_RESUME, None)
        if self.choice is None and not self._closed and self._model_task is None:
            self.load_model()  # the run could not provide the model; say why through a load
        self.refresh_info()
        self.indexingDone.emit(run)
        if not self._closed and not run.user_cancelled and self._queued != set():
            QTimer.singleShot(0, self._start_queued)

    def pending_resume(self) -> IndexRequest | None:
        """The run interrupted by the last quit, if any (none in a read-only library)."""
        if self.read_only:
            return None
        return IndexRequest.from_setting(self.setting(config.LIB_RESUME))

    # -- watch folders --------------------------------------------------------------------------
    def set_watching(self, enabled: bool) -> None:
        """Turn watch folders on or off (new and changed photos are indexed while running).

        A read-only library is never watched: nothing found could be indexed.
        """
        if enabled and self.auto_indexer is None and not self._closed and not self.read_only:
            from app.gui.watcher import AutoIndexer

            self.auto_indexer = AutoIndexer(self)
        elif not enabled and self.auto_indexer is not None:
            self.auto_indexer.stop()
            self.auto_indexer.deleteLater()
            self.auto_indexer = None

    @property
    def watching(self) -> bool:
        """True while watch folders are on."""
        return self.auto_indexer is not None

    # -- end ------------------------------------------------------------------------------------
    def busy(self) -> bool:
        """True while an indexing run is going on."""
        return self.indexing is not None and self.indexing.task.isRunning()

    def shutdown(self, timeout_ms: int = 60_000) -> bool:
        """Stop every worker within ``timeout_ms``, then close the library; true when all ended.

        Indexing keeps its resume note (the next start goes on). A worker still running at the
        deadline can no longer write: closing the store waits for a transaction in flight and
        then refuses every call, so the library holds whole batches only (the app then ends
        the process; see ``app.gui.main``). Calling it again waits for such leftovers.
        """
        deadline = time.monotonic() + timeout_ms / 1000
        if self._closed:
            return self.tasks.stop_all(timeout_ms)
        self.set_watching(False)
        self._closed = True
        self._info_timer.stop()
        if self.indexing is not None and self.indexing.task.isRunning():
            self.indexing.task.cancel()  # not a user cancel: the resume note stays
        stopped = self.tasks.stop_all(max(0, int((deadline - time.monotonic()) * 1000)))
        if self.indexing is not None and self.indexing.task.isRunning():
            stopped = self.indexing.wait(max(0, int((deadline - time.monotonic()) * 1000)))
        try:
            self.library.close()
        except Exception:  # closing twice or after an error must not block quitting
            log.exception("closing the library failed")
        return stopped

    def leftover_work(self) -> list[str]:
        """Names of workers still running after :meth:`shutdown`."""
        names = [t.objectName() for t in self.tasks.running()]
        if self.indexing is not None and self.indexing.task.isRunning():
            names.append("indexing")
        return names
