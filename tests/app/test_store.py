"""Store: schema and migrations, CRUD, generations, odd paths, concurrent processes."""

from __future__ import annotations

import multiprocessing
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from app.library.store import (
    MIGRATIONS,
    SCHEMA_VERSION,
    ImageRecord,
    SchemaTooNewError,
    Store,
    StoreError,
    apply_migrations,
    connect,
    user_version,
)
from tests.app.conftest import database_problems

DIM = 8


@pytest.fixture
def store(tmp_path: Path):
    s = Store.open(tmp_path / "lib" / "library.db")
    yield s
    s.close()


def vecs(n: int, seed: int = 0, dim: int = DIM) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, dim)).astype(np.float32)


def records(folder_id: int | None, names: list[str], base: str = "/photos") -> list[ImageRecord]:
    return [
        ImageRecord(
            f"{base}/{n}",
            size=100 + i,
            mtime_ns=1_000 + i,
            folder_id=folder_id,
            hash=f"h{n}",
            width=40,
            height=30,
        )
        for i, n in enumerate(names)
    ]


# --------------------------------------------------------------------------- schema


def test_open_configures_connection(store: Store) -> None:
    conn = store.conn
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1
    assert conn.execute("PRAGMA busy_timeout").fetchone()[0] == 30_000
    assert user_version(conn) == SCHEMA_VERSION == len(MIGRATIONS) >= 2
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"meta", "folders", "images", "models", "embeddings", "failures", "captions"} <= tables
    assert len(store.library_id) == 32
    assert database_problems(conn) == []


def test_migrates_an_old_database(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    conn = connect(path)
    assert apply_migrations(conn, target=1) == 1
    conn.execute("BEGIN")
    conn.execute("INSERT INTO folders(path, added_at) VALUES ('/p', 'then')")
    conn.execute(
        "INSERT INTO images(path, folder_id, size, mtime_ns, indexed_at) "
        "VALUES ('/p/a.jpg', 1, 5, 6, 'then')"
    )
    conn.execute("COMMIT")
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}
    assert "captions" not in tables
    conn.close()

    with Store.open(path) as s:
        assert user_version(s.conn) == SCHEMA_VERSION
        (row,) = s.rows_for([1])
        assert (row.path, row.folder, row.size) == ("/p/a.jpg", "/p", 5)
        caption_id = s.add_caption(1, "a long caption", "long")
        assert [c.id for c in s.captions(1)] == [caption_id]
        assert database_problems(s.conn) == []


def test_refuses_a_newer_schema(tmp_path: Path) -> None:
    path = tmp_path / "new.db"
    Store.open(path).close()
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()
    with pytest.raises(SchemaTooNewError):
        Store.open(path)


def test_library_id_is_stable(tmp_path: Path) -> None:
    with Store.open(tmp_path / "a.db") as a:
        first = a.library_id
    with Store.open(tmp_path / "a.db") as again, Store.open(tmp_path / "b.db") as other:
        assert again.library_id == first != other.library_id


# --------------------------------------------------------------------------- folders


def test_folders(store: Store, tmp_path: Path) -> None:
    f = store.add_folder(tmp_path / "pics", ["*.tmp"])
    assert f.path == str(tmp_path / "pics") and f.excludes == ("*.tmp",)
    again = store.add_folder(str(tmp_path / "pics"), ["raw/"])
    assert again.id == f.id and again.excludes == ("raw/",)
    g = store.add_folder(tmp_path / "more")
    assert [x.id for x in store.folders()] == [g.id, f.id]  # by path
    assert store.get_folder(f.id) == store.get_folder(f.path) == store.get_folder(again)
    assert store.get_folder(tmp_path / "unknown") is None

    base = str(tmp_path / "pics")
    ids = store.upsert_images_with_embeddings(records(f.id, ["a", "b"], base), "m", vecs(2))
    store.record_failure(f"{base}/bad.jpg", "truncated", folder_id=f.id)
    store.add_caption(ids[0], "x")
    gen = store.generation("m")
    removed = store.forget_path(f.path)
    assert sorted(removed.tolist()) == sorted(ids) and removed.dtype == np.int64
    assert store.rows_for(ids) == [] and store.failures() == [] and store.captions() == []
    assert store.embedding_count("m") == 0 and store.generation("m") == gen + 1
    assert store.get_folder(f.id) is None and store.folders() == [g]


# --------------------------------------------------------------------------- images & vectors


