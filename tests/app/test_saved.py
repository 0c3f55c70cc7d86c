"""Saved searches (store step, run again over photos indexed later, export) and the CLI faces
of the paragraph features: --explain, --must, --ignore, --group-duplicates, --save, saved."""

from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path

import pytest
from PIL import Image

from app.cli import EXIT_ERROR, EXIT_OK, EXIT_USAGE
from app.library.export import export_photos
from app.library.indexer import Indexer
from app.library.saved import SavedSearch, SavedSearches
from app.library.search import Searcher
from app.library.store import MIGRATIONS, Store, apply_migrations, connect
from tests.app.conftest import draw_folder

TEXT = "A red block on the left. A blue oval at the top. A grey sky"


def test_saved_search_round_trip_and_validation(library) -> None:
    saved = SavedSearches(library.store)
    search = SavedSearch(
        "reds", TEXT, sentences={"A grey sky": "ignore"}, must=("A red block on the left",),
        folders=("/photos",), date_from="2020", top=7, group_duplicates=True,
    )  # fmt: skip
    saved.save(search)
    got = saved.get("reds")
    assert got.spec() == search.spec() and got.created_at and got.updated_at
    saved.save(SavedSearch("reds", "a cat"))  # same name: replaced
    assert [s.text for s in saved.all()] == ["a cat"]
    with pytest.raises(KeyError, match="reds"):
        saved.get("blues")
    for bad in ({"name": ""}, {"name": "x\n"}, {"name": "x", "text": " "}):
        with pytest.raises(ValueError):
            SavedSearch(**{"text": "a cat", **bad})
    with pytest.raises(ValueError, match="unknown state"):
        SavedSearch("x", "a cat", sentences={"a cat": "maybe"})
    assert saved.delete("reds") and not saved.delete("reds")


SAVED_STEP = 4  # MIGRATIONS[SAVED_STEP - 1] creates the saved_searches table


def test_old_library_gains_the_saved_searches_table(tmp_path: Path) -> None:
    assert "saved_searches" in MIGRATIONS[SAVED_STEP - 1][0]
    path = tmp_path / "library.db"
    conn = connect(path)
    apply_migrations(conn, target=SAVED_STEP - 1)
    conn.close()
    with Store.open(path) as store:
        store.put_saved_search("x", {"text": "a cat"})
        assert store.saved_searches()[0][:2] == ("x", {"text": "a cat"})
    with pytest.raises(sqlite3.OperationalError):  # really absent before the step
        conn = connect(tmp_path / "old.db")
        apply_migrations(conn, target=SAVED_STEP - 1)
        conn.execute("SELECT * FROM saved_searches")


def test_rerun_finds_photos_indexed_later_and_exports(library, micro_model, tmp_path) -> None:
    photos = tmp_path / "photos"
    draw_folder(photos, 4)
    Indexer(library, micro_model).run([photos])
    saved = SavedSearches(library.store)
    saved.save(SavedSearch("all", TEXT, sentences={"A grey sky": "ignore"}, top=50))
    searcher = Searcher(library, micro_model)
    assert len(saved.run(searcher, "all").results) == 4
    draw_folder(photos, 3, start=4)  # img_0000..0002 rewritten, new seeds: not new files
    draw_folder(photos / "later", 3, start=20)
    Indexer(library, micro_model).run([photos])
    response = saved.run(searcher, "all", explain=True)
    assert len(response.results) == 7
    assert all(r.sentences[2].state == "ignore" for r in response.results)

    out = tmp_path / "out"
    (out).mkdir()
    (out / "img_0000.jpg").write_bytes(b"already here")
    paths = [r.path for r in response.results]
    copies = export_photos(paths, out, "copies").written
    names = sorted(p.name for p in copies)
    assert len(names) == 7 and "img_0000-2.jpg" in names and "img_0000-3.jpg" in names
    assert (out / "img_0000.jpg").read_bytes() == b"already here"  # never overwritten
    links = export_photos(paths[:2], tmp_path / "links", "links").written
    assert all(os.readlink(p) == r.path for p, r in zip(links, response.results, strict=False))
    report = export_photos(paths, tmp_path / "list", "list")
    (listed,) = report.written
    assert listed.read_text().splitlines() == paths and report.photos == 7
    with pytest.raises(ValueError, match="export mode"):
        export_photos(paths, out, "zip")


def test_export_reports_files_it_cannot_copy(tmp_path: Path) -> None:
    good = tmp_path / "a.png"
    good.write_bytes(b"x")
    out = tmp_path / "out"
    out.mkdir()
    report = export_photos([str(good), str(tmp_path / "gone.png"), str(good)], out)
    assert [p.name for p in report.written] == ["a.png", "a-2.png"] and report.photos == 2
    assert report.failed[0][0].endswith("gone.png")
    with pytest.raises(NotADirectoryError):
        export_photos([str(good)], good)


# --------------------------------------------------------------------------- CLI


@pytest.fixture
def photos(cli, tmp_path: Path) -> Path:
    folder = tmp_path / "photos"
    draw_folder(folder, 8)
    status, _, err = cli("index", str(folder))
    assert status == EXIT_OK, err
    return folder


