"""Searching from another process while an indexer is writing to the same library."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pytest

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
            for _ in range(2):
                before = len(lib.store.image_ids())
                response = searcher.search("a red rectangle next to a blue ellipse", top=5)
                # the indexer had not finished when the search started: it ran concurrently
                assert 10 <= before < IMAGES, "the indexer finished too early for this test"
                assert len(response.results) == 5
                assert all(r.path.startswith(str(folder)) for r in response.results)
    finally:
        out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err.decode()
    assert json.loads(out)["added"] == IMAGES
    with Library.open(lib_dir) as lib:  # the indexer's saved index is complete and current
        index = AnnIndex.load(ann_path(lib_dir, RANDOM_MODEL), lib.store, RANDOM_MODEL)
        assert len(index) == IMAGES
