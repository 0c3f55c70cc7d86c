"""The photo library on disk: a folder with the database, the ANN indexes and a write lock.

Layout of a library folder (default :func:`default_library_dir`)::

    library.db      SQLite (source of truth, see app.library.store)
    ann/<model>.hnsw  one HNSW index per model (caches, see app.library.ann)
    write.lock      held by the one process that writes (indexing, forgetting)
    demo/           scenes written by ``lotlip-search demo``

:class:`Library` ties these together for the indexer, the searcher, the CLI and the GUI:
folders, forgetting paths, one cached :class:`~app.library.ann.AnnIndex` per model, and the
write lock. Writers (the indexer, :meth:`Library.forget`) run inside :meth:`Library.writing`;
readers never block.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import logging
import os
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import platformdirs

from app.library.ann import (
    AnnIndex,
    AnnIndexError,
    AnnParams,
    Progress,
    ann_path,
    saved_generation,
    sidecar_path,
)
from app.library.locking import FileLock, LockBusyError
from app.library.paths import absolute, innermost, is_within
from app.library.scanner import rebase_pattern
from app.library.store import Folder, Store

if TYPE_CHECKING:
    from lotlip.model import LoTLIP

logger = logging.getLogger(__name__)

LIBRARY_ENV = "LOTLIP_SEARCH_LIBRARY"
"""Environment variable that picks the library folder (``--library`` wins over it)."""

DB_FILE = "library.db"
LOCK_FILE = "write.lock"
FINGERPRINT_KEY = "fingerprint"
PRECISION_KEY = "precision"
"""Model metadata key: the precision the latest index run embedded at."""


class LibraryBusyError(RuntimeError):
    """Another process is writing to the library (indexing or forgetting)."""


def default_library_dir() -> Path:
    """``$LOTLIP_SEARCH_LIBRARY``, else the platformdirs user data dir ``lotlip-search/library``."""
    override = os.environ.get(LIBRARY_ENV)
    if override:
        return Path(override).expanduser()
    return Path(platformdirs.user_data_dir("lotlip-search", appauthor=False)) / "library"


@dataclass(frozen=True)
class FolderStatus:
    """A root folder as the status display and the app show it.

    ``online``: its root is there (see :func:`root_is_online`); an offline folder keeps its
    photos, and search flags them. ``photos``: images stored; ``failures``: files that could
    not be indexed; ``pending``: files seen by a stopped run but not embedded yet (the next
    ``index`` run takes them up).
    """

    id: int
    path: str
    excludes: tuple[str, ...]
    online: bool
    photos: int
    failures: int
    pending: int


@dataclass(frozen=True)
class VectorSet:
    """The stored vectors that answer a model's queries (:meth:`Library.vector_set`).

    ``name``: where the vectors these weights made are stored -- the model's name, or
    ``name@<fingerprint>`` when they were set aside while other weights held the name -- or
    ``None`` when these weights have made none (a query is never compared with vectors of
    other weights). ``warning``: what a search should tell the user, or ``None``.
    """

    name: str | None
    warning: str | None = None


def root_is_online(path: str, has_photos: bool) -> bool:
    """Whether a root folder's drive is there.

    Offline: the folder is missing (an unplugged drive, an unmounted share), or it is empty
    while the library knows photos in it -- the mount point an unplugged drive leaves
    behind, whose photos must not be taken for deleted. A folder that exists but cannot be
    read counts as online: the scan records that as a failure.
    """
    try:
        with os.scandir(path) as entries:
            empty = next(entries, None) is None
    except (FileNotFoundError, NotADirectoryError):
        return False
    except OSError:
        return True
    return not (empty and has_photos)


@functools.lru_cache(maxsize=64)
def _sampled_file_hash(path: str, size: int, mtime_ns: int, block: int = 64 * 1024) -> str:
    """BLAKE2b-128 of a weights file's size and three 64 KiB blocks (start, middle, end).

    Enough to tell two weights files apart cheaply (hundreds of MB, read at every start), and
    the same value libraries already store; photos use the whole-file ``content_hash``.
    Remembered per path, size and ``mtime_ns`` (which only keys the cache).
    """
    h = hashlib.blake2b(digest_size=16)
    with open(path, "rb") as fh:
        h.update(size.to_bytes(8, "little"))
        if size <= 3 * block:
            h.update(fh.read())
        else:
            for offset in (0, (size - block) // 2, size - block):
                fh.seek(offset)
                h.update(fh.read(block))
    return h.hexdigest()


def model_fingerprint(model: LoTLIP) -> str | None:
    """A fingerprint of the weights file a model was loaded from (``None`` if in memory).

    Vectors made by other weights under the same name (an updated bundled model, a re-run
    fine-tune) must never be compared with this model's queries; the fingerprint tells them
    apart. A model folder records the digest of every byte of its weights when it is saved
    (free to read back); older folders and official ``.pt`` files get a sampled file hash.
    It hashes the file, not the tensors, so it is the same on every device and dtype.
    """
    from lotlip.folders import weights_fingerprint

    meta = getattr(model, "metadata", {}) or {}
    if meta.get("path"):
        recorded = weights_fingerprint(meta["path"], meta)
        if recorded:
            return recorded
    candidates = []
    if meta.get("path"):
        candidates.append(Path(meta["path"]) / "model.safetensors")
    if meta.get("source"):
        candidates.append(Path(meta["source"]))
    for candidate in candidates:
        try:
            st = candidate.stat()
            return _sampled_file_hash(str(candidate), st.st_size, st.st_mtime_ns)
        except OSError:
            continue
    return None


def archived_name(name: str, fingerprint: str | None) -> str:
    """Where the vectors of ``name`` made by other weights are kept: ``name@<fingerprint>``."""
    return f"{name}@{(fingerprint or 'unknown')[:12]}"


def _same_weights(
    metadata: dict[str, object], dim: int, fingerprint: str | None, model_dim: int
) -> bool:
    """Whether vectors recorded with ``metadata``/``dim`` were made by these weights (an
    unrecorded fingerprint counts as the same: vectors from before fingerprints existed)."""
    before = metadata.get(FINGERPRINT_KEY)
    return dim == model_dim and not (fingerprint and before and before != fingerprint)


def _same_image_tower(metadata: dict[str, Any]) -> bool:
    """Whether a fine-tune's image tower is bit-identical to its base model's.

    Its own tower's fingerprint is read from its weights file; the base's was recorded when it
    was fine-tuned (``base_image_tower_blake2b``), or is read from the base's folder when the
    base is an installed model in our format. Fine-tunes from before that record, of a base
    that is not a folder, fall back to their mode: ``text`` froze the tower.
    """
    from lotlip import registry
    from lotlip.folders import BASE_IMAGE_TOWER_KEY, image_tower_fingerprint

    own = image_tower_fingerprint(metadata["path"]) if metadata.get("path") else None
    base = metadata.get(BASE_IMAGE_TOWER_KEY)
    if not base:
        folder = registry.resolve_folder(str(metadata.get("base_model")))
        base = image_tower_fingerprint(folder) if folder is not None else None
    if own and base:
        return own == base
    return metadata.get("mode") == "text"


def image_tower_base(model: LoTLIP) -> str | None:
    """The base model whose image tower ``model`` (a fine-tune) has bit for bit, so whose image
    vectors it makes (see :func:`_same_image_tower`); ``None`` for any other model. Reads
    weights files: call once per model."""
    meta = model.metadata or {}
    base = meta.get("base_model")
    if not base or base == model.name or not _same_image_tower(meta):
        return None
    return str(base)


class _CallersStore:
    """Stands in for ``library.store`` in objects that outlive a thread (cached ANN indexes):
    every attribute is looked up on the calling thread's connection at the time of the call."""

    def __init__(self, library: Library) -> None:
        self._library = library

    def __getattr__(self, name: str) -> Any:
        return getattr(self._library.store, name)


