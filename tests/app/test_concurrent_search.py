"""Searching from another process while an indexer is writing to the same library.

A reader never rebuilds the index because a writer moved the store on: it catches up from the
store's change record (see app.library.ann). Rebuilds are counted by wrapping the real
``AnnIndex.empty`` (where every build starts).
"""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pytest

from app.library.ann import AnnIndex, AnnParams, ann_path, saved_generation, sidecar_path
from app.library.indexer import Indexer
from app.library.library import Library, LibraryBusyError
from app.library.search import Searcher
from app.library.store import ImageRecord
from tests.app.conftest import RANDOM_MODEL, draw_folder, start_cli
from tests.app.test_ann import DIM, MODEL, clustered, exact_top, fill
from tests.app.test_indexer_crash import committed, wait_for

IMAGES = 600


@pytest.fixture
def builds(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Paths of the ANN indexes built from the store in this process (the real build runs;
    every build, in the foreground or a searcher's background thread, starts from ``empty``)."""
    built: list[str] = []
    real = AnnIndex.empty.__func__  # type: ignore[attr-defined]

    def counting(cls, path, *args, **kwargs):
        built.append(os.fspath(path))
        return real(cls, path, *args, **kwargs)

    monkeypatch.setattr(AnnIndex, "empty", classmethod(counting))
    return built


def _stamp(path: Path) -> tuple[int, int, int]:
    st = path.stat()
    return st.st_ino, st.st_size, st.st_mtime_ns


def test_reader_catches_up_while_another_library_writes(tmp_path: Path, builds) -> None:
    lib_dir = tmp_path / "library"
    path = ann_path(lib_dir, MODEL)
    vectors = clustered(2000, seed=30)
    with Library.open(lib_dir) as writer, Library.open(lib_dir) as reader:
        with writer.writing():
            ids = fill(writer.store, vectors)
            writer.ann(MODEL, DIM)  # no file yet: built and saved once
        assert len(builds) == 1 and path.exists()
        searched = reader.ann(MODEL, DIM, refresh=True)
        assert searched.rebuild_reason is None

        with writer.writing():
            index = writer.ann(MODEL, DIM)
            for round_ in range(4):
                stamp = _stamp(path)
                new = clustered(30, seed=40 + round_)
                new_ids = fill(writer.store, new, start=10_000 + 100 * round_)
                index.add(new_ids, new)
                gone = ids[100 * round_ : 100 * round_ + 60]
                writer.store.remove_images(gone)
                index.delete(gone)
                who = 1000 + round_  # an edited photo: same id, new vector
                target = -vectors[who]
                writer.store.upsert_images_with_embeddings(
                    [ImageRecord(f"/p/{who}.jpg", 1, 1)], MODEL, target[None]
                )
                index.add([ids[who]], target[None])

                assert reader.ann(MODEL, DIM, refresh=True) is searched  # caught up in place
                assert len(builds) == 1 and _stamp(path) == stamp  # no rebuild, file untouched
                for n in (0, 11, 29):
                    assert searched.search(new[n], 1)[0][0] == new_ids[n]
                assert searched.search(target, 1)[0][0] == ids[who]
                for q in vectors[100 * round_ : 100 * round_ + 5]:
                    assert not set(searched.search(q, 30)[0].tolist()) & set(gone.tolist())
                current_ids, current = writer.store.embedding_matrix(MODEL)
                assert searched.labels() == set(current_ids.tolist())
                for q in clustered(5, seed=50 + round_):
                    got = set(searched.search(q, 10)[0].tolist())
                    assert len(got & set(exact_top(current_ids, current, q, 10).tolist())) >= 8
            index.save(prune=True)  # the writer's periodic save: prunes the record up to it
            more = clustered(3, seed=60)
            more_ids = fill(writer.store, more, start=50_000)
            index.add(more_ids, more)
            again = reader.ann(MODEL, DIM, refresh=True)
            assert again.search(more[1], 1)[0][0] == more_ids[1]
        assert len(builds) == 1


def test_reader_swaps_in_the_writers_newer_file_in_the_background(tmp_path: Path, builds) -> None:
    lib_dir = tmp_path / "library"
    with Library.open(lib_dir) as writer, writer.writing():
        fill(writer.store, clustered(1500, seed=32))
        writer.ann(MODEL, DIM)
    with (
        Library.open(lib_dir) as writer,
        Library.open(lib_dir, ann_params=AnnParams(delta_reload=10)) as reader,
    ):
        first = reader.ann(MODEL, DIM, refresh=True)
        with writer.writing():
            index = writer.ann(MODEL, DIM)
            new = clustered(40, seed=33)
            index.add(fill(writer.store, new, start=10_000), new)
            index.save()
            assert reader.ann(MODEL, DIM, refresh=True) is first  # answered from the delta
            assert first.delta_count == 40
            reader.wait_for_reloads()
            swapped = reader.ann(MODEL, DIM, refresh=True)
            assert swapped is not first and swapped.delta_count == 0
            assert swapped.base_generation == writer.store.generation(MODEL)
            assert swapped.search(new[7], 1)[0][0] == writer.store.image_id("/p/10007.jpg")
    assert len(builds) == 1


def test_corrupt_or_foreign_file_is_rebuilt_by_the_reader(tmp_path: Path, builds) -> None:
    lib_dir = tmp_path / "library"
    path = ann_path(lib_dir, MODEL)
    with Library.open(lib_dir) as writer, writer.writing():
        fill(writer.store, clustered(1500, seed=31))
        writer.ann(MODEL, DIM)
    data = bytearray(path.read_bytes())
    data[len(data) // 2 : len(data) // 2 + 4096] = os.urandom(4096)  # same size, bad bytes
    path.write_bytes(bytes(data))
    with Library.open(lib_dir) as reader:
        index = reader.ann(MODEL, DIM, refresh=True)
        assert index.rebuild_reason is not None and len(builds) == 2
        reader.wait_for_builds()  # a searcher's index is built in the background
        assert len(index) == 1500 and index.partial_upto is None
    with Library.open(tmp_path / "other") as other:  # another library's file is not used
        fill(other.store, clustered(1500, seed=31))
        other.ann_dir.mkdir(parents=True)
        for file in (path, sidecar_path(path)):
            (other.ann_dir / file.name).write_bytes(file.read_bytes())
        index = other.ann(MODEL, DIM, refresh=True)
        assert "library_id" in index.rebuild_reason and len(builds) == 3


def test_indexer_saves_by_count_during_a_long_run(
    tmp_path: Path, models_dir: Path, micro_model
) -> None:
    folder = tmp_path / "photos"
    draw_folder(folder, 24)
    seen: set[int | None] = set()
    with Library.open(tmp_path / "library") as lib:
        path = ann_path(lib.dir, micro_model.name)
        indexer = Indexer(
            lib, micro_model, batch_size=2, workers=1, save_every=3, save_interval_s=3600
        )

        def progress(p) -> None:
            if p.phase == "embedding":
                seen.add(saved_generation(path))

        report = indexer.run([folder], progress=progress)
        assert report.added == 24
    # the file was saved every few batches during the run, not only at the end
    assert len(seen - {None, 0}) >= 3


def test_search_while_another_process_indexes(
    tmp_path: Path, models_dir: Path, micro_model, builds
) -> None:
    folder = tmp_path / "photos"
    draw_folder(folder, IMAGES)
    lib_dir = tmp_path / "library"
    db = lib_dir / "library.db"
    args = ["--library", str(lib_dir), "--model", RANDOM_MODEL, "index", str(folder)]
    proc = start_cli([*args, "--batch-size", "2", "--save-every", "1", "--json"], models_dir)
    try:
        saved = sidecar_path(ann_path(lib_dir, RANDOM_MODEL))
        wait_for(lambda: committed(db) >= 10 and saved.exists(), proc)
        with Library.open(lib_dir) as lib:  # this test process is the second process
            # Hold the indexer mid-run (SIGSTOP), so that forget always meets a running indexer:
            # writers exclude each other, and forget is refused instead of waiting.
            os.kill(proc.pid, signal.SIGSTOP)
            try:
                assert proc.poll() is None, "the indexer finished too early for this test"
                with pytest.raises(LibraryBusyError, match="indexing"):
                    lib.forget(folder / "img_0000.jpg")
            finally:
                os.kill(proc.pid, signal.SIGCONT)
            searcher = Searcher(lib, micro_model)
            for _ in range(3):
                before = len(lib.store.image_ids())
                response = searcher.search("a red rectangle next to a blue ellipse", top=5)
                # the indexer had not finished when the search started: it ran concurrently
                assert 10 <= before < IMAGES, "the indexer finished too early for this test"
                assert len(response.results) == 5
                assert all(r.path.startswith(str(folder)) for r in response.results)
                # every vector committed before the search was searched, without a rebuild
                assert len(lib.ann(RANDOM_MODEL, refresh=False)) >= before
                reason = lib.ann(RANDOM_MODEL).rebuild_reason
                assert builds == [], f"the search rebuilt the index: {reason}"
    finally:
        out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err.decode()
    assert json.loads(out)["added"] == IMAGES
    with Library.open(lib_dir) as lib:  # the indexer's saved index is complete and current
        index = AnnIndex.load(ann_path(lib_dir, RANDOM_MODEL), lib.store, RANDOM_MODEL)
        assert len(index) == IMAGES
