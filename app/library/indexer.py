"""The indexing pipeline: scan -> apply changes -> decode (parallel) -> embed -> store -> ANN.

One :class:`Indexer` run:

1. **Scan** the library's root folders (:class:`~app.library.scanner.Scanner`) and compare with
   the store (:func:`~app.library.scanner.plan_changes`).
2. **Apply** what needs no model: moves keep their id and vectors, touched files get their new
   mtime, removed files leave the store and the ANN index.
3. **Embed** new, changed and not-yet-embedded files. Decode threads (Pillow releases the GIL)
   read, decode and preprocess files ahead of the main thread, at most two batches
   plus one file per thread in flight, so memory stays flat however large the folder. While
   the main thread runs the image tower on batch *i*, the threads decode batch *i + 1*. Each
   batch is written to SQLite in **one transaction** (images + vectors), then added to the
   ANN index, which is saved after ``save_every`` batches or ``save_interval_s`` seconds,
   whichever comes first (:class:`~app.library.ann.SaveCadence`: saving a large index is not
   allowed to take over the run), and at the end; other processes' searches cover the
   changes since the last save exactly, so this keeps their extra work small. A file that
   cannot be decoded is recorded in the store's failures with its reason and skipped until
   its size or mtime changes.

What a run looks at: the root folders it is given (all of them by default). A path inside a
root folder is indexed as that part of its root (``ScanRoot.start``): its photos keep their
vectors and its root. A root folder that is offline (missing, or an empty mount point while the
library knows photos there, see :func:`~app.library.library.root_is_online`) is not scanned:
its photos stay, and the report lists it in ``offline``. Files and folders that cannot be read
and links that cannot be resolved are recorded as failures (``errors``), and what the store
knows under them stays. Links to outside the root folders are skipped and counted
(``links_outside``).

Stop and resume: once planned, the files still to embed are stored as *pending*; each
committed batch (or recorded failure) takes its files off. A stopped run (``cancel``, Ctrl-C,
quit, a crash) leaves the rest pending, ``status`` shows them, and the next run's plan embeds
exactly them (it finds them without a vector). A kill between a batch's commit and its removal
from pending overstates the count by at most one batch until the next run.

Crash safety: SQLite is the truth and each batch commits atomically, so a run killed at any
moment (SIGKILL, power loss) leaves complete batches and nothing else; the next run's plan
sees exactly which files still need a vector (no duplicates: paths are unique; no holes:
unfinished files are still "new"). The ANN file is a cache written atomically and stamped with
the store's generation; if it is behind, it catches up from the store's change record when
opened. Cancelling (the ``cancel`` callback, Ctrl-C in the CLI) stops after the current batch
and saves the index.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import torch

from app.library.ann import SaveCadence
from app.library.decode import Decoded, DecodeFailure, decode_ahead
from app.library.library import root_is_online
from app.library.paths import absolute, innermost, is_within
from app.library.scanner import ChangeSet, FileInfo, FolderPlan, ScanRoot, plan_folders
from app.library.store import Folder, ImageRecord

if TYPE_CHECKING:
    from app.library.ann import AnnIndex
    from app.library.library import Library
    from lotlip.model import LoTLIP

logger = logging.getLogger(__name__)

ProgressCallback = Callable[["IndexProgress"], None]
CancelCallback = Callable[[], bool]

PHASES = ("opening", "scanning", "updating", "embedding", "saving", "done")
"""The phases an :class:`IndexProgress` reports, in order."""


@dataclass(frozen=True)
class IndexProgress:
    """A progress report, sent from the indexing thread.

    ``phase``: one of :data:`PHASES`; ``done``/``total``: files handled and to handle in this
    phase (``total`` is 0 while unknown, e.g. during the scan); ``current``: the file just
    handled; ``rate``: files per second in the embedding phase; ``eta_s``: seconds left;
    ``failed``: files that could not be indexed so far.
    """

    phase: str
    done: int
    total: int
    current: str | None = None
    rate: float = 0.0
    eta_s: float | None = None
    failed: int = 0


@dataclass
class IndexReport:
    """What a run did. ``embedded`` = added + updated (vectors computed in this run)."""

    added: int = 0
    updated: int = 0
    unchanged: int = 0
    moved: int = 0
    removed: int = 0
    failed: int = 0
    touched: int = 0
    cancelled: bool = False
    elapsed_s: float = 0.0
    failures: list[tuple[str, str]] = field(default_factory=list)
    embedded: int = 0
    model: str = ""
    reused: int = 0  # vectors taken over from the base of a text-mode fine-tune
    offline: list[str] = field(default_factory=list)  # root folders not there: photos kept
    pending: int = 0  # files seen but not embedded yet (a stopped run); the next run takes them
    links_outside: int = 0  # symlinks to outside the folders, skipped

    def as_dict(self) -> dict[str, object]:
        """JSON-ready counts (the ``index --json`` shape); failures as ``{path, reason}``."""
        data = asdict(self)
        data["elapsed_s"] = round(self.elapsed_s, 3)
        data["failures"] = [{"path": p, "reason": r} for p, r in self.failures]
        return data

    def counts_text(self) -> str:
        """The counts in words, as the CLI, the status line and the wizard say them, e.g.
        "0 added, 8 unchanged, 8 reused from its base model, 1 could not be read" (added and
        unchanged always, the others when not zero)."""
        parts = [f"{self.added:,} added"]
        for name in ("updated", "moved", "removed", "touched"):
            if getattr(self, name):
                parts.append(f"{getattr(self, name):,} {name}")
        parts.append(f"{self.unchanged:,} unchanged")
        if self.reused:  # copied from the base model: no vector was computed for them
            parts.append(f"{self.reused:,} reused from its base model")
        if self.failed:
            parts.append(f"{self.failed:,} could not be read")
        return ", ".join(parts)


@dataclass
class _Run:
    """One run's state, shared by its steps: the index, the report, progress and cancel, and
    what planning learnt (root path -> folder id, content hashes by path, path -> id of the
    image whose content changed)."""

    ann: AnnIndex
    report: IndexReport
    tick: _Ticker
    stop: CancelCallback
    folder_ids: dict[str, int] = field(default_factory=dict)
    hashes: dict[str, str] = field(default_factory=dict)
    replaced: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class _Target:
    """A root folder to index, whole or only the part ``start`` below it."""

    folder: Folder
    start: str = ""

    @property
    def root(self) -> ScanRoot:
        """What the scanner walks."""
        return ScanRoot(self.folder.path, self.folder.excludes, self.start)


def default_workers() -> int:
    """Decode threads: one per CPU, at most 8.

    With a small model decoding is the bottleneck and every core helps; with a large one the
    threads fill the look-ahead window and then wait, so they do not compete for long.
    """
    return max(1, min(8, os.cpu_count() or 2))


class _Ticker:
    """Rate-limits progress callbacks (every call at most every ``interval`` seconds)."""

    def __init__(self, callback: ProgressCallback | None, interval: float = 0.1) -> None:
        self.callback = callback
        self.interval = interval
        self._last = 0.0

    def __call__(self, progress: IndexProgress, *, force: bool = False) -> None:
        if self.callback is None:
            return
        now = time.monotonic()
        if force or now - self._last >= self.interval:
            self._last = now
            self.callback(progress)


class Indexer:
    """Indexes a library's folders with one model. See the module docstring.

    Args:
        lib: the library.
        model: a loaded ``lotlip`` model; its ``name`` keys the vectors in the store.
        batch_size: images per forward pass and per store transaction.
        workers: decode threads (default :func:`default_workers`).
        save_every: save the ANN index after this many batches ...
        save_interval_s: ... or after this many seconds, whichever first (0: count only).
    """

    def __init__(
        self,
        lib: Library,
        model: LoTLIP,
        batch_size: int = 32,
        workers: int | None = None,
        *,
        save_every: int = 50,
        save_interval_s: float = 60.0,
    ) -> None:
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        self.lib = lib
        self.model = model
        self.batch_size = batch_size
        self.workers = workers if workers and workers > 0 else default_workers()
        self.save_every = max(1, save_every)
        self.save_interval_s = save_interval_s

    # -- the run -------------------------------------------------------------------------

    def run(
        self,
        folders: Sequence[Folder | str | os.PathLike[str]] | None = None,
        progress: ProgressCallback | None = None,
        cancel: CancelCallback | None = None,
    ) -> IndexReport:
        """Bring the index of ``folders`` (default: all root folders) up to date.

        Paths not yet in the library are added as root folders. Raises
        :class:`~app.library.library.LibraryBusyError` while another process indexes.
        """
        started = time.monotonic()
        report = IndexReport(model=self.model.name)
        tick = _Ticker(progress)
        stop = cancel or (lambda: False)
        with self.lib.writing():
            tick(IndexProgress("opening", 0, 0), force=True)
            self.lib.register_model(self.model)
            report.reused = self.lib.adopt_frozen_image_vectors(self.model)
            run = _Run(self.lib.ann(self.model.name, self.model.embed_dim), report, tick, stop)
            targets = self._targets(folders)
            try:
                self._index(targets, run)
            finally:
                tick(IndexProgress("saving", 0, 0), force=True)
                self._save(run.ann)
            report.pending = sum(
                self.lib.store.pending_count(self.model.name, under=t.root.scope) for t in targets
            )
        report.elapsed_s = time.monotonic() - started
        tick(
            IndexProgress("done", report.embedded, report.embedded, failed=report.failed),
            force=True,
        )
        logger.info("index run: %s", {k: v for k, v in report.as_dict().items() if k != "failures"})
        return report

    def _targets(self, folders: Sequence[Folder | str | os.PathLike[str]] | None) -> list[_Target]:
        """What to scan: whole roots, and parts of roots for paths inside them."""
        if folders is None:
            return [_Target(f) for f in self.lib.folders()]
        parts: dict[str, set[str]] = {}  # root path -> starts ("" = the whole root)
        for item in folders:
            text = absolute(item.path if isinstance(item, Folder) else item)
            folder = self.lib.folder_for(text) or self.lib.add_folder(text)
            start = "" if folder.path == text else os.path.relpath(text, folder.path)
            parts.setdefault(folder.path, set()).add(start.replace(os.sep, "/"))
        roots = {f.path: f for f in self.lib.folders()}
        # registered roots nested in a chosen whole one are scanned with it, as their own roots
        for path in roots:
            if any(is_within(path, p) for p, starts in parts.items() if "" in starts):
                parts.setdefault(path, set()).add("")
        targets = []
        for path, starts in sorted(parts.items()):
            if "" in starts:
                targets.append(_Target(roots[path]))
                continue
            for start in sorted(starts):  # a part inside another chosen part is walked with it
                if not any(o != start and is_within(start, o) for o in starts):
                    targets.append(_Target(roots[path], start))
        return targets

    def _index(self, targets: list[_Target], run: _Run) -> None:
        report = run.report
        counts = self.lib.store.folder_counts()
        online = []
        for target in targets:
            photos = counts.get(target.folder.id, (0, 0, 0))[0]
            if root_is_online(target.folder.path, photos > 0):
                online.append(target)
            elif target.folder.path not in report.offline:
                logger.info(
                    "folder offline, its %d photos are kept: %s", photos, target.folder.path
                )
                report.offline.append(target.folder.path)
        plan = self._plan(online, run.tick, run.stop)
        if plan is None:
            report.cancelled = True
            return
        changes = plan.changes
        run.folder_ids = {t.folder.path: t.folder.id for t in targets}
        run.hashes = changes.hashes
        run.replaced = {info.path: old.id for info, old in changes.changed}
        run.tick(IndexProgress("updating", 0, 0), force=True)
        report.links_outside = plan.stats.links_outside
        self._record_plan_failures(plan, online, run)
        embed_moves = self._apply(changes, run)
        report.unchanged = changes.unchanged
        report.failed += len(changes.failed)
        report.failures += [
            (info.path, plan.failures[info.path].reason)
            for info in changes.failed
            if info.path in plan.failures
        ]
        if run.stop():
            report.cancelled = True
            return
        todo = changes.to_embed() + embed_moves
        self.lib.store.replace_pending(
            self.model.name,
            [t.root.scope for t in online],
            [(info.path, run.folder_ids.get(info.root)) for info in todo],
        )
        self._embed_all(todo, run)

    def _plan(
        self, targets: list[_Target], tick: _Ticker, stop: CancelCallback
    ) -> FolderPlan | None:
        """Scan the targets and compare with the store; ``None`` when cancelled."""
        tick(IndexProgress("scanning", 0, 0), force=True)
        plan = plan_folders(
            self.lib,
            [t.root for t in targets],
            self.model.name,
            cancel=stop,
            found=lambda n, path: tick(IndexProgress("scanning", n, 0, current=path)),
            every=1,
        )
        n = len(plan.files)
        tick(IndexProgress("scanning", n, n), force=True)
        if plan.stats.cancelled:
            return None
        logger.info("plan: %s", plan.changes.summary())
        return plan

    def _record_plan_failures(self, plan: FolderPlan, targets: list[_Target], run: _Run) -> None:
        """Failure records for what the scan could not read (no size: retried every run; a
        root folder that is not there is no failure) and for files named like pictures that
        are not, each written only when it changed; records of paths now fine are cleared."""
        missing = set(plan.stats.missing_roots)
        roots = [t.folder for t in targets]
        failing = [
            (path, reason, getattr(innermost(path, roots), "id", None), None, None)
            for path, reason in plan.stats.errors
            if path not in missing
        ] + [
            (info.path, reason, run.folder_ids.get(info.root), info.size, info.mtime_ns)
            for info, reason in plan.rejected
        ]
        store, report = self.lib.store, run.report
        for path, reason, folder_id, size, mtime_ns in failing:
            old = plan.failures.get(path)
            if old is None or (old.reason, old.size, old.mtime_ns) != (reason, size, mtime_ns):
                store.record_failure(
                    path, reason, folder_id=folder_id, size=size, mtime_ns=mtime_ns
                )
            report.failures.append((path, reason))
        report.failed += len(failing)
        now = {path for path, *_ in failing}
        # earlier scan errors that did not come back (readable this time), and files gone
        fixed = [f.path for f in plan.failures.values() if f.size is None and f.path not in now]
        fixed += [path for path in plan.changes.stale_failures if path not in now]
        if fixed:
            store.clear_failures(fixed)

    def _apply(self, changes: ChangeSet, run: _Run) -> list[FileInfo]:
        """Touches, moves and removals (no model needed); returns moves that need a vector."""
        store, report = self.lib.store, run.report
        if changes.touched:
            store.touch_images((old.id, info.size, info.mtime_ns) for info, old in changes.touched)
            report.touched = len(changes.touched)
        unrecorded: list[FileInfo] = []
        for move in changes.moved:
            try:
                store.move_image(
                    move.old.path,
                    move.new.path,
                    folder_id=run.folder_ids.get(move.new.root),
                    size=move.new.size,
                    mtime_ns=move.new.mtime_ns,
                    hash=changes.hashes.get(move.new.path),
                )
            except (KeyError, ValueError) as exc:
                logger.warning("could not record the move of %s: %s", move.old.path, exc)
                unrecorded.append(move.new)
                continue
            report.moved += 1
        if changes.removed:
            gone = [k.id for k in changes.removed]
            report.removed = store.remove_images(gone)
            run.ann.delete(gone)
        return unrecorded

    # -- embedding -------------------------------------------------------------------------

    def _embed_all(self, todo: list[FileInfo], run: _Run) -> None:
        """Decode ``todo`` in the thread pool (:func:`decode_ahead`), embed and store it."""
        total = len(todo)
        done = 0
        started = time.monotonic()
        interval = self.save_interval_s if self.save_interval_s > 0 else float("inf")
        cadence = SaveCadence(every=self.save_every * self.batch_size, interval_s=interval)
        batch: list[Decoded] = []

        def emit(current: str | None, force: bool = False) -> None:
            elapsed = max(1e-6, time.monotonic() - started)
            rate = done / elapsed
            eta = (total - done) / rate if rate > 0 else None
            progress = IndexProgress(
                "embedding", done, total, current, rate, eta, run.report.failed
            )
            run.tick(progress, force=force)

        emit(None, force=True)
        decoded = decode_ahead(
            todo,
            self.model,
            batch_size=self.batch_size,
            workers=self.workers,
            hashes=run.hashes,
            folder_ids=run.folder_ids,
            stop=run.stop,
        )
        with contextlib.closing(decoded) as items:
            for item in items:
                if isinstance(item, DecodeFailure):
                    self._record_failure(item, run)
                    done += 1
                    emit(item.info.path)
                    continue
                batch.append(item)
                if len(batch) < self.batch_size:
                    continue
                self._commit(batch, run)
                done += len(batch)
                emit(batch[-1].info.path, force=True)
                cadence.note(len(batch))
                batch = []
                if cadence.due():
                    cadence.saved(self._save(run.ann))
        if run.stop():
            run.report.cancelled = True
            logger.info("indexing cancelled; %d decoded files were not committed", len(batch))
            return
        if batch:
            self._commit(batch, run)
            done += len(batch)
            emit(batch[-1].info.path, force=True)

    def _commit(self, batch: list[Decoded], run: _Run) -> None:
        """Embed one batch, then :meth:`_store` it."""
        vectors = self.model.embed_pixels(torch.stack([d.pixels for d in batch]))
        self._store([d.record for d in batch], vectors, run)

    def _store(self, records: list[ImageRecord], vectors: np.ndarray, run: _Run) -> None:
        """Write images and vectors in one transaction, then add them to the ANN index."""
        ids = self.lib.store.upsert_images_with_embeddings(records, self.model.name, vectors)
        run.ann.add(np.asarray(ids, dtype=np.int64), vectors)
        self.lib.store.clear_pending(self.model.name, [r.path for r in records])
        updated = sum(record.path in run.replaced for record in records)
        run.report.updated += updated
        run.report.added += len(records) - updated
        run.report.embedded += len(records)

    def _record_failure(self, failure: DecodeFailure, run: _Run) -> None:
        path = failure.info.path
        logger.info("cannot index %s: %s", path, failure.reason)
        old_id = run.replaced.get(path)
        if old_id is not None:  # its content changed into something unreadable
            self.lib.store.remove_images([old_id])
            run.ann.delete([old_id])
        self.lib.store.record_failure(
            path,
            failure.reason,
            folder_id=run.folder_ids.get(failure.info.root),
            size=failure.size,
            mtime_ns=failure.mtime_ns,
        )
        self.lib.store.clear_pending(self.model.name, [path])
        run.report.failed += 1
        run.report.failures.append((path, failure.reason))

    def _save(self, ann: AnnIndex) -> float:
        """Save the index; returns the seconds it took."""
        started = time.monotonic()
        try:
            ann.save(prune=True)
        except OSError as exc:  # the index is a cache: the next open rebuilds it
            logger.warning("could not save the ANN index: %s", exc)
        return time.monotonic() - started
