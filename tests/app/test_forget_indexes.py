"""`forget` touches only the ANN indexes of vector sets that lost rows, and search stays exact."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

import lotlip
from app.library.ann import ann_path, sidecar_path
from app.library.indexer import Indexer
from app.library.library import Library
from app.library.search import Searcher
from tests.app.conftest import OTHER_MODEL, draw_folder
from tests.builders import new_micro_model


def _stamp(path: Path) -> tuple[int, int, int] | None:
    """(inode, mtime, size) of a file, or ``None`` when it does not exist."""
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    return st.st_ino, st.st_mtime_ns, st.st_size


def _stamps(lib: Library, name: str) -> tuple:
    path = ann_path(lib.dir, name)
    return _stamp(path), _stamp(sidecar_path(path))


def test_forget_leaves_indexes_of_untouched_sets_alone(library, micro_model, tmp_path: Path):
    one, two = tmp_path / "one", tmp_path / "two"
    draw_folder(one / "drafts", 3)
    draw_folder(one / "keep", 3, start=10)
    draw_folder(two, 4, start=20)
    Indexer(library, micro_model, batch_size=4, workers=1).run([one, two])
    other = lotlip.load(OTHER_MODEL, device="cpu")
    Indexer(library, other, batch_size=4, workers=1).run([two])  # nothing in one/
    # a kept set (same name, earlier weights): it has no ANN file until someone searches it
    for seed, where in ((3, "a"), (4, "b")):
        new_micro_model("twice", micro_model.tokenizer.vocab, seed=seed).save(
            tmp_path / where / "twice"
        )
    for where in ("a", "b"):
        twice = lotlip.load(tmp_path / where / "twice", device="cpu")
        Indexer(library, twice, batch_size=4, workers=1).run([two])
    kept = next(m.name for m in library.store.models() if m.name.startswith("twice@"))
    untouched = {name: _stamps(library, name) for name in (OTHER_MODEL, "twice", kept)}
    assert untouched[OTHER_MODEL][0] is not None and untouched[kept][0] is None

    assert library.forget(one / "drafts") == 3

    for name, stamps in untouched.items():
        assert _stamps(library, name) == stamps, f"the {name} index was touched"
    # another process searches exactly the remaining vectors
    reader = Library.open(library.dir, create=False)
    try:
        ids, vectors = reader.store.embedding_matrix(micro_model.name)
        assert len(ids) == 7
        text = "a red shape on blue"
        expected = ids[np.argsort(-(vectors @ micro_model.embed_texts([text])[0]))].tolist()
        found = [r.id for r in Searcher(reader, micro_model).search(text, 7).results]
        assert found == expected
        assert reader.ann(micro_model.name).rebuild_reason is None  # its saved file was used
        assert not any(os.fspath(one / "drafts") in r.path for r in reader.store.rows_for(found))
    finally:
        reader.close()
