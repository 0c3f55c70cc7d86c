"""Excludes that the old `forget` wrote (before `/` anchoring) mean exactly that subtree after
the upgrade, not every same-named folder at any depth."""

from __future__ import annotations

import json
import os
from pathlib import Path

from app.library.indexer import Indexer
from app.library.library import Library
from app.library.store import Store, apply_migrations, connect
from tests.app.conftest import draw_folder

OLD_SCHEMA = 2  # what the code before anchored excludes wrote


def _old_library(directory: Path, root: Path, excludes: list[str]) -> None:
    """A library as the old code left it: schema 2, a root whose excludes its `forget` wrote
    as the plain relative path (``tmp`` for ``<root>/tmp``), next to a user's patterns."""
    directory.mkdir(parents=True)
    conn = connect(directory / "library.db")
    apply_migrations(conn, OLD_SCHEMA)
    conn.execute(
        "INSERT INTO folders(path, excludes, added_at) VALUES (?, ?, 'then')",
        (str(root), json.dumps(excludes)),
    )
    conn.commit()
    conn.close()


def test_old_forget_excludes_keep_to_their_subtree(tmp_path: Path, micro_model) -> None:
    root = tmp_path / "Pictures"
    for i, sub in enumerate(("tmp", "b/tmp", "a/tmp", "x/a/tmp", "Screenshots", "c/Screenshots")):
        draw_folder(root / sub, 1, start=i)
    user = ["*/Screenshots/*"]  # a user's wildcard pattern: any depth, as documented
    _old_library(tmp_path / "library", root, ["tmp", "a/tmp", *user])  # forget tmp, a/tmp

    lib = Library.open(tmp_path / "library")
    try:
        Indexer(lib, micro_model, batch_size=4, workers=1).run()
        rows = lib.store.rows_for(lib.store.image_ids())
        indexed = {os.path.relpath(os.path.dirname(r.path), root) for r in rows}
        (folder,) = lib.folders()
    finally:
        lib.close()

    assert indexed == {"b/tmp", "x/a/tmp"}  # only the forgotten subtrees stay out
    assert folder.excludes == ("/tmp", "/a/tmp", *user)


def test_excludes_of_a_current_library_are_left_as_written(tmp_path: Path) -> None:
    """Only libraries the old code wrote are normalised: a pattern a user gives today keeps
    today's meaning (a name at any depth)."""
    path = tmp_path / "library.db"
    with Store.open(path) as store:
        store.add_folder("/p", ["tmp", "/a/tmp", "trips/2020"])
    with Store.open(path) as store:
        assert store.folders()[0].excludes == ("tmp", "/a/tmp", "trips/2020")