def test_upsert_rows_and_vectors(store: Store) -> None:
    folder = store.add_folder("/photos")
    assert store.generation("m") == 0
    v = vecs(3)
    ids = store.upsert_images_with_embeddings(records(folder.id, ["a", "b", "c"]), "m", v)
    assert len(set(ids)) == 3 and store.generation("m") == 1
    rows = store.rows_for([ids[2], 999, ids[0]])
    assert [r.path for r in rows] == ["/photos/c", "/photos/a"]
    assert rows[0].folder == "/photos" and rows[0].width == 40 and rows[0].indexed_at
    got_ids, matrix = store.embedding_matrix("m")
    assert got_ids.dtype == np.int64 and matrix.dtype == np.float32
    np.testing.assert_array_equal(got_ids, sorted(ids))
    np.testing.assert_array_equal(matrix[np.argsort(ids)], v[np.argsort(ids)])
    found, some = store.vectors_for([ids[1], 12345, ids[0]], "m")
    assert found.tolist() == [ids[1], ids[0]]
    np.testing.assert_array_equal(some, v[[1, 0]])
    # nothing found: empty arrays of the model's width and the right types
    none_ids, none_vecs = store.vectors_for([12345], "m")
    assert none_ids.dtype == np.int64 and none_ids.shape == (0,)
    assert none_vecs.dtype == np.float32 and none_vecs.shape == (0, v.shape[1])
    after_ids, after_vecs = store.embeddings_after("m", max(ids), 10)
    assert after_ids.dtype == np.int64 and after_ids.shape == (0,)
    assert after_vecs.dtype == np.float32 and after_vecs.shape == (0, v.shape[1])

    # same paths again: ids kept, vectors and metadata replaced
    store.record_failure("/photos/a", "was broken", size=1, mtime_ns=1)
    again = store.upsert_images_with_embeddings(
        [ImageRecord("/photos/a", 100, 1000, folder.id, "ha", taken_at="2021-05-01T10:00:00")],
        "m",
        vecs(1, seed=9),
    )
    assert again == [ids[0]] and store.generation("m") == 2
    assert store.rows_for([ids[0]])[0].taken_at == "2021-05-01T10:00:00"
    np.testing.assert_array_equal(store.vectors_for([ids[0]], "m")[1], vecs(1, seed=9))
    assert store.failures() == []  # success clears the failure
    assert store.image_id("/photos/b") == ids[1] and store.image_id("/nope") is None
    assert store.embedding_count("m") == 3


def test_chunked_reads_cross_chunk_boundaries(store: Store) -> None:
    names = [f"img{i:04d}" for i in range(1200)]
    v = vecs(1200, seed=3)
    ids = []
    for start in range(0, 1200, 300):
        ids += store.upsert_images_with_embeddings(
            records(None, names[start : start + 300]), "m", v[start : start + 300]
        )
    first, _ = store.embeddings_after("m", -1, 500)
    rest, vectors = store.embeddings_after("m", int(first[-1]), 1000)
    assert (len(first), len(rest)) == (500, 700) and vectors.shape == (700, v.shape[1])
    all_ids, matrix = store.embedding_matrix("m", chunk_size=128)
    np.testing.assert_array_equal(all_ids, ids)
    np.testing.assert_array_equal(matrix, v)
    np.testing.assert_array_equal(store.embedding_matrix("m", chunk_size=300)[1], v)  # 4 whole
    assert len(store.rows_for(ids)) == 1200
    assert store.vectors_for(ids[::-1], "m")[0].tolist() == ids[::-1]
    np.testing.assert_array_equal(store.embedding_ids("m"), ids)


def test_one_batch_across_lookup_chunks(store: Store) -> None:
    """One upsert of 1,200 rows (the path look-ups go 500 at a time): known and new paths
    mixed, a repeated path, a changed file, failures cleared, every change recorded."""
    first = store.upsert_images_with_embeddings(records(None, ["k0", "k1"]), "m", vecs(2))
    store.upsert_images_with_embeddings(records(None, ["k0", "k1"]), "other", vecs(2, dim=4))
    names = [f"n{i:04d}" for i in range(1197)] + ["k0", "k1", "n0700"]
    rows = records(None, names)
    rows[-3] = ImageRecord("/photos/k0", size=100, mtime_ns=1_000, hash="hk0")  # unchanged
    rows[-2] = ImageRecord("/photos/k1", size=5, mtime_ns=5, hash="new")  # edited
    store.record_failure("/photos/n1100", "was broken")
    since = store.generation("m")
    ids = store.upsert_images_with_embeddings(rows, "m", vecs(1200, seed=4))
    assert ids[-3:-1] == first and ids[-1] == ids[700] and len(set(ids)) == 1199
    assert [store.image_id(f"/photos/{n}") for n in names] == ids
    assert store.counts().images == 1199 and store.embedding_count("m") == 1199
    np.testing.assert_array_equal(store.vectors_for([ids[700]], "m")[1], vecs(1200, seed=4)[-1:])
    assert store.vectors_for(first, "other")[0].tolist() == [first[0]]  # k1's went stale
    assert store.failures() == []
    assert store.embedding_changes("m", since).ids.tolist() == sorted(set(ids))


