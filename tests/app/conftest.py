"""Shared fixtures for the app tests: real image files drawn with Pillow, real small models,
the CLI run in this process or in a child process."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from PIL import Image, ImageDraw

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # let `pytest` (not only `python -m pytest`) import `app`
    sys.path.insert(0, str(ROOT))

from tests.builders import caption_vocab, new_micro_model  # noqa: E402  (needs ROOT on sys.path)

PIL_FORMATS = {"jpeg": "JPEG", "png": "PNG", "gif": "GIF", "bmp": "BMP", "webp": "WEBP",
               "tiff": "TIFF"}  # fmt: skip


def draw_image(
    path: str | os.PathLike[str] | bytes,
    fmt: str = "jpeg",
    size: tuple[int, int] = (48, 32),
    seed: int = 0,
) -> None:
    """Write a small picture (a few shapes that depend on ``seed``) in ``fmt`` to ``path``."""
    img = Image.new("RGB", size, (seed * 37 % 256, seed * 91 % 256, seed * 13 % 256))
    pen = ImageDraw.Draw(img)
    pen.rectangle((seed % 10, 2, size[0] // 2, size[1] - 3), fill=(250, 200 - seed % 50, 10))
    pen.ellipse((size[0] // 3, 4, size[0] - 2, size[1] // 2 + seed % 5), fill=(0, 90, 200))
    if isinstance(path, bytes):
        with open(path, "wb") as fh:
            img.save(fh, PIL_FORMATS[fmt])
    else:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        img.save(path, PIL_FORMATS[fmt])


@pytest.fixture
def draw():
    """The :func:`draw_image` helper."""
    return draw_image


# --------------------------------------------------------------------------- models and CLI
# The real bundled model is not needed: tiny random models are built here, saved in our
# format under a session-wide LOTLIP_MODELS_DIR, and loaded by name like any installed model.
# Torch runs on one thread: the test machine has few cores and is often busy.

torch.set_num_threads(1)

RANDOM_MODEL = "micro-random"
OTHER_MODEL = "micro-random-b"  # same dimension, other weights
GALLERY_SCENES = 10  # held-out scenes the ranking tests search


@pytest.fixture(scope="session")
def models_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A session-wide models folder with the random micro models (built once)."""
    folder = tmp_path_factory.mktemp("models")
    vocab = caption_vocab()
    new_micro_model(RANDOM_MODEL, vocab, seed=0).save(folder / RANDOM_MODEL)
    new_micro_model(OTHER_MODEL, vocab, seed=1).save(folder / OTHER_MODEL)
    return folder


@pytest.fixture
def models_dir(models_folder: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """:func:`models_folder`, set as ``LOTLIP_MODELS_DIR`` for this test only.

    Per test, not per session: the GUI tests point the variable at their own session folder,
    and a session-wide setting here would lose to theirs whenever both run in one session.
    """
    monkeypatch.setenv("LOTLIP_MODELS_DIR", str(models_folder))
    return models_folder


@pytest.fixture
def micro_model(models_dir: Path):
    """The random micro model, loaded (the same object the app's model cache hands out)."""
    from app.library.models import load_model

    return load_model(RANDOM_MODEL, "cpu")


@pytest.fixture
def ranking_model(models_dir: Path) -> str:
    """A model that really ranks scenes: the bundled ``lotlip-tiny`` (trained on other scenes
    than the held-out ones the tests search)."""
    from lotlip import registry

    assert registry.is_installed(registry.BUNDLED_MODEL), "resources/models/lotlip-tiny is missing"
    return registry.BUNDLED_MODEL


@pytest.fixture
def library(tmp_path: Path, models_dir: Path):
    """A fresh library in a temporary folder."""
    from app.library.library import Library

    lib = Library.open(tmp_path / "library")
    yield lib
    lib.close()


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str], tmp_path: Path, models_dir: Path):
    """Run ``lotlip-search`` in this process: ``cli(*args) -> (status, stdout, stderr)``.

    ``--library`` (a temporary folder) and ``--model`` (the random micro model) are added
    unless given.
    """
    from app.cli import main

    def run(*args: str, library: Path | None = None, model: str | None = RANDOM_MODEL):
        argv = ["--library", str(library or tmp_path / "library")]
        if model:
            argv += ["--model", model]
        capsys.readouterr()
        status = main([*argv, *args])
        out, err = capsys.readouterr()
        return status, out, err

    return run


