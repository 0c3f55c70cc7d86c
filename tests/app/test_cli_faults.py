"""``lotlip-search`` under faults and odd input: read-only and damaged libraries, a full disk,
paths that are not libraries, bad arguments, pipes and devices, start-up time.

Every failure must end in one ``error:`` line naming the file and the cause, a documented exit
status and (with ``--json``) a JSON error object: never a traceback, a hang or a wrong answer.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.cli import EXIT_ERROR, EXIT_NO_MODEL, EXIT_OK, EXIT_USAGE
from tests.app.conftest import ROOT, draw_folder, start_cli, subprocess_env

LONG_TEXT = " ".join(["a large red circle sits next to a small blue star"] * 20)


def no_traceback(err: str) -> None:
    assert "Traceback" not in err
    assert not any(line.startswith(("WARNING", "ERROR", "CRITICAL")) for line in err.splitlines())


@pytest.fixture
def indexed(cli, tmp_path: Path) -> tuple[Path, Path]:
    """A library (``tmp_path/library``) with 6 photos of ``tmp_path/photos`` indexed."""
    photos = tmp_path / "photos"
    draw_folder(photos, 6)
    status, _, err = cli("index", str(photos))
    assert status == EXIT_OK, err
    return tmp_path / "library", photos


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# --------------------------------------------------------------------------- not a library


NEEDS_A_LIBRARY = [
    ["status"], ["errors"], ["search", "a red circle"], ["forget", "/nowhere"],
    ["model", "use", "auto"],
]  # fmt: skip


@pytest.mark.parametrize("command", NEEDS_A_LIBRARY, ids=lambda c: " ".join(c))
def test_read_commands_never_create_a_library(cli, tmp_path: Path, command: list[str]) -> None:
    missing = tmp_path / "mistyped"
    status, _, err = cli(*command, library=missing)
    assert status == EXIT_ERROR
    assert f"no library at {missing}" in err and "lotlip-search index" in err
    assert not missing.exists()

    ordinary = tmp_path / "ordinary"
    ordinary.mkdir()
    (ordinary / "notes.txt").write_text("mine")
    status, _, err = cli(*command, library=ordinary)
    assert status == EXIT_ERROR and "no library at" in err
    assert sorted(p.name for p in ordinary.iterdir()) == ["notes.txt"]


@pytest.mark.parametrize("command", NEEDS_A_LIBRARY, ids=lambda c: " ".join(c))
def test_a_missing_library_is_named_before_a_missing_model(
    cli, tmp_path: Path, command: list[str]
) -> None:
    """A mistyped ``--library`` is the first thing to fix, whatever ``--model`` says."""
    missing = tmp_path / "mistyped"
    status, _, err = cli(*command, library=missing, model="no-such-model")
    assert status == EXIT_ERROR, err
    assert f"no library at {missing}" in err and "no-such-model" not in err
    assert not missing.exists()


def test_json_error_for_a_missing_library(cli, tmp_path: Path) -> None:
    status, out, _ = cli("status", "--json", library=tmp_path / "nope")
    assert status == EXIT_ERROR
    error = json.loads(out)["error"]
    assert error["exit_status"] == EXIT_ERROR and str(tmp_path / "nope") in error["message"]


def test_only_index_and_init_create_a_library(cli, tmp_path: Path) -> None:
    photos = tmp_path / "photos"
    draw_folder(photos, 2)
    ordinary = tmp_path / "ordinary"
    ordinary.mkdir()
    (ordinary / "notes.txt").write_text("mine")
    status, _, err = cli("index", str(photos), library=ordinary)
    assert status == EXIT_ERROR and "is not a library" in err and "init" in err
    assert not (ordinary / "library.db").exists()
    status, out, err = cli("init", library=ordinary)
    assert status == EXIT_OK, err
    assert (ordinary / "library.db").is_file() and "empty library" in out
    assert cli("index", str(photos), library=ordinary)[0] == EXIT_OK
    status, out, _ = cli("status", "--json", library=ordinary)
    assert status == EXIT_OK and json.loads(out)["images"] == 2
    fresh = tmp_path / "new" / "library"  # a new folder is fine for index
    assert cli("index", str(photos), library=fresh)[0] == EXIT_OK


def test_library_that_is_a_file(cli, tmp_path: Path) -> None:
    photo = draw_folder(tmp_path, 1)[0]
    before = sha(photo)
    for command in (["status"], ["index", str(tmp_path)], ["init"], ["model", "list"]):
        status, _, err = cli(*command, library=photo)
        assert status == EXIT_USAGE, err
        assert f"{photo} is a file" in err and "usage: lotlip-search" in err
    assert sha(photo) == before


# --------------------------------------------------------------------------- read-only


@contextlib.contextmanager
def read_only(folder: Path) -> Iterator[Path]:
    """``folder`` made read-only: a read-only bind mount for root (who ignores modes), else
    ``chmod a-w``. Skips when neither can be done here."""
    if os.geteuid() != 0:
        modes = {p: p.stat().st_mode for p in [folder, *folder.rglob("*")]}
        for p, mode in modes.items():
            p.chmod(mode & ~0o222)
        try:
            yield folder
        finally:
            for p, mode in modes.items():
                p.chmod(mode)
        return
    target = folder.with_name(folder.name + "-ro")
    target.mkdir()
    done = subprocess.run(["mount", "--bind", str(folder), str(target)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot bind-mount here: {done.stderr.decode().strip()}")
    try:
        remount = ["mount", "-o", "remount,bind,ro", str(target)]
        if subprocess.run(remount, capture_output=True).returncode != 0:
            pytest.skip("cannot remount read-only here")
        yield target
    finally:
        subprocess.run(["umount", "-l", str(target)], check=True)


def test_read_only_library_reads_and_refuses_writes(cli, indexed) -> None:
    library, photos = indexed
    before = {p.name: sha(p) for p in library.rglob("*") if p.is_file()}
    with read_only(library) as ro:
        status, out, err = cli("status", "--json", library=ro)
        assert status == EXIT_OK, err
        data = json.loads(out)
        assert data["images"] == 6 and data["read_only"] is True
        status, out, err = cli("errors", library=ro)
        assert status == EXIT_OK and "No failed files" in out, err
        status, out, err = cli("search", "a red block", "--top", "3", "--json", library=ro)
        assert status == EXIT_OK, err
        assert len(json.loads(out)["results"]) == 3
        no_traceback(err)
        for command in (["index", str(photos)], ["forget", str(photos)],
                        ["model", "use", "auto"]):  # fmt: skip
            status, _, err = cli(*command, library=ro)
            assert status == EXIT_ERROR, (command, err)
            assert f"the library {ro} is read-only" in err
            no_traceback(err)
    after = {p.name: sha(p) for p in library.rglob("*") if p.is_file()}
    assert after == before


def test_store_opened_read_only_changes_nothing(tmp_path: Path) -> None:
    from app.library.store import ReadOnlyStoreError, Store

    path = tmp_path / "library.db"
    with Store.open(path) as store:
        store.add_folder(str(tmp_path / "photos"))
    before = sha(path)
    with Store.open(path, read_only=True) as store:
        assert store.read_only and [f.path for f in store.folders()] == [str(tmp_path / "photos")]
        with pytest.raises(ReadOnlyStoreError, match="read-only"):
            store.add_folder(str(tmp_path / "more"))
    assert sha(path) == before
    with pytest.raises(Exception, match="no library database"):
        Store.open(tmp_path / "other.db", create=False)
    assert not (tmp_path / "other.db").exists()


# --------------------------------------------------------------------------- damaged


def test_corrupt_database_is_reported_and_left_alone(cli, indexed) -> None:
    library, photos = indexed
    db = library / "library.db"
    data = bytearray(db.read_bytes())
    data[100:] = bytes((i * 131 + 7) % 256 for i in range(len(data) - 100))  # header kept
    db.write_bytes(bytes(data))
    before = sha(db)
    for command in (["status"], ["errors"], ["search", "red"], ["index", str(photos)],
                    ["status", "--json"]):  # fmt: skip
        status, out, err = cli(*command)
        assert status == EXIT_ERROR, (command, err)
        assert f"{db} is damaged" in err and "Move the file aside" in err, err
        no_traceback(err)
        if "--json" in command:
            assert "is damaged" in json.loads(out)["error"]["message"]
    assert sha(db) == before
    db.write_bytes(b"this is not a database at all" * 200)
    status, _, err = cli("status")
    assert status == EXIT_ERROR and "is damaged (file is not a database)" in err
    db.rename(library / "library.db.damaged")  # the remedy the message gives works
    status, out, err = cli("index", str(photos), "--json")
    assert status == EXIT_OK, err
    assert json.loads(out)["added"] == 6


def test_empty_database_file_is_not_a_new_library(cli, tmp_path: Path) -> None:
    library = tmp_path / "library"
    library.mkdir()
    (library / "library.db").write_bytes(b"")
    draw_folder(tmp_path / "photos", 1)
    for command in (["status"], ["index", str(tmp_path / "photos")], ["init"]):
        status, _, err = cli(*command)
        assert status == EXIT_ERROR, err
        assert "library.db is damaged (the file is empty, 0 bytes)" in err
    assert (library / "library.db").stat().st_size == 0


# --------------------------------------------------------------------------- full disk


def test_full_disk_while_indexing(cli, tmp_path: Path, monkeypatch) -> None:
    from app.library.store import Store

    draw_folder(tmp_path / "photos", 3)
    assert cli("init")[0] == EXIT_OK

    def full(self, *args, **kwargs):
        raise sqlite3.OperationalError("database or disk is full")

    monkeypatch.setattr(Store, "upsert_images_with_embeddings", full)
    status, out, err = cli("index", str(tmp_path / "photos"), "--json")
    assert status == EXIT_ERROR
    message = json.loads(out)["error"]["message"]
    assert message.startswith("no space left on the disk holding ")
    assert str(tmp_path / "library" / "library.db") in message
    assert err.strip() == f"error: {message}"  # one line, no traceback


def test_every_json_failure_is_a_json_object(cli, indexed, tmp_path: Path) -> None:
    for args in (["index", str(tmp_path / "no-such-folder")], ["search", "x", "--top", "zero"],
                 ["status", "--bogus"], ["search", "x", "--from", "2020-02-30"]):  # fmt: skip
        status, out, err = cli(*args, "--json")
        assert status in (EXIT_ERROR, EXIT_USAGE), (args, err)
        assert json.loads(out)["error"]["exit_status"] == status, args
        assert err.strip().splitlines()[-1].startswith("error: ")


def test_search_on_a_full_disk_gives_results_and_a_plain_warning(cli, indexed, monkeypatch) -> None:
    from app.library.ann import AnnIndex

    library, _ = indexed
    for file in (library / "ann").iterdir():
        file.unlink()  # the search must rebuild the index, and cannot save it

    def no_space(self, *args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", str(library / "ann" / "x.hnsw"))

    monkeypatch.setattr(AnnIndex, "save", no_space)
    status, out, err = cli("search", "a red block", "--top", "2")
    assert status == EXIT_OK, err
    assert len(out.strip().splitlines()) == 2
    no_traceback(err)
    assert "warning: could not save the micro-random index" in err  # said once, plainly


@pytest.fixture
def tiny_disk(tmp_path: Path) -> Iterator[Path]:
    """A 2 MB tmpfs (root only; skipped where mounting is impossible)."""
    mount = tmp_path / "tiny"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount)], capture_output=True
    )
    if done.returncode != 0:
        pytest.skip("cannot mount a tmpfs here (not root)")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=True)


def fill(disk: Path, leave: int) -> None:
    """Fill ``disk`` so that about ``leave`` bytes stay free."""
    filler = disk / "filler"
    with contextlib.suppress(OSError), open(filler, "wb", buffering=0) as fh:
        while True:
            fh.write(b"\0" * 4096)
    os.truncate(filler, max(0, filler.stat().st_size - leave))


def test_really_full_disk(cli, tiny_disk: Path, tmp_path: Path) -> None:
    photos = tmp_path / "photos"
    draw_folder(photos, 40)
    library = tiny_disk / "library"
    fill(tiny_disk, 400 * 1024)  # room for the new library and a few one-photo batches
    status, out, err = cli("index", str(photos), "--json", "--batch-size", "1", library=library)
    assert status == EXIT_ERROR, out
    message = json.loads(out)["error"]["message"]
    assert "no space left on the disk holding" in message and str(library) in message
    # the error comes last; before it, warnings that the index could not be saved (hnswlib
    # wrote a 0-byte file here, which the old index file is not replaced with)
    assert err.strip().splitlines()[-1] == f"error: {message}"
    (tiny_disk / "filler").unlink()  # space again: the next run finishes the job
    status, out, err = cli("index", "--json", library=library)
    assert status == EXIT_OK, err
    status, out, _ = cli("status", "--json", library=library)
    assert json.loads(out)["images"] == 40


def test_full_disk_while_creating_leaves_no_half_made_library(
    cli, tiny_disk: Path, tmp_path: Path
) -> None:
    """The new database's WAL must be folded in before it is linked into place: a checkpoint
    that failed on a full disk used to leave a `library.db` that read as damaged. Whatever
    room is left, a failed run leaves either no library or a healthy one."""
    photos = tmp_path / "photos"
    draw_folder(photos, 2)
    library = tiny_disk / "library"
    failures = 0
    for leave_kb in range(16, 400, 16):
        shutil.rmtree(library, ignore_errors=True)
        fill(tiny_disk, leave_kb * 1024)
        status, out, err = cli("index", str(photos), "--json", library=library)
        (tiny_disk / "filler").unlink()
        if status != EXIT_OK:
            failures += 1
            assert "no space left" in json.loads(out)["error"]["message"], (leave_kb, out)
        if (library / "library.db").exists():
            status, out, err = cli("status", "--json", library=library)
            assert status == EXIT_OK, (leave_kb, err)
    assert failures  # the disk really was too full for some of them


# --------------------------------------------------------------------------- argument checks


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["a", "--top", "0"], "--top must be at least 1"),
        (["a", "--top", "-5"], "--top must be at least 1"),
        ([""], "give a description"),
        (["   "], "give a description"),
        (["a", "--from", "2020-13"], "not a date: '2020-13'"),
        (["a", "--to", "2020-02-30"], "not a date: '2020-02-30'"),
        (["a", "--from", "2021", "--to", "2020"], "is after --to"),
        (["a", "--threshold", "1.5"], "between -1 and 1"),
        (["a", "--threshold", "-2"], "between -1 and 1"),
        (["a", "--folder", "/somewhere/else"], "--folder /somewhere/else is not in the library"),
        (["", "--like", "/no/such/image.jpg"], "no such file"),
        (["", "--like", "/dev/null"], "is a device, not an image file"),
    ],
)
def test_search_arguments_checked_before_the_model_loads(
    cli, indexed, monkeypatch, args: list[str], expected: str
) -> None:
    import app.library.models

    def no_loading(*a, **k):
        raise AssertionError("the model was loaded before the arguments were checked")

    monkeypatch.setattr(app.library.models, "load_model", no_loading)
    status, out, err = cli("search", *args, "--json")
    assert status == EXIT_USAGE, err
    assert err.startswith("usage: lotlip-search search"), err
    assert expected in err
    assert json.loads(out)["error"]["exit_status"] == EXIT_USAGE


def test_like_on_a_fifo_is_refused_without_blocking(cli, indexed, tmp_path: Path) -> None:
    fifo = tmp_path / "pipe.jpg"
    os.mkfifo(fifo)

    def unblock() -> None:  # so that a CLI that does block fails this test instead of hanging
        time.sleep(10)
        with contextlib.suppress(OSError):
            fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
            os.close(fd)

    threading.Thread(target=unblock, daemon=True).start()
    started = time.monotonic()
    status, _, err = cli("search", "", "--like", str(fifo))
    assert status == EXIT_USAGE and "is a pipe, not an image file" in err
    assert time.monotonic() - started < 5


def test_unknown_model_fails_status(cli, indexed) -> None:
    status, _, err = cli("status", model="no-such-model")
    assert status == EXIT_NO_MODEL and "no-such-model" in err


def test_long_not_text_is_warned_about(cli, indexed) -> None:
    status, out, err = cli("search", "a red block", "--not", LONG_TEXT, "--json")
    assert status == EXIT_OK, err
    assert "phrase to steer away from has" in err
    assert any("phrase to steer away from" in w for w in json.loads(out)["warnings"])


def test_dates_are_real_dates() -> None:
    from app.library.dates import normalize_date

    assert normalize_date("2020-06", upper=True) == "2020-06-30T23:59:59"
    assert normalize_date("2020-02", upper=True) == "2020-02-29T23:59:59"
    assert normalize_date("2021-02", upper=True) == "2021-02-28T23:59:59"
    assert normalize_date("2021-12-31T22:00", upper=True) == "2021-12-31T22:00:59"
    assert normalize_date("2019-07-15") == "2019-07-15"
    for bad in ("2020-13", "2020-02-30", "2021-02-29", "2020-01-01T25:00", "2020-1-1"):
        with pytest.raises(ValueError, match="not a date"):
            normalize_date(bad)


# --------------------------------------------------------------------------- pipes


def test_search_into_a_closed_pipe_exits_quietly(indexed, models_dir: Path) -> None:
    library, _ = indexed
    args = ["--library", str(library), "--model", "micro-random", "search", "a red block"]
    proc = start_cli(args, models_dir)
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()  # like `| head -0`: the reader is gone before anything is written
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == EXIT_OK, err
    assert "Broken pipe" not in err and "Traceback" not in err


# --------------------------------------------------------------------------- start-up

LIGHT_COMMANDS = [["status"], ["errors"], ["forget", "/nowhere"], ["model", "list"]]


@pytest.mark.parametrize("command", LIGHT_COMMANDS, ids=lambda c: " ".join(c))
def test_commands_that_do_not_embed_start_without_torch(
    indexed, models_dir: Path, command: list[str]
) -> None:
    library, _ = indexed
    code = (
        "import sys, time; t = time.perf_counter(); import app.cli; "
        f"rc = app.cli.main(['--library', {str(library)!r}, *{command!r}]); "
        "heavy = sorted({m.split('.')[0] for m in sys.modules} & {'torch', 'transformers'}); "
        "print(rc, heavy, round(time.perf_counter() - t, 2), file=sys.stderr)"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env=subprocess_env(models_dir),
        capture_output=True,
        text=True,
        timeout=120,
    )
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("0 [] "), done.stderr


# --------------------------------------------------------------------------- small texts


def test_finetune_help_names_lotlip_search(capsys: pytest.CaptureFixture[str]) -> None:
    from app.cli import main

    assert main(["finetune", "--help"]) == EXIT_OK
    assert "usage: lotlip-search finetune" in capsys.readouterr().out


def test_status_names_the_bundled_model_once(cli, indexed) -> None:
    status, out, _ = cli("status", model=None)
    line = next(x for x in out.splitlines() if x.startswith("Model:"))
    assert status == EXIT_OK and "(bundled" in line and ") (" not in line


def test_demo_order_and_zero_queries(cli) -> None:
    assert cli("demo", "--queries", "0")[0] == EXIT_USAGE
    status, out, err = cli("demo", "--count", "4", "--queries", "1")
    assert status == EXIT_OK, err
    assert out.index("- indexed") < out.index("- searching") < out.index("Query 1 of 1")
