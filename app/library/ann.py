"""One HNSW index per model (hnswlib): a cache of the store's vectors for fast k-NN search.

The file ``<library>/ann/<model>.hnsw`` (see :func:`ann_path`) holds the graph; a JSON sidecar
``<model>.hnsw.json`` records what it was built from: dim, space, M, ef_construction, live and
deleted label counts, the file size and CRC-32, the library id and the store **generation** of
the model (see :mod:`app.library.store`). Labels are image ids from the store; vectors are
L2-normalised and compared by inner product, so scores are cosine similarities (higher is
better).

Readers and the writer (one per library, see :mod:`app.library.library`):

* The **writer** (indexer, forget) applies each change to the store first, then to its
  in-memory index, and saves the file now and then (:class:`SaveCadence`) and at the end.
  :meth:`AnnIndex.save` stamps the store's generation; the indexer's saves also prune the
  store's change record up to the previous file.
* A **reader** loads the file, which may be behind the store, and catches up from the store's
  change record (:meth:`~app.library.store.Store.embedding_changes`): every id added,
  replaced or removed since the file's generation is hidden in the graph (``mark_deleted``)
  and its current vector, if any, is kept aside and searched exactly (a numpy dot product);
  the two result lists are merged. :meth:`AnnIndex.catch_up` repeats this for later changes.
  No rebuild and no waiting for the writer: the delta stays small because the writer saves.

**Building** (:meth:`AnnIndex.empty`, :meth:`AnnIndex.extend`) goes a chunk of ids at a time,
each read in its own snapshot together with the changes since the previous chunk, adding on
every core, and saves the unfinished index now and then (:func:`build_cadence`) with
``partial_upto`` in its sidecar: the graph holds every stored id up to that one. A build that
is killed resumes from that file (:meth:`AnnIndex.open`); until it is complete a
search reads the ids after ``partial_upto`` from the store and scores them exactly, so no
query waits for a build (:meth:`app.library.library.Library.ann` builds in a thread).

:meth:`AnnIndex.open` builds from the store only when the file cannot be used:
missing, unreadable, truncated or corrupt, built with other settings or for another library,
or older than the change record reaches (pruned, or the model was removed). Loading checks
the file against the store: every unchanged stored id must be a live label, and the counts
must match the sidecar.

Typical writer use::

    ann = AnnIndex.open(ann_path(lib, model), store, model)
    ann.extend(checkpoint=lambda: ann.save(ann.generation))  # builds what the file lacks
    ann.fold()          # changes caught up from the record go into the graph
    ids = store.upsert_images_with_embeddings(rows, model, vectors)
    ann.add(ids, vectors)
    ann.delete(store_removed_ids)
    ann.save(prune=True)  # stamps the store's generation, prunes the change record

Deleted labels stay in the graph (``mark_deleted``) until :meth:`AnnIndex.save` compacts an
index whose deleted share exceeds ``AnnParams.compact_ratio``. Re-adding a deleted id revives
and updates it. Small indexes (and small allowed-id filters) are searched exactly.
"""

from __future__ import annotations

import errno
import hashlib
import json
import logging
import os
import re
import shutil
import sqlite3
import struct
import threading
import time
import zlib
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import hnswlib
import numpy as np

if TYPE_CHECKING:
    from app.library.store import Store

logger = logging.getLogger(__name__)

FORMAT = 1
_GET_CHUNK = 16384  # vectors fetched from hnswlib at a time for exact search / compaction
_LOAD_TRIES = 5  # a writer may replace the file while it is read: read it again

Filter = Callable[[int], bool] | Collection[int] | np.ndarray
"""Allowed ids for a search: a predicate on an id, or a collection of ids."""

Progress = Callable[[int, int], None]
"""``progress(done, total)`` while an index is being built."""


class AnnIndexError(Exception):
    """An index file that cannot be used (the message says why)."""


@dataclass(frozen=True, slots=True)
class AnnParams:
    """HNSW and search settings.

    ``m``/``ef_construction``: graph quality (changing them forces a rebuild);
    ``ef_search``: the least ``ef`` used at query time (raised to ``2 * k`` and more under
    filters); ``exact_below``: search exactly when fewer live items (or allowed ids) than
    this; ``compact_ratio``: compact on save when this share of slots is deleted.
    """

    space: str = "ip"
    m: int = 16
    ef_construction: int = 200
    ef_search: int = 64
    exact_below: int = 1000
    compact_ratio: float = 0.25
    delta_reload: int = 2000
    """A reader reloads a newer saved file (in the background) once its delta is this large."""
    threads: int = 0
    """Threads hnswlib adds vectors with (0: every core this process may use)."""