def subprocess_env(models_dir: Path, **extra: str) -> dict[str, str]:
    """Environment for running the CLI in a child process (one torch thread, test models)."""
    env = dict(os.environ)
    env.update(
        LOTLIP_MODELS_DIR=str(models_dir),
        OMP_NUM_THREADS="1",
        PYTHONPATH=str(ROOT) + os.pathsep + env.get("PYTHONPATH", ""),
        **extra,
    )
    return env


def start_cli(args: list[str], models_dir: Path, **popen: object) -> subprocess.Popen:
    """Start ``python -m app.cli ARGS`` in a child process."""
    return subprocess.Popen(
        [sys.executable, "-m", "app.cli", *args],
        cwd=ROOT,
        env=subprocess_env(models_dir),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        **popen,  # type: ignore[arg-type]
    )


def draw_folder(
    folder: Path, count: int, size: tuple[int, int] = (48, 32), start: int = 0
) -> list[Path]:
    """``count`` small JPEGs in ``folder`` (``img_0000.jpg`` ...), drawn with seeds ``start``,
    ``start + 1``, ... (different seeds, different pictures)."""
    paths = []
    for i in range(count):
        path = folder / f"img_{i:04d}.jpg"
        draw_image(path, "jpeg", size, seed=start + i)
        paths.append(path)
    return paths


# --------------------------------------------------------------------------- permissions
# Root reads every file whatever its mode, and tests (and CI) may run as root. To meet a real
# "Permission denied", code under test runs in a forked child that has become ``nobody``.

NOBODY = 65534


def run_unprivileged(fn, *args):
    """``fn(*args)`` where file modes apply; its (picklable) result or a test failure.

    As an ordinary user this is a plain call. As root it runs in a forked child that has
    dropped to uid/gid ``nobody``, so every path it touches must be open to others (see
    :func:`open_tmp`).
    """
    import pickle
    import traceback

    if os.geteuid() != 0:
        return fn(*args)
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never return into pytest
        try:
            os.close(read)
            os.setgroups([])
            os.setgid(NOBODY)
            os.setuid(NOBODY)
            result = ("ok", fn(*args))
        except BaseException:
            result = ("error", traceback.format_exc())
        try:
            with os.fdopen(write, "wb") as fh:
                pickle.dump(result, fh)
        finally:
            os._exit(0)
    os.close(write)
    with os.fdopen(read, "rb") as fh:
        data = fh.read()
    os.waitpid(pid, 0)
    if not data:
        pytest.fail("the unprivileged child died without an answer")
    kind, value = pickle.loads(data)
    if kind == "error":
        pytest.fail(f"in the unprivileged child:\n{value}")
    return value


@pytest.fixture
def open_tmp() -> Iterator[Path]:
    """A temporary folder every user may enter and write (for :func:`run_unprivileged`)."""
    import shutil
    import tempfile

    folder = Path(tempfile.mkdtemp(prefix="lotlip-test-"))
    folder.chmod(0o777)
    yield folder
    for dirpath, dirnames, _ in os.walk(folder):
        for name in dirnames:
            os.chmod(os.path.join(dirpath, name), 0o755)
    shutil.rmtree(folder, ignore_errors=True)


def database_problems(conn: sqlite3.Connection) -> list[str]:
    """What SQLite's integrity and foreign-key checks find, and vectors of the wrong size."""
    problems = [message for (message,) in conn.execute("PRAGMA integrity_check") if message != "ok"]
    for table, rowid, parent, _ in conn.execute("PRAGMA foreign_key_check"):
        problems.append(f"foreign key: {table} row {rowid} points to a missing {parent}")
    wrong_size = conn.execute(
        "SELECT e.model, count(*) FROM embeddings e JOIN models m ON m.name = e.model "
        "WHERE length(e.vector) != m.dim * 4 GROUP BY e.model"
    )
    problems += [f"{n} vectors of model {model!r} have the wrong size" for model, n in wrong_size]
    return problems
