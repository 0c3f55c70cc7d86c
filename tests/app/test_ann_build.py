"""Building a big index without making searches wait: chunked builds that save as they go,
resume after being killed, answer queries mid-build, and never replace a good file with a bad
one. Real hnswlib indexes and SQLite files throughout."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import hnswlib
import numpy as np
import pytest

from app.library.ann import AnnIndex, AnnParams, SaveCadence, ann_path, sidecar_path
from app.library.library import Library
from app.library.search import Searcher
from app.library.store import ImageRecord, Store
from tests.app.test_ann import MODEL, clustered, fill, open_or_build

ROOT = Path(__file__).resolve().parents[2]
EVERY_CHUNK = dict(every=1, interval_s=0.0, min_cost_s=1e9)  # save after every chunk


def exact(store: Store, query: np.ndarray, k: int, model: str = MODEL) -> list[int]:
    """The store's exact top-``k`` ids (computed here, not by the code under test)."""
    ids, matrix = store.embedding_matrix(model)
    matrix = matrix / np.linalg.norm(matrix, axis=1, keepdims=True)
    scores = matrix @ (query / np.linalg.norm(query))
    return ids[np.argsort(-scores, kind="stable")[:k]].tolist()


def test_save_keeps_the_old_file_when_hnswlib_writes_an_empty_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = Store.open(tmp_path / "library.db")
    fill(store, clustered(1500, seed=3))
    path = tmp_path / "a.hnsw"
    open_or_build(path, store)
    before, sidecar = path.read_bytes(), sidecar_path(path).read_text()
    index = AnnIndex.load(path, store, MODEL)
    real = hnswlib.Index.save_index

    def full_disk(self: hnswlib.Index, target: str) -> None:  # what hnswlib did on a full disk
        real(self, target)
        os.truncate(target, 0)

    monkeypatch.setattr(hnswlib.Index, "save_index", full_disk)
    with pytest.raises(OSError, match=r"disk full|no space left"):
        index.save(index.generation)
    assert path.read_bytes() == before and sidecar_path(path).read_text() == sidecar
    assert not path.with_name(path.name + ".tmp").exists()

    def cut_short(self: hnswlib.Index, target: str) -> None:
        real(self, target)
        os.truncate(target, os.path.getsize(target) - 4096)

    monkeypatch.setattr(hnswlib.Index, "save_index", cut_short)
    with pytest.raises(OSError, match=r"disk full|no space left"):
        index.save(index.generation)
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert AnnIndex.load(path, store, MODEL).labels() == index.labels()
    store.close()


def test_a_query_mid_build_sees_every_stored_vector(tmp_path: Path) -> None:
    store = Store.open(tmp_path / "library.db")
    ids = fill(store, clustered(3000, seed=4))
    params = AnnParams(exact_below=0)  # the graph is searched by HNSW even when small
    index = AnnIndex.empty(tmp_path / "b.hnsw", store, MODEL, params=params)
    queries = clustered(20, seed=5)
    for q in queries[:3]:  # nothing built yet: all read from the store exactly
        assert index.search(q, 10)[0].tolist() == exact(store, q, 10)

    paused, resume = threading.Event(), threading.Event()
    seen: list[int] = []

    def hold_after_two_chunks(done: int, total: int) -> None:
        seen.append(done)
        if len(seen) == 2:
            paused.set()
            assert resume.wait(30)

    builder = threading.Thread(
        target=lambda: index.extend(
            chunk_size=512, progress=hold_after_two_chunks, cancelled=lambda: False
        )
    )
    builder.start()
    assert paused.wait(30)
    assert index.partial_upto is not None and 0 < len(index) < len(ids)
    # a writer changes the library mid-build: new photos, removed ones (built and not yet)
    new = fill(store, clustered(40, seed=6), start=5000)
    store.remove_images([int(ids[0]), int(ids[1]), int(ids[-1])])
    index.catch_up()
    hits = 0
    for q in queries:
        got = index.search(q, 10)[0].tolist()
        assert not {int(ids[0]), int(ids[1]), int(ids[-1])} & set(got)
        hits += len(set(got) & set(exact(store, q, 10)))
    assert hits / (10 * len(queries)) >= 0.95  # the built part is HNSW, the rest exact
    allowed = [int(i) for i in ids[::7] if i not in (ids[0], ids[1], ids[-1])]
    allowed_ids = np.asarray(allowed)
    stored_ids, matrix = store.embedding_matrix(MODEL)
    keep = np.isin(stored_ids, allowed_ids)
    assert min(allowed) <= index.partial_upto < max(allowed)  # both parts hold allowed ids
    for q in queries[:5]:  # a filter applies to the part read from the store as well
        got = index.search(q, 5, filter=allowed)[0].tolist()
        scores = matrix[keep] @ q / np.linalg.norm(matrix[keep], axis=1)
        assert got == stored_ids[keep][np.argsort(-scores, kind="stable")[:5]].tolist()
    resume.set()
    builder.join(30)
    assert index.partial_upto is None and not builder.is_alive()
    assert index.labels() == set(store.embedding_ids(MODEL).tolist())
    assert set(new.tolist()) <= index.labels()
    store.close()


