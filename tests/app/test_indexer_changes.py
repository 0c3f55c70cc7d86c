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


def test_a_same_size_edit_anywhere_is_reembedded(library, micro_model, tmp_path: Path) -> None:
    """A retouch that keeps the file size (an uncompressed BMP) is an edit, wherever it lies."""
    import hashlib

    from PIL import Image

    folder = tmp_path / "photos"
    folder.mkdir()
    bmp = folder / "scan.bmp"
    Image.new("RGB", (300, 300), (30, 120, 200)).save(bmp)
    data = bytearray(bmp.read_bytes())
    assert len(data) > 4 * 64 * 1024  # bigger than start + middle + end samples
    indexer = Indexer(library, micro_model, batch_size=4, workers=1)
    assert indexer.run([folder]).added == 1
    image_id = library.store.image_id(str(bmp))
    _, before = library.store.vectors_for([image_id], micro_model.name)

    # paint rows white between the first 64 KiB and the middle of the file
    data[66_000:100_000] = b"\xff" * 34_000
    st = bmp.stat()
    bmp.write_bytes(bytes(data))
    os.utime(bmp, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    assert bmp.stat().st_size == st.st_size

    again = indexer.run()
    assert (again.updated, again.touched, again.embedded) == (1, 0, 1)
    assert library.store.image_id(str(bmp)) == image_id
    _, after = library.store.vectors_for([image_id], micro_model.name)
    assert not np.allclose(before, after)
    row = library.store.rows_for([image_id])[0]
    assert row.hash == hashlib.blake2b(bytes(data), digest_size=16).hexdigest()


def test_forget_removes_exactly_that_subtree(library, micro_model, tmp_path: Path) -> None:
    photos = tmp_path / "photos"
    draw_folder(photos / "2020", 2)
    draw_folder(photos / "trips" / "2020", 3, start=10)
    draw_folder(photos / "2020-extra", 1, start=20)  # a name that merely starts the same
    draw_folder(photos, 1, start=30)
    indexer = Indexer(library, micro_model, batch_size=4, workers=1)
    assert indexer.run([photos]).added == 7
    store = library.store

    begins: list[str] = []
    store.conn.set_trace_callback(lambda sql: sql == "BEGIN IMMEDIATE" and begins.append(sql))
    try:
        assert library.forget(photos / "2020") == 2
    finally:
        store.conn.set_trace_callback(None)
    assert begins == ["BEGIN IMMEDIATE"]  # one transaction: all of it or nothing

    def kept() -> set[str]:
        rows = store.rows_for(store.image_ids())
        return {os.path.relpath(os.path.dirname(r.path), photos) for r in rows}

    assert kept() == {"trips/2020", "2020-extra", "."}
    again = indexer.run()  # the next run neither brings 2020 back nor drops trips/2020
    assert (again.added, again.removed, again.embedded) == (0, 0, 0)
    assert kept() == {"trips/2020", "2020-extra", "."}
    index = library.ann(micro_model.name, micro_model.embed_dim)
    assert index.labels() == set(store.embedding_ids(micro_model.name).tolist())
    assert len(index) == 5


def test_an_unplugged_folder_keeps_its_photos(library, micro_model, tmp_path: Path) -> None:
    drive, home = tmp_path / "drive", tmp_path / "home"
    draw_folder(drive, 3)
    draw_folder(home, 2, start=10)
    indexer = Indexer(library, micro_model, batch_size=4, workers=1)
    assert indexer.run([drive, home]).added == 5

    away = tmp_path / "drive-unplugged"
    drive.rename(away)
    report = indexer.run()
    assert (report.removed, report.embedded) == (0, 0)
    assert report.offline == [str(drive)]
    status = {s.path: s for s in library.folder_status(micro_model.name)}
    assert (status[str(drive)].online, status[str(drive)].photos) == (False, 3)
    assert (status[str(home)].online, status[str(home)].photos) == (True, 2)
    resp = Searcher(library, micro_model).search("a shape", top=10)
    assert len(resp.results) == 5  # flagged, never silently dropped
    offline = {r.path for r in resp.results if r.offline}
    assert offline == {str(p) for p in (drive / f"img_{i:04d}.jpg" for i in range(3))}
    assert any("offline" in w and "3" in w for w in resp.warnings)

    # a mount point left empty is offline too, not "every photo deleted"
    drive.mkdir()
    assert indexer.run().removed == 0
    assert not {s.path: s for s in library.folder_status()}[str(drive)].online

    drive.rmdir()
    away.rename(drive)  # plugged in again: nothing is embedded anew
    back = indexer.run()
    assert (back.embedded, back.removed, back.unchanged, back.offline) == (0, 0, 5, [])
    assert all(s.online for s in library.folder_status())


def test_stop_leaves_pending_files_and_the_next_run_takes_them(
    library, micro_model, tmp_path: Path
) -> None:
    folder = tmp_path / "photos"
    draw_folder(folder, 12)
    seen: list[IndexProgress] = []

    def cancel() -> bool:
        return any(p.phase == "embedding" and p.done >= 4 for p in seen)

    first = Indexer(library, micro_model, batch_size=4, workers=1).run(
        [folder], progress=seen.append, cancel=cancel
    )
    assert first.cancelled and first.pending == 12 - first.embedded > 0
    assert library.store.pending_count(micro_model.name) == first.pending
    status = {s.path: s for s in library.folder_status(micro_model.name)}
    assert status[str(folder)].pending == first.pending

    rest = Indexer(library, micro_model, batch_size=4, workers=1).run()
    assert rest.added == first.pending and rest.pending == 0
    assert library.store.pending_count(micro_model.name) == 0


def _nested_photos(library, model, tmp_path: Path) -> tuple[Path, Indexer]:
    """``photos`` with 2 photos of its own and 3 in ``photos/sub``; an indexer for them."""
    photos = tmp_path / "photos"
    draw_folder(photos / "sub", 3)
    draw_folder(photos, 2, start=10)
    return photos, Indexer(library, model, batch_size=4, workers=1)


def test_indexing_a_subfolder_of_an_indexed_folder_embeds_nothing(
    library, micro_model, tmp_path: Path
) -> None:
    photos, indexer = _nested_photos(library, micro_model, tmp_path)
    assert indexer.run([photos]).added == 5
    ids = sorted(library.store.image_ids().tolist())

    again = indexer.run([photos / "sub"])
    assert (again.added, again.updated, again.removed, again.embedded) == (0, 0, 0, 0)
    assert again.unchanged == 3  # only the subfolder was looked at
    assert [f.path for f in library.folders()] == [str(photos)]
    assert sorted(library.store.image_ids().tolist()) == ids
    # a new photo in the subfolder is added to the folder that holds it
    draw_image(photos / "sub" / "new.jpg", seed=42)
    added = indexer.run([photos / "sub"])
    assert (added.added, added.unchanged) == (1, 3)
    assert library.folder_for(photos / "sub" / "new.jpg").path == str(photos)


def test_indexing_the_parent_of_an_indexed_folder_takes_it_in(
    library, micro_model, tmp_path: Path
) -> None:
    photos, indexer = _nested_photos(library, micro_model, tmp_path)
    assert indexer.run([photos / "sub"]).added == 3
    report = indexer.run([photos])
    assert (report.added, report.embedded, report.unchanged) == (2, 2, 3)
    assert [f.path for f in library.folders()] == [str(photos)]
    status = library.folder_status(micro_model.name)
    assert [(s.path, s.photos) for s in status] == [(str(photos), 5)]


def test_status_shows_offline_folders_and_pending_files(cli, tmp_path: Path) -> None:
    import json

    drive, home = tmp_path / "drive", tmp_path / "home"
    draw_folder(drive, 2)
    draw_folder(home, 1, start=5)
    status, _, err = cli("index", str(drive), str(home))
    assert status == 0, err
    drive.rename(tmp_path / "away")
    status, out, _ = cli("status", "--json")
    data = json.loads(out)
    folders = {f["path"]: f for f in data["folders"]}
    assert (folders[str(drive)]["online"], folders[str(drive)]["images"]) == (False, 2)
    assert folders[str(home)]["online"] is True
    assert data["pending"] == 0 and data["offline"] == 1
    status, out, _ = cli("status")
    assert "offline" in out and str(drive) in out
    status, out, _ = cli("index")
    assert status == 0 and "offline" in out
    status, out, err = cli("search", "a shape", "--top", "3")
    assert status == 0 and out.count("[offline]") == 2, out
    assert "2 of these results are in folders that are offline" in err


def test_cli_index_of_a_subfolder_with_excludes(cli, tmp_path: Path) -> None:
    import json

    photos = tmp_path / "photos"
    draw_folder(photos / "sub" / "raw", 2)
    draw_folder(photos / "sub", 1, start=5)
    draw_folder(photos / "raw", 1, start=8)
    status, out, err = cli("index", str(photos), "--json")
    assert status == 0 and json.loads(out)["added"] == 4, err
    status, out, err = cli("index", str(photos / "sub"), "--exclude", "/raw", "--json")
    assert status == 0, err
    report = json.loads(out)
    assert (report["added"], report["embedded"], report["removed"]) == (0, 0, 2)
    assert "inside the library folder" in err
    status, out, _ = cli("status", "--json")
    folders = json.loads(out)["folders"]
    assert [(f["path"], f["images"]) for f in folders] == [(str(photos), 2)]
    assert folders[0]["excludes"] == ["/sub/raw"]  # photos/raw is still indexed

    other = tmp_path / "other"
    draw_folder(other / "inner", 1, start=20)
    status, out, err = cli("index", str(other / "inner"), "--json")
    assert status == 0 and json.loads(out)["added"] == 1
    status, out, err = cli("index", str(other), "--json")
    assert status == 0 and json.loads(out)["embedded"] == 0
    assert f"now holds the library folder(s) {other / 'inner'}" in err


def test_plan_folders_counts_what_the_next_run_embeds(library, micro_model, tmp_path: Path) -> None:
    from app.library.scanner import ScanRoot, plan_folders

    folder = tmp_path / "photos"
    draw_folder(folder / "old", 4)
    indexer = Indexer(library, micro_model, batch_size=4, workers=1)
    assert indexer.run([folder]).embedded == 4
    draw_folder(folder / "new", 3, start=10)
    plan = plan_folders(library, library.folders(), micro_model.name)
    assert (len(plan.files), plan.changes.unchanged, len(plan.changes.to_embed())) == (7, 4, 3)
    # a folder that is not itself a library folder is compared with the files under it
    plan = plan_folders(library, [ScanRoot(str(folder / "old"))], micro_model.name)
    assert (len(plan.files), plan.changes.unchanged, len(plan.changes.to_embed())) == (4, 4, 0)
    assert indexer.run().embedded == 3  # what the plan said