def test_upsert_matches_paths_by_their_bytes(store: Store) -> None:
    """A path given with escaped bytes that happen to be UTF-8 is the same file."""
    (plain,) = store.upsert_images_with_embeddings([ImageRecord("/p/\u00e9", 1, 1)], "m", vecs(1))
    escaped = os.fsdecode(b"/p/") + "\udcc3\udca9"  # the bytes of "é", escaped one by one
    assert os.fsencode(escaped) == os.fsencode("/p/\u00e9")
    again = store.upsert_images_with_embeddings([ImageRecord(escaped, 1, 1)], "m", vecs(1, 1))
    assert again == [plain] and store.counts().images == 1


def test_failed_batch_rolls_back(store: Store) -> None:
    store.upsert_images_with_embeddings(records(None, ["a"]), "m", vecs(1))
    with pytest.raises(ValueError, match="dimension"):
        store.upsert_images_with_embeddings(records(None, ["b", "c"]), "m", vecs(2, dim=DIM + 1))
    with pytest.raises(ValueError):
        store.upsert_images_with_embeddings(records(None, ["b"]), "m", vecs(2))  # count mismatch
    bad = vecs(1)
    bad[0, 0] = np.nan
    with pytest.raises(ValueError):
        store.upsert_images_with_embeddings(records(None, ["b"]), "m", bad)
    assert store.counts().images == 1 and store.generation("m") == 1
    assert store.upsert_images_with_embeddings([], "m", np.zeros((0, DIM))) == []


def test_changed_content_drops_other_models_vectors(store: Store) -> None:
    (image_id,) = store.upsert_images_with_embeddings(records(None, ["a"]), "m1", vecs(1))
    store.upsert_images_with_embeddings(records(None, ["a"]), "m2", vecs(1, dim=4))
    g1 = store.generation("m1")
    assert store.known_files(model="m1")["/photos/a"].embedded
    changed = ImageRecord("/photos/a", size=999, mtime_ns=5, hash="new")
    assert store.upsert_images_with_embeddings([changed], "m2", vecs(1, dim=4)) == [image_id]
    assert store.embedding_count("m1") == 0 and store.generation("m1") == g1 + 1
    assert not store.known_files(model="m1")["/photos/a"].embedded
    assert store.known_files(model="m2")["/photos/a"].embedded


def test_move_touch_and_remove(store: Store) -> None:
    f1, f2 = store.add_folder("/photos"), store.add_folder("/archive")
    ids = store.upsert_images_with_embeddings(records(f1.id, ["a", "b", "c"]), "m", vecs(3))
    store.add_caption(ids[0], "caption")
    gen = store.generation("m")
    store.record_failure("/archive/a", "old failure")
    moved = store.move_image("/photos/a", "/archive/a", folder_id=f2.id, mtime_ns=77)
    assert moved == ids[0] and store.generation("m") == gen
    row = store.rows_for([moved])[0]
    assert (row.path, row.folder_id, row.folder, row.mtime_ns, row.size) == (
        "/archive/a", f2.id, "/archive", 77, 100
    )  # fmt: skip
    assert store.vectors_for([moved], "m")[0].tolist() == [moved]
    assert store.failures() == [] and len(store.captions(moved)) == 1
    with pytest.raises(KeyError):
        store.move_image("/photos/a", "/x")
    with pytest.raises(ValueError):
        store.move_image("/photos/b", "/photos/c")

    store.touch_images([(ids[1], 555, 666)])
    known = store.known_files()
    assert (known["/photos/b"].size, known["/photos/b"].mtime_ns) == (555, 666)
    assert set(known) == {"/archive/a", "/photos/b", "/photos/c"}
    assert (known["/photos/b"].folder_id, known["/archive/a"].folder_id) == (f1.id, f2.id)
    assert store.generation("m") == gen

    assert store.remove_images([ids[0], ids[1], 424242]) == 2
    assert store.generation("m") == gen + 1
    assert store.captions() == [] and store.embedding_ids("m").tolist() == [ids[2]]
    assert store.remove_images([]) == 0 and store.generation("m") == gen + 1


