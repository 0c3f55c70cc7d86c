"""Fixtures for the GUI tests: offscreen Qt, isolated libraries and settings, tiny models.

Every test gets its own library folder (``$LOTLIP_SEARCH_LIBRARY``) and INI file
(``$LOTLIP_SEARCH_GUI_CONFIG``). Models live in a session-wide temporary
``$LOTLIP_MODELS_DIR``:

* ``gui-tiny``: random weights (width 32, one layer) — enough for indexing, drag-and-drop
  (a photo's own vector is its nearest neighbour) and fine-tuning plumbing.
* ``searcher_model``: the bundled ``lotlip-tiny`` when it is installed, else ``gui-micro``, a
  micro model trained here for a few hundred steps on the very scenes of ``scenes_dir``, so a
  scene's paragraph finds that scene (``LOTLIP_GUI_TEST_MICRO=1`` forces the micro model).
"""

from __future__ import annotations

import os

os.environ["QT_QPA_PLATFORM"] = "offscreen"  # before any Qt import

import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # let `pytest` (not only `python -m pytest`) import `app`
    sys.path.insert(0, str(ROOT))

from tests.builders import caption_vocab, new_micro_model  # noqa: E402  (needs ROOT on sys.path)

SCENE_START = 100  # seeds of the generated library photos
SCENE_COUNT = 8
SCENE_SIZE = 64
TINY = "gui-tiny"
MICRO = "gui-micro"


def make_model(name: str, *, width: int = 32, seed: int = 0) -> Any:
    """A small random LoTLIP called ``name`` (the caption vocabulary, one layer)."""
    return new_micro_model(name, caption_vocab(), seed=seed, width=width)


class _CachedRender:
    """A scene whose renderings are kept (training reuses the same few scenes every step)."""

    def __init__(self, scene: Any) -> None:
        self._scene = scene
        self._renders: dict[int, Any] = {}

    def __getattr__(self, name: str) -> Any:
        return getattr(self._scene, name)

    def render(self, size: int = 224) -> Any:
        if size not in self._renders:
            self._renders[size] = self._scene.render(size)
        return self._renders[size]


def _train_micro(home: Path, work: Path) -> None:
    """Train ``gui-micro`` on the library scenes (about 15 s on two busy cores)."""
    import shutil

    import torch

    from training.data import SyntheticDataset
    from training.train import TrainConfig, train

    class Scenes(SyntheticDataset):
        def scene(self, index: int) -> Any:
            cache = self.__dict__.setdefault("_cache", {})
            if index not in cache:
                cache[index] = _CachedRender(super().scene(index))
            return cache[index]

    model = make_model(MICRO, width=64)
    data = Scenes(
        SCENE_START,
        SCENE_COUNT,
        model.preprocess,
        image_size=SCENE_SIZE,
        num_long=1,
        sentences_per_caption=None,
    )
    config = TrainConfig(
        out=str(work),
        steps=400,
        batch_size=SCENE_COUNT,
        lr=1e-3,
        warmup=5,
        weight_decay=0.0,
        save_every=100_000,
        log_every=100,
        num_long=1,
        device="cpu",
        workers=0,
    )
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny matrices: more threads only contend (2 busy cores here)
    try:
        result = train(config, model, data)
    finally:
        torch.set_num_threads(threads)
    assert result.model_dir is not None
    shutil.move(str(result.model_dir), str(home / MICRO))


@pytest.fixture(scope="session")
def models_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A session-wide models folder holding ``gui-tiny`` (each test points
    ``$LOTLIP_MODELS_DIR`` at it: see :func:`isolated`)."""
    home = tmp_path_factory.mktemp("models")
    make_model(TINY).save(home / TINY)
    return home


@pytest.fixture
def install_model(models_home: Path) -> Iterator[Callable[[str], Path]]:
    """``install_model(name)`` saves a random tiny model there (removed after the test)."""
    import shutil

    made: list[Path] = []

    def install(name: str) -> Path:
        folder = models_home / name
        make_model(name, seed=len(made) + 1).save(folder)
        made.append(folder)
        return folder

    yield install
    for folder in made:
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="session")
def searcher_model(models_home: Path, tmp_path_factory: pytest.TempPathFactory) -> str:
    """A model that finds a scene from its paragraph: the bundled one, else ``gui-micro``."""
    from lotlip import registry

    force_micro = os.environ.get("LOTLIP_GUI_TEST_MICRO") == "1"  # exercise the fallback
    if registry.is_installed(registry.BUNDLED_MODEL) and not force_micro:
        return registry.BUNDLED_MODEL
    _train_micro(models_home, tmp_path_factory.mktemp("micro-run"))
    return MICRO


@pytest.fixture(scope="session")
def scenes_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Generated scenes (PNG + caption sidecars + manifest.jsonl), shared read-only."""
    from training.synthetic import write_scenes

    folder = tmp_path_factory.mktemp("scenes")
    write_scenes(folder, SCENE_START, SCENE_COUNT, size=SCENE_SIZE)
    return folder


@pytest.fixture
def many_scenes(tmp_path: Path) -> Path:
    """A bigger folder (for cancelling mid-run): 40 small scenes."""
    from training.synthetic import write_scenes

    folder = tmp_path / "many"
    write_scenes(folder, 500, 40, size=48)
    return folder


@pytest.fixture(autouse=True)
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, models_home: Path) -> Path:
    """Own library folder and GUI settings file for every test, and the session's models.

    ``$LOTLIP_MODELS_DIR`` is set per test, not per session, so that it is undone after each
    test: the app tests have a models folder of their own and may run in the same session.
    """
    monkeypatch.setenv("LOTLIP_MODELS_DIR", str(models_home))
    monkeypatch.setenv("LOTLIP_SEARCH_LIBRARY", str(tmp_path / "library"))
    monkeypatch.setenv("LOTLIP_SEARCH_GUI_CONFIG", str(tmp_path / "gui.ini"))
    return tmp_path


@pytest.fixture
def make_session(qtbot: Any) -> Iterator[Callable[..., Any]]:
    """``make_session(model=None)`` opens a Session on the test's library (shut down after)."""
    from app.gui.session import Session

    sessions: list[Any] = []

    def factory(model: str | None = TINY, *, load: bool = False) -> Any:
        session = Session()
        if model:
            session.set_setting("model", model)
        session.set_setting("device", "cpu")
        sessions.append(session)
        if load:
            with qtbot.waitSignal(session.modelReady, timeout=60_000):
                session.load_model()
        return session

    yield factory
    for session in sessions:
        session.shutdown()


@pytest.fixture
def make_window(qtbot: Any, make_session: Callable[..., Any]) -> Callable[..., Any]:
    """``make_window(session=None)``: a shown MainWindow with its model loaded."""
    from app.gui.config import GuiSettings
    from app.gui.main_window import MainWindow

    def factory(session: Any = None, *, wait_model: bool = True) -> Any:
        session = session or make_session()
        window = MainWindow(session, GuiSettings())
        qtbot.addWidget(window)
        window.show()
        if wait_model:
            qtbot.waitUntil(lambda: session.choice is not None, timeout=60_000)
        return window

    return factory


@pytest.fixture
def index_now(qtbot: Any) -> Callable[..., Any]:
    """``index_now(session, [folder, ...], **options)``: index through the session and wait."""

    def run_index(session: Any, folders: list[Path], **options: Any) -> Any:
        session.add_folders([str(f) for f in folders], [])
        run = session.start_indexing([str(f) for f in folders], **options)
        qtbot.waitUntil(lambda: not run.running, timeout=120_000)
        assert run.error is None, run.error
        return run

    return run_index