def test_cli_explain_text_and_json(cli, photos) -> None:
    status, out, err = cli("search", TEXT, "--explain", "--top", "3")
    assert status == EXIT_OK, err
    lines = out.splitlines()
    assert lines[:3] == [
        "  sentence 1: A red block on the left",
        "  sentence 2: A blue oval at the top",
        "  sentence 3: A grey sky",
    ]
    marks = lines[4::2]
    assert len(marks) == 3 and all(len(m.split()) == 4 and set(m.split()[0]) <= {"✓", "✗"}
                                   for m in marks)  # fmt: skip
    status, out, err = cli("search", TEXT, "--explain", "--json", "--ignore", "a grey sky")
    assert status == EXIT_OK, err
    data = json.loads(out)
    assert [s["state"] for s in data["sentences"]] == ["normal", "normal", "ignore"]
    for result in data["results"]:
        assert [s["text"] for s in result["sentences"]] == [s["text"] for s in data["sentences"]]
        assert all(0.0 <= s["standing"] <= 1.0 for s in result["sentences"])


def test_cli_must_gates_and_bad_sentence_is_a_usage_error(cli, photos) -> None:
    status, out, err = cli(
        "search", TEXT, "--must", "A red block on the left", "--json", "--explain"
    )
    assert status == EXIT_OK, err
    results = json.loads(out)["results"]
    assert 0 < len(results) < 8
    assert all(r["sentences"][0]["standing"] >= 0.5 for r in results)
    status, _, err = cli("search", TEXT, "--ignore", "a green frog")
    assert status == EXIT_USAGE and "not a sentence of the description" in err
    status, _, err = cli("search", "", "--like", str(photos / "img_0000.jpg"), "--must", "x")
    assert status == EXIT_USAGE and "need a description" in err


def test_cli_save_list_run_export_delete(cli, photos, tmp_path: Path) -> None:
    status, _, err = cli("search", TEXT, "--ignore", "A grey sky", "--top", "2", "--save", "mine")
    assert status == EXIT_OK and "saved as 'mine'" in err
    status, out, _ = cli("saved", "list")
    assert status == EXIT_OK and out.startswith("mine\tA red block") and "ignore: A grey sky" in out
    status, out, _ = cli("saved", "list", "--json")
    assert json.loads(out)[0]["sentences"] == {"A grey sky": "ignore"}
    draw_folder(photos / "new", 2, start=30)
    assert cli("index")[0] == EXIT_OK
    status, out, err = cli("saved", "run", "mine", "--top", "20", "--json",
                           "--export", str(tmp_path / "out"), "--as", "list")  # fmt: skip
    assert status == EXIT_OK, err
    assert len(json.loads(out)["results"]) == 10  # includes the two indexed later
    assert len((tmp_path / "out" / "results.txt").read_text().splitlines()) == 10
    assert cli("saved", "run", "nope")[0] == EXIT_USAGE
    assert cli("saved", "run", "mine", "--top", "0")[0] == EXIT_USAGE
    status, out, _ = cli("saved", "--help")
    assert status == EXIT_OK and "saved run kites --export" in out
    assert cli("saved", "delete", "mine")[0] == EXIT_OK
    assert cli("saved", "delete", "mine")[0] == EXIT_ERROR


def test_cli_group_duplicates_flag(cli, photos, tmp_path: Path) -> None:
    status, out, err = cli("search", TEXT, "--group-duplicates", "--json", "--top", "8")
    assert status == EXIT_OK and "no duplicate threshold is calibrated" in err
    assert len(json.loads(out)["results"]) == 8  # a random model: not grouped at all
    from app.library.library import Library

    with Library.open(tmp_path / "library") as lib:  # a (silly) threshold set for this model
        lib.store.set_setting("duplicate_threshold:micro-random", -1.0)
    with Image.open(photos / "img_0003.jpg") as im:  # a recompressed copy of one photo
        im.save(photos / "img_0003_copy.jpg", quality=50)
    assert cli("index", str(photos))[0] == EXIT_OK
    status, out, err = cli("search", TEXT, "--group-duplicates", "--json", "--top", "9")
    assert status == EXIT_OK and "calibrated" not in err
    # every vector passes the threshold; the pictures confirm only the copy
    results = json.loads(out)["results"]
    assert len(results) == 8
    (folded,) = [r for r in results if r.get("duplicates")]
    names = {Path(folded["path"]).name, *(Path(d["path"]).name for d in folded["duplicates"])}
    assert names == {"img_0003.jpg", "img_0003_copy.jpg"}


def test_cli_export_names_photos_it_cannot_copy(cli, photos, tmp_path: Path) -> None:
    assert cli("search", TEXT, "--top", "8", "--save", "all")[0] == EXIT_OK
    (photos / "img_0003.jpg").unlink()  # still in the library, gone from disk
    status, _, err = cli("saved", "run", "all", "--export", str(tmp_path / "out"))
    assert status == EXIT_ERROR
    assert "exported 7 file(s)" in err and "could not export" in err and "img_0003.jpg" in err
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        f"img_{i:04d}.jpg" for i in range(8) if i != 3
    ]