def test_image_id_filters(store: Store) -> None:
    f1, f2 = store.add_folder("/a"), store.add_folder("/b")
    rows = [
        ImageRecord("/a/1", 1, 1, f1.id, taken_at="2019-07-01T12:00:00"),
        ImageRecord("/a/2", 1, 1, f1.id, taken_at="2020-02-01T08:30:00"),
        ImageRecord("/b/3", 1, 1, f2.id, taken_at="2020-12-31T23:00:00"),
        ImageRecord("/b/4", 1, 1, f2.id),
    ]
    ids = store.upsert_images_with_embeddings(rows, "m", vecs(4))
    store.upsert_images_with_embeddings(rows[:1], "other", vecs(1))
    assert store.image_ids().tolist() == ids
    assert store.image_ids(under="/b").tolist() == ids[2:]
    assert store.image_ids(under=["/a", "/b"]).tolist() == ids
    assert store.image_ids(taken_from="2020", taken_to="2020-12-31T23:59:59").tolist() == ids[1:3]
    assert store.image_ids(under="/a", taken_from="2020").tolist() == [ids[1]]
    assert store.image_ids(model="other").tolist() == [ids[0]]


def test_non_utf8_paths_round_trip(store: Store) -> None:
    raw = b"/photos/caf\xe9/\xff\xfe.jpg"
    path = os.fsdecode(raw)
    folder = store.add_folder(os.fsdecode(b"/photos/caf\xe9"))
    assert os.fsencode(folder.path) == b"/photos/caf\xe9"
    (image_id,) = store.upsert_images_with_embeddings(
        [ImageRecord(path, 10, 20, folder.id)], "m", vecs(1)
    )
    (row,) = store.rows_for([image_id])
    assert row.path == path and os.fsencode(row.path) == raw
    assert os.fsencode(row.folder) == b"/photos/caf\xe9"
    assert list(store.known_files()) == [path]
    assert store.image_id(path) == image_id
    new = os.fsdecode(b"/photos/caf\xe9/\xe0.jpg")
    store.move_image(path, new)
    assert os.fsencode(store.rows_for([image_id])[0].path) == b"/photos/caf\xe9/\xe0.jpg"
    store.record_failure(path, "bad bytes")
    assert store.failures()[0].path == path and store.clear_failures([path]) == 1


# --------------------------------------------------------------------------- failures, models


def test_failures(store: Store) -> None:
    f = store.add_folder("/p")
    store.record_failure("/p/x.jpg", "cannot identify image", folder_id=f.id, size=3, mtime_ns=4)
    store.record_failure("/p/x.jpg", "truncated", folder_id=f.id, size=5, mtime_ns=6)
    store.record_failure("/q/y.jpg", "unsupported")
    (x,) = store.failures(f)
    assert (x.path, x.reason, x.size, x.mtime_ns) == ("/p/x.jpg", "truncated", 5, 6) and x.failed_at
    assert len(store.failures()) == 2
    assert store.failures("/q") == []  # not a library folder: none of its own
    assert store.clear_failures(["/p/x.jpg"]) == 1 and store.clear_failures(["/p/x.jpg"]) == 0
    assert store.clear_failures(["/q/y.jpg", "/nope"]) == 1 and store.failures() == []


def test_models_crud(store: Store) -> None:
    rec = store.add_model("lotlip-tiny", 8, source="bundled", path="/res/tiny", metadata={"a": 1})
    assert (rec.dim, rec.source, rec.metadata) == (8, "bundled", {"a": 1})
    store.add_model("lotlip-tiny", 8, source="bundled", metadata={"a": 2})
    assert store.get_model("lotlip-tiny").metadata == {"a": 2}
    assert store.get_model("lotlip-tiny").added_at == rec.added_at
    store.upsert_images_with_embeddings(records(None, ["a", "b"]), "lotlip-tiny", vecs(2))
    with pytest.raises(ValueError):
        store.add_model("lotlip-tiny", 16)
    store.upsert_images_with_embeddings(records(None, ["a"]), "auto", vecs(1, dim=3))
    assert [m.name for m in store.models()] == ["auto", "lotlip-tiny"]
    assert store.model_dim("auto") == 3 and store.get_model("nope") is None
    gen = store.generation("lotlip-tiny")
    assert store.remove_model("lotlip-tiny") == 2
    assert store.embedding_count("lotlip-tiny") == 0 and store.generation("lotlip-tiny") == gen + 1
    assert store.counts().images == 2  # images stay


