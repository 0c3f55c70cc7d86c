"""ANN index: recall against exact search, add/delete/replace, filters, persistence, rebuilds."""

from __future__ import annotations

import json
import os
import sqlite3
import threading
from pathlib import Path

import numpy as np
import pytest

from app.library.ann import AnnIndex, AnnIndexError, AnnParams, SaveCadence, ann_path, sidecar_path
from app.library.store import ImageRecord, Store, apply_migrations, connect

DIM = 32
MODEL = "lotlip-tiny"


def clustered(n: int, seed: int = 0, clusters: int = 20, spread: float = 0.35) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centers = rng.standard_normal((clusters, DIM))
    points = centers[rng.integers(0, clusters, n)] + spread * rng.standard_normal((n, DIM))
    points /= np.linalg.norm(points, axis=1, keepdims=True)
    return points.astype(np.float32)


def exact_top(ids: np.ndarray, matrix: np.ndarray, query: np.ndarray, k: int) -> np.ndarray:
    q = query / np.linalg.norm(query)
    return ids[np.argsort(-(matrix @ q), kind="stable")[:k]]


def fill(store: Store, vectors: np.ndarray, start: int = 0) -> np.ndarray:
    ids: list[int] = []
    for lo in range(0, len(vectors), 500):
        batch = vectors[lo : lo + 500]
        rows = [ImageRecord(f"/p/{start + lo + i}.jpg", 1, 1) for i in range(len(batch))]
        ids += store.upsert_images_with_embeddings(rows, MODEL, batch)
    return np.asarray(ids, dtype=np.int64)


def open_or_build(
    path: Path, store: Store, model: str = MODEL, *, dim=None, params=None, progress=None
) -> AnnIndex:
    """The index at ``path`` as a writer opens it: loaded, else built here and saved."""
    index = AnnIndex.open(path, store, model, dim, params=params)
    if index.rebuild_reason is not None:
        index.extend(progress=progress, checkpoint=lambda: index.save(index.generation))
    return index


@pytest.fixture
def store(tmp_path: Path):
    s = Store.open(tmp_path / "library.db")
    yield s
    s.close()


@pytest.fixture
def filled(store: Store):
    vectors = clustered(3000)
    ids = fill(store, vectors)
    return store, ids, vectors


def recall(index: AnnIndex, ids: np.ndarray, matrix: np.ndarray, queries: np.ndarray, k: int):
    hits = 0
    for q in queries:
        got, scores = index.search(q, k)
        truth = exact_top(ids, matrix, q, k)
        hits += len(set(got.tolist()) & set(truth.tolist()))
        assert np.all(np.diff(scores) <= 1e-6), "scores must be sorted best first"
    return hits / (k * len(queries))


# --------------------------------------------------------------------------- build, search


def test_build_search_recall_and_reopen(filled, tmp_path: Path) -> None:
    store, ids, vectors = filled
    path = ann_path(tmp_path, MODEL)
    built = []
    # ef 128: graph construction runs on several threads, so the graph (and recall at the
    # default ef 64, ~0.95 on this hard synthetic set) varies slightly from run to run.
    index = open_or_build(
        path,
        store,
        MODEL,
        params=AnnParams(ef_search=128),
        progress=lambda d, t: built.append((d, t)),
    )
    assert index.rebuild_reason is not None and built[-1] == (3000, 3000)
    assert path.exists() and sidecar_path(path).exists()
    assert len(index) == 3000 and index.labels() == set(ids.tolist())
    queries = clustered(60, seed=1)
    assert recall(index, ids, vectors, queries, 10) >= 0.95

    got, scores = index.search(vectors[17], 5)
    assert got[0] == ids[17] and scores[0] == pytest.approx(1.0, abs=1e-4)
    np.testing.assert_allclose(scores, vectors[np.searchsorted(ids, got)] @ vectors[17], atol=1e-4)

    again = open_or_build(path, store, MODEL)
    assert again.rebuild_reason is None  # the file was trusted, not rebuilt
    assert again.labels() == set(ids.tolist()) and again.generation == store.generation(MODEL)
    np.testing.assert_array_equal(again.search(queries[0], 10)[0], index.search(queries[0], 10)[0])


