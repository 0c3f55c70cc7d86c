"""``torchrun -m app.bulk_index``: two gloo ranks on the CPU index like one indexer does, and a
rank killed with SIGKILL mid-run loses and duplicates nothing once the command is run again."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from app.bulk_index import SHARD_DIR
from app.library.indexer import Indexer
from app.library.library import DB_FILE, Library
from app.library.models import load_model
from tests.app.conftest import RANDOM_MODEL, ROOT, draw_folder, subprocess_env

TIMEOUT_S = 240


def torchrun(folder: Path, library: Path, models_dir: Path, *extra: str) -> subprocess.Popen:
    """Start a 2-process torchrun job of the bulk indexer (gloo, one thread per rank)."""
    command = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
        "-m", "app.bulk_index", str(folder), "--library", str(library), "--model", RANDOM_MODEL,
        "--device", "cpu", "--precision", "fp32", "--json", *extra,
    ]  # fmt: skip
    return subprocess.Popen(
        command,
        cwd=ROOT,
        env=subprocess_env(models_dir),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish(proc: subprocess.Popen) -> dict:
    out, err = proc.communicate(timeout=TIMEOUT_S)
    assert proc.returncode == 0, err[-3000:]
    return json.loads(out.strip().splitlines()[-1])


def stored(library: Path) -> dict[str, np.ndarray]:
    """Path -> vector of every stored image, checking that no path is stored twice."""
    with sqlite3.connect(library / DB_FILE) as conn:
        rows = conn.execute(
            "SELECT i.path, e.vector FROM images i JOIN embeddings e ON e.image_id = i.id"
        ).fetchall()
        (images,) = conn.execute("SELECT count(*) FROM images").fetchone()
    paths = [p for p, _ in rows]
    assert len(paths) == len(set(paths)) == images  # once each, and every image has its vector
    return {p: np.frombuffer(v, dtype=np.float32) for p, v in rows}


def reference(folder: Path, tmp_path: Path) -> dict[str, np.ndarray]:
    """What the plain single-process indexer stores for ``folder``."""
    with Library.open(tmp_path / "reference") as lib:
        Indexer(lib, load_model(RANDOM_MODEL, "cpu", "fp32"), batch_size=8).run([folder])
    return stored(tmp_path / "reference")


def assert_same_vectors(got: dict[str, np.ndarray], want: dict[str, np.ndarray]) -> None:
    assert set(got) == set(want)
    for path, vector in want.items():
        np.testing.assert_allclose(got[path], vector, atol=1e-5)


def test_two_ranks_index_like_one(tmp_path: Path, models_dir: Path) -> None:
    folder = tmp_path / "photos"
    draw_folder(folder, 30)
    (folder / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    report = finish(torchrun(folder, tmp_path / "lib", models_dir, "--batch-size", "4"))
    assert (report["added"], report["failed"]) == (30, 1)
    assert report["failures"][0]["path"].endswith("broken.jpg")
    assert_same_vectors(stored(tmp_path / "lib"), reference(folder, tmp_path))
    assert not list((tmp_path / "lib" / SHARD_DIR).iterdir())  # every shard merged
    with Library.open(tmp_path / "lib") as lib:
        assert [f.path for f in lib.store.failures()] == [str(folder / "broken.jpg")]

    again = finish(torchrun(folder, tmp_path / "lib", models_dir))
    assert (again["added"], again["unchanged"]) == (0, 30)


def _children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        for child in (task / "children").read_text().split():
            found += [int(child), *_children(int(child))]
    return found


def _rank_pid(torchrun_pid: int, rank: int) -> int | None:
    for pid in _children(torchrun_pid):
        try:
            environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if f"RANK={rank}".encode() in environ:
            return pid
    return None


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="needs Linux /proc")
def test_killed_rank_then_rerun_is_exactly_once(tmp_path: Path, models_dir: Path) -> None:
    folder = tmp_path / "photos"
    draw_folder(folder, 240)
    shards = tmp_path / "lib" / SHARD_DIR
    proc = torchrun(folder, tmp_path / "lib", models_dir, "--batch-size", "1", "--workers", "1")
    deadline = time.monotonic() + TIMEOUT_S
    victim = None
    while time.monotonic() < deadline and proc.poll() is None:
        if shards.is_dir() and len(list(shards.glob("r001-*.json"))) >= 3:
            victim = _rank_pid(proc.pid, 1)
            if victim is not None:
                break
        time.sleep(0.01)
    assert victim is not None, "rank 1 finished before it could be killed"
    os.kill(victim, signal.SIGKILL)
    proc.communicate(timeout=TIMEOUT_S)
    assert proc.returncode != 0  # torchrun stops the job when a rank dies
    left = list(shards.glob("r*.json"))
    assert left  # whole shards of the killed job wait for the next run

    report = finish(torchrun(folder, tmp_path / "lib", models_dir, "--batch-size", "4"))
    assert report["failed"] == 0
    got = stored(tmp_path / "lib")
    assert len(got) == 240  # no holes, and `stored` checked there are no duplicates
    assert_same_vectors(got, reference(folder, tmp_path))
    assert not list(shards.glob("r*"))


def test_leftover_shards_are_merged_once_and_only_while_current(
    tmp_path: Path, models_dir: Path
) -> None:
    """A shard of a killed run is taken for files unchanged since, never for edited ones."""
    from app.bulk_index import BulkIndexer, write_shard
    from app.library.store import ImageRecord
    from training.distributed import DistInfo

    folder = tmp_path / "photos"
    kept, edited = draw_folder(folder, 2)
    model = load_model(RANDOM_MODEL, "cpu", "fp32")
    marker = np.full((2, model.embed_dim), 1 / np.sqrt(model.embed_dim), dtype=np.float32)
    records = [
        ImageRecord(str(p), p.stat().st_size, p.stat().st_mtime_ns, hash="x")
        for p in (kept, edited)
    ]
    write_shard(tmp_path / "lib" / SHARD_DIR, "r000-old-000000", model.name, records, marker, [])
    (tmp_path / "lib" / SHARD_DIR / "r001-old-000000.npy").write_bytes(b"half")  # no .json
    draw_folder(folder, 2, size=(64, 48), start=7)  # both files edited since the shard
    with Library.open(tmp_path / "lib") as lib:
        report = BulkIndexer(lib, model, DistInfo(), "new", batch_size=4).run([folder])
    assert (report.added, report.failed) == (2, 0)
    got = stored(tmp_path / "lib")
    for vector in got.values():
        assert not np.allclose(vector, marker[0])  # freshly embedded, the stale shard dropped
    assert_same_vectors(got, reference(folder, tmp_path))
    assert not list((tmp_path / "lib" / SHARD_DIR).iterdir())


def test_leftover_shard_of_unchanged_files_is_not_embedded_again(
    tmp_path: Path, models_dir: Path
) -> None:
    from app.bulk_index import BulkIndexer, write_shard
    from app.library.store import ImageRecord
    from training.distributed import DistInfo

    folder = tmp_path / "photos"
    paths = draw_folder(folder, 3)
    model = load_model(RANDOM_MODEL, "cpu", "fp32")
    marker = np.full((1, model.embed_dim), 1 / np.sqrt(model.embed_dim), dtype=np.float32)
    first = paths[0]
    record = ImageRecord(str(first), first.stat().st_size, first.stat().st_mtime_ns)
    write_shard(tmp_path / "lib" / SHARD_DIR, "r001-old-000000", model.name, [record], marker, [])
    with Library.open(tmp_path / "lib") as lib:
        report = BulkIndexer(lib, model, DistInfo(), "new", batch_size=4).run([folder])
    assert report.added == 3
    got = stored(tmp_path / "lib")
    np.testing.assert_array_equal(got[str(first)], marker[0])  # taken from the shard as is
    want = reference(folder, tmp_path)
    for path in map(str, paths[1:]):
        np.testing.assert_allclose(got[path], want[path], atol=1e-5)


def test_the_library_settings_choose_device_and_precision(tmp_path: Path, models_dir: Path) -> None:
    """Without --device/--precision the bulk indexer runs as the library's settings say (the
    rule of `lotlip-search`), and a stored setting this computer cannot run is an error."""
    from app.bulk_index import main
    from app.library.library import PRECISION_KEY
    from app.library.models import DEVICE_SETTING, PRECISION_SETTING, LibrarySettingError

    folder = tmp_path / "photos"
    draw_folder(folder, 2)
    with Library.open(tmp_path / "lib") as lib:
        lib.store.set_setting(PRECISION_SETTING, "int8")  # never what "auto" picks

    assert main([str(folder), "--library", str(tmp_path / "lib"), "--model", RANDOM_MODEL]) == 0

    with Library.open(tmp_path / "lib") as lib:
        assert lib.store.get_model(RANDOM_MODEL).metadata[PRECISION_KEY] == "int8"
        lib.store.set_setting(DEVICE_SETTING, "no-such-device")
    with pytest.raises(LibrarySettingError, match="device setting"):
        main([str(folder), "--library", str(tmp_path / "lib"), "--model", RANDOM_MODEL])