class Library:
    """An open library folder. Create with :meth:`open`; close with :meth:`close`.

    Thread-safe: the store serialises its calls, the ANN cache has a lock, each index has its
    own. The GUI may search from one thread while an :class:`~app.library.indexer.Indexer` runs
    in another; they share the same in-memory index.
    """

    def __init__(self, directory: Path, store: Store, ann_params: AnnParams | None = None) -> None:
        """Wrap an open store; use :meth:`open` instead."""
        self.dir = directory
        self._store = store
        self._local = threading.local()  # .store: a thread's own connection (own_connection)
        # cached indexes outlive the thread that opened them: they reach the store through this
        self._callers = _CallersStore(self)
        self.ann_params = ann_params or AnnParams()
        self._anns: dict[str, AnnIndex] = {}
        self._set_warnings: dict[tuple[Any, ...], str] = {}  # vector_set's, per state
        self._anns_lock = threading.RLock()
        self._reloads: dict[str, threading.Thread] = {}
        self._builds: dict[str, threading.Thread] = {}  # indexes built for searchers
        self._closing = threading.Event()
        self._write_lock = FileLock(directory / LOCK_FILE)

    @classmethod
    def open(
        cls,
        path: str | os.PathLike[str] | None = None,
        *,
        ann_params: AnnParams | None = None,
        create: bool = True,
    ) -> Library:
        """Open the library at ``path`` (default: the default folder).

        ``create``: make the folder and a new database when there is none; otherwise a missing
        one raises :class:`~app.library.store.DatabaseNotFoundError`. A library whose folder or
        database is not writable opens read-only (``store.read_only``).
        """
        directory = Path(os.path.abspath(Path(path or default_library_dir()).expanduser()))
        if create:
            directory.mkdir(parents=True, exist_ok=True)
        store = Store.open(directory / DB_FILE, create=create)
        logger.debug("opened library %s", directory)
        return cls(directory, store, ann_params)

    @property
    def store(self) -> Store:
        """The database: this thread's own connection inside :meth:`own_connection`, else the
        connection the library was opened with (shared by threads, calls serialised)."""
        return getattr(self._local, "store", None) or self._store

    @contextlib.contextmanager
    def own_connection(self) -> Iterator[Store]:
        """Give the calling thread its own database connection for the block.

        :attr:`store` returns it in this thread, so a worker thread's reads and writes never
        wait for another thread's long read or transaction on the shared connection (SQLite
        in WAL mode lets them run side by side). Closed at the end of the block; nests.
        """
        if getattr(self._local, "store", None) is not None:
            yield self._local.store
            return
        store = Store.open(self._store.path)
        self._local.store = store
        try:
            yield store
        finally:
            self._local.store = None
            store.close()

    def close(self) -> None:
        """Stop index builds (saving what they built), drop the caches and close the database
        (safe to call twice)."""
        self._closing.set()
        self.wait_for_builds()
        self.wait_for_reloads()
        with self._anns_lock:
            self._anns.clear()
        self._store.close()

    def __enter__(self) -> Library:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- places --------------------------------------------------------------------------

    @property
    def ann_dir(self) -> Path:
        """Folder of the HNSW index files."""
        return self.dir / "ann"

    @property
    def thumbnails_dir(self) -> Path:
        """Folder for thumbnails (written by the GUI)."""
        return self.dir / "thumbnails"

    @property
    def demo_dir(self) -> Path:
        """Where ``lotlip-search demo`` writes its scenes."""
        return self.dir / "demo"

    # -- folders -------------------------------------------------------------------------

    def add_folder(self, path: str | os.PathLike[str], excludes: Iterable[str] = ()) -> Folder:
        """Add a root folder and return the root folder that now holds ``path``.

        For a known root, ``excludes`` join the patterns it already has. A path inside a known
        root adds no root: that root is returned, with ``excludes`` rewritten relative to it.
        Known roots inside a new one become part of it (their photos keep their vectors).
        """
        text = absolute(path)
        holder = self.folder_for(text)
        rel = ""
        if holder is not None and holder.path != text:
            rel = os.path.relpath(text, holder.path).replace(os.sep, "/")
        patterns = list(holder.excludes) if holder is not None else []
        for pattern in excludes:
            rebased = rebase_pattern(pattern, rel) if rel else [pattern]
            patterns += [p for p in rebased if p not in patterns]
        if holder is not None:
            return self.store.add_folder(holder.path, patterns)
        folder = self.store.add_folder(text, patterns)
        nested = [f for f in self.folders() if f.id != folder.id and is_within(f.path, text)]
        if nested:
            logger.info("%s now holds the library folders %s", text, [f.path for f in nested])
            folder = self.store.absorb_folders(folder, nested)
        return folder

    def folders(self) -> list[Folder]:
        """All root folders, by path."""
        return self.store.folders()

    def folder_for(self, path: str | os.PathLike[str]) -> Folder | None:
        """The innermost root folder that holds ``path`` (or is it), or ``None``."""
        return innermost(absolute(path), self.folders())

    def folder_status(self, model: str | None = None) -> list[FolderStatus]:
        """Every root folder with its online state and counts (pending for ``model``, or any)."""
        counts = self.store.folder_counts(model)
        result = []
        for folder in self.folders():
            photos, failures, pending = counts.get(folder.id, (0, 0, 0))
            online = root_is_online(folder.path, photos > 0)
            result.append(
                FolderStatus(
                    folder.id, folder.path, folder.excludes, online, photos, failures, pending
                )
            )
        return result

    def forget(self, path: str | os.PathLike[str]) -> int:
        """Remove the images at or below ``path`` from the store and the ANN indexes that had them.

        Exactly that subtree: ``photos/2020`` leaves ``photos/trips/2020`` and
        ``photos/2020-old``. Root folders at or below ``path`` are removed altogether. For a
        path inside a root, its images, failure records and pending files go and the anchored
        exclude ``/<relative path>`` is added to the root, so the next index run does not
        bring them back. The store changes in one transaction (:meth:`Store.forget_path`).
        Returns how many images were removed. Raises :class:`LibraryBusyError` while another
        process indexes.
        """
        text = absolute(path)
        with self.writing():
            before = {m.name: self.store.generation(m.name) for m in self.store.models()}
            gone = self.store.forget_path(text)
            for name, generation in before.items():
                # only sets that lost vectors (their generation moved); each takes the removals
                # from the change record, so neither these nor the others are rebuilt
                if self.store.generation(name) != generation:
                    self._take_removals(name, gone)
        logger.info("forgot %d images under %s", len(gone), text)
        return len(gone)

    def _take_removals(self, name: str, gone: np.ndarray) -> None:
        """Apply removed vectors to the index of ``name`` if one is open or saved (a set
        without a file is built from the store when it is first searched, as always)."""
        with self._anns_lock:
            cached = name in self._anns
        if not cached and not ann_path(self.dir, name).exists():
            return
        index = self.ann(name, self.store.model_dim(name))  # the file + the change record
        index.delete(gone)
        index.save()

    # -- writing -------------------------------------------------------------------------

    @contextlib.contextmanager
    def writing(self) -> Iterator[Library]:
        """Hold the library's write lock for the block (re-entrant within this process).

        Raises :class:`LibraryBusyError` when another process writes. On the way in, cached
        indexes made stale by other processes are dropped; on the way out every cached index
        that changed is saved (or dropped, if it no longer matches the store).
        """
        outermost = not self._write_lock.held
        try:
            self._write_lock.acquire()
        except LockBusyError:
            pid = self._write_lock.holder_pid()
            who = f" (process {pid})" if pid else ""
            raise LibraryBusyError(
                f"another LoTLIP Search process{who} is indexing this library ({self.dir}); "
                "wait for it to finish"
            ) from None
        try:
            if outermost:
                self._drop_stale_anns()
            yield self
        finally:
            try:
                if outermost:
                    self._settle_anns()
            finally:
                self._write_lock.release()

    @property
    def is_writing(self) -> bool:
        """True while this process holds the write lock."""
        return self._write_lock.held

    def _drop_stale_anns(self) -> None:
        """Bring cached indexes up to what other processes wrote, into the graph (writer)."""
        with self._anns_lock:
            for name, index in list(self._anns.items()):
                if index.partial_upto is not None:
                    continue  # its builder catches up as it goes
                try:
                    index.catch_up()
                except AnnIndexError:
                    del self._anns[name]
                    continue
                index.fold()

    def _settle_anns(self) -> None:
        with self._anns_lock:
            for name, index in list(self._anns.items()):
                if index.partial_upto is not None or index.generation == self.store.generation(
                    name
                ):
                    continue
                try:
                    index.save()
                except OSError as exc:
                    logger.warning("could not save the %s index: %s", name, exc)
                if index.generation != self.store.generation(name):
                    del self._anns[name]

    # -- models and indexes ----------------------------------------------------------------

    def register_model(self, model: LoTLIP) -> bool:
        """Record ``model`` in the store under its name, keyed to its weights' fingerprint.

        A model is its name *and* its weights. When the name's vectors were made by other
        weights (another fingerprint or dimension), they are set aside under
        ``name@<fingerprint>`` (see :func:`archived_name`), never deleted, and vectors these
        weights made earlier (set aside the same way) take the name again, so switching back
        and forth re-embeds nothing. Returns true when the name's vectors were swapped.
        Call inside :meth:`writing`.
        """
        name, dim = model.name, model.embed_dim
        fingerprint = model_fingerprint(model)
        old = self.store.get_model(name)
        swapped = False
        if old is not None and not _same_weights(old.metadata, old.dim, fingerprint, dim):
            aside = self._free_name(archived_name(name, old.metadata.get(FINGERPRINT_KEY)))
            self.store.rename_model(name, aside)
            self.drop_ann(aside, delete_file=True)
            logger.info("model %s has new weights; its old vectors are kept as %s", name, aside)
            old, swapped = None, True
        if old is None and fingerprint:
            kept = self.store.get_model(archived_name(name, fingerprint))
            if kept is not None and _same_weights(kept.metadata, kept.dim, fingerprint, dim):
                self.store.rename_model(kept.name, name)
                self.drop_ann(kept.name, delete_file=True)
                logger.info("model %s: its vectors kept as %s are used again", name, kept.name)
                old, swapped = self.store.get_model(name), True
        if swapped:
            self.drop_ann(name, delete_file=True)
        meta = dict(old.metadata) if old is not None else {}
        if fingerprint:
            meta[FINGERPRINT_KEY] = fingerprint
        # Informational: vectors of every precision stay comparable (docs/PERFORMANCE.md).
        meta[PRECISION_KEY] = getattr(model, "precision", "fp32")
        source = model.metadata.get("kind") or model.metadata.get("format")
        path = model.metadata.get("path") or model.metadata.get("source")
        self.store.add_model(name, dim, source=source, path=path, metadata=meta)
        return swapped

    def _free_name(self, wanted: str) -> str:
        name, n = wanted, 1
        while self.store.get_model(name) is not None:
            n += 1
            name = f"{wanted}-{n}"
        return name

    def adopt_frozen_image_vectors(self, model: LoTLIP, sample: int = 3) -> int:
        """Reuse the base model's vectors for a fine-tune whose image tower is its base's.

        Every photo with a base vector and none of the fine-tune's gets a copy of the base's
        (the fine-tune's own vectors are kept): on its first index run, and after photos were
        indexed with the base alone. Whatever the fine-tune mode was called (``text``,
        ``text-last-n``), what decides is the image tower: its weights must be bit-identical to
        the base's (see :func:`_same_image_tower`). The library's base vectors are then checked,
        not assumed: ``sample`` of the photos to copy that can be read are embedded again with
        ``model`` and must match them (cosine > 0.999), which also catches a library indexed
        with other weights under the base's name; one readable photo is enough to decide. When
        none of the photos tried can be read (their drive is unplugged, the files moved), the
        tower's bit-identity alone decides and the vectors are copied: copying needs no files,
        and those photos can then be found with the fine-tune while their drive is away.
        Returns how many vectors were copied. Call inside :meth:`writing`, after
        :meth:`register_model`.
        """
        meta = model.metadata or {}
        base = meta.get("base_model")
        if not base or base == model.name:
            return 0
        record = self.store.get_model(base)
        if record is None or record.dim != model.embed_dim:
            return 0
        missing = self.store.embedding_ids_missing(base, model.name)
        if not len(missing):
            return 0
        if not _same_image_tower(meta):
            logger.info("%s: its image tower differs from %s's; indexing", model.name, base)
            return 0
        same = self._same_image_vectors(model, base, missing, sample)
        if same is None:
            logger.info(
                "%s: no photo to copy could be read to check %s's vectors; its image tower is "
                "the same, copying them",
                model.name,
                base,
            )
        elif not same:
            logger.info("%s: image vectors differ from %s; indexing", model.name, base)
            return 0
        copied = self.store.copy_embeddings(base, model.name)
        logger.info("%s: reused %d image vectors of its base model %s", model.name, copied, base)
        return copied

    def _same_image_vectors(
        self, model: LoTLIP, base: str, ids: np.ndarray, sample: int, tries: int = 32
    ) -> bool | None:
        """Whether ``model`` embeds photos of ``ids`` as their stored ``base`` vectors, checked
        on the first ``sample`` of them that can be read among ``tries`` spread over ``ids``
        (photos of one folder have neighbouring ids, so an offline folder rarely hides every
        photo tried); ``None`` when none of those can be read."""
        from lotlip.transforms import ImageLoadError, load_image

        picks = np.unique(np.linspace(0, len(ids) - 1, num=min(tries, len(ids))).astype(int))
        # the first ids before the spread: the photos the check always used while readable
        order = list(dict.fromkeys([*range(min(sample, len(ids))), *picks.tolist()]))
        found, stored = self.store.vectors_for(ids[order], base)
        rows = {row.id: row.path for row in self.store.rows_for(found)}
        size = model.config.vision.image_size
        images, kept = [], []
        for row, image_id in enumerate(found.tolist()):
            if len(images) == sample:
                break
            try:
                images.append(load_image(rows[image_id], size))
            except (ImageLoadError, KeyError, OSError):
                continue  # offline, moved or damaged: another photo checks the vectors
            kept.append(row)
        if not images:
            return None
        fresh = model.embed_images(images)
        return bool(np.all(np.sum(fresh * stored[kept], axis=1) > 0.999))

    def vector_set(self, model: LoTLIP) -> VectorSet:
        """Which stored vectors answer ``model``'s queries, and what to say about them.

        Vectors are matched to weights, not only to a name: right after a model's weights
        changed (before an index run sets the old vectors aside), the name's vectors are the
        old weights' and are not used; vectors these weights made earlier and that were set
        aside as ``name@<fingerprint>`` are used as they are. The warning says how many photos
        these weights have embedded when other weights of the name have embedded more, and
        that those vectors are kept.
        """
        name, dim = model.name, model.embed_dim
        record = self.store.get_model(name)
        if record is None:
            return VectorSet(name)  # nothing indexed with this name: the empty-library hint
        fingerprint = model_fingerprint(model)
        if _same_weights(record.metadata, record.dim, fingerprint, dim):
            return VectorSet(name, self._others_have_more(name, name))
        kept = self.store.get_model(archived_name(name, fingerprint)) if fingerprint else None
        if kept is not None and _same_weights(kept.metadata, kept.dim, fingerprint, dim):
            return VectorSet(kept.name, self._others_have_more(name, kept.name))
        warning = self._others_have_more(name, None)
        # no other weights' vectors to leave out: the name's empty set gives the usual hint
        return VectorSet(None, warning) if warning else VectorSet(name)

    def _others_have_more(self, name: str, used: str | None) -> str | None:
        """The warning for a model ``name`` whose current weights' vectors are ``used``: how
        many photos these weights embedded, when other weights of that name embedded more."""
        family = [m.name for m in self.store.models() if m.name.split("@", 1)[0] == name]
        if len(family) < 2 and used is not None:
            return None
        # counting vectors is a scan: once per state of the sets (their generations)
        key = (used, *((m, self.store.generation(m)) for m in family))
        if key not in self._set_warnings:
            counts = {m: self.store.embedding_count(m) for m in family}
            mine = counts.pop(used, 0) if used else 0
            others = {m: n for m, n in sorted(counts.items()) if n > mine}
            listed = ", ".join(
                f"{n} vectors of " + ("its previous weights" if m == name else m)
                for m, n in others.items()
            )
            self._set_warnings[key] = listed and (
                f"with its current weights, {name} has embedded {mine} of the library's "
                f"{self.store.image_count()} photos; {listed} are kept and used again when you "
                "switch back to those weights. Run `lotlip-search index` to embed the photos "
                "with these weights"
            )
        return self._set_warnings[key] or None

    def ann(
        self,
        model_name: str,
        dim: int | None = None,
        *,
        refresh: bool = False,
        progress: Progress | None = None,
    ) -> AnnIndex:
        """The ANN index of ``model_name``, opened (or rebuilt from the store) once and cached.

        ``refresh``: catch a cached index up with what another process wrote since (searchers
        pass this; inside :meth:`writing` the cached index is the live one and is returned as
        is). While no complete index file exists, a searcher gets the index as far as it is
        built (from a partial file, or nothing) and a thread builds the rest, saving as it goes;
        searches read the vectors it has not reached yet from the store exactly, so they never
        wait for the build. Callers without ``refresh`` (writers) wait for such a build to
        finish. Changes since the saved file are searched exactly on top of it. Once the delta
        exceeds ``AnnParams.delta_reload`` and the writer has saved a newer file, that file is
        loaded in a background thread and swapped in; searches do not wait for it. Only a
        reader that fell behind the change record (idle through two writer saves) loads the
        file on its query. Inside :meth:`writing` the delta is folded into the graph. A rebuilt
        index is saved only when no other process holds the write lock (the writer saves its
        own).
        """
        if not refresh:
            self._join(self._builds, model_name)
        with self._anns_lock:
            index = self._anns.get(model_name)
            if index is not None:
                if not refresh or self.is_writing:
                    return index
                index = self._caught_up(index)
            if index is None:
                index = self._open_ann(model_name, dim, progress, background=refresh)
            self._anns[model_name] = index
            if self.is_writing:
                index.fold()
            return index

    def _caught_up(self, index: AnnIndex) -> AnnIndex | None:
        """``index`` brought up to the store, a freshly loaded file, or ``None`` (reopen)."""
        try:
            index.catch_up()
        except AnnIndexError as exc:
            logger.debug("index %s: %s; loading the saved file again", index.model, exc)
            return None
        if (
            index.delta_count > self.ann_params.delta_reload
            and index.base_generation is not None
            and index.partial_upto is None
        ):
            newer = saved_generation(index.path)
            if newer is not None and newer > index.base_generation:
                self._reload_in_background(index)
        return index

    def _reload_in_background(self, index: AnnIndex) -> None:
        """Load the newer saved file in a thread; searches go on with ``index`` meanwhile."""
        name = index.model
        if name in self._reloads:
            return

        def reload() -> None:
            try:
                fresh = index.reloaded()
            except Exception as exc:  # a failed reload only keeps the delta
                logger.debug("background reload of the %s index failed: %s", name, exc)
                return
            with self._anns_lock:
                if self._anns.get(name) is index and not self.is_writing:
                    self._anns[name] = fresh
                    logger.debug("swapped in the %s index saved at %s", name, fresh.base_generation)

        self._start(self._reloads, name, reload, "reload")

    def _start(
        self, threads: dict[str, threading.Thread], name: str, work: Callable[[], None], what: str
    ) -> None:
        """Run ``work`` in a thread listed in ``threads`` under ``name`` while it runs."""

        def run() -> None:
            try:
                work()
            finally:
                with self._anns_lock:
                    if threads.get(name) is threading.current_thread():
                        del threads[name]

        thread = threading.Thread(target=run, name=f"ann-{what}-{name}", daemon=True)
        with self._anns_lock:
            threads[name] = thread
        thread.start()

    def wait_for_reloads(self) -> None:
        """Wait for background index reloads to finish (tests, :meth:`close`)."""
        self._join(self._reloads)

    def wait_for_builds(self) -> None:
        """Wait for background index builds to finish (tests, :meth:`close`)."""
        self._join(self._builds)

    def _join(self, threads: dict[str, threading.Thread], name: str | None = None) -> None:
        """Wait for the threads listed in ``threads`` (only the one of ``name``, if given)."""
        with self._anns_lock:
            running = [t for n, t in threads.items() if name is None or n == name]
        for thread in running:
            thread.join()

    def _open_ann(
        self, model_name: str, dim: int | None, progress: Progress | None, *, background: bool
    ) -> AnnIndex:
        """The saved index; else one being built (in a thread when ``background``)."""
        path = ann_path(self.dir, model_name)
        index = AnnIndex.open(path, self._callers, model_name, dim, params=self.ann_params)
        if index.rebuild_reason is None:
            return index
        if background:
            self._build_in_background(index)
        else:
            index.extend(progress=progress, checkpoint=lambda: self._save_if_free(index))
        return index

    def _build_in_background(self, index: AnnIndex) -> None:
        """Finish building ``index`` in a thread with its own connection, saving as it goes."""
        name = index.model

        def build() -> None:
            try:
                with self.own_connection():
                    index.extend(
                        checkpoint=lambda: self._save_if_free(index),
                        cancelled=self._closing.is_set,
                    )
            except Exception as exc:  # the next search starts again from the saved part
                logger.warning("building the %s index failed: %s", name, exc)
                with self._anns_lock:
                    if self._anns.get(name) is index:
                        del self._anns[name]

        self._start(self._builds, name, build, "build")

    def _save_if_free(self, index: AnnIndex) -> None:
        """Save ``index`` unless the library is read-only or another process writes it."""
        if self.store.read_only or not self._write_lock.try_acquire():
            return
        try:
            index.save(index.generation)
        except OSError as exc:
            logger.warning("could not save the %s index: %s", index.model, exc)
        finally:
            self._write_lock.release()

    def drop_ann(self, model_name: str, *, delete_file: bool = False) -> None:
        """Forget the cached index of ``model_name`` (and delete its files if asked)."""
        with self._anns_lock:
            self._anns.pop(model_name, None)
        if delete_file:
            path = ann_path(self.dir, model_name)
            path.unlink(missing_ok=True)
            sidecar_path(path).unlink(missing_ok=True)