def test_small_index_is_exact(store: Store, tmp_path: Path) -> None:
    vectors = clustered(200, seed=4)
    ids = fill(store, vectors)
    index = open_or_build(tmp_path / "small.hnsw", store, MODEL)
    for q in clustered(10, seed=5):
        np.testing.assert_array_equal(index.search(q, 15)[0], exact_top(ids, vectors, q, 15))
    assert len(index.search(vectors[0], 500)[0]) == 200  # k larger than the index


def test_empty_index(store: Store, tmp_path: Path) -> None:
    store.add_model(MODEL, DIM)
    index = open_or_build(tmp_path / "e.hnsw", store, MODEL)
    got, scores = index.search(np.ones(DIM), 10)
    assert len(got) == 0 and len(scores) == 0 and len(index) == 0
    assert open_or_build(tmp_path / "e.hnsw", store, MODEL).rebuild_reason is None


def test_add_grows_delete_replace(tmp_path: Path) -> None:
    vectors = clustered(2500, seed=2)
    ids = np.arange(10, 2510, dtype=np.int64)
    index = AnnIndex(tmp_path / "x.hnsw", MODEL, DIM, capacity=16)
    for lo in range(0, 2500, 300):
        assert index.add(ids[lo : lo + 300], vectors[lo : lo + 300]) == len(ids[lo : lo + 300])
    assert len(index) == 2500 and index.capacity >= 2500
    assert recall(index, ids, vectors, clustered(30, seed=3), 10) >= 0.95

    gone = ids[::3]
    assert index.delete(np.concatenate([gone, [999_999, 1]])) == len(gone)  # unknown ignored
    assert index.delete(gone[:5]) == 0  # already deleted: ignored
    keep = np.setdiff1d(ids, gone)
    kept_vectors = vectors[np.isin(ids, keep)]
    for q in clustered(30, seed=6):
        got = index.search(q, 20)[0]
        assert not set(got.tolist()) & set(gone.tolist())
    assert recall(index, keep, kept_vectors, clustered(30, seed=7), 10) >= 0.95
    assert index.labels() == set(keep.tolist()) and index.deleted_count == len(gone)

    # reviving a deleted id and replacing a live one's vector
    target = np.linspace(-1, 1, DIM).astype(np.float32)
    assert index.add([gone[0]], [target * 3]) == 0  # revived, not new
    assert index.add([keep[0]], [-target]) == 0  # replaced, not new
    got, scores = index.search(target, 3)
    assert got[0] == gone[0] and scores[0] == pytest.approx(1.0, abs=1e-4)
    assert keep[0] not in index.search(target, 50)[0]
    assert index.search(-target, 1)[0][0] == keep[0]
    assert gone[0] in index and index.deleted_count == len(gone) - 1
    np.testing.assert_allclose(
        index.vectors([gone[0]])[0], target / np.linalg.norm(target), atol=1e-6
    )


def test_add_rejects_bad_input(tmp_path: Path) -> None:
    index = AnnIndex(tmp_path / "x.hnsw", MODEL, DIM)
    with pytest.raises(ValueError):
        index.add([1, 2], np.ones((3, DIM)))
    with pytest.raises(ValueError):
        index.add([1], np.ones((1, DIM + 1)))
    with pytest.raises(ValueError):
        index.add([-1], np.ones((1, DIM)))
    assert index.add([], np.zeros((0, DIM))) == 0
    assert index.add([5, 5], [np.ones(DIM), -np.ones(DIM)]) == 1  # last one wins
    assert index.search(-np.ones(DIM), 1)[1][0] == pytest.approx(1.0, abs=1e-5)


# --------------------------------------------------------------------------- filters


def test_filtered_search(filled, tmp_path: Path) -> None:
    store, ids, vectors = filled
    index = open_or_build(tmp_path / "f.hnsw", store, MODEL)
    rng = np.random.default_rng(11)
    queries = clustered(20, seed=12)

    small = rng.choice(ids, 300, replace=False)  # below exact_below: exact over the subset
    large = rng.choice(ids, 1800, replace=False)  # HNSW with hnswlib's filter, wider ef
    for allowed in (small, large):
        sub = np.sort(allowed)
        sub_vectors = vectors[np.searchsorted(ids, sub)]
        hits = 0
        for q in queries:
            got, _ = index.search(q, 10, filter=set(allowed.tolist()))
            assert set(got.tolist()) <= set(allowed.tolist()) and len(got) == 10
            hits += len(set(got.tolist()) & set(exact_top(sub, sub_vectors, q, 10).tolist()))
        assert hits / 200 >= (1.0 if allowed is small else 0.9)

    even = index.search(queries[0], 10, filter=lambda i: i % 2 == 0)[0]
    assert len(even) == 10 and all(i % 2 == 0 for i in even.tolist())
    few = ids[[5, 500, 2500]]
    assert sorted(index.search(queries[0], 10, filter=few)[0].tolist()) == sorted(few.tolist())
    pick = {int(ids[7]), int(ids[8])}  # a predicate matching fewer than k: exact fallback
    assert set(index.search(queries[0], 10, filter=lambda i: i in pick)[0].tolist()) == pick
    assert len(index.search(queries[0], 10, filter=[123456789])[0]) == 0


