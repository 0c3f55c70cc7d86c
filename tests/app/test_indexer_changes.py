"""Incremental indexing: moved files keep their vectors, modified ones are re-embedded,
deleted ones leave the results, touched ones cost nothing."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np

from app.library.indexer import Indexer, IndexProgress
from app.library.search import Searcher
from tests.app.conftest import draw_folder, draw_image


def test_move_modify_delete_touch(library, micro_model, tmp_path: Path) -> None:
    folder = tmp_path / "photos"
    paths = draw_folder(folder, 12)
    indexer = Indexer(library, micro_model, batch_size=5, workers=2)
    first = indexer.run([folder])
    assert (first.added, first.embedded, first.failed) == (12, 12, 0)
    store = library.store

    moved_from, modified, deleted, touched = paths[0], paths[1], paths[2], paths[3]
    moved_id = store.image_id(str(moved_from))
    _, moved_vector = store.vectors_for([moved_id], micro_model.name)
    modified_id = store.image_id(str(modified))
    _, modified_vector = store.vectors_for([modified_id], micro_model.name)
    deleted_id = store.image_id(str(deleted))

    moved_to = folder / "2021" / "renamed.jpg"
    moved_to.parent.mkdir()
    shutil.move(moved_from, moved_to)
    draw_image(modified, "jpeg", (64, 40), seed=99)  # new content, new size
    deleted.unlink()
    st = touched.stat()
    os.utime(touched, ns=(st.st_atime_ns, st.st_mtime_ns + 5_000_000_000))

    second = indexer.run()
    assert second.moved == 1
    assert second.updated == 1
    assert second.removed == 1
    assert second.touched == 1
    assert second.added == 0
    assert second.embedded == 1  # only the modified file went through the model
    assert second.unchanged == 12 - 4

    # the moved file kept its id and its very vector
    assert store.image_id(str(moved_to)) == moved_id
    assert store.image_id(str(moved_from)) is None
    _, vector_after = store.vectors_for([moved_id], micro_model.name)
    assert np.array_equal(vector_after, moved_vector)
    # the modified file kept its id, got a new vector and its new size
    assert store.image_id(str(modified)) == modified_id
    _, modified_after = store.vectors_for([modified_id], micro_model.name)
    assert not np.allclose(modified_after, modified_vector)
    assert (store.rows_for([modified_id])[0].width, store.rows_for([modified_id])[0].height) == (
        64,
        40,
    )
    # the deleted file is gone from the store, the index and the results
    assert store.image_id(str(deleted)) is None
    index = library.ann(micro_model.name, micro_model.embed_dim)
    assert deleted_id not in index
    assert index.labels() == set(store.embedding_ids(micro_model.name).tolist())
    results = Searcher(library, micro_model).search("a shape", top=50).results
    found = {r.path for r in results}
    assert str(deleted) not in found
    assert str(moved_to) in found and len(results) == 11


def test_progress_and_cancel(library, micro_model, tmp_path: Path) -> None:
    folder = tmp_path / "photos"
    draw_folder(folder, 20)
    seen: list[IndexProgress] = []

    def cancel() -> bool:  # stop once the first batch is in
        return any(p.phase == "embedding" and p.done >= 4 for p in seen)

    report = Indexer(library, micro_model, batch_size=4, workers=1).run(
        [folder], progress=seen.append, cancel=cancel
    )
    assert report.cancelled
    assert 4 <= report.embedded < 20
    phases = [p.phase for p in seen]
    assert phases[0] == "opening" and "scanning" in phases and "embedding" in phases
    assert library.store.embedding_count(micro_model.name) == report.embedded
    # the saved index matches the store, so the next run resumes without a rebuild
    library.drop_ann(micro_model.name)
    assert library.ann(micro_model.name, micro_model.embed_dim).rebuild_reason is None
    rest = Indexer(library, micro_model, batch_size=4).run()
    assert not rest.cancelled and rest.added == 20 - report.embedded
    assert library.store.embedding_count(micro_model.name) == 20