KILLED_BUILD = """
import os, signal, sys
from app.library.ann import AnnIndex, SaveCadence, sidecar_path
from app.library.store import Store
import json
path = sys.argv[2]
store = Store.open(sys.argv[1])

def progress(done, total):
    try:
        upto = json.loads(sidecar_path(path).read_text()).get("partial_upto")
    except FileNotFoundError:
        return
    if upto is not None and done >= 1500:  # saved part way: die without cleaning up
        os.kill(os.getpid(), signal.SIGKILL)

index = AnnIndex.empty(path, store, "lotlip-tiny")
index.extend(chunk_size=500, progress=progress, checkpoint=index.save,
             cadence=SaveCadence(every=1, interval_s=0.0, min_cost_s=1e9))
"""


def test_a_killed_build_resumes_from_its_last_save(tmp_path: Path) -> None:
    db, path = tmp_path / "library.db", tmp_path / "c.hnsw"
    store = Store.open(db)
    ids = fill(store, clustered(3000, seed=7))
    run = subprocess.run(
        [sys.executable, "-c", KILLED_BUILD, str(db), str(path)], cwd=ROOT, timeout=120
    )
    assert run.returncode == -signal.SIGKILL
    meta = json.loads(sidecar_path(path).read_text())
    assert meta["partial_upto"] is not None and 0 < meta["count"] < len(ids)
    with pytest.raises(Exception, match="partial"):
        AnnIndex.load(path, store, MODEL)  # not taken for a complete index
    # the library changes before the resume: below and above where the build got
    saved_upto = meta["partial_upto"]
    gone = [int(ids[5]), int(ids[-5])]
    store.remove_images(gone)
    replaced = int(ids[10])
    store.upsert_images_with_embeddings(
        [ImageRecord("/p/10.jpg", 1, 1)], MODEL, clustered(1, seed=8)
    )
    fill(store, clustered(30, seed=9), start=9000)

    done: list[int] = []
    index = open_or_build(path, store, MODEL, progress=lambda d, t: done.append(d))
    assert index.rebuild_reason.startswith("resumed")
    assert done[0] > 500  # went on from the saved part, not from nothing
    assert index.partial_upto is None and saved_upto < max(index.labels())
    assert index.labels() == set(store.embedding_ids(MODEL).tolist())
    assert np.allclose(index.vectors([replaced])[0], clustered(1, seed=8)[0], atol=1e-6)
    again = open_or_build(path, store, MODEL)  # the finished file is complete
    assert again.rebuild_reason is None and again.partial_upto is None
    assert json.loads(sidecar_path(path).read_text())["partial_upto"] is None
    store.close()


def test_a_search_never_waits_for_the_build(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, micro_model
) -> None:
    lib_dir = tmp_path / "library"
    vectors = np.random.default_rng(10).standard_normal((2500, micro_model.embed_dim))
    with Library.open(lib_dir) as lib, lib.writing():
        lib.register_model(micro_model)
        rows = [ImageRecord(f"/p/{i}.jpg", 1, 1) for i in range(len(vectors))]
        lib.store.upsert_images_with_embeddings(rows, micro_model.name, vectors)
    release = threading.Event()
    real = AnnIndex.extend

    def slow_start(self: AnnIndex, **kwargs: object) -> bool:
        assert release.wait(30)  # the build has not got anywhere while the search runs
        return real(self, **kwargs)

    monkeypatch.setattr(AnnIndex, "extend", slow_start)
    with Library.open(lib_dir) as lib:
        searcher = Searcher(lib, micro_model)
        query = vectors[123]
        response = searcher.search_vector(query, top=5)
        ids = [r.id for r in response.results]
        assert ids == exact(lib.store, query, 5, micro_model.name)
        assert not response.warnings
        index = lib.ann(micro_model.name, refresh=True)
        assert index.partial_upto is not None  # still building
        release.set()
        lib.wait_for_builds()
        assert index.partial_upto is None and len(index) == len(vectors)
        assert [r.id for r in searcher.search_vector(query, top=5).results] == ids
    meta = json.loads(sidecar_path(ann_path(lib_dir, micro_model.name)).read_text())
    assert meta["partial_upto"] is None and meta["count"] == len(vectors)


def test_build_saves_on_its_cadence(tmp_path: Path) -> None:
    store = Store.open(tmp_path / "library.db")
    fill(store, clustered(1800, seed=11))
    path = tmp_path / "d.hnsw"
    saved: list[int | None] = []
    index = AnnIndex.empty(path, store, MODEL)

    def checkpoint() -> None:
        index.save()
        saved.append(json.loads(sidecar_path(path).read_text())["count"])

    index.extend(chunk_size=500, checkpoint=checkpoint, cadence=SaveCadence(**EVERY_CHUNK))
    assert saved == [500, 1000, 1500, 1800]  # after each chunk, and once complete
    store.close()


def test_a_cli_search_answers_then_finishes_the_build(cli, tmp_path: Path) -> None:
    from tests.app.conftest import draw_folder

    draw_folder(tmp_path / "photos", 6)
    assert cli("index", str(tmp_path / "photos"))[0] == 0
    library = tmp_path / "library"
    (path,) = (library / "ann").glob("*.hnsw")
    path.unlink()  # the index is lost: the search answers from the store and builds it
    status, out, err = cli("search", "a red block", "--top", "3", "--json")
    assert status == 0, err
    assert len(json.loads(out)["results"]) == 3
    meta = json.loads(sidecar_path(path).read_text())
    assert meta["partial_upto"] is None and meta["count"] == 6