# --------------------------------------------------------------------------- persistence


def test_rebuild_when_missing_truncated_or_corrupt(filled, tmp_path: Path) -> None:
    store, ids, _ = filled
    path = ann_path(tmp_path, MODEL)
    open_or_build(path, store, MODEL)

    path.unlink()
    index = open_or_build(path, store, MODEL)
    assert "missing" in index.rebuild_reason and index.labels() == set(ids.tolist())

    with open(path, "r+b") as fh:
        fh.truncate(os.path.getsize(path) // 2)
    index = open_or_build(path, store, MODEL)
    assert "bytes" in index.rebuild_reason and index.labels() == set(ids.tolist())

    # truncated and the sidecar "agrees" on the size: hnswlib's own load check must catch it
    with open(path, "r+b") as fh:
        fh.truncate(os.path.getsize(path) - 4096)
    meta = json.loads(sidecar_path(path).read_text())
    meta["file_size"] = os.path.getsize(path)
    sidecar_path(path).write_text(json.dumps(meta))
    index = open_or_build(path, store, MODEL)
    assert "corrupt" in index.rebuild_reason and len(index) == len(ids)

    sidecar_path(path).write_text("{not json")
    index = open_or_build(path, store, MODEL)
    assert "sidecar" in index.rebuild_reason
    assert open_or_build(path, store, MODEL).rebuild_reason is None


def test_rebuild_only_when_the_file_cannot_be_caught_up(filled, tmp_path: Path) -> None:
    store, ids, _ = filled
    path = ann_path(tmp_path, MODEL)
    open_or_build(path, store, MODEL)

    # saving an index that missed a change made by another process marks the file stale
    index = open_or_build(path, store, MODEL)
    store.remove_images(ids[:3])
    index.save()
    assert "stale" in open_or_build(path, store, MODEL).rebuild_reason

    # the change record was pruned past the file's generation (a newer file was saved and
    # this one is an old copy): it cannot be caught up
    old = path.read_bytes(), sidecar_path(path).read_text()
    for round_ in range(2):  # each save prunes up to the file before it
        fill(store, clustered(5, seed=8), start=20_000 + 10 * round_)
        open_or_build(path, store, MODEL).save(prune=True)
    path.write_bytes(old[0])
    sidecar_path(path).write_text(old[1])
    rebuilt = open_or_build(path, store, MODEL)
    assert "change record" in rebuilt.rebuild_reason
    assert rebuilt.labels() == set(store.embedding_ids(MODEL).tolist())

    # a model removed and added again under the same name: its old file is not trusted
    store.remove_model(MODEL)
    again = fill(store, clustered(30, seed=10), start=30_000)
    rebuilt = open_or_build(path, store, MODEL)
    assert "change record" in rebuilt.rebuild_reason and rebuilt.labels() == set(again.tolist())

    # an index file from another library is never trusted
    with Store.open(tmp_path / "other.db") as other:
        fill(other, clustered(30))
        assert "library_id" in open_or_build(path, other, MODEL).rebuild_reason


def test_file_behind_the_store_is_caught_up_not_rebuilt(filled, tmp_path: Path) -> None:
    store, ids, vectors = filled
    path = ann_path(tmp_path, MODEL)
    open_or_build(path, store, MODEL)
    # written behind the index's back (another process): added, replaced, removed
    new_vectors = clustered(50, seed=9)
    new_ids = fill(store, new_vectors, start=10_000)
    target = -vectors[0]
    store.upsert_images_with_embeddings([ImageRecord("/p/0.jpg", 1, 1)], MODEL, target[None])
    removed = ids[100:400]
    store.remove_images(removed)

    index = open_or_build(path, store, MODEL, params=AnnParams(ef_search=128))
    assert index.rebuild_reason is None
    assert index.generation == store.generation(MODEL) > index.base_generation
    assert index.delta_count == 51  # 50 added + 1 replaced; the removed are only hidden
    assert index.labels() == set(store.embedding_ids(MODEL).tolist())

    for n in (0, 17, 49):  # fresh vectors are found
        got, scores = index.search(new_vectors[n], 1)
        assert got[0] == new_ids[n] and scores[0] == pytest.approx(1.0, abs=1e-4)
    got, scores = index.search(target, 1)  # the replaced vector is searched by its new value
    assert got[0] == ids[0] and scores[0] == pytest.approx(1.0, abs=1e-4)
    old_hits = dict(zip(*(a.tolist() for a in index.search(vectors[0], 50)), strict=True))
    assert ids[0] not in old_hits or old_hits[ids[0]] < 0
    for q in (*vectors[100:110], *clustered(10, seed=13)):  # removed ids never come back
        assert not set(index.search(q, 50)[0].tolist()) & set(removed.tolist())

    # merged results match exact search over the store's current vectors
    current_ids, current = store.embedding_matrix(MODEL)
    assert recall(index, current_ids, current, clustered(40, seed=14), 10) >= 0.95
    allowed = set(new_ids[:10].tolist()) | set(ids[400:420].tolist())
    got = index.search(new_vectors[3], 10, filter=allowed)[0]
    assert got[0] == new_ids[3] and set(got.tolist()) <= allowed and len(got) == 10
    odd = index.search(new_vectors[3], 10, filter=lambda i: i % 2 == 1)[0]
    assert len(odd) == 10 and all(i % 2 == 1 for i in odd.tolist())
    assert (new_ids[3] in odd) == bool(new_ids[3] % 2)
    np.testing.assert_allclose(index.vectors([new_ids[5]])[0], new_vectors[5], atol=1e-6)


def test_catch_up_then_save_prunes_the_record(filled, tmp_path: Path) -> None:
    store, _, _ = filled
    path = ann_path(tmp_path, MODEL)
    writer = open_or_build(path, store, MODEL)
    reader = open_or_build(path, store, MODEL)
    behind = open_or_build(path, store, MODEL)
    first = store.generation(MODEL)

    more = clustered(20, seed=15)
    more_ids = fill(store, more, start=40_000)
    writer.add(more_ids, more)
    assert reader.catch_up() == 20 and reader.delta_count == 20
    assert reader.search(more[4], 1)[0][0] == more_ids[4]
    store.remove_images(more_ids[:5])
    writer.delete(more_ids[:5])
    assert reader.catch_up() == 5 and reader.delta_count == 15  # only what is new
    assert reader.catch_up() == 0  # nothing new
    assert not set(reader.search(more[0], 20)[0].tolist()) & set(more_ids[:5].tolist())

    writer.save(
        prune=True
    )  # the record is pruned up to the previous file: readers that saw it go on
    assert writer.generation == store.generation(MODEL)
    assert store.embedding_changes(MODEL, first).complete
    fill(store, clustered(1, seed=17), start=45_000)
    writer.fold() if writer.catch_up() else None
    saved_before = writer.generation
    writer.save(prune=True)  # ... and now up to the first save
    assert not store.embedding_changes(MODEL, first).complete
    assert store.embedding_changes(MODEL, saved_before).complete
    fill(store, clustered(2, seed=16), start=50_000)
    assert reader.catch_up() == 3  # it had seen the first save: it still catches up
    with pytest.raises(AnnIndexError):  # a reader behind the pruned part loads the file again
        behind.catch_up()
    fresh = open_or_build(path, store, MODEL)
    assert fresh.rebuild_reason is None and fresh.delta_count == 2
    assert fresh.labels() == set(store.embedding_ids(MODEL).tolist())

    # a writer folds the delta into the graph before it saves
    fresh.save()
    assert fresh.delta_count == 0 and fresh.labels() == set(store.embedding_ids(MODEL).tolist())
    assert open_or_build(path, store, MODEL).delta_count == 0


def test_load_waits_out_a_save_in_progress(filled, tmp_path: Path) -> None:
    store, _, _ = filled
    path = ann_path(tmp_path, MODEL)
    index = open_or_build(path, store, MODEL)
    old_sidecar = sidecar_path(path).read_text()
    more = clustered(20, seed=70)
    index.add(fill(store, more, start=60_000), more)
    index.save()
    new_sidecar = sidecar_path(path).read_text()
    sidecar_path(path).write_text(old_sidecar)  # the writer renamed the graph, not the sidecar

    def finish_save() -> None:
        tmp = sidecar_path(path).with_suffix(".tmp")
        tmp.write_text(new_sidecar)
        os.replace(tmp, sidecar_path(path))

    timer = threading.Timer(0.1, finish_save)
    timer.start()
    loaded = open_or_build(path, store, MODEL)
    timer.join()
    assert loaded.rebuild_reason is None and loaded.delta_count == 0
    assert loaded.labels() == set(store.embedding_ids(MODEL).tolist())


def test_delta_stays_exact_through_many_edits_of_the_same_photos(filled, tmp_path: Path) -> None:
    store, ids, _ = filled
    path = ann_path(tmp_path, MODEL)
    open_or_build(path, store, MODEL)
    reader = open_or_build(path, store, MODEL)
    rows = [ImageRecord(f"/p/{i}.jpg", 1, 1) for i in range(10)]
    for round_ in range(20):  # each edit blanks a row of the delta; blank rows get squeezed out
        latest = clustered(10, seed=100 + round_)
        store.upsert_images_with_embeddings(rows, MODEL, latest)
        reader.catch_up()
        assert reader.delta_count == 10
    for n in range(10):
        got, scores = reader.search(latest[n], 1)
        assert got[0] == ids[n] and scores[0] == pytest.approx(1.0, abs=1e-4)
    np.testing.assert_allclose(reader.vectors(ids[:10]), latest, atol=1e-6)
    reader.fold()
    assert reader.delta_count == 0 and reader.search(latest[3], 1)[0][0] == ids[3]


def test_save_cadence_bounds_count_time_and_cost() -> None:
    by_count = SaveCadence(every=100, interval_s=3600)
    assert not by_count.due()
    by_count.note(99)
    assert not by_count.due()
    by_count.note(1)
    assert by_count.due()
    by_count.saved(0.0)
    assert by_count.changes == 0 and not by_count.due()

    by_time = SaveCadence(every=10**9, interval_s=0.0)
    assert not by_time.due()  # nothing to save
    by_time.note(1)
    assert by_time.due()
    by_time.saved(3600.0)  # a save that took an hour: not again soon, however much changed
    by_time.note(10**9)
    assert not by_time.due()


def test_incremental_changes_survive_save_and_reload(filled, tmp_path: Path) -> None:
    store, ids, _ = filled
    path = ann_path(tmp_path, MODEL)
    index = open_or_build(path, store, MODEL)
    # the indexer's pattern: write the store, apply the same change to the index, save
    new_vectors = clustered(40, seed=21)
    new_ids = fill(store, new_vectors, start=50_000)
    index.add(new_ids, new_vectors)
    removed = ids[:100]
    store.remove_images(removed)
    index.delete(removed)
    index.save()

    reopened = open_or_build(path, store, MODEL)
    assert reopened.rebuild_reason is None
    assert reopened.labels() == set(store.embedding_ids(MODEL).tolist())
    assert reopened.deleted_count == 100
    assert not set(reopened.search(clustered(1, seed=3)[0], 50)[0].tolist()) & set(removed.tolist())
    got = reopened.search(new_vectors[3], 1)[0]
    assert got[0] == new_ids[3]

    # deleting past compact_ratio compacts on save; the reloaded file has no deleted slots
    compacting = open_or_build(path, store, MODEL, params=AnnParams(compact_ratio=0.1))
    more_removed = ids[100:700]
    store.remove_images(more_removed)
    compacting.delete(more_removed)
    compacting.save()
    assert compacting.deleted_count == 0
    final = open_or_build(path, store, MODEL)
    assert final.rebuild_reason is None and final.deleted_count == 0
    assert final.labels() == set(store.embedding_ids(MODEL).tolist())


def test_params_and_dim_checks(filled, tmp_path: Path) -> None:
    store, _, _ = filled
    path = ann_path(tmp_path, MODEL)
    open_or_build(path, store, MODEL)
    rebuilt = open_or_build(path, store, MODEL, params=AnnParams(m=8))
    assert "M" in rebuilt.rebuild_reason
    with pytest.raises(ValueError):
        open_or_build(path, store, MODEL, dim=DIM + 1)
    with pytest.raises(ValueError):
        open_or_build(tmp_path / "u.hnsw", store, "unknown-model")
    with pytest.raises(ValueError):
        AnnIndex(tmp_path / "l2.hnsw", MODEL, DIM, AnnParams(space="l2"))


def test_ann_path_is_safe() -> None:
    assert ann_path("/lib", "lotlip-vit-b16") == Path("/lib/ann/lotlip-vit-b16.hnsw")
    odd = ann_path("/lib", "../my model/v2")
    assert odd.parent == Path("/lib/ann") and "/" not in odd.name and not odd.name.startswith(".")
    assert ann_path("/lib", "a/b") != ann_path("/lib", "a_b")


# --------------------------------------------------------------------------- change record


def _record(store: Store) -> list[tuple[str, int, str]]:
    rows = store.conn.execute("SELECT model, image_id, op FROM embedding_changes ORDER BY id")
    return [tuple(r) for r in rows]


def test_change_record_is_written_with_the_vectors(tmp_path: Path) -> None:
    store = Store.open(tmp_path / "library.db")
    folder = store.add_folder(tmp_path / "photos")
    rows = [ImageRecord(str(tmp_path / "photos" / f"{i}.jpg"), 1, 1, folder.id) for i in range(4)]
    ids = store.upsert_images_with_embeddings(rows, MODEL, clustered(4))
    start = store.generation(MODEL)
    store.upsert_images_with_embeddings(rows[:1], MODEL, clustered(1, seed=1))  # replaced
    store.remove_images(ids[1:2])
    store.add_model("other", DIM)
    assert store.copy_embeddings(MODEL, "other") == 3
    # new content for a photo drops the other model's vector (a cascade inside the store)
    store.upsert_images_with_embeddings([ImageRecord(rows[2].path, 2, 2)], MODEL, clustered(1))
    assert _record(store)[4:] == [
        (MODEL, ids[0], "replace"),
        (MODEL, ids[1], "remove"),
        ("other", ids[0], "add"),
        ("other", ids[2], "add"),
        ("other", ids[3], "add"),
        ("other", ids[2], "remove"),
        (MODEL, ids[2], "replace"),
    ]
    changes = store.embedding_changes(MODEL, start)
    assert changes.complete and changes.generation == store.generation(MODEL)
    assert changes.ids.tolist() == [ids[0], ids[1], ids[2]]
    assert store.embedding_changes(MODEL, changes.generation).ids.tolist() == []

    # a transaction that fails writes no record and no vectors
    before = _record(store)
    with pytest.raises(ValueError):
        store.upsert_images_with_embeddings(rows, MODEL, np.ones((4, DIM + 1)))
    bad = [ImageRecord(str(tmp_path / "photos" / "9.jpg"), 1, 1, folder_id=999_999)]
    with pytest.raises(sqlite3.IntegrityError):  # no such folder: fails inside the transaction
        store.upsert_images_with_embeddings(bad, MODEL, clustered(1))
    assert _record(store) == before

    # a folder deleted by any code path: its images' vectors cascade away, recorded as removed
    with store.conn:
        store.conn.execute("DELETE FROM folders WHERE id = ?", (folder.id,))
    assert sorted(_record(store)[len(before) :]) == [
        *((MODEL, i, "remove") for i in (ids[0], ids[2], ids[3])),
        *(("other", i, "remove") for i in (ids[0], ids[3])),
    ]
    assert store.embedding_count(MODEL) == 0
    store.close()


def test_change_record_starts_at_the_upgrade(tmp_path: Path) -> None:
    conn = connect(tmp_path / "library.db")
    apply_migrations(conn, 2)  # a library made before the change record existed
    conn.execute("INSERT INTO meta(key, value) VALUES ('_generation:' || ?, '7')", (MODEL,))
    conn.commit()
    conn.close()
    with Store.open(tmp_path / "library.db") as store:
        assert not store.embedding_changes(MODEL, 6).complete  # older files: rebuilt
        assert store.embedding_changes(MODEL, 7).complete  # a current file is trusted
        store.upsert_images_with_embeddings([ImageRecord("/p/1.jpg", 1, 1)], MODEL, clustered(1))
        assert store.embedding_changes(MODEL, 7).ids.tolist() == [store.image_id("/p/1.jpg")]
        with pytest.raises(ValueError):
            store.prune_embedding_changes(MODEL, 99)
