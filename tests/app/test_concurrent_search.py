"""Searching from another process while an indexer is writing to the same library."""

from __future__ import annotations

import json
from pathlib import Path

from app.library.ann import AnnIndex, ann_path
from app.library.library import Library, LibraryBusyError
from app.library.search import Searcher
from tests.app.conftest import RANDOM_MODEL, draw_folder, start_cli
from tests.app.test_indexer_crash import committed, wait_for

IMAGES = 600


def test_search_while_another_process_indexes(
    tmp_path: Path, models_dir: Path, micro_model
) -> None:
    folder = tmp_path / "photos"
    draw_folder(folder, IMAGES)
    lib_dir = tmp_path / "library"
    db = lib_dir / "library.db"
    args = ["--library", str(lib_dir), "--model", RANDOM_MODEL, "index", str(folder)]
    proc = start_cli([*args, "--batch-size", "2", "--save-every", "1", "--json"], models_dir)
    try:
        wait_for(lambda: committed(db) >= 10, proc)
        forgot = 0
        with Library.open(lib_dir) as lib:  # this test process is the second process
            searcher = Searcher(lib, micro_model)
            for _ in range(2):
                before = len(lib.store.image_ids())
                response = searcher.search("a red rectangle next to a blue ellipse", top=5)
                # the indexer had not finished when the search started: it ran concurrently
                assert 10 <= before < IMAGES, "the indexer finished too early for this test"
                assert len(response.results) == 5
                assert all(r.path.startswith(str(folder)) for r in response.results)
            # writers exclude each other: forgetting is refused while the indexer runs
            forgot = 0
            if proc.poll() is None:
                try:
                    forgot = lib.forget(folder / "img_0000.jpg")
                except LibraryBusyError as exc:
                    assert "indexing" in str(exc)
                else:
                    assert proc.poll() is not None, "forget ran while another process indexed"
    finally:
        out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err.decode()
    assert json.loads(out)["added"] == IMAGES
    with Library.open(lib_dir) as lib:  # the indexer's saved index is complete and current
        index = AnnIndex.load(ann_path(lib_dir, RANDOM_MODEL), lib.store, RANDOM_MODEL)
        assert len(index) == IMAGES - forgot
