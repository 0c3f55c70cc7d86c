"""SIGKILL the indexer at random moments, then run it again: no duplicates, no holes, the
ANN index equals the store, SQLite is intact."""

from __future__ import annotations

import contextlib
import json
import random
import signal
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from app.library.ann import AnnIndex, AnnIndexError, ann_path
from app.library.library import Library
from tests.app.conftest import RANDOM_MODEL, database_problems, draw_folder, start_cli

IMAGES = 300
TIMEOUT_S = 90.0


def committed(db: Path) -> int:
    """Images committed so far (-1 while the database does not exist)."""
    if not db.exists():
        return -1
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as conn:
            return int(conn.execute("SELECT count(*) FROM images").fetchone()[0])
    except sqlite3.Error:
        return -1  # not created (or migrated) yet


def wait_for(condition: Callable[[], bool], proc, timeout: float = TIMEOUT_S) -> None:
    deadline = time.monotonic() + timeout
    while not condition() and proc.poll() is None:
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail("the indexer did not get going in time")
        time.sleep(0.005)


def check_store(db: Path, files: set[str]) -> int:
    """SQLite invariants after a kill; returns how many images are stored."""
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert conn.execute("PRAGMA foreign_key_check").fetchall() == []
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}
        if "images" not in tables:
            return 0  # killed before the schema was created: nothing to check yet
        paths = [r[0] for r in conn.execute("SELECT path FROM images")]
        assert len(paths) == len(set(paths))  # each image at most once
        assert set(paths) <= files
        # every stored image has its vector: batches commit images and vectors together
        missing = conn.execute(
            "SELECT count(*) FROM images i LEFT JOIN embeddings e ON e.image_id = i.id "
            "WHERE e.image_id IS NULL"
        ).fetchone()[0]
        assert missing == 0
        return len(paths)


def test_sigkill_at_random_moments_then_resume(tmp_path: Path, models_dir: Path) -> None:
    folder = tmp_path / "photos"
    files = {str(p) for p in draw_folder(folder, IMAGES)}
    lib_dir = tmp_path / "library"
    db = lib_dir / "library.db"
    args = ["--library", str(lib_dir), "--model", RANDOM_MODEL, "index", str(folder)]
    args += ["--batch-size", "3", "--save-every", "2", "--workers", "2", "--json"]
    rng = random.Random(4)
    # kill points: while starting up, right after the first batch, and twice later on
    plans = [("startup", 0), ("first batch", 1), ("later", rng.randint(20, 80))]
    plans.append(("much later", rng.randint(100, 200)))
    killed_mid_way = 0
    for _label, at_least in plans:
        proc = start_cli(args, models_dir)
        if at_least == 0:
            wait_for(db.exists, proc)
        else:
            wait_for(lambda n=at_least: committed(db) >= n, proc)
        time.sleep(rng.uniform(0.0, 0.02))
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=TIMEOUT_S)
        stored = check_store(db, files) if db.exists() else 0
        killed_mid_way += 0 < stored < IMAGES
        # the index file on disk is either usable or cleanly refused, never a crash
        with Library.open(lib_dir) as lib:
            if lib.store.model_dim(RANDOM_MODEL):
                with contextlib.suppress(AnnIndexError):
                    AnnIndex.load(ann_path(lib_dir, RANDOM_MODEL), lib.store, RANDOM_MODEL)
    assert killed_mid_way >= 2, "the indexer finished before it could be killed"

    proc = start_cli(args, models_dir)
    out, err = proc.communicate(timeout=TIMEOUT_S)
    assert proc.returncode == 0, err.decode()
    report = json.loads(out)
    assert report["failed"] == 0 and not report["cancelled"]

    assert check_store(db, files) == IMAGES
    with Library.open(lib_dir) as lib:
        paths = [r.path for r in lib.store.rows_for(lib.store.image_ids())]
        assert sorted(paths) == sorted(files)  # each image exactly once
        ids = set(lib.store.embedding_ids(RANDOM_MODEL).tolist())
        assert len(ids) == IMAGES
        index = AnnIndex.load(ann_path(lib_dir, RANDOM_MODEL), lib.store, RANDOM_MODEL)
        assert index.labels() == ids  # the saved index is current: labels = store rows
        assert database_problems(lib.store.conn) == []


def test_ctrl_c_saves_exits_3_and_the_next_run_resumes(tmp_path: Path, models_dir: Path) -> None:
    folder = tmp_path / "photos"
    draw_folder(folder, IMAGES)
    lib_dir = tmp_path / "library"
    db = lib_dir / "library.db"
    args = ["--library", str(lib_dir), "--model", RANDOM_MODEL, "index", str(folder)]
    args += ["--batch-size", "2", "--json"]
    proc = start_cli(args, models_dir)
    wait_for(lambda: committed(db) >= 6, proc)
    assert proc.poll() is None, "the indexer finished before it could be interrupted"
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=TIMEOUT_S)
    assert proc.returncode == 3, err.decode()
    assert "run the same command again" in err.decode()
    first = json.loads(out)
    assert first["cancelled"] is True and 0 < first["added"] < IMAGES
    assert first["pending"] == IMAGES - first["added"]
    assert f"{first['pending']} photo(s) not indexed yet" in err.decode()
    status = start_cli(["--library", str(lib_dir), "--model", RANDOM_MODEL, "status", "--json"],
                       models_dir)  # fmt: skip
    out_status, _ = status.communicate(timeout=TIMEOUT_S)
    assert json.loads(out_status)["pending"] == first["pending"]
    with Library.open(lib_dir) as lib:  # the index was saved on the way out: no rebuild
        index = AnnIndex.load(ann_path(lib_dir, RANDOM_MODEL), lib.store, RANDOM_MODEL)
        assert len(index) == first["added"]

    proc = start_cli(args, models_dir)
    out, err = proc.communicate(timeout=TIMEOUT_S)
    assert proc.returncode == 0, err.decode()
    second = json.loads(out)
    assert second["added"] == IMAGES - first["added"]
    assert second["unchanged"] == first["added"]
    assert second["pending"] == 0