@dataclass
class SaveCadence:
    """When a writer saves its index: bounded by count and by time, and by its own cost.

    Due once ``every`` changes were made since the last save, or ``interval_s`` seconds passed
    with at least one; but a save that took over ``min_cost_s`` may take at most ``max_share``
    of the time (a save of a big index that took 2 s waits 10 s at 0.2), so small libraries
    save often and large ones do not spend their time writing. Readers search the changes
    since the last save exactly, so this bounds their extra work.
    """

    every: int = 2000
    interval_s: float = 30.0
    max_share: float = 0.2
    min_cost_s: float = 0.25
    changes: int = 0
    _last: float = 0.0
    _cost: float = 0.0

    def __post_init__(self) -> None:
        self._last = time.monotonic()

    def note(self, changes: int) -> None:
        """Count changes (vectors added, replaced or removed) made since the last save."""
        self.changes += max(0, int(changes))

    def due(self) -> bool:
        """True when the writer should save now."""
        if self.changes <= 0:
            return False
        waited = time.monotonic() - self._last
        if self._cost > self.min_cost_s and waited * self.max_share < self._cost:
            return False
        return self.changes >= self.every or waited >= self.interval_s

    def saved(self, cost_s: float) -> None:
        """Record a save that took ``cost_s`` seconds."""
        self.changes, self._last, self._cost = 0, time.monotonic(), max(0.0, cost_s)


def build_cadence() -> SaveCadence:
    """How often a build saves its unfinished index: every minute, but at most 5 % of the time
    on saves (a 1M-vector file takes seconds to write), so a killed build loses little."""
    return SaveCadence(every=2**62, interval_s=60.0, max_share=0.05)


def ann_path(library_dir: str | os.PathLike[str], model: str) -> Path:
    """Where the index of ``model`` lives: ``<library_dir>/ann/<safe model name>.hnsw``."""
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", model).lstrip(".")
    if safe != model:  # altered (or empty): a hash of the real name keeps names distinct
        digest = hashlib.blake2b(model.encode("utf-8", "surrogateescape"), digest_size=4)
        safe = f"{safe or 'model'}-{digest.hexdigest()}"
    return Path(library_dir) / "ann" / f"{safe}.hnsw"


def sidecar_path(path: str | os.PathLike[str]) -> Path:
    """The JSON sidecar next to an index file."""
    path = Path(path)
    return path.with_name(path.name + ".json")


def _normalize(vectors: Any, dim: int) -> np.ndarray:
    arr = np.array(vectors, dtype=np.float32, ndmin=2, copy=True)
    if arr.ndim != 2 or arr.shape[1] != dim:
        raise ValueError(f"expected vectors of dimension {dim}, got shape {arr.shape}")
    if not np.isfinite(arr).all():
        raise ValueError("vectors contain NaN or infinity")
    norms = np.linalg.norm(arr, axis=1, keepdims=True)
    np.divide(arr, norms, out=arr, where=norms > 0)
    return arr


def _write_atomic(
    path: Path, write: Callable[[Path], None], verify: Callable[[Path], None] | None = None
) -> int:
    """Write through ``write(tmp)``, fsync, ``verify(tmp)`` (raises if the file is bad), then
    rename over ``path``; returns the size. A failed write or check leaves ``path`` as it was."""
    tmp = path.with_name(path.name + ".tmp")
    try:
        write(tmp)
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        if verify is not None:
            verify(tmp)
        size = tmp.stat().st_size
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return size


_HNSW_HEADER = struct.Struct("<6QiI3QdQ")  # hnswlib 0.8 saveIndex: the fields before the data


def _check_written(path: Path, count: int, dim: int, m: int) -> None:
    """Raise ``OSError`` unless ``path`` is a whole hnswlib file of ``count`` elements.

    hnswlib's ``save_index`` reports no write error: on a full disk it once left a 0-byte file.
    Checks the header (counts, element size, ``M``) and walks the upper-layer link lists at the
    end to the exact file size, as hnswlib's loader does, without reading the vectors.
    """
    size = path.stat().st_size
    element = dim * 4 + 8 + (2 * m * 4 + 4)  # vector, label, level-0 links
    with open(path, "rb") as fh:
        head = fh.read(_HNSW_HEADER.size)
        fields = _HNSW_HEADER.unpack(head) if len(head) == _HNSW_HEADER.size else None
        ok = fields is not None and (fields[2], fields[3], fields[10]) == (count, element, m)
        end = _HNSW_HEADER.size + count * element
        if ok and size >= end + 4 * count:
            fh.seek(end)
            tail = fh.read()
            pos = 0
            for _ in range(count):
                if pos + 4 > len(tail):
                    ok = False
                    break
                pos += 4 + int.from_bytes(tail[pos : pos + 4], "little")
            ok = ok and end + pos == size
        else:
            ok = False
    if not ok:
        found = f"{fields[2]} elements of {fields[3]} bytes" if fields else "no header"
        what = (
            f"index file written wrong: {found} in {size} bytes, expected {count} elements of "
            f"{element} bytes"
        )
        if shutil.disk_usage(path.parent).free < _HNSW_HEADER.size + count * (element + 4):
            raise OSError(errno.ENOSPC, f"no space left on the disk ({what})")
        raise OSError(f"{what} (disk full?)")


def _identity(model: str, dim: int, params: AnnParams, library_id: Any) -> dict[str, Any]:
    """The sidecar fields a file must match to be loaded: format, model, settings, library."""
    return {
        "format": FORMAT,
        "model": model,
        "dim": dim,
        "space": params.space,
        "M": params.m,
        "ef_construction": params.ef_construction,
        "library_id": library_id,
    }