def test_captions_crud(store: Store) -> None:
    (image_id,) = store.upsert_images_with_embeddings(records(None, ["a"]), "m", vecs(1))
    short = store.add_caption(image_id, "a dog", "short")
    long = store.add_caption(image_id, "a brown dog runs on a beach at sunset.", "long")
    assert [c.kind for c in store.captions(image_id)] == ["short", "long"]
    assert [c.id for c in store.captions(kind="long")] == [long]
    assert store.update_caption(short, text="a small dog", kind="user")
    assert store.captions(kind="user")[0].text == "a small dog"
    assert not store.update_caption(9999, text="x")
    with pytest.raises(ValueError):
        store.add_caption(image_id, "x", "medium")
    with pytest.raises(sqlite3.IntegrityError):
        store.add_caption(9999, "no such image")
    assert store.delete_caption(long) and not store.delete_caption(long)


def test_settings_counts_and_integrity(store: Store) -> None:
    store.set_setting("device", "cpu")
    store.set_setting("batch", {"size": 32})
    assert store.get_setting("device") == "cpu" and store.get_setting("batch") == {"size": 32}
    assert store.get_setting("missing", 5) == 5
    store.delete_setting("device")
    assert store.get_setting("device") is None
    with pytest.raises(ValueError):
        store.set_setting("_generation:m", 1)

    f = store.add_folder("/p")
    ids = store.upsert_images_with_embeddings(records(f.id, ["a", "b"]), "m", vecs(2))
    store.upsert_images_with_embeddings(records(f.id, ["a"]), "n", vecs(1, dim=4))
    store.record_failure("/p/z", "bad")
    store.add_caption(ids[0], "c")
    c = store.counts()
    assert (c.images, c.failures, c.captions) == (2, 1, 1)
    assert c.embeddings == {"m": 2, "n": 1}
    assert database_problems(store.conn) == []
    store.conn.execute("UPDATE embeddings SET vector = x'00' WHERE image_id = ?", (ids[0],))
    store.conn.commit()
    assert any("wrong size" in p for p in database_problems(store.conn))
    with pytest.raises(StoreError):
        store.embedding_matrix("m")


def test_snapshot_is_read_only_and_consistent(store: Store, tmp_path: Path) -> None:
    store.upsert_images_with_embeddings(records(None, ["a"]), "m", vecs(1))
    other = Store.open(store.path)
    try:
        with store.snapshot():
            other.upsert_images_with_embeddings(records(None, ["b"]), "m", vecs(1, seed=1))
            assert store.embedding_count("m") == 1  # still the snapshot's view
            with pytest.raises(StoreError):
                store.set_setting("x", 1)
        assert store.embedding_count("m") == 2
    finally:
        other.close()


# --------------------------------------------------------------------------- two processes


def _writer(path: str, batches: int, per_batch: int, ready, go) -> None:
    with Store.open(path) as s:
        folder = s.add_folder("/w")
        ready.set()
        go.wait(30)
        for b in range(batches):
            names = [f"{b}-{i}" for i in range(per_batch)]
            s.upsert_images_with_embeddings(
                records(folder.id, names, base="/w"), "m", vecs(per_batch, seed=b)
            )
            time.sleep(0.01)


def test_reader_process_sees_consistent_state_while_writer_writes(tmp_path: Path) -> None:
    path = str(tmp_path / "library.db")
    Store.open(path).close()
    ctx = multiprocessing.get_context("spawn")
    ready, go = ctx.Event(), ctx.Event()
    batches, per_batch = 25, 40
    writer = ctx.Process(target=_writer, args=(path, batches, per_batch, ready, go))
    writer.start()
    try:
        assert ready.wait(60), "writer did not start"
        seen: list[int] = []
        last_gen = 0
        with Store.open(path) as reader:
            go.set()
            while writer.is_alive() or not seen or seen[-1] < batches * per_batch:
                with reader.snapshot():
                    images = reader.counts().images
                    ids, matrix = reader.embedding_matrix("m")
                    gen = reader.generation("m")
                assert images == len(ids) == len(matrix)  # each batch is one transaction
                assert images % per_batch == 0 and gen == images // per_batch
                assert gen >= last_gen
                last_gen = gen
                seen.append(images)
                if not writer.is_alive() and images < batches * per_batch:
                    break
        writer.join(60)
        assert writer.exitcode == 0
        assert seen[-1] == batches * per_batch
        assert any(0 < n < batches * per_batch for n in seen), "no overlap observed"
    finally:
        if writer.is_alive():
            writer.kill()


def test_library_modules_import_without_qt_or_torch() -> None:
    code = (
        "import sys, app.library.scanner, app.library.store, app.library.ann; "
        "bad = [m for m in sys.modules if m.split('.')[0] in ('torch', 'PySide6', 'PyQt5', "
        "'PyQt6', 'shiboken6')]; print(bad); sys.exit(1 if bad else 0)"
    )
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
