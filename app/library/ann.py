"""One HNSW index per model (hnswlib): a cache of the store's vectors for fast k-NN search.

The file ``<library>/ann/<model>.hnsw`` (see :func:`ann_path`) holds the graph; a JSON sidecar
``<model>.hnsw.json`` records what it was built from: dim, space, M, ef_construction, live and
deleted label counts, the file size, the library id and the store **generation** of the model
(see :mod:`app.library.store`). Labels are image ids from the store; vectors are L2-normalised
and compared by inner product, so scores are cosine similarities (higher is better).

:meth:`AnnIndex.open_or_build` trusts the file only when the sidecar matches the store: same
library, same generation, same vector count, the file has the recorded size and loads, and its
labels are exactly the store's ids (plus the recorded number of deleted ones). Anything else
(missing, stale, truncated, corrupt) rebuilds it from ``Store.iter_embeddings`` inside one read
snapshot. The generation check is what makes staleness cheap to detect: any write to a model's
vectors bumps it in the same transaction, so an index saved at generation *g* is current
exactly while the store is still at *g*.

Typical indexer use (single writer per library)::

    ann = AnnIndex.open_or_build(ann_path(lib, model), store, model)
    ids = store.upsert_images_with_embeddings(rows, model, vectors)
    ann.add(ids, vectors)
    ann.delete(store_removed_ids)
    ann.save()          # stamps the store's current generation

Deleted labels stay in the graph (``mark_deleted``) until :meth:`AnnIndex.save` compacts an
index whose deleted share exceeds ``AnnParams.compact_ratio``. Re-adding a deleted id revives
and updates it. Small indexes (and small allowed-id filters) are searched exactly.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import threading
from collections.abc import Callable, Collection, Iterable
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


def _write_atomic(path: Path, write: Callable[[Path], None]) -> int:
    """Write through ``write(tmp)``, fsync, then rename over ``path``; returns the size."""
    tmp = path.with_name(path.name + ".tmp")
    try:
        write(tmp)
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        size = tmp.stat().st_size
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return size


def _top_k(ids: np.ndarray, scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    if len(ids) > k:
        part = np.argpartition(-scores, k - 1)[:k]
        ids, scores = ids[part], scores[part]
    order = np.lexsort((ids, -scores))
    return ids[order].astype(np.int64), scores[order].astype(np.float32)


class AnnIndex:
    """An HNSW index of one model's vectors, keyed by image id. Thread-safe (one lock).

    Construct with :meth:`open_or_build` (normal use), :meth:`load` or :meth:`build`; the
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
        """Store generation this index reflects (set by build/load/save)."""
        self.rebuild_reason: str | None = None
        """Why :meth:`open_or_build` rebuilt the index (``None`` when the file was reused)."""
        self._store = store
        self._lock = threading.RLock()
        self._live: set[int] = set()
        self._deleted: set[int] = set()
        self._cache: tuple[np.ndarray, np.ndarray] | None = None
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
    def open_or_build(
        cls,
        path: str | os.PathLike[str],
        store: Store,
        model: str,
        dim: int | None = None,
        *,
        params: AnnParams | None = None,
        progress: Progress | None = None,
    ) -> AnnIndex:
        """Load the index at ``path`` if it matches the store, else rebuild (and save) it.

        ``dim`` defaults to the model's registered dimension. After a rebuild,
        :attr:`rebuild_reason` says why.
        """
        try:
            return cls.load(path, store, model, dim, params=params)
        except AnnIndexError as exc:
            reason = str(exc)
        logger.info("rebuilding ANN index for %s: %s", model, reason)
        index = cls.build(path, store, model, dim, params=params, progress=progress)
        index.rebuild_reason = reason
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
    ) -> AnnIndex:
        """Load and validate the index at ``path``; :class:`AnnIndexError` if it cannot be used."""
        path = Path(path)
        params = params or AnnParams()
        dim = cls._resolve_dim(store, model, dim)
        try:
            meta = json.loads(sidecar_path(path).read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise AnnIndexError("no index file yet") from None
        except (OSError, ValueError) as exc:
            raise AnnIndexError(f"unreadable sidecar: {exc}") from None
        expected = {
            "format": FORMAT,
            "model": model,
            "dim": dim,
            "space": params.space,
            "M": params.m,
            "ef_construction": params.ef_construction,
            "library_id": store.library_id,
        }
        for key, value in expected.items():
            if not isinstance(meta, dict) or meta.get(key) != value:
                got = meta.get(key) if isinstance(meta, dict) else None
                raise AnnIndexError(f"index {key} is {got!r}, expected {value!r}")
        with store.snapshot():
            generation = store.generation(model)
            ids = store.embedding_ids(model)
        if meta.get("generation") != generation:
            raise AnnIndexError(
                f"stale: index generation {meta.get('generation')}, store {generation}"
            )
        if meta.get("count") != len(ids):
            raise AnnIndexError(f"stale: index has {meta.get('count')} vectors, store {len(ids)}")
        try:
            size = path.stat().st_size
        except OSError as exc:
            raise AnnIndexError(f"index file missing: {exc}") from None
        if size != meta.get("file_size"):
            raise AnnIndexError(f"index file is {size} bytes, expected {meta.get('file_size')}")

        raw = hnswlib.Index(space=params.space, dim=dim)
        try:
            raw.load_index(str(path), max_elements=0)
        except Exception as exc:  # hnswlib raises RuntimeError, MemoryError, ...
            raise AnnIndexError(f"corrupt index file: {exc}") from None
        raw.set_ef(params.ef_search)
        index = cls(path, model, dim, params, capacity=16, store=store)
        index._index = raw
        labels = np.asarray(raw.get_ids_list(), dtype=np.int64)
        if len(labels) != raw.element_count:
            raise AnnIndexError("corrupt index file: label table does not match element count")
        live = np.isin(labels, ids)
        deleted = labels[~live]
        if int(live.sum()) != len(ids) or len(deleted) != meta.get("deleted"):
            raise AnnIndexError("index labels do not match the store")
        for label in deleted.tolist():
            try:
                raw.get_items([label])
            except RuntimeError:
                continue  # marked deleted, as recorded
            raise AnnIndexError("index labels do not match the store")
        index._live = set(ids.tolist())
        index._deleted = set(deleted.tolist())
        index.generation = generation
        return index

    @classmethod
    def build(
        cls,
        path: str | os.PathLike[str],
        store: Store,
        model: str,
        dim: int | None = None,
        *,
        params: AnnParams | None = None,
        progress: Progress | None = None,
        save: bool = True,
        chunk_size: int = 8192,
    ) -> AnnIndex:
        """Build the index from all of the store's ``model`` vectors (one snapshot); save it."""
        params = params or AnnParams()
        dim = cls._resolve_dim(store, model, dim)
        with store.snapshot():
            generation = store.generation(model)
            total = store.embedding_count(model)
            capacity = total + max(1024, total // 4)
            index = cls(path, model, dim, params, capacity=capacity, store=store)
            done = 0
            if progress is not None:
                progress(0, total)
            for ids, vectors in store.iter_embeddings(model, chunk_size):
                index.add(ids, vectors)
                done += len(ids)
                if progress is not None:
                    progress(done, total)
        index.generation = generation
        if save:
            index.save(generation)
        return index

    # -- contents --------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._live)

    def __contains__(self, image_id: object) -> bool:
        return image_id in self._live

    @property
    def deleted_count(self) -> int:
        """Slots held by deleted labels (freed by compaction)."""
        return len(self._deleted)

    @property
    def capacity(self) -> int:
        """Current ``max_elements`` of the hnswlib index (grows automatically)."""
        return int(self._index.get_max_elements())

    def labels(self) -> set[int]:
        """The live labels (image ids)."""
        with self._lock:
            return set(self._live)

    def add(self, ids: Iterable[int] | np.ndarray, vectors: Any) -> int:
        """Add or update vectors for ``ids`` (normalised here); returns how many ids were new.

        A known id gets its vector replaced; a deleted id is revived. The index grows as
        needed. Duplicate ids in one call: the last vector wins.
        """
        id_arr = np.asarray(list(ids) if not isinstance(ids, np.ndarray) else ids, np.int64)
        id_arr = id_arr.reshape(-1)
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
            fresh = [i for i in id_arr.tolist() if i not in self._live and i not in self._deleted]
            needed = self._index.element_count + len(fresh)
            if needed > self.capacity:
                new_capacity = max(needed, int(self.capacity * 1.5) + 64)
                logger.debug("growing ANN index %s to %d", self.model, new_capacity)
                self._index.resize_index(new_capacity)
            self._index.add_items(vecs, id_arr.astype(np.uint64))
            added = id_arr.tolist()
            self._live.update(added)
            self._deleted.difference_update(added)
            self._cache = None
        return len(fresh)

    def replace(self, ids: Iterable[int] | np.ndarray, vectors: Any) -> int:
        """Replace the vectors of re-embedded images (same as :meth:`add`: an upsert)."""
        return self.add(ids, vectors)

    def delete(self, ids: Iterable[int] | np.ndarray) -> int:
        """Mark ids deleted; unknown or already deleted ids are ignored. Returns how many went."""
        id_list = np.asarray(list(ids) if not isinstance(ids, np.ndarray) else ids, np.int64)
        removed = 0
        with self._lock:
            for image_id in set(id_list.reshape(-1).tolist()):
                if image_id in self._live:
                    self._index.mark_deleted(image_id)
                    self._live.discard(image_id)
                    self._deleted.add(image_id)
                    removed += 1
            if removed:
                self._cache = None
        return removed

    def vectors(self, ids: Iterable[int] | np.ndarray) -> np.ndarray:
        """The (normalised) vectors of live ids, in order; ``KeyError`` for others."""
        id_list = [int(i) for i in ids]
        with self._lock:
            missing = [i for i in id_list if i not in self._live]
            if missing:
                raise KeyError(f"ids not in the index: {missing[:5]}")
            if not id_list:
                return np.zeros((0, self.dim), np.float32)
            return np.asarray(self._index.get_items(id_list, return_type="numpy"), np.float32)

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
        empty = np.zeros(0, np.int64), np.zeros(0, np.float32)
        with self._lock:
            n = len(self._live)
            if n == 0 or k <= 0:
                return empty
            if filter is None:
                if n <= self.params.exact_below:
                    return self._exact_all(query[0], k, None)
                return self._hnsw(query, min(k, n), None)
            if callable(filter):
                if n <= self.params.exact_below:
                    return self._exact_all(query[0], k, filter)
                return self._hnsw(query, min(k, n), filter)
            allowed = self._allowed(filter)
            if len(allowed) == 0:
                return empty
            if len(allowed) <= self.params.exact_below or n <= self.params.exact_below:
                return self._exact(query[0], k, allowed)
            allowed_set = set(allowed.tolist())
            return self._hnsw(query, min(k, len(allowed)), allowed_set.__contains__)

    def _allowed(self, filter: Collection[int] | np.ndarray) -> np.ndarray:
        arr = np.unique(np.asarray(list(filter) if not isinstance(filter, np.ndarray) else filter))
        return np.asarray([i for i in arr.astype(np.int64).tolist() if i in self._live], np.int64)

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
        ids = np.fromiter(sorted(self._live), np.int64, count=n)
        if predicate is not None:
            ids = ids[np.fromiter((bool(predicate(int(i))) for i in ids), bool, count=n)]
        return self._exact(query[0], k, ids)

    def _exact_all(
        self, query: np.ndarray, k: int, predicate: Callable[[int], bool] | None
    ) -> tuple[np.ndarray, np.ndarray]:
        if self._cache is None:
            ids = np.fromiter(sorted(self._live), np.int64, count=len(self._live))
            self._cache = ids, self._get(ids)
        ids, matrix = self._cache
        if predicate is not None:
            mask = np.fromiter((bool(predicate(int(i))) for i in ids), bool, count=len(ids))
            ids, matrix = ids[mask], matrix[mask]
        if len(ids) == 0:
            return np.zeros(0, np.int64), np.zeros(0, np.float32)
        return _top_k(ids, matrix @ query, k)

    def _exact(self, query: np.ndarray, k: int, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        best_ids, best_scores = np.zeros(0, np.int64), np.zeros(0, np.float32)
        for start in range(0, len(ids), _GET_CHUNK):
            chunk = ids[start : start + _GET_CHUNK]
            scores = self._get(chunk) @ query
            best_ids, best_scores = _top_k(
                np.concatenate([best_ids, chunk]), np.concatenate([best_scores, scores]), k
            )
        return best_ids, best_scores

    def _get(self, ids: np.ndarray) -> np.ndarray:
        if len(ids) == 0:
            return np.zeros((0, self.dim), np.float32)
        return np.asarray(self._index.get_items(ids.astype(np.uint64), return_type="numpy"))

    # -- persistence -----------------------------------------------------------------

    def compact(self) -> None:
        """Rebuild the graph from the live vectors, dropping deleted slots."""
        with self._lock:
            ids = np.fromiter(sorted(self._live), np.int64, count=len(self._live))
            fresh = self._new_index(len(ids) + max(1024, len(ids) // 4))
            for start in range(0, len(ids), _GET_CHUNK):
                chunk = ids[start : start + _GET_CHUNK]
                fresh.add_items(self._get(chunk), chunk.astype(np.uint64))
            self._index = fresh
            self._deleted.clear()
            self._cache = None

    def save(self, generation: int | None = None) -> None:
        """Write the index and its sidecar atomically (temp file, fsync, ``os.replace``).

        ``generation`` is the store generation the contents reflect. By default the store's
        current one is read, after checking that the index holds exactly the store's ids; if
        it does not (another process changed the store meanwhile), the file is stamped stale
        (generation -1) so the next :meth:`open_or_build` rebuilds it. Compacts first when the
        deleted share exceeds ``params.compact_ratio``.
        """
        with self._lock:
            if generation is None:
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
            size = _write_atomic(self.path, lambda tmp: self._index.save_index(str(tmp)))
            library_id = self._store.library_id if self._store is not None else None
            meta = {
                "format": FORMAT,
                "model": self.model,
                "dim": self.dim,
                "space": self.params.space,
                "M": self.params.m,
                "ef_construction": self.params.ef_construction,
                "count": len(self._live),
                "deleted": len(self._deleted),
                "capacity": self.capacity,
                "generation": generation,
                "library_id": library_id,
                "file_size": size,
                "saved_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            }
            text = json.dumps(meta, indent=1)
            _write_atomic(
                sidecar_path(self.path), lambda tmp: tmp.write_text(text, encoding="utf-8")
            )
            self.generation = generation