def _read_sidecar(path: Path) -> dict[str, Any]:
    try:
        meta = json.loads(sidecar_path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise AnnIndexError("no index file yet") from None
    except (OSError, ValueError) as exc:
        raise AnnIndexError(f"unreadable sidecar: {exc}") from None
    if not isinstance(meta, dict):
        raise AnnIndexError("unreadable sidecar: not a JSON object")
    return meta


def _sidecar_changes(path: Path, meta: dict[str, Any], wait_s: float = 0.25) -> bool:
    """True if the sidecar differs from ``meta`` now or within ``wait_s`` (a save under way)."""
    deadline = time.monotonic() + wait_s
    while True:
        try:
            if _read_sidecar(path) != meta:
                return True
        except AnnIndexError:
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.01)


def saved_generation(path: str | os.PathLike[str]) -> int | None:
    """The store generation the saved file at ``path`` claims (``None`` if unreadable)."""
    try:
        generation = _read_sidecar(Path(path)).get("generation")
    except AnnIndexError:
        return None
    return generation if isinstance(generation, int) else None


def _crc32(path: Path) -> int:
    """CRC-32 of a file (about 3 GB/s: a fraction of what loading the index costs)."""
    crc = 0
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 24):
            crc = zlib.crc32(chunk, crc)
    return crc


def _file_id(path_or_stat: Path | os.stat_result) -> tuple[int, int, int] | None:
    try:
        st = path_or_stat.stat() if isinstance(path_or_stat, Path) else path_or_stat
    except OSError:
        return None
    return st.st_ino, st.st_size, st.st_mtime_ns


def _has_label(raw: hnswlib.Index, label: int) -> bool:
    """False for a label hnswlib holds as deleted."""
    try:
        raw.get_items([label])
    except RuntimeError:
        return False
    return True


def _dot(matrix: np.ndarray, query: np.ndarray) -> np.ndarray:
    """``matrix @ query`` on this thread. A BLAS matrix-vector product wakes the BLAS thread
    pool, which on a busy machine cost ~14 ms here against 0.3 ms for this loop (3200 x 768)."""
    return np.einsum("ij,j->i", matrix, query)


def _id_array(ids: Iterable[int] | np.ndarray) -> np.ndarray:
    """``ids`` as a flat int64 array."""
    return np.asarray(ids if isinstance(ids, np.ndarray) else list(ids), np.int64).reshape(-1)


def _allowed_mask(ids: np.ndarray, filter: Filter | None) -> np.ndarray:
    """Which of ``ids`` a search ``filter`` allows (all when there is none)."""
    if filter is None:
        return np.ones(len(ids), bool)
    if callable(filter):
        return np.fromiter((i >= 0 and bool(filter(i)) for i in ids.tolist()), bool, len(ids))
    return np.isin(ids, _id_array(filter))


def _no_hits() -> tuple[np.ndarray, np.ndarray]:
    return np.zeros(0, np.int64), np.zeros(0, np.float32)


