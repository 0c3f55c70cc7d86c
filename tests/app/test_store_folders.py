"""The store's folder-level operations: forgetting a subtree, absorbing nested roots, pending."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from app.library.store import ImageRecord, Store

ODD = os.fsdecode(b"/p/caf\xe9")  # a folder name that is not valid UTF-8


@pytest.fixture
def store(tmp_path: Path):
    with Store.open(tmp_path / "library.db") as s:
        yield s


def add(store: Store, folder_id: int, *paths: str) -> list[int]:
    records = [ImageRecord(p, 10, 1, folder_id) for p in paths]
    vectors = np.eye(len(paths), 4, dtype=np.float32) + 0.1
    return store.upsert_images_with_embeddings(records, "m", vectors)


def paths(store: Store) -> set[str]:
    return {r.path for r in store.rows_for(store.image_ids())}


def test_forget_path_is_exactly_the_subtree(store: Store) -> None:
    root = store.add_folder("/p", ["*.tmp"])
    add(store, root.id, "/p/2020/a.jpg", "/p/trips/2020/b.jpg", "/p/2020-extra/c.jpg")
    add(store, root.id, f"{ODD}/d.jpg", f"{ODD}x/e.jpg", "/p/x[1]/f.jpg")
    store.record_failure("/p/2020/broken.jpg", "bad", folder_id=root.id, size=1, mtime_ns=1)
    store.record_failure("/p/trips/2020/broken.jpg", "bad", folder_id=root.id, size=1, mtime_ns=1)
    store.replace_pending("m", ["/p"], [("/p/2020/later.jpg", root.id), ("/p/z.jpg", root.id)])
    generation = store.generation("m")

    gone = store.forget_path("/p/2020")
    assert len(gone) == 1 and store.generation("m") == generation + 1
    assert paths(store) == {
        "/p/trips/2020/b.jpg", "/p/2020-extra/c.jpg", f"{ODD}/d.jpg", f"{ODD}x/e.jpg",
        "/p/x[1]/f.jpg",
    }  # fmt: skip
    assert [f.path for f in store.failures()] == ["/p/trips/2020/broken.jpg"]
    assert store.pending_count() == 1
    assert store.get_folder("/p").excludes == ("*.tmp", "/2020")

    store.forget_path(ODD)  # non-UTF-8 bytes: the range is on the bytes
    store.forget_path("/p/x[1]")  # wildcard characters are escaped in the exclude
    assert paths(store) == {"/p/trips/2020/b.jpg", "/p/2020-extra/c.jpg", f"{ODD}x/e.jpg"}
    assert store.get_folder("/p").excludes == ("*.tmp", "/2020", "/caf\udce9", "/x[[]1]")


def test_forget_path_of_a_root_and_above_it(store: Store) -> None:
    a, b = store.add_folder("/data/a"), store.add_folder("/data/b")
    add(store, a.id, "/data/a/1.jpg")
    add(store, b.id, "/data/b/2.jpg")
    outer = store.add_folder("/data-other")
    add(store, outer.id, "/data-other/3.jpg")
    assert len(store.forget_path("/data")) == 2
    assert [f.path for f in store.folders()] == ["/data-other"]
    assert paths(store) == {"/data-other/3.jpg"}
    assert store.get_folder("/data-other").excludes == ()


def test_absorb_folders_keeps_ids_and_rebases_excludes(store: Store) -> None:
    inner = store.add_folder("/p/sub", ["/raw", "*.png"])
    (image_id,) = add(store, inner.id, "/p/sub/a.jpg")
    store.record_failure("/p/sub/bad.jpg", "bad", folder_id=inner.id)
    store.replace_pending("m", ["/p/sub"], [("/p/sub/later.jpg", inner.id)])
    outer = store.add_folder("/p", ["tmp"])
    merged = store.absorb_folders(outer, [inner])
    assert [f.path for f in store.folders()] == ["/p"]
    assert merged.excludes == ("tmp", "/sub/raw", "/sub/*.png")
    assert store.rows_for([image_id])[0].folder_id == outer.id
    assert [f.folder_id for f in store.failures()] == [outer.id]
    assert store.folder_counts()[outer.id] == (1, 1, 1)
    with pytest.raises(ValueError):
        store.absorb_folders(store.add_folder("/q"), [store.add_folder("/elsewhere")])


def test_pending_per_scope_and_model(store: Store) -> None:
    f = store.add_folder("/p")
    store.replace_pending("m", ["/p"], [("/p/a.jpg", f.id), ("/p/b/c.jpg", f.id)])
    store.replace_pending("m2", ["/p/b"], [("/p/b/d.jpg", f.id)])  # m's pending there goes
    assert (store.pending_count("m"), store.pending_count("m2"), store.pending_count()) == (1, 1, 2)
    assert store.pending_count(under="/p/b") == 1
    store.clear_pending("m2", ["/p/b/d.jpg"])
    store.clear_pending("m", ["/p/a.jpg"])
    assert store.pending_count() == 0
    store.replace_pending("m", ["/p"], [(f"{ODD}/x.jpg", None)])
    assert store.pending_count(under=ODD) == 1


def test_migration_drops_sampled_hashes_and_keeps_vectors(tmp_path: Path) -> None:
    """Libraries from before the whole-file hash: old hashes go, nothing else does."""
    from app.library.store import apply_migrations, connect

    db = tmp_path / "old.db"
    conn = connect(db)
    apply_migrations(conn, target=2)  # the schema before pending files and whole-file hashes
    conn.execute("INSERT INTO folders(path, added_at) VALUES ('/p', 'then')")
    conn.execute(
        "INSERT INTO images(path, folder_id, size, mtime_ns, hash, indexed_at) "
        "VALUES ('/p/a.jpg', 1, 10, 1, 'sampled', 'then')"
    )
    conn.execute("INSERT INTO models(name, dim, added_at) VALUES ('m', 4, 'then')")
    conn.execute("INSERT INTO embeddings VALUES (1, 'm', ?)", (np.ones(4, "<f4").tobytes(),))
    conn.commit()
    conn.close()
    with Store.open(db) as store:
        known = store.known_files(model="m")["/p/a.jpg"]
        assert (known.hash, known.embedded) == (None, True)
        # a second model embeds the unchanged photo: the first model's vector stays
        record = ImageRecord("/p/a.jpg", 10, 1, 1, hash="whole-file")
        store.upsert_images_with_embeddings([record], "m2", np.ones((1, 4), np.float32))
        assert store.embedding_count("m") == store.embedding_count("m2") == 1
        assert store.pending_count() == 0