def _top_k(ids: np.ndarray, scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    if len(ids) > k:
        part = np.argpartition(-scores, k - 1)[:k]
        ids, scores = ids[part], scores[part]
    order = np.lexsort((ids, -scores))
    return ids[order].astype(np.int64), scores[order].astype(np.float32)


def _best_of(
    parts: Sequence[tuple[np.ndarray, np.ndarray]], k: int
) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` best of several ``(ids, scores)`` lists."""
    return _top_k(np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]), k)


class _Delta:
    """Vectors changed since the graph was saved, in rows appended to one matrix.

    A replaced or removed id only blanks its row (id -1), so taking in a change costs the size
    of the change, not of the delta; blank rows are squeezed out once they are the majority.
    """

    def __init__(self, dim: int) -> None:
        self.dim = dim
        self.clear()

    def __len__(self) -> int:
        return len(self._rows)

    def __contains__(self, image_id: object) -> bool:
        return image_id in self._rows

    def keys(self) -> Collection[int]:
        """The ids held."""
        return self._rows.keys()

    def get(self, image_id: int) -> np.ndarray:
        """The vector of a held id."""
        return self._matrix[self._rows[image_id]]

    def pop(self, image_id: int) -> bool:
        """Drop ``image_id``; false if it was not held."""
        row = self._rows.pop(image_id, None)
        if row is None:
            return False
        self._ids[row] = -1
        return True

    def put(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        """Hold (or replace) the vectors of ``ids`` (normalised already)."""
        for image_id in ids.tolist():
            self.pop(image_id)
        self._squeeze()
        end = self._used + len(ids)
        if end > len(self._ids):
            capacity = max(64, 2 * len(self._ids), end)
            grown = np.zeros((capacity, self.dim), np.float32)
            grown[: self._used] = self._matrix[: self._used]
            self._matrix = grown
            self._ids = np.concatenate([self._ids, np.full(capacity - len(self._ids), -1)])
        self._ids[self._used : end] = ids
        self._matrix[self._used : end] = vectors
        for offset, image_id in enumerate(ids.tolist()):
            self._rows[image_id] = self._used + offset
        self._used = end

    def clear(self) -> None:
        """Hold nothing."""
        self._rows: dict[int, int] = {}
        self._ids = np.zeros(0, np.int64)
        self._matrix = np.zeros((0, self.dim), np.float32)
        self._used = 0

    def arrays(self) -> tuple[np.ndarray, np.ndarray]:
        """``(ids, matrix)`` of the rows in use; blank rows have id -1."""
        self._squeeze()
        return self._ids[: self._used], self._matrix[: self._used]

    def _squeeze(self) -> None:
        if self._used > 2 * len(self._rows) + 64:
            keep = np.flatnonzero(self._ids[: self._used] >= 0)
            ids, matrix = self._ids[keep], self._matrix[keep]
            self.clear()
            self.put(ids, matrix)


class AnnIndex:
    """An HNSW index of one model's vectors, keyed by image id. Thread-safe (one lock).

    Construct with :meth:`open` (normal use), :meth:`load` or :meth:`empty`; the
    constructor makes an empty in-memory index.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        model: str,
        dim: int,
        params: AnnParams | None = None,
        *,
        capacity: int = 1024,
        store: Store | None = None,
    ) -> None:
        self.path = Path(path)
        self.model = model
        self.dim = int(dim)
        self.params = params or AnnParams()
        if self.params.space not in ("ip", "cosine"):
            raise ValueError("space must be 'ip' or 'cosine'")
        self.generation: int | None = None
        """Store generation this index reflects, with the delta (set by build/load/save)."""
        self.base_generation: int | None = None
        """Store generation of the graph alone (of the file it was loaded from)."""
        self._file_generation: int | None = None  # of the file last loaded or saved
        self.rebuild_reason: str | None = None
        """Why :meth:`open` is building the index (``None`` when the saved file was complete)."""
        self.partial_upto: int | None = None
        """While a build is under way: the graph holds the stored ids up to this one, and
        searches read the later ones from the store exactly. ``None``: the index is complete."""
        self._store = store
        self._lock = threading.RLock()
        self._live: set[int] = set()
        self._deleted: set[int] = set()
        self._cache: tuple[np.ndarray, np.ndarray] | None = None
        self._delta = _Delta(self.dim)  # changed since the graph was saved: searched exactly
        self._index = self._new_index(capacity)

    def _new_index(self, capacity: int) -> hnswlib.Index:
        index = hnswlib.Index(space=self.params.space, dim=self.dim)
        index.init_index(
            max_elements=max(16, int(capacity)),
            ef_construction=self.params.ef_construction,
            M=self.params.m,
        )
        index.set_ef(self.params.ef_search)
        return index

    # -- opening ---------------------------------------------------------------------

    @classmethod
    def open(
        cls,
        path: str | os.PathLike[str],
        store: Store,
        model: str,
        dim: int | None = None,
        *,
        params: AnnParams | None = None,
    ) -> AnnIndex:
        """The index saved at ``path`` if it matches the store, else an empty one to build.

        A partial build's file is taken as far as it got. Unless the file was complete,
        :attr:`rebuild_reason` says why and :meth:`extend` finishes the index. ``dim``
        defaults to the model's registered dimension.
        """
        try:
            index = cls.load(path, store, model, dim, params=params, partial_ok=True)
        except AnnIndexError as exc:
            logger.info("building the %s index from the library: %s", model, exc)
            index = cls.empty(path, store, model, dim, params=params)
            index.rebuild_reason = str(exc)
        else:
            if index.partial_upto is not None:
                logger.info("resuming the build of the %s index (%d saved)", model, len(index))
                index.rebuild_reason = f"resumed a partial build ({len(index)} vectors saved)"
        return index

    @staticmethod
    def _resolve_dim(store: Store, model: str, dim: int | None) -> int:
        known = store.model_dim(model)
        if dim is None:
            if known is None:
                raise ValueError(f"model {model!r} is not registered; pass dim")
            return known
        if known is not None and known != dim:
            raise ValueError(f"model {model!r} has dimension {known}, not {dim}")
        return int(dim)

    @classmethod
    def load(
        cls,
        path: str | os.PathLike[str],
        store: Store,
        model: str,
        dim: int | None = None,
        *,
        params: AnnParams | None = None,
        partial_ok: bool = False,
    ) -> AnnIndex:
        """Load the index at ``path`` and catch it up with the store's change record.

        ``partial_ok``: accept the file of an unfinished build (its :attr:`partial_upto` is
        set; :meth:`extend` finishes it). Raises :class:`AnnIndexError` when the file cannot be
        used (see the module doc).
        """
        path = Path(path)
        params = params or AnnParams()
        dim = cls._resolve_dim(store, model, dim)
        for _ in range(_LOAD_TRIES):
            meta = _read_sidecar(path)
            try:
                index = cls._load_file(path, meta, store, model, dim, params, partial_ok)
            except AnnIndexError:
                # the writer replaces the file, then its sidecar: in between they disagree
                if not _sidecar_changes(path, meta):
                    raise
                index = None
            if index is not None:
                return index
            logger.debug("index file %s was replaced while being read; reading it again", path)
        raise AnnIndexError("the index file kept changing while being read")

    @classmethod
    def _load_file(
        cls,
        path: Path,
        meta: dict[str, Any],
        store: Store,
        model: str,
        dim: int,
        params: AnnParams,
        partial_ok: bool = False,
    ) -> AnnIndex | None:
        """Load and check the file described by ``meta``; ``None`` if it was replaced meanwhile."""
        for key, value in _identity(model, dim, params, store.library_id).items():
            if meta.get(key) != value:
                raise AnnIndexError(f"index {key} is {meta.get(key)!r}, expected {value!r}")
        generation = meta.get("generation")
        if not isinstance(generation, int) or generation < 0:
            raise AnnIndexError(f"stale: index generation {generation!r}")
        upto = meta.get("partial_upto")
        if upto is not None and (not partial_ok or not isinstance(upto, int)):
            raise AnnIndexError(f"partial: the build stopped after id {upto!r}")
        try:
            before = path.stat()
        except OSError as exc:
            raise AnnIndexError(f"index file missing: {exc}") from None
        if before.st_size != meta.get("file_size"):
            raise AnnIndexError(
                f"index file is {before.st_size} bytes, expected {meta.get('file_size')}"
            )
        if "crc32" in meta and _crc32(path) != meta["crc32"]:  # files of older versions lack it
            if _read_sidecar(path) != meta:
                return None
            raise AnnIndexError("corrupt index file: checksum mismatch")
        raw = hnswlib.Index(space=params.space, dim=dim)
        try:
            raw.load_index(str(path), max_elements=0)
        except Exception as exc:  # hnswlib raises RuntimeError, MemoryError, ...
            raise AnnIndexError(f"corrupt index file: {exc}") from None
        if _file_id(path) != _file_id(before) or _read_sidecar(path) != meta:
            return None
        raw.set_ef(params.ef_search)

        with store.snapshot():
            changes = store.embedding_changes(model, generation)
            if not changes.complete:
                if _read_sidecar(path) != meta:
                    return None  # a writer saved a newer file and pruned the record meanwhile
                raise AnnIndexError(
                    f"stale: index generation {generation}, store {changes.generation}, and "
                    "the store's change record does not reach back that far"
                )
            ids = store.embedding_ids(model)
            found, vectors = store.vectors_for(changes.ids, model)
        try:
            labels = np.asarray(raw.get_ids_list(), dtype=np.int64)
        except (OverflowError, ValueError) as exc:
            raise AnnIndexError(f"corrupt index file: {exc}") from None
        if len(labels) != raw.element_count:
            raise AnnIndexError("corrupt index file: label table does not match element count")
        # unchanged stored ids must be live labels; the other labels are deleted or changed
        # (a partial file: the ids up to where its build got)
        settled = np.setdiff1d(ids if upto is None else ids[ids <= upto], changes.ids, True)
        in_settled = np.isin(labels, settled)
        others = labels[~in_settled].tolist()
        deleted = [label for label in others if not _has_label(raw, label)]
        if (
            int(in_settled.sum()) != len(settled)
            or len(deleted) != meta.get("deleted")
            or len(labels) - len(deleted) != meta.get("count")
        ):
            raise AnnIndexError("index labels do not match the store")
        index = cls(path, model, dim, params, capacity=16, store=store)
        index._index = raw
        index._deleted = set(deleted)
        index._live = set(labels.tolist()) - index._deleted
        index.generation = index.base_generation = index._file_generation = generation
        index.partial_upto = upto
        index._apply_changes(changes.ids, found, vectors, changes.generation)
        return index

    def catch_up(self) -> int:
        """Take in the store's changes since :attr:`generation`; returns how many ids changed.

        Changed ids are hidden in the graph and their current vectors searched exactly.
        Raises :class:`AnnIndexError` when the change record no longer reaches back (the
        writer saved and pruned it): load the saved file again instead.
        """
        if self._store is None or self.generation is None:
            raise ValueError("catch_up needs an index opened from a store")
        if self._store.generation(self.model) == self.generation:
            return 0  # the common case, one query: nothing was written since
        with self._lock:  # one at a time: a builder thread catches up too
            with self._store.snapshot():
                changed, found, vectors, generation = self._changes()
            if generation == self.generation:
                return 0
            self._apply_changes(changed, found, vectors, generation)
            return len(changed)

    def _changes(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
        """The store's changes since :attr:`generation` (inside the caller's snapshot): the
        changed ids, those still stored and their vectors, and the store's generation."""
        assert self._store is not None and self.generation is not None
        changes = self._store.embedding_changes(self.model, self.generation)
        if not changes.complete:
            raise AnnIndexError(
                f"the change record no longer reaches back to generation {self.generation}"
            )
        found, vectors = self._store.vectors_for(changes.ids, self.model)
        return changes.ids, found, vectors, changes.generation

    def reloaded(self) -> AnnIndex:
        """The saved file loaded again (and caught up) through this index's store.

        Raises :class:`AnnIndexError` when the file cannot be used.
        """
        if self._store is None:
            raise ValueError("reloaded needs an index opened from a store")
        return type(self).load(self.path, self._store, self.model, self.dim, params=self.params)

    def _apply_changes(
        self, changed: np.ndarray, found: np.ndarray, vectors: np.ndarray, generation: int
    ) -> None:
        vecs = _normalize(vectors, self.dim) if len(found) else vectors
        with self._lock:
            for image_id in changed.tolist():
                self._hide(image_id)
                self._delta.pop(image_id)
            if len(found):
                self._delta.put(found, vecs)
            self.generation = generation

    def _hide(self, image_id: int) -> bool:
        """Mark a live label of the graph deleted; false if it was not live."""
        if image_id not in self._live:
            return False
        self._index.mark_deleted(image_id)
        self._live.discard(image_id)
        self._deleted.add(image_id)
        self._cache = None
        return True

    def fold(self) -> int:
        """Move the exactly-searched delta into the graph (a writer does before it writes)."""
        with self._lock:
            if not self._delta:
                return 0
            ids, vectors = self._delta.arrays()
            held = ids >= 0
            ids, vectors = ids[held].copy(), vectors[held].copy()
            self._delta.clear()
            self.add(ids, vectors)
            self.base_generation = self.generation
            return len(ids)

    @property
    def delta_count(self) -> int:
        """Vectors changed since the graph was saved, searched exactly on top of it."""
        return len(self._delta)

    @classmethod
    def empty(
        cls,
        path: str | os.PathLike[str],
        store: Store,
        model: str,
        dim: int | None = None,
        *,
        params: AnnParams | None = None,
    ) -> AnnIndex:
        """An index whose build has not started: searches read every vector from the store
        exactly until :meth:`extend` has added them to the graph."""
        params = params or AnnParams()
        dim = cls._resolve_dim(store, model, dim)
        with store.snapshot():
            generation = store.generation(model)
            total = store.embedding_count(model)
        index = cls(path, model, dim, params, capacity=total + max(1024, total // 4), store=store)
        index.generation = index.base_generation = generation
        # ids are non-negative: the graph holds none yet (with nothing stored, it is complete)
        index.partial_upto = -1 if total else None
        return index

    def extend(
        self,
        *,
        chunk_size: int = 1024,
        progress: Progress | None = None,
        checkpoint: Callable[[], object] | None = None,
        cadence: SaveCadence | None = None,
        cancelled: Callable[[], bool] | None = None,
    ) -> bool:
        """Add the stored vectors the graph lacks (ids after :attr:`partial_upto`) a chunk at a
        time until the index is complete; false if ``cancelled()`` stopped it first.

        Each chunk is read in one snapshot with the changes since the previous one, which are
        folded into the graph, so writers go on meanwhile and a search waits for one chunk at
        most (hnswlib adds a chunk on all cores, ``AnnParams.threads``). ``checkpoint()``
        (e.g. :meth:`save`) runs on the ``cadence`` (default :func:`build_cadence`), when
        cancelled and once the index is complete.
        """
        if self._store is None or self.generation is None:
            raise ValueError("extend needs an index opened from a store")
        cadence = cadence or build_cadence()
        total = self._store.embedding_count(self.model)  # for progress only
        while self.partial_upto is not None:
            if cancelled is not None and cancelled():
                if checkpoint is not None:
                    checkpoint()
                return False
            with self._lock:
                with self._store.snapshot():
                    changes = self._changes()
                    ids, chunk = self._store.embeddings_after(
                        self.model, self.partial_upto, chunk_size
                    )
                self._apply_changes(*changes)
                self.fold()
                if len(ids):
                    self.add(ids, chunk)
                    self.partial_upto = int(ids[-1])
                if len(ids) < chunk_size:  # the last one: later rows come as changes
                    self.partial_upto = None
                done = len(self._live)
            if progress is not None:
                progress(done, max(done, total))
            cadence.note(len(ids))
            if checkpoint is not None and self.partial_upto is not None and cadence.due():
                started = time.monotonic()
                checkpoint()
                cadence.saved(time.monotonic() - started)
        if checkpoint is not None:
            checkpoint()
        return True

    # -- contents --------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._live) + len(self._delta)

    def __contains__(self, image_id: object) -> bool:
        return image_id in self._live or image_id in self._delta

    @property
    def deleted_count(self) -> int:
        """Slots held by deleted labels (freed by compaction)."""
        return len(self._deleted)

    @property
    def capacity(self) -> int:
        """Current ``max_elements`` of the hnswlib index (grows automatically)."""
        return int(self._index.get_max_elements())

    def labels(self) -> set[int]:
        """The live labels (image ids), the delta's included."""
        with self._lock:
            return self._live | set(self._delta.keys())

    def add(self, ids: Iterable[int] | np.ndarray, vectors: Any) -> int:
        """Add or update vectors for ``ids`` (normalised here); returns how many ids were new.

        A known id gets its vector replaced; a deleted id is revived. The index grows as
        needed. Duplicate ids in one call: the last vector wins.
        """
        id_arr = _id_array(ids)
        vecs = _normalize(vectors, self.dim) if len(id_arr) else np.zeros((0, self.dim))
        if len(id_arr) != len(vecs):
            raise ValueError(f"{len(id_arr)} ids for {len(vecs)} vectors")
        if len(id_arr) == 0:
            return 0
        if (id_arr < 0).any():
            raise ValueError("ids must be non-negative")
        _, last = np.unique(id_arr[::-1], return_index=True)
        keep = len(id_arr) - 1 - last
        id_arr, vecs = id_arr[keep], vecs[keep]
        with self._lock:
            in_delta = [i for i in id_arr.tolist() if self._delta.pop(i)]
            fresh = [i for i in id_arr.tolist() if i not in self._live and i not in self._deleted]
            needed = self._index.element_count + len(fresh)
            if needed > self.capacity:
                new_capacity = max(needed, int(self.capacity * 1.5) + 64)
                logger.debug("growing ANN index %s to %d", self.model, new_capacity)
                self._index.resize_index(new_capacity)
            self._index.add_items(vecs, id_arr.astype(np.uint64), num_threads=self._threads())
            added = id_arr.tolist()
            self._live.update(added)
            self._deleted.difference_update(added)
            self._cache = None
        return len(set(fresh).difference(in_delta))

    def _threads(self) -> int:
        if self.params.threads > 0:
            return self.params.threads
        return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else -1

    def delete(self, ids: Iterable[int] | np.ndarray) -> int:
        """Mark ids deleted; unknown or already deleted ids are ignored. Returns how many went."""
        removed = 0
        with self._lock:
            for image_id in set(_id_array(ids).tolist()):
                if self._delta.pop(image_id) or self._hide(image_id):
                    removed += 1
        return removed

    def vectors(self, ids: Iterable[int] | np.ndarray) -> np.ndarray:
        """The (normalised) vectors of live ids, in order; ``KeyError`` for others."""
        id_list = [int(i) for i in ids]
        with self._lock:
            missing = [i for i in id_list if i not in self._live and i not in self._delta]
            if missing:
                raise KeyError(f"ids not in the index: {missing[:5]}")
            out = np.zeros((len(id_list), self.dim), np.float32)
            graph = [n for n, i in enumerate(id_list) if i not in self._delta]
            if graph:
                out[graph] = self._get(np.asarray([id_list[n] for n in graph], np.int64))
            for n, i in enumerate(id_list):
                if i in self._delta:
                    out[n] = self._delta.get(i)
            return out

    # -- searching -------------------------------------------------------------------

    def search(
        self, vector: Any, k: int = 10, filter: Filter | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` nearest ids to ``vector`` and their cosine scores, best first.

        ``filter``: a collection of allowed ids, or a predicate ``id -> bool``. Small indexes
        and small allowed sets (``<= params.exact_below``) are searched exactly. Otherwise HNSW
        with ``ef = max(ef_search, 2k)`` and hnswlib's filter callback, which keeps expanding
        the graph until it holds ``ef`` *allowed* candidates (over-fetching as filters get
        tighter); if it still cannot return ``k`` matches, ``ef`` grows 4x at a time up to the
        index size and finally the allowed ids are searched exactly. May return fewer than
        ``k`` results when fewer items match.
        """
        query = _normalize(vector, self.dim)
        if query.shape[0] != 1:
            raise ValueError("search takes one vector")
        with self._lock:
            parts = [self._search_graph(query, k, filter)]
            if self._delta and k > 0:
                parts.append(self._search_delta(query[0], k, filter))
            if self.partial_upto is not None and k > 0:
                parts.append(self._search_rest(query[0], k, filter))
            return parts[0] if len(parts) == 1 else _best_of(parts, k)

    def _search_delta(
        self, query: np.ndarray, k: int, filter: Filter | None
    ) -> tuple[np.ndarray, np.ndarray]:
        ids, matrix = self._delta.arrays()
        scores = _dot(matrix, query)
        mask = (ids >= 0) & _allowed_mask(ids, filter)
        return _top_k(ids[mask], scores[mask], k)

    def _search_rest(
        self, query: np.ndarray, k: int, filter: Filter | None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Exact search over the stored vectors an unfinished build has not reached yet,
        streamed from the store a chunk at a time (nothing kept in memory)."""
        assert self._store is not None and self.partial_upto is not None
        best = _no_hits()
        after = self.partial_upto
        with self._store.snapshot():
            while True:
                ids, matrix = self._store.embeddings_after(self.model, after, _GET_CHUNK)
                if not len(ids):
                    return best
                after = int(ids[-1])
                held = [i in self._live or i in self._delta for i in ids.tolist()]
                mask = ~np.asarray(held, bool) & _allowed_mask(ids, filter)
                if not mask.any():
                    continue
                ids, matrix = ids[mask], matrix[mask]
                norms = np.linalg.norm(matrix, axis=1)
                scores = _dot(matrix, query) / np.where(norms > 0, norms, 1.0)
                best = _best_of([best, (ids, scores)], k)

    def _search_graph(
        self, query: np.ndarray, k: int, filter: Filter | None
    ) -> tuple[np.ndarray, np.ndarray]:
        """The graph's part of :meth:`search` (``self._live`` only)."""
        with self._lock:
            n = len(self._live)
            if n == 0 or k <= 0:
                return _no_hits()
            if filter is None or callable(filter):
                if n <= self.params.exact_below:
                    return self._exact_all(query[0], k, filter)
                return self._hnsw(query, min(k, n), filter)
            allowed = self._allowed(filter)
            if len(allowed) == 0:
                return _no_hits()
            if len(allowed) <= self.params.exact_below or n <= self.params.exact_below:
                return self._exact(query[0], k, allowed)
            allowed_set = set(allowed.tolist())
            return self._hnsw(query, min(k, len(allowed)), allowed_set.__contains__)

    def _allowed(self, filter: Collection[int] | np.ndarray) -> np.ndarray:
        arr = np.unique(_id_array(filter))
        return np.asarray([i for i in arr.tolist() if i in self._live], np.int64)

    def _hnsw(
        self,
        query: np.ndarray,
        k: int,
        predicate: Callable[[int], bool] | None,
    ) -> tuple[np.ndarray, np.ndarray]:
        # hnswlib's filtered search only counts allowed items towards ef and keeps expanding
        # the graph until it holds ef of them, so it over-fetches by itself: raising ef by
        # 1/fraction as well cost 3-12x the time for no recall gain (50k x 64-d, 0.5-50 %).
        n = len(self._live)
        ef = min(max(self.params.ef_search, 2 * k), max(n, k))
        while True:
            self._index.set_ef(ef)
            try:
                labels, distances = self._index.knn_query(
                    query, k=k, num_threads=1, filter=predicate
                )
                return labels[0].astype(np.int64), (1.0 - distances[0]).astype(np.float32)
            except RuntimeError:
                if ef >= n:
                    break
                ef = min(n, ef * 4)  # too few matches reached: search wider
            finally:
                self._index.set_ef(self.params.ef_search)
        logger.debug("HNSW found fewer than %d matches; searching exactly", k)
        ids = self._live_ids()
        return self._exact(query[0], k, ids[_allowed_mask(ids, predicate)])

    def _exact_all(
        self, query: np.ndarray, k: int, predicate: Callable[[int], bool] | None
    ) -> tuple[np.ndarray, np.ndarray]:
        if self._cache is None:
            ids = self._live_ids()
            self._cache = ids, self._get(ids)
        ids, matrix = self._cache
        if predicate is not None:
            mask = _allowed_mask(ids, predicate)
            ids, matrix = ids[mask], matrix[mask]
        return _top_k(ids, _dot(matrix, query), k)

    def _exact(self, query: np.ndarray, k: int, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        best = _no_hits()
        for start in range(0, len(ids), _GET_CHUNK):
            chunk = ids[start : start + _GET_CHUNK]
            best = _best_of([best, (chunk, _dot(self._get(chunk), query))], k)
        return best

    def _live_ids(self) -> np.ndarray:
        return np.fromiter(sorted(self._live), np.int64, count=len(self._live))

    def _get(self, ids: np.ndarray) -> np.ndarray:
        if len(ids) == 0:
            return np.zeros((0, self.dim), np.float32)
        return np.asarray(self._index.get_items(ids.astype(np.uint64), return_type="numpy"))

    # -- persistence -----------------------------------------------------------------

    def compact(self) -> None:
        """Rebuild the graph from the live vectors, dropping deleted slots."""
        with self._lock:
            ids = self._live_ids()
            fresh = self._new_index(len(ids) + max(1024, len(ids) // 4))
            for start in range(0, len(ids), _GET_CHUNK):
                chunk = ids[start : start + _GET_CHUNK]
                fresh.add_items(self._get(chunk), chunk.astype(np.uint64))
            self._index = fresh
            self._deleted.clear()
            self._cache = None

    def save(self, generation: int | None = None, *, prune: bool = False) -> None:
        """Write the index and its sidecar atomically (temp file, fsync, ``os.replace``).

        ``generation`` is the store generation the contents reflect. By default the store's
        current one is read, after checking that the index holds exactly the store's ids; if
        it does not (another process changed the store meanwhile), the file is stamped stale
        (generation -1) so the next :meth:`open` rebuilds it. Compacts first when the
        deleted share exceeds ``params.compact_ratio``. The written file is checked before it
        replaces the old one (``OSError`` if it is short: hnswlib reports no write error). An
        unfinished build saves with its :attr:`partial_upto` and never prunes. ``prune`` (the
        indexer's saves): then
        prune the store's change record up to the previous file's generation, in a transaction
        of its own (so callers that must write in one transaction, like forget, leave it).
        """
        with self._lock:
            self.fold()
            partial = self.partial_upto is not None
            if generation is None and partial:
                generation = self.generation
            elif generation is None:
                if self._store is None:
                    raise ValueError("no store attached: pass the generation to save()")
                with self._store.snapshot():
                    generation = self._store.generation(self.model)
                    ids = self._store.embedding_ids(self.model)
                if len(ids) != len(self._live) or not all(i in self._live for i in ids.tolist()):
                    logger.warning(
                        "ANN index %s differs from the store; saving it as stale", self.model
                    )
                    generation = -1
            slots = self._index.element_count
            if self._deleted and len(self._deleted) > self.params.compact_ratio * slots:
                self.compact()
            self.path.parent.mkdir(parents=True, exist_ok=True)
            crc = 0

            def write(tmp: Path) -> None:
                nonlocal crc
                self._index.save_index(str(tmp))
                crc = _crc32(tmp)

            count = self._index.element_count
            size = _write_atomic(
                self.path, write, lambda tmp: _check_written(tmp, count, self.dim, self.params.m)
            )
            library_id = self._store.library_id if self._store is not None else None
            meta = {
                **_identity(self.model, self.dim, self.params, library_id),
                "count": len(self._live),
                "deleted": len(self._deleted),
                "capacity": self.capacity,
                "generation": generation,
                "partial_upto": self.partial_upto,
                "file_size": size,
                "crc32": crc,
                "saved_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            }
            text = json.dumps(meta, indent=1)
            _write_atomic(
                sidecar_path(self.path), lambda tmp: tmp.write_text(text, encoding="utf-8")
            )
            self.generation = self.base_generation = generation
            previous, self._file_generation = self._file_generation, generation
        # The record before the previous file is no longer needed: a reader that has seen the
        # previous file (or anything later) still catches up without reloading on its query
        # path, and one further behind loads this file.
        if not prune or partial or self._store is None or previous is None:
            return
        if 0 <= previous <= generation:
            try:
                self._store.prune_embedding_changes(self.model, previous)
            except (sqlite3.Error, ValueError) as exc:
                logger.warning("could not prune the change record of %s: %s", self.model, exc)
